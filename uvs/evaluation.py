"""Retrieval evaluation as the papers report it: R@1/5/10, median and mean rank, both ways."""

from __future__ import annotations

import numpy as np

from uvs.datasets import Split, layout, load_split
from uvs.errors import UVSError
from uvs.metrics import five_folds, i2t, mean_of_folds, ranks, recall_summary, t2i, tie_rule
from uvs.tools import compute_errors, encode_images, encode_sentences

__all__ = ["i2t", "t2i", "evalrank", "ranking_eval_5fold", "rank_embeddings", "encode_split",
           "split_folds", "score_function"]


def _cosine_scores(s_emb: np.ndarray):
    """score(im, s) = im·sᵀ summed in float64, then rounded to float32.

    A float32 matrix product can round the same pair differently at different positions in
    the matrix, so identical captions (frequent in COCO and Flickr) would not tie exactly;
    rounded float64 sums do, and ties are then broken by the stable-sort rule of `uvs.metrics`.
    """
    s64 = s_emb.astype(np.float64)

    def score(im: np.ndarray, s: np.ndarray) -> np.ndarray:
        c = s64 if s is s_emb else s.astype(np.float64)
        return (im.astype(np.float64) @ c.T).astype(np.float32)

    return score


def score_function(model: dict, s_emb: np.ndarray):
    """score(im (c, dim), s (m, dim)) -> (c, m) float32, higher is better: the one scorer of
    retrieval evaluation (cosine models: `_cosine_scores`; order models: minus the order
    error)."""
    if model["options"].get("method", "cosine") == "order":
        return lambda im, s: -compute_errors(model, s, im).T
    return _cosine_scores(s_emb)


def rank_embeddings(model: dict, im_emb: np.ndarray, s_emb: np.ndarray,
                    ties: str = "last") -> dict:
    """Metrics for image embeddings (N, dim) against their 5N caption embeddings (5N, dim).

    Cosine models score by im·s, order models by order error; `ties` is the original
    evaluation's tie order ('last' for visual-semantic-embedding, whose scores it sorted in
    descending order, 'first' for order-embedding, which sorted errors in ascending order).
    """
    score = score_function(model, s_emb)
    if ties == "first":
        def errors(im, s):
            return -score(im, s)

        found = ranks(im_emb, s_emb, score=errors, higher_is_better=False, ties=ties)
    else:
        found = ranks(im_emb, s_emb, score=score, ties=ties)
    return recall_summary(*found)


def _check_width(model: dict, split: Split) -> None:
    width, dim_image = split.ims.shape[1], model["options"]["dim_image"]
    if width != dim_image:
        raise UVSError(split.ims_path, f"features are {width} wide but the model "
                       f"{model.get('path', '')} expects dim_image = {dim_image}")


def evalrank(model: dict, data: str | None = None, split: str = "dev", data_dir=None,
             fold5: bool = False, verbose: bool = False) -> dict:
    """Encode a split of a data set and score retrieval both ways.

    Returns {'i2t': {r1, r5, r10, medr, meanr}, 't2i': {...}, 'rsum'}; with `fold5` the
    split is cut into 5 folds of equal size (COCO 1K) and the metrics are their means, with
    the per-fold results under 'folds'.
    """
    ds, im_emb, s_emb, ties = encode_split(model, data, split, data_dir, verbose)
    if not fold5:
        return rank_embeddings(model, im_emb, s_emb, ties)
    folds = [rank_embeddings(model, im, s, ties) for im, s in split_folds(ds, im_emb, s_emb)]
    return {**mean_of_folds(folds), "folds": folds}


def encode_split(model: dict, data: str | None = None, split: str = "dev", data_dir=None,
                 verbose: bool = False) -> tuple[Split, np.ndarray, np.ndarray, str]:
    """(the split, its images (N, dim), its captions (5N, dim), the tie rule) as evalrank
    scores them: `data` defaults to the model's, features checked against dim_image."""
    data = data or model["options"].get("data")
    if not data:
        raise UVSError(model.get("path"), "the model names no data set: pass one")
    ds = load_split(data, split, data_dir, cnn=model["options"].get("cnn"))
    _check_width(model, ds)
    ties = tie_rule(layout(data, data_dir))
    s_emb = encode_sentences(model, ds.caps, verbose=verbose)
    im_emb = encode_images(model, ds.image_rows())
    return ds, im_emb, s_emb, ties


def split_folds(ds: Split, im_emb: np.ndarray,
                s_emb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(images (N/5, dim), their captions (N, dim))] of 5 equal folds (COCO 1K)."""
    return [(im_emb[i], s_emb[c]) for i, c in five_folds(len(im_emb), ds.ims_path)]


def ranking_eval_5fold(model: dict, split: str = "dev", data_dir=None) -> dict:
    """Order-embedding's COCO protocol: the mean over five 1000-image folds."""
    return evalrank(model, split=split, data_dir=data_dir, fold5=True)
