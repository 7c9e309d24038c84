"""Benchmark uvs's faiss index: build time, query latency and recall@10 against exact search.

    python benchmarks/index_bench.py [--n 1000000] [--dim 1024] [--queries 200] [--json]

Vectors are synthetic unit vectors in clusters, as embeddings of a caption corpus are
(`--clusters` centres, `--spread` noise; `--uniform` for structureless data, the worst
case for an inverted file). Exact search is faiss's brute-force inner product over the
same array (what the `flat` index does); the approximate index is what `uvs index build`
makes above 100 000 vectors (`IndexIVFFlat`, nlist ≈ √n), searched one query at a time
through `uvs.index.search` at several `nprobe`. recall@10 = |approximate top 10 ∩ exact
top 10| / 10, averaged over the queries. Memory: about 2 × n × dim × 4 bytes (8 GB at
1M × 1024). `--n` scales the collection down on a smaller machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from uvs import index as uindex  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000, help="vectors in the collection")
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--clusters", type=int, default=0, help="default n / 100")
    p.add_argument("--spread", type=float, default=1.0, help="noise / centre norm")
    p.add_argument("--uniform", action="store_true", help="no clusters")
    p.add_argument("--nlist", type=int, default=0, help="default: uvs's (≈ √n)")
    p.add_argument("--nprobe", default="", help="comma-separated; default nlist/64 … nlist/4")
    p.add_argument("--exact-latency-queries", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p.parse_args()


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def synthetic(n: int, dim: int, clusters: int, spread: float, uniform: bool,
              rng: np.random.Generator, centres: np.ndarray | None = None,
              chunk: int = 65536) -> np.ndarray:
    """(n, dim) float32 unit rows: centre + spread·noise, filled chunk by chunk."""
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        if not uniform:
            x *= spread
            x += centres[rng.integers(0, clusters, m)]
        out[start:start + m] = unit(x)
    return out


def exact_top(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    import faiss

    _, idx = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    return idx


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def main() -> None:
    import faiss

    a = parse_args()
    log = (lambda *m: print(*m, file=sys.stderr, flush=True)) if a.json else print
    rng = np.random.default_rng(a.seed)
    clusters = a.clusters or max(1, a.n // 100)
    centres = None if a.uniform else rng.standard_normal((clusters, a.dim), dtype=np.float32)
    (vectors, gen_s) = timed(synthetic, a.n, a.dim, clusters, a.spread, a.uniform, rng, centres)
    queries = synthetic(a.queries, a.dim, clusters, a.spread, a.uniform, rng, centres)
    log(f"data: {a.n} x {a.dim} float32 ({vectors.nbytes / 2**30:.1f} GiB), "
        f"{'uniform' if a.uniform else f'{clusters} clusters, spread {a.spread}'}, "
        f"generated in {gen_s:.1f} s; {faiss.omp_get_max_threads()} threads")

    truth, truth_s = timed(exact_top, queries, vectors, a.k)
    lat = [timed(exact_top, queries[i:i + 1], vectors, a.k)[1]
           for i in range(min(a.exact_latency_queries, a.queries))]
    exact = {"batch_ms_per_query": 1e3 * truth_s / a.queries,
             "single_query_ms": 1e3 * statistics.median(lat)}
    log(f"exact: {exact['single_query_ms']:.1f} ms per single query, "
        f"{exact['batch_ms_per_query']:.2f} ms per query in a batch of {a.queries}")

    meta = {"kind": "images", "method": "cosine", "model": "benchmark"}
    nlist = a.nlist or uindex.default_nlist(a.n)
    built, build_s = timed(uindex.build, vectors, [""] * a.n, meta, index_type="ivf",
                           nlist=nlist)
    log(f"ivf build: nlist {nlist}, {build_s:.1f} s (train on {min(a.n, 64 * nlist)} "
        f"+ add {a.n})")
    del vectors

    probes = ([int(p) for p in a.nprobe.split(",")] if a.nprobe else
              sorted({max(1, nlist // d) for d in (64, 32, 16, 8, 4)}))
    rows = []
    for nprobe in probes:
        found, times = 0, []
        for i, q in enumerate(queries):
            (got, _), t = timed(uindex.search, built, q, a.k, nprobe=nprobe)
            times.append(t)
            found += len(set(got.tolist()) & set(truth[i].tolist()))
        times.sort()
        rows.append({"nprobe": nprobe, "recall_at_10": found / (a.k * a.queries),
                     "median_ms": 1e3 * statistics.median(times),
                     "p95_ms": 1e3 * times[int(0.95 * (len(times) - 1))]})
        r = rows[-1]
        log(f"  nprobe {nprobe:>4}: recall@{a.k} {r['recall_at_10']:.3f}, "
            f"median {r['median_ms']:.2f} ms, p95 {r['p95_ms']:.2f} ms")

    built.meta["method"] = "order"  # timing only: candidates re-scored by order error
    order_t = sorted(timed(uindex.search, built, q, a.k)[1] for q in queries[:50])
    order_ms = 1e3 * statistics.median(order_t)
    log(f"order re-scoring (100 candidates, nprobe {built.meta['nprobe']}): "
        f"median {order_ms:.2f} ms per query")
    if a.json:
        print(json.dumps({"n": a.n, "dim": a.dim, "queries": a.queries, "clusters":
                          None if a.uniform else clusters, "threads": faiss.omp_get_max_threads(),
                          "exact": exact, "build_s": build_s, "nlist": nlist,
                          "default_nprobe": built.meta["nprobe"], "ivf": rows,
                          "order_rescore_median_ms": order_ms}))


if __name__ == "__main__":
    main()
