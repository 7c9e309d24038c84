"""The gradient of an embedding lookup: uvs's `IncRows` against PyTensor's own Op, one process.

    python benchmarks/inc_rows_bench.py [--repeats 20]

For the lookups of the paper-size updates (rows of a 10 000-word table, batch x words
indices), compiles `grad(sum(W[x]**2), W)` twice in PyTensor's C backend — as uvs builds it
(`IncRows`) and with the rewrite excluded (PyTensor's `AdvancedIncSubtensor1`, which runs
`np.add.at` for a matrix) — checks that both give the same gradient bit for bit, and prints
the best time of each, taking turns, and their ratio. Both include the zero table (`Alloc`)
the gradient is added into and the squared lookup, which they share.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SIZES = {"VSE (dim_word 300)": (10000, 300, 128 * 12),
         "bag of words (1024)": (10000, 1024, 128 * 12),
         "decoder (512)": (10000, 512, 128 * 16)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args()
    from uvs import backend

    backend.configure()
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import get_mode

    print(f"{'lookup':<22} {'table':>13} {'rows':>5} {'PyTensor ms':>11} {'uvs ms':>7} "
          f"{'PyTensor / uvs':>14}")
    for name, (n, d, k) in SIZES.items():
        rng = np.random.RandomState(0)
        W = pytensor.shared(rng.rand(n, d).astype("float32"))
        x = pt.lvector("x")
        g = pytensor.grad((W[x] ** 2).sum(), W)
        uvs = backend.function([x], g, mode="CVM")
        own = backend.function([x], g, mode=get_mode("CVM").excluding("uvs_inc_rows"))
        idx = rng.randint(0, n, size=k)
        if not np.array_equal(uvs(idx), own(idx)):
            sys.exit(f"{name}: the two gradients differ")
        best = {"own": float("inf"), "uvs": float("inf")}
        for _ in range(a.repeats):
            for key, f in (("own", own), ("uvs", uvs)):
                t = time.perf_counter()
                f(idx)
                best[key] = min(best[key], time.perf_counter() - t)
        print(f"{name:<22} {f'{n} x {d}':>13} {k:5d} {best['own'] * 1e3:11.2f} "
              f"{best['uvs'] * 1e3:7.2f} {best['own'] / best['uvs']:14.2f}")
    print(f"\n{os.cpu_count()} cores, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}, {backend.blas_threads()} threads; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; best of {a.repeats}")


if __name__ == "__main__":
    main()
