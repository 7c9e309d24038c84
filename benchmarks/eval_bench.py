"""Time `uvs.metrics.ranks` against the original per-query argsort evaluation, same BLAS threads.

Random unit vectors, 5 000 images x 25 000 captions, dim 1024, float32. The original
loops (visual-semantic-embedding's i2t/t2i, as written: one product per image, one NumPy
default argsort per query) are timed on the queries of a sample of images and extrapolated.
Both sides run under the same BLAS thread limit (threadpoolctl), once per limit in
--threads (default: 1 and all cores), so that neither is measured oversubscribed.
Run: PYTHONPATH=. python benchmarks/eval_bench.py [--images 5000] [--sample 200] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from uvs import metrics


def blas_info() -> str:
    """numpy's BLAS libraries as threadpoolctl sees them: name, version, threads."""
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('prefix')}, "
                     f"{p.get('num_threads')} threads)" for p in pools) or "none found"


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """(n, d) float32 rows of unit L2 norm."""
    x = rng.standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def original_i2t(images: np.ndarray, captions: np.ndarray, index: int) -> int:
    """visual-semantic-embedding's i2t for one image, as written: `images` caption-aligned."""
    im = images[5 * index].reshape(1, images.shape[1])
    d = np.dot(im, captions.T).flatten()
    inds = np.argsort(d)[::-1]
    rank = 1e20
    for i in range(5 * index, 5 * index + 5):
        tmp = np.where(inds == i)[0][0]
        if tmp < rank:
            rank = tmp
    return int(rank)


def original_t2i(ims: np.ndarray, captions: np.ndarray, index: int) -> list[int]:
    """visual-semantic-embedding's t2i for the five captions of one image, as written."""
    queries = captions[5 * index : 5 * index + 5]
    d = np.dot(queries, ims.T)
    inds = np.zeros(d.shape)
    ranks = []
    for i in range(len(inds)):
        inds[i] = np.argsort(d[i])[::-1]
        ranks.append(int(np.where(inds[i] == index)[0][0]))
    return ranks


def near_ties(ims, caps, diff_i, diff_t, gap: float = 1e-6) -> str:
    """Whether each query ranked differently holds a float32 near-tie: another candidate
    within `gap` of its ground truth in float64 (two float32 products may order it
    either way)."""
    if not len(diff_i) + len(diff_t):
        return ""
    tied = 0
    for i in diff_i:
        s = ims[i].astype(np.float64) @ caps.T.astype(np.float64)
        tied += any(np.sort(np.abs(s - s[c]))[1] < gap for c in range(5 * i, 5 * i + 5))
    for c in diff_t:
        s = caps[c].astype(np.float64) @ ims.T.astype(np.float64)
        tied += np.sort(np.abs(s - s[c // 5]))[1] < gap
    return (f"; of the {len(diff_i) + len(diff_t)} that differ, {tied} have a near-tie "
            f"(another candidate within {gap:g} in float64)")


def time_uvs(ims, caps, chunk, repeat):
    """Best of `repeat` runs of uvs ranks, and of the chunked float32 matmul alone."""
    n = len(ims)
    out = np.empty((chunk, 5 * n), np.float32)
    times, floor = [], []
    for _ in range(repeat):  # interleaved, so both see the same machine load
        t = time.perf_counter()
        i2t, t2i = metrics.ranks(ims, caps, chunk=chunk)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            np.matmul(ims[a:b], caps.T, out=out[: b - a])
        floor.append(time.perf_counter() - t)
    return (i2t, t2i), times, floor


def time_original(ims, caps, queries):
    """Seconds for every query of each direction, extrapolated from the sampled images."""
    n = len(ims)
    images = np.repeat(ims, 5, axis=0)  # the originals' caption-aligned layout
    t = time.perf_counter()
    ri = [original_i2t(images, caps, int(i)) for i in queries]
    t_i = (time.perf_counter() - t) / len(queries) * n
    t = time.perf_counter()
    rt = [r for i in queries for r in original_t2i(ims, caps, int(i))]
    t_t = (time.perf_counter() - t) / len(queries) * n
    return ri, rt, t_i, t_t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--sample", type=int, default=200,
                    help="images whose original queries are timed (i2t: 1 each, t2i: 5 each)")
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="uvs runs; the best is reported")
    ap.add_argument("--threads", default=None,
                    help="comma-separated BLAS thread limits (default: 1 and all cores)")
    args = ap.parse_args()

    n, d = args.images, args.dim
    cores = os.cpu_count() or 1
    limits = ([int(t) for t in args.threads.split(",")] if args.threads
              else sorted({1, cores}))
    rng = np.random.default_rng(0)
    ims, caps = unit(rng, n, d), unit(rng, 5 * n, d)
    gflop = 2 * n * 5 * n * d / 1e9
    k = min(args.sample, n)
    queries = np.sort(rng.choice(n, k, replace=False))
    captions_of = (5 * queries[:, None] + np.arange(5)).reshape(-1)
    chunk = min(args.chunk or metrics.default_chunk(5 * n), n)
    print(f"numpy {np.__version__}; BLAS: {blas_info()}; cpus {cores}")
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"data: {n} images x {5 * n} captions, dim {d}, float32 ({gflop:.0f} GFLOP of scores); "
          f"chunk {chunk} rows = {chunk * 5 * n * 4 / 2**20:.0f} MB of scores")
    rows = []
    for threads in limits:
        with threadpool_limits(limits=threads, user_api="blas"):
            (i2t, t2i), times, floor = time_uvs(ims, caps, chunk, args.repeat)
            ri, rt, t_i, t_t = time_original(ims, caps, queries)
        t_uvs = min(times)
        diff_i = queries[np.asarray(ri) != i2t[queries]]
        diff_t = captions_of[np.asarray(rt) != t2i[captions_of]]
        print(f"\nBLAS threads {threads} (both sides):")
        print(f"  uvs ranks, both directions: {t_uvs:.2f} s (best of {args.repeat}: "
              + ", ".join(f"{x:.2f}" for x in times) + f"; {gflop / t_uvs:.0f} GFLOP/s overall)")
        print(f"  the same chunked float32 matmul alone: {min(floor):.2f} s "
              f"({gflop / min(floor):.0f} GFLOP/s)")
        print(f"  original per-query argsort: i2t {t_i:.1f} s + t2i {t_t:.1f} s = "
              f"{t_i + t_t:.1f} s (EXTRAPOLATED from the queries of {k} images to all {n})")
        print(f"  sampled ranks equal to uvs: i2t {k - len(diff_i)}/{k}, "
              f"t2i {5 * k - len(diff_t)}/{5 * k}" + near_ties(ims, caps, diff_i, diff_t))
        print(f"  speed-up: {(t_i + t_t) / t_uvs:.1f}x")
        rows.append((threads, t_uvs, t_i + t_t))
    print("\nthreads  uvs s  original s  speed-up")
    for threads, t_uvs, t_orig in rows:
        print(f"{threads:>7}  {t_uvs:5.2f}  {t_orig:10.1f}  {t_orig / t_uvs:7.1f}x")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    m = metrics.recall_metrics(i2t), metrics.recall_metrics(t2i)
    print("i2t", {key: round(v, 2) for key, v in m[0].items()})
    print("t2i", {key: round(v, 2) for key, v in m[1].items()})


if __name__ == "__main__":
    main()
