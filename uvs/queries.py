"""Per-query retrieval results behind `evalrank`'s metrics: each query's rank and top-k list.

The ranks are `uvs.metrics.ranks` on the very scores `uvs.evaluation.rank_embeddings` uses,
so their recall metrics are evalrank's; the top-k lists order candidates by the same scores
with the same tie rule (`ties="last"`: among equal scores the higher index first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from uvs.datasets import Split
from uvs.evaluation import encode_split, score_function, split_folds
from uvs.metrics import default_chunk, mean_of_folds, ranks, recall_summary, top_k


@dataclass
class QueryResults:
    """Both directions, query by query (image i owns captions 5i..5i+4).

    i2t_ranks: (N,) int64, 0-based rank of each image's best ground-truth caption;
    i2t_gt: (N,) int64, that caption's row (the one of its five ranked first);
    i2t_top: (N, k) int64 caption rows, best first; i2t_scores: (N, k) float32;
    t2i_ranks: (5N,) int64, 0-based rank of each caption's image;
    t2i_top: (5N, k) int64 image rows, best first; t2i_scores: (5N, k) float32.
    Scores are higher-is-better (order models: minus the order error).
    """

    i2t_ranks: np.ndarray
    i2t_gt: np.ndarray
    i2t_top: np.ndarray
    i2t_scores: np.ndarray
    t2i_ranks: np.ndarray
    t2i_top: np.ndarray
    t2i_scores: np.ndarray


def query_results(model: dict | None, im_emb: np.ndarray, s_emb: np.ndarray,
                  ties: str = "last", k: int = 10, score=None) -> QueryResults:
    """Ranks and top-k lists of every query, both ways: im_emb (N, dim), s_emb (5N, dim).

    score: score(im (c, dim), s (m, dim)) -> (c, m), higher is better; default the model's
    own (`uvs.evaluation.score_function`), as evalrank scores."""
    score = score or score_function(model, s_emb)
    i2t_ranks, t2i_ranks = ranks(im_emb, s_emb, score=score, ties=ties)
    n, m = len(im_emb), len(s_emb)
    i2t_top = np.empty((n, min(k, m)), np.int64)
    i2t_scores = np.empty(i2t_top.shape, np.float32)
    i2t_gt = np.empty(n, np.int64)
    step = default_chunk(m)
    for a in range(0, n, step):
        sc = np.asarray(score(im_emb[a:a + step], s_emb), np.float32)
        i2t_top[a:a + step] = top_k(sc, k, ties)
        i2t_scores[a:a + step] = np.take_along_axis(sc, i2t_top[a:a + step], axis=1)
        own = 5 * np.arange(a, a + len(sc))[:, None] + np.arange(5)  # (c, 5)
        first = top_k(np.take_along_axis(sc, own, axis=1), 1, ties)[:, 0]
        i2t_gt[a:a + len(sc)] = own[np.arange(len(sc)), first]
    t2i_top = np.empty((m, min(k, n)), np.int64)
    t2i_scores = np.empty(t2i_top.shape, np.float32)
    step = default_chunk(n)
    for a in range(0, m, step):
        sc = np.ascontiguousarray(np.asarray(score(im_emb, s_emb[a:a + step]), np.float32).T)
        t2i_top[a:a + step] = top_k(sc, k, ties)
        t2i_scores[a:a + step] = np.take_along_axis(sc, t2i_top[a:a + step], axis=1)
    return QueryResults(i2t_ranks, i2t_gt, i2t_top, i2t_scores, t2i_ranks, t2i_top, t2i_scores)


def recall_curve(query_ranks: np.ndarray, k_max: int = 100) -> np.ndarray:
    """R@K in percent for K = 1..k_max (capped at the candidates' count): (k_max,)."""
    r = np.asarray(query_ranks)
    counts = np.bincount(np.minimum(r, k_max), minlength=k_max + 1)[:k_max]
    return 100.0 * np.cumsum(counts) / len(r)


def metrics_of(results: QueryResults) -> dict:
    """evalrank's metrics from per-query ranks: {'i2t': {...}, 't2i': {...}, 'rsum'}."""
    return recall_summary(results.i2t_ranks, results.t2i_ranks)


def concat_folds(folds: list[QueryResults], n: int) -> QueryResults:
    """Folds of n images each as one QueryResults, top-k rows shifted to global indices."""
    shift = [(f * 5 * n, f * n) for f in range(len(folds))]
    return QueryResults(
        np.concatenate([q.i2t_ranks for q in folds]),
        np.concatenate([q.i2t_gt + c for q, (c, _) in zip(folds, shift, strict=True)]),
        np.concatenate([q.i2t_top + c for q, (c, _) in zip(folds, shift, strict=True)]),
        np.concatenate([q.i2t_scores for q in folds]),
        np.concatenate([q.t2i_ranks for q in folds]),
        np.concatenate([q.t2i_top + i for q, (_, i) in zip(folds, shift, strict=True)]),
        np.concatenate([q.t2i_scores for q in folds]))


def evalrank_queries(model: dict, data: str | None = None, split: str = "dev", data_dir=None,
                     fold5: bool = False, k: int = 10,
                     verbose: bool = False) -> tuple[dict, QueryResults, Split]:
    """`evaluation.evalrank` with its per-query results: (metrics, queries, the split).

    The metrics are evalrank's (with `fold5`, the means over 5 folds and 'folds'); with
    `fold5` each query is ranked within its fold, as the metrics are.
    """
    ds, im_emb, s_emb, ties = encode_split(model, data, split, data_dir, verbose)
    if not fold5:
        found = query_results(model, im_emb, s_emb, ties, k)
        return metrics_of(found), found, ds
    folds = [query_results(model, im, s, ties, k) for im, s in split_folds(ds, im_emb, s_emb)]
    per_fold = [metrics_of(q) for q in folds]
    return ({**mean_of_folds(per_fold), "folds": per_fold},
            concat_folds(folds, len(im_emb) // 5), ds)
