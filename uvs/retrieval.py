"""Retrieval in the joint space: scores, the top k, queries (a photo, a sentence, arithmetic).

Scores are higher-is-better: cosine similarity for cosine models, the negated order error for
order models (both from `uvs.kernels.errors`, the one computation of either).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uvs.errors import UVSError
from uvs.features import feature_row
from uvs.kernels import errors
from uvs.metrics import top_k
from uvs.tools import encode_images, encode_sentences
from uvs.vgg import ConvNet, compute_features


def model_method(model: dict) -> str:
    """'order' or 'cosine': how the model scores a sentence against an image."""
    return model["options"].get("method", "cosine")


def scores(method: str, s: np.ndarray, im: np.ndarray) -> np.ndarray:
    """Higher is better, s: (n_s, dim), im: (n_im, dim) -> (n_s, n_im) float32.

    Cosine models: s·imᵀ; order models: −‖max(0, s − im)‖² (never −0).
    """
    return 0.0 - errors(method, s, im)


def rank_captions(model: dict, image_vec: np.ndarray, cvecs: np.ndarray,
                  k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Best k captions for one embedded image: (rows, scores)."""
    row = scores(model_method(model), cvecs, image_vec[None, :])[:, 0]
    idx = top_k(row, k)
    return idx, row[idx]


def rank_images(model: dict, query_vec: np.ndarray, imvecs: np.ndarray,
                k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Best k images for one embedded sentence (or arithmetic query): (rows, scores)."""
    row = scores(model_method(model), query_vec[None, :], imvecs)[0]
    idx = top_k(row, k)
    return idx, row[idx]


def embed_photo(model: dict, net: ConvNet, file_name: str, crops: int = 1) -> np.ndarray:
    """A photo in the joint space: (dim,) float32; the network's features must fit the model."""
    dim_image = model["options"]["dim_image"]
    if net.dim != dim_image:
        raise UVSError(net.weights, f"these VGG weights give {net.dim}-d features; the "
                       f"model expects {dim_image}-d")
    return encode_images(model, compute_features(net, [file_name], crops=crops))[0]


def embed_text(model: dict, text: str) -> np.ndarray:
    """A sentence in the joint space: (dim,) float32."""
    return encode_sentences(model, [text], verbose=False)[0]


def embed_feature_row(model: dict, path: str, row: int) -> np.ndarray:
    """Row `row` of a feature file (FEATS.npy) in the joint space: (dim,) float32."""
    return encode_images(model, feature_row(model, path, row))[0]


def arithmetic(model: dict, vec: np.ndarray, minus: Sequence[str] = (),
               plus: Sequence[str] = ()) -> np.ndarray:
    """vec − Σ minus + Σ plus, renormalised (and made non-negative for `abs` models)."""
    out = np.asarray(vec, dtype=np.float32).copy()
    if minus:
        out -= encode_sentences(model, list(minus), verbose=False).sum(axis=0)
    if plus:
        out += encode_sentences(model, list(plus), verbose=False).sum(axis=0)
    out /= max(float(np.linalg.norm(out)), 1e-12)
    return np.abs(out) if model["options"].get("abs", False) else out


def rerank_by_mean(nearest: np.ndarray) -> np.ndarray:
    """Order of retrieved vectors nearest: (k, dim) by closeness to their mean (the seeds')."""
    return np.argsort(-(nearest @ nearest.mean(axis=0)), kind="stable")
