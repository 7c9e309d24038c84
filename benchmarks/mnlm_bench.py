"""Log-bilinear model speed, measured in one process on the same BLAS threads.

1. One training update at the original trainer's sizes (vocabulary 10000, K 100, hidden 441,
   context 5, batch 40, 4096-d image features; factors 50 for MLBL-F): uvs's compiled
   `train_step` (float32) against the original's NumPy `forward(test=False)` / `backward` /
   `update_params` (tests/mnlm_reference.py, float64 as the original).
2. Beam search (k 3, at most num - 1 words) for N images: `lm_tools.beam_search_batch`
   against the original's loop (`beam_search` once per image, the NumPy port); the captions
   must be identical (both float64 models with the same parameters).

    python benchmarks/mnlm_bench.py [--updates 5] [--images 100] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from decoder_bench import best_of  # this folder is on sys.path when a script runs

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

V, K, H, CTX, B, D, F = 10000, 100, 441, 5, 40, 4096, 50


def update_times(kind: str, updates: int) -> tuple[float, float]:
    import scipy.sparse as sp
    from mnlm_reference import RefMLBL, RefMLBLF

    from uvs.mnlm.mlbl import MLBL
    from uvs.mnlm.mlblf import MLBLF

    kw = dict(V=V, K=K, D=D, h=H, context=CTX, batchsize=B, eta_t=0.43, gamma_r=3e-7,
              gamma_c=1e-8, f=0.99, p_i=0.23, p_f=0.23, T=20.0, dropout=0.15)
    extra = {"factors": F} if kind == "mlblf" else {}
    ref = (RefMLBLF if kind == "mlblf" else RefMLBL)(**kw, **extra)
    ref.init_params(None, None)
    net = (MLBLF if kind == "mlblf" else MLBL)(**kw, **extra)
    net.init_params()
    rng = np.random.RandomState(0)
    X = rng.randint(0, V, size=(B, CTX))
    Im = np.abs(rng.randn(B, D)).astype(np.float32)
    Y = sp.csr_matrix((np.ones(B), (np.arange(B), rng.randint(0, V, B))), shape=(B, V))
    net.train_step(X, Im, Y)  # compile
    t_uvs = best_of(lambda: net.train_step(X, Im, Y), updates)
    t_ref = best_of(lambda: ref.step_once(X, Im.astype(np.float64), Y), updates)
    return t_uvs, t_ref


def beam_times(images: int, k: int, num: int) -> tuple[float, float, int]:
    from mnlm_reference import ref_beam_search

    from uvs.mnlm import lm_tools
    from uvs.mnlm.mlbl import MLBL

    net = MLBL(V=V, K=K, D=D, h=H, context=CTX, dtype="float64")
    net.init_params()
    rng = np.random.RandomState(1)
    net.bw[0, 1] += 6.0  # an <end> that random models do produce
    net.R[:, :50] *= 40  # and a few words that stand out
    words = ["<start>", "<end>", "unk"] + [f"w{i}" for i in range(V - 3)]
    word_dict = {w: i for i, w in enumerate(words)}
    index_dict = dict(enumerate(words))
    IM = np.abs(rng.randn(images, D))
    t = time.perf_counter()
    loop = [ref_beam_search(net, word_dict, index_dict, num, im, k=k) for im in IM]
    t_loop = time.perf_counter() - t
    t = time.perf_counter()
    batch = lm_tools.beam_search_batch(net, word_dict, index_dict, num, IM, k=k)
    t_batch = time.perf_counter() - t
    same = sum(a == b for a, b in zip(loop, batch, strict=True))
    return t_batch, t_loop, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=5)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None, help="BLAS threads (both sides)")
    args = ap.parse_args()
    from uvs import backend

    if args.threads:
        backend.blas_threads(args.threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    print(backend.describe())
    for kind in ("mlbl", "mlblf"):
        t_uvs, t_ref = update_times(kind, args.updates)
        print(f"{kind:6} one update: uvs {1000 * t_uvs:7.1f} ms   original NumPy "
              f"{1000 * t_ref:7.1f} ms   ratio {t_uvs / t_ref:.2f}x")
    t_batch, t_loop, same = beam_times(args.images, 3, 20)
    print(f"beam k=3, {args.images} images: batched {t_batch:.2f} s   original loop "
          f"{t_loop:.2f} s   speed-up {t_loop / t_batch:.1f}x   identical captions "
          f"{same}/{args.images}")


if __name__ == "__main__":
    main()
