"""Time `uvs.metrics.ranks` against the original per-query argsort evaluation.

Random unit vectors, 5 000 images x 25 000 captions, dim 1024, float32. The original
loops are timed on a sample of queries per direction and extrapolated to all of them.
Run: PYTHONPATH=. python benchmarks/eval_bench.py [--images 5000] [--sample 200]
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import time

import numpy as np

from uvs import metrics


def blas_info() -> str:
    """numpy's BLAS: name, version, configuration and thread count."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{blas.get('name')} {blas.get('version')}; {blas.get('openblas configuration', '')}"
    except Exception as err:  # show_config's layout is not a stable API
        text = f"unknown ({err})"
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "*openblas*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_"):
                if hasattr(lib, name):
                    text += f"; threads {getattr(lib, name)()}"
                    break
            break
        except OSError:
            continue
    return text


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d) float32 rows of unit L2 norm."""
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def original_i2t(ims: np.ndarray, captions: np.ndarray, index: int) -> int:
    """visual-semantic-embedding i2t, one image query (argsort per query)."""
    d = np.dot(ims[index][None], captions.T).flatten()
    inds = np.argsort(d, kind="stable")[::-1]
    return min(np.where(inds == i)[0][0] for i in range(5 * index, 5 * index + 5))


def original_t2i(ims: np.ndarray, captions: np.ndarray, caption: int) -> int:
    """visual-semantic-embedding t2i, one caption query (argsort per query)."""
    d = np.dot(captions[caption][None], ims.T).flatten()
    inds = np.argsort(d, kind="stable")[::-1]
    return int(np.where(inds == caption // 5)[0][0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--sample", type=int, default=200, help="original queries timed per direction")
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="uvs runs; the best is reported")
    args = ap.parse_args()

    n, d = args.images, args.dim
    rng = np.random.default_rng(0)
    ims, caps = unit(rng, n, d), unit(rng, 5 * n, d)
    gflop = 2 * n * 5 * n * d / 1e9
    print(f"numpy {np.__version__}; BLAS: {blas_info()}; cpus {os.cpu_count()}")
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"data: {n} images x {5 * n} captions, dim {d}, float32 ({gflop:.0f} GFLOP of scores)")

    chunk = min(args.chunk or metrics.default_chunk(5 * n), n)
    out = np.empty((chunk, 5 * n), np.float32)
    times, floor = [], []
    for _ in range(args.repeat):  # interleaved, so both see the same machine load
        t = time.perf_counter()
        i2t, t2i = metrics.ranks(ims, caps, chunk=chunk)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            np.matmul(ims[a:b], caps.T, out=out[: b - a])
        floor.append(time.perf_counter() - t)
    del out
    t_uvs = min(times)
    print(
        f"uvs ranks, both directions: {t_uvs:.2f} s (best of {args.repeat}: "
        + ", ".join(f"{x:.2f}" for x in times)
        + f"; chunk {chunk} rows = {chunk * 5 * n * 4 / 2**20:.0f} MB of scores; "
        f"{gflop / t_uvs:.0f} GFLOP/s overall)"
    )
    print(
        f"  the same chunked float32 matmul alone: {min(floor):.2f} s (best of {args.repeat}: "
        + ", ".join(f"{x:.2f}" for x in floor)
        + f"; {gflop / min(floor):.0f} GFLOP/s)"
    )

    k = min(args.sample, n)
    qi = rng.choice(n, k, replace=False)
    qt = rng.choice(5 * n, k, replace=False)
    t = time.perf_counter()
    ri = [original_i2t(ims, caps, int(i)) for i in qi]
    t_i = (time.perf_counter() - t) / k * n
    t = time.perf_counter()
    rt = [original_t2i(ims, caps, int(c)) for c in qt]
    t_t = (time.perf_counter() - t) / k * 5 * n
    same = np.array_equal(ri, i2t[qi]) and np.array_equal(rt, t2i[qt])
    print(
        f"original per-query argsort: i2t {t_i:.1f} s + t2i {t_t:.1f} s = {t_i + t_t:.1f} s "
        f"(EXTRAPOLATED from {k} timed queries per direction to {n} + {5 * n})"
    )
    print(f"sampled ranks identical to uvs: {same}")
    print(f"speed-up: {(t_i + t_t) / t_uvs:.0f}x")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    m = metrics.recall_metrics(i2t), metrics.recall_metrics(t2i)
    print("i2t", {k: round(v, 2) for k, v in m[0].items()})
    print("t2i", {k: round(v, 2) for k, v in m[1].items()})


if __name__ == "__main__":
    main()
