"""Time uvs's restricted unpickler against the standard (unsafe) C unpickler on released-size
files, in the same process.

A word dictionary of --words entries as cPickle wrote it (protocol 0, an OrderedDict, as the
released visual-semantic-embedding files), and --mib MiB of float32 arrays at protocol 2 (as
Lasagne's vgg19.pkl). Best of --repeat runs each.
Run: PYTHONPATH=.:tests python benchmarks/legacy_bench.py [--words 30000] [--mib 64]
"""

from __future__ import annotations

import argparse
import os
import pickle
import tempfile
import time
from collections import OrderedDict

import numpy as np
from py2pickle import dumps_py2

from uvs.legacy import load_pickle


def best(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=30000)
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    cases = {
        f"dictionary, {args.words} words (protocol 0)": (
            dumps_py2(OrderedDict((f"word{i}", i + 2) for i in range(args.words))), False),
        f"arrays, {args.mib} MiB float32 (protocol 2)": (
            dumps_py2({"param values": [rng.standard_normal(2**18).astype(np.float32)
                                        for _ in range(args.mib)]}, protocol=2), True),
    }
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'file':<40} {'uvs s':>8} {'pickle s':>9} {'ratio':>7}")
        for name, (data, numpy_ok) in cases.items():
            path = os.path.join(tmp, "f.pkl")
            with open(path, "wb") as f:
                f.write(data)
            ours = best(lambda p=path, n=numpy_ok: load_pickle(p, allow_numpy=n), args.repeat)
            plain = best(lambda d=data: pickle.loads(d, encoding="bytes"), args.repeat)
            print(f"{name:<40} {ours:8.3f} {plain:9.3f} {ours / plain:6.1f}x")


if __name__ == "__main__":
    main()
