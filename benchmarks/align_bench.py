"""The alignment model: one training update in uvs and in PyTorch, and S_kl scoring at scale.

    python benchmarks/align_bench.py [--updates 5] [--images 1000] [--no-score]

Update: the paper's sizes (20 regions per image, 12-word sentences, batch 100, h = 1000,
4096-d CNN features, 300-d word vectors): BRNN forward and backward, region map, S_kl over
the batch, the structured objective, its gradient, global-norm clipping at 2 and Adam. uvs
runs `uvs.align.train.compile_update`'s two functions; PyTorch the same math from the same
parameters (its own Adam). The two take turns; medians are printed, and their ratio.
Scoring: `uvs.align.evaluation.rank_scores` for IMAGES images x 5 IMAGES sentences (random
regions and words, 20 regions, 12 words each), its time and tracemalloc's peak of NumPy
memory, against the size of the words x regions dot products it never holds whole.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np


def torch_update(params: dict, options: dict):
    """A PyTorch step of the same model and loss; returns step(x, mask, feats, rmask)."""
    import torch

    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(p.values(), lr=2e-4)
    margin = options["margin"]

    def step(x, mask, feats, rmask):
        x, mask = torch.from_numpy(x), torch.from_numpy(mask)
        feats, rmask = torch.from_numpy(feats), torch.from_numpy(rmask)
        T, B = x.shape
        e = torch.relu(p["Wemb"][x] @ p["brnn_We"] + p["brnn_be"])
        hs = {}
        for d, order in (("f", range(T)), ("b", reversed(range(T)))):
            h, out = torch.zeros(B, options["dim"]), [None] * T
            for t in order:
                new = torch.relu(e[t] + h @ p[f"brnn_W{d}"] + p[f"brnn_b{d}"])
                h = mask[t, :, None] * new + (1 - mask[t, :, None]) * h
                out[t] = h
            hs[d] = torch.stack(out)
        s = torch.relu((hs["f"] + hs["b"]) @ p["brnn_Wd"] + p["brnn_bd"])  # (T, B, dim)
        v = feats @ p["region_W"] + p["region_b"]  # (B, R, dim)
        dots = torch.einsum("krd,tld->krtl", v, s)
        dots = dots.masked_fill(rmask[:, :, None, None] == 0, float("-inf"))
        S = (dots.max(dim=1).values * mask[None]).sum(dim=1)  # (B_im, B_s)
        diag = S.diagonal()
        eye = torch.eye(B, dtype=torch.bool)
        cost = (torch.clamp(margin + S - diag[:, None], min=0).masked_fill(eye, 0).sum()
                + torch.clamp(margin + S - diag[None, :], min=0).masked_fill(eye, 0).sum())
        opt.zero_grad()
        cost.backward()
        torch.nn.utils.clip_grad_norm_(p.values(), 2.0)
        opt.step()
        return float(cost.detach())

    return step


def bench_update(args) -> None:
    from uvs.align.model import init_params
    from uvs.align.train import compile_update
    from uvs.utils import init_tparams

    o = {"n_words": args.words, "dim_word": 300, "dim": args.dim, "dim_image": 4096,
         "margin": 1.0, "grad_clip": 2.0, "optimizer": "adam_textbook"}
    rng = np.random.RandomState(0)
    params = init_params(o, rng=rng)
    B, T, R = args.batch, 12, 20
    x = rng.randint(2, args.words, size=(T, B)).astype(np.int64)
    mask = np.ones((T, B), np.float32)
    feats = np.abs(rng.randn(B, R, 4096)).astype(np.float32) / 64
    rmask = np.ones((B, R), np.float32)
    t0 = time.time()
    f_grad_shared, f_update = compile_update(init_tparams(params), o)
    print(f"uvs compile: {time.time() - t0:.1f} s")
    t_step = torch_update(params, o)

    def uvs_step(*a):
        cost = f_grad_shared(*a)
        f_update(np.float32(2e-4))
        return float(cost)

    times = {"uvs": [], "torch": []}
    for i in range(args.warmup + args.updates):
        for name, step in (("uvs", uvs_step), ("torch", t_step)):
            t = time.perf_counter()
            cost = step(x, mask, feats, rmask)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
            if i == 0:
                print(f"{name:<6} first cost {cost:.4f}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"{k:<6} {v * 1000:8.1f} ms per update (median of {args.updates})")
    print(f"uvs / torch = {med['uvs'] / med['torch']:.2f}")


def bench_score(args) -> None:
    from uvs.align import evaluation
    from uvs.align.model import init_params
    from uvs.regions import Regions

    n, R = args.images, 20
    o = {"n_words": args.words, "dim_word": 300, "dim": args.dim, "dim_image": 4096}
    rng = np.random.RandomState(1)
    model = evaluation.compile_model(init_params(o, rng=rng), o, {}, "bench")
    vocab = [f"w{i}" for i in range(args.words - 2)]
    model["worddict"] = {w: i + 2 for i, w in enumerate(vocab)}
    sents = [" ".join(rng.choice(vocab, 12)) for _ in range(5 * n)]
    regions = Regions(np.abs(rng.randn(n * R, 4096)).astype(np.float32) / 64,
                      np.repeat(np.arange(n), R), np.zeros((n * R, 4), np.float32),
                      [str(i) for i in range(n)])
    tracemalloc.start()
    t = time.perf_counter()
    out = evaluation.rank_scores(model, regions, sents)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = n * R * 5 * n * 12 * 4
    print(f"scoring {n} images x {5 * n} sentences (encode + S_kl + ranks): {dt:.1f} s; "
          f"peak NumPy memory {peak / 2**20:.0f} MiB (all region-word dots at once would be "
          f"{whole / 2**20:.0f} MiB); rsum {out['rsum']:.1f} (random model)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--dim", type=int, default=1000)
    p.add_argument("--words", type=int, default=10000, help="vocabulary size")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--no-score", action="store_true")
    p.add_argument("--no-update", action="store_true")
    args = p.parse_args()
    if not args.no_update:
        bench_update(args)
    if not args.no_score:
        bench_score(args)


if __name__ == "__main__":
    main()
