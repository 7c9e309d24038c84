"""Retrieval both ways and image arithmetic in the joint space, and the corpus-embedding cache.

The seeds' `demo.py` on a maintained stack: `retrieve_captions`, `retrieve_images`,
`regularities`, with `build_convnet`, `compute_features` (from `uvs.vgg`) and `load_image` (from
`uvs.photos`) still importable from here; plus the caches and feature files the CLI uses.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Sequence

import numpy as np

from uvs.errors import UVSError
from uvs.fileio import atomic_path
from uvs.photos import load_image
from uvs.vgg import ConvNet, build_convnet, compute_features

__all__ = [
    "build_convnet", "compute_features", "load_image",  # the seeds' names, from vgg and photos
    "scores", "model_method", "top_k", "rank_captions", "rank_images", "embed_photo",
    "embed_text", "arithmetic", "rerank_by_mean", "retrieve_captions", "retrieve_images",
    "regularities", "model_fingerprint", "file_sha256", "cache_path", "cached_embeddings",
    "paths_file", "read_image_features", "feature_row", "embed_feature_file",
    "caption_collection", "image_collection",
]

CACHE_VERSION = 1


# --- scores and retrieval -------------------------------------------------------------------

def scores(method: str, s: np.ndarray, im: np.ndarray, chunk: int = 1 << 24) -> np.ndarray:
    """Higher is better, s: (n_s, dim), im: (n_im, dim) -> (n_s, n_im) float32.

    Cosine models: s·imᵀ; order models: −‖max(0, s − im)‖², computed in bounded memory.
    """
    s = np.asarray(s, dtype=np.float32)
    im = np.asarray(im, dtype=np.float32)
    if method != "order":
        return s @ im.T
    out = np.empty((len(s), len(im)), dtype=np.float32)
    step = max(1, chunk // max(1, s.shape[1] * len(s)))
    for j in range(0, len(im), step):
        diff = np.maximum(0.0, s[:, None, :] - im[None, j:j + step, :])
        out[:, j:j + step] = 0.0 - np.einsum("ijk,ijk->ij", diff, diff)  # 0, never -0
    return out


def model_method(model: dict) -> str:
    """'order' or 'cosine': how the model scores a sentence against an image."""
    return model["options"].get("method", "cosine")


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties keep the lower index first."""
    k = min(k, len(row))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
    return part[np.lexsort((part, -row[part]))]


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
    """A photo in the joint space: (dim,) float32."""
    from uvs.tools import encode_images

    feats = compute_features(net, [file_name], crops=crops)
    return encode_images(model, feats)[0]


def embed_text(model: dict, text: str) -> np.ndarray:
    """A sentence in the joint space: (dim,) float32."""
    from uvs.tools import encode_sentences

    return encode_sentences(model, [text], verbose=False)[0]


def arithmetic(model: dict, vec: np.ndarray, minus: Sequence[str] = (),
               plus: Sequence[str] = ()) -> np.ndarray:
    """vec − Σ minus + Σ plus, renormalised (and made non-negative for `abs` models)."""
    from uvs.tools import encode_sentences

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


def retrieve_captions(model: dict, net: ConvNet, captions: Sequence[str], cvecs: np.ndarray,
                      file_name: str, k: int = 5) -> list[str]:
    """The k captions that best describe the photo `file_name` (cvecs: (len(captions), dim))."""
    idx, _ = rank_captions(model, embed_photo(model, net, file_name), cvecs, k)
    return [captions[i] for i in idx]


def retrieve_images(model: dict, names: Sequence[str], imvecs: np.ndarray, text: str,
                    k: int = 5) -> list[str]:
    """The k images (by name) that `text` best describes (imvecs: embedded, (len(names), dim))."""
    idx, _ = rank_images(model, embed_text(model, text), imvecs, k)
    return [names[i] for i in idx]


def regularities(model: dict, net: ConvNet, captions: Sequence[str], imvecs: np.ndarray,
                 file_name: str, negword: str, posword: str, k: int = 5,
                 rerank: bool = False) -> list[str]:
    """Nearest images to `photo − negword + posword`, named by `captions` (one per imvecs row)."""
    query = arithmetic(model, embed_photo(model, net, file_name), [negword], [posword])
    idx, _ = rank_images(model, query, imvecs, k)
    if rerank:
        idx = idx[rerank_by_mean(imvecs[idx])]
    return [captions[i] for i in idx]


# --- the corpus-embedding cache -------------------------------------------------------------

def model_fingerprint(model: dict) -> str:
    """sha256 of what decides the embeddings: options, dictionary and parameters."""
    h = hashlib.sha256()
    options = {k: v for k, v in model["options"].items() if isinstance(v, (str, int, float, bool))}
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    h.update(json.dumps(list(model["worddict"].items()), ensure_ascii=False).encode())
    for name in sorted(model["params"]):
        arr = np.ascontiguousarray(model["params"][name], dtype=np.float32)
        h.update(f"{name}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise UVSError(path, f"cannot read: {err.strerror}") from None
    return h.hexdigest()


def cache_path(source: str, model_hash: str) -> str:
    """`CORPUS.txt.uvs-<model>.npz`, beside the corpus; one per corpus and model."""
    return f"{source}.uvs-{model_hash[:16]}.npz"


def cached_embeddings(source: str, model: dict, compute: Callable[[], np.ndarray],
                      model_hash: str | None = None,
                      rows: int | None = None) -> tuple[np.ndarray, str]:
    """Embeddings of the file `source`, reused while neither it nor the model changed.

    A cache whose key matches but whose content is not (rows, dim) finite floats is ignored
    and replaced. Returns (vectors, status), status 'hit', 'stored' or 'unwritable'
    (computed, not saved).
    """
    from uvs.modelfile import read_npz

    model_hash = model_hash or model_fingerprint(model)
    key = f"v{CACHE_VERSION}:{model_hash}:{file_sha256(source)}"
    path = cache_path(source, model_hash)
    if os.path.isfile(path):
        with contextlib.suppress(UVSError):
            cached = read_npz(path, {"vectors": ((rows, model["options"]["dim"]), "f"),
                                     "key": ((), "U")})
            vectors = cached["vectors"].astype(np.float32, copy=False)
            if str(cached["key"]) == key and np.isfinite(vectors).all():
                return vectors, "hit"
    vectors = compute()
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, vectors=vectors, key=np.array(key))
    except UVSError:
        return vectors, "unwritable"
    return vectors, "stored"


def paths_file(features_path: str | os.PathLike) -> str:
    """The list of image paths written beside `FEATS.npy`: `FEATS.paths.txt`."""
    base = os.fspath(features_path)
    return (base[:-4] if base.endswith(".npy") else base) + ".paths.txt"


def read_image_features(path: str, dim_image: int | None = None) -> tuple[np.ndarray, list[str]]:
    """FEATS.npy (memory-mapped) and its row names from `FEATS.paths.txt` (else `#row`)."""
    from uvs.datasets import open_features

    feats = open_features(path, mmap=True)
    if dim_image is not None and feats.shape[1] != dim_image:
        raise UVSError(path, f"features are {feats.shape[1]}-d; the model expects {dim_image}")
    listing = paths_file(path)
    if not os.path.isfile(listing):
        return feats, [f"#{i}" for i in range(len(feats))]
    with open(listing, encoding="utf-8") as f:
        names = f.read().splitlines()
    if len(names) != len(feats):
        raise UVSError(listing, f"{len(names)} paths for {len(feats)} feature rows in {path}")
    return feats, names


def feature_row(model: dict, path: str, row: int) -> np.ndarray:
    """Row `row` of FEATS.npy as a (1, dim_image) float32 query, checked."""
    feats, _ = read_image_features(path, model["options"]["dim_image"])
    if not 0 <= row < len(feats):
        raise UVSError(path, f"row {row} is out of range: the file has {len(feats)} rows")
    block = np.asarray(feats[row:row + 1], dtype=np.float32)
    if not np.isfinite(block).all():
        raise UVSError(path, f"row {row} holds NaN or Inf")
    return block


def embed_feature_file(model: dict, feats: np.ndarray, path: str = "",
                       chunk: int = 65536,
                       on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """encode_images over a (possibly memory-mapped) feature array in chunks, rows unit-normed."""
    from uvs.tools import encode_images

    out = np.zeros((len(feats), model["options"]["dim"]), dtype=np.float32)
    for start in range(0, len(feats), chunk):
        block = np.asarray(feats[start:start + chunk], dtype=np.float32)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise UVSError(path, f"row {start + int(np.argmax(bad))} holds NaN or Inf")
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = encode_images(model, block / np.maximum(norms, 1e-12))
        if on_progress:
            on_progress(len(block))
    return out


def caption_collection(model: dict, path: str, show_progress: bool = False,
                       model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """A caption file (one a line) and its embeddings, cached: (captions, (n, dim), status)."""
    from uvs.fileio import read_lines
    from uvs.tools import encode_sentences

    captions = read_lines(path)
    vecs, status = cached_embeddings(
        path, model, lambda: encode_sentences(model, captions, verbose=show_progress), model_hash,
        rows=len(captions))
    return captions, vecs, status


def image_collection(model: dict, path: str, show_progress: bool = False,
                     model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """FEATS.npy, its names and its embeddings, cached: (names, (n, dim), status)."""
    from uvs.progress import progress

    feats, names = read_image_features(path, model["options"]["dim_image"])

    def compute() -> np.ndarray:
        with progress(len(feats), "embedding images", show_progress) as bar:
            return embed_feature_file(model, feats, path, on_progress=bar.update)

    vecs, status = cached_embeddings(path, model, compute, model_hash, rows=len(feats))
    return names, vecs, status
