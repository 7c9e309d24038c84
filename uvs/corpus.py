"""Corpora to search: a caption file or a feature file, embedded once and cached beside it.

The cache, `CORPUS.uvs-<model>.npz`, is keyed by the model's fingerprint and the file's
content, so a second search with the same model and corpus does not re-encode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable

import numpy as np

from uvs import tools
from uvs.errors import UVSError, os_reason
from uvs.features import embed_feature_file, read_image_features
from uvs.fileio import atomic_path, open_regular, read_lines
from uvs.modelfile import read_model, read_npz
from uvs.progress import progress
from uvs.stores import is_store, store_digest

CACHE_VERSION = 1


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


def vse_hash(path: str) -> str:
    """The fingerprint of a uvs/released model file's parameters, options and dictionary."""
    mf = read_model(path, kind="vse")
    return model_fingerprint({"options": mf.options, "worddict": mf.worddict,
                              "params": mf.params})


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open_regular(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise UVSError(path, f"cannot read: {os_reason(err)}") from None
    return h.hexdigest()


def content_sha256(path: str) -> str:
    """sha256 of a file's bytes, or for a `.zarr` store of its fingerprint (complete stores)."""
    return store_digest(path) if is_store(path) else file_sha256(path)


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
    model_hash = model_hash or model_fingerprint(model)
    key = f"v{CACHE_VERSION}:{model_hash}:{content_sha256(source)}"
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


def caption_collection(model: dict, path: str, show_progress: bool = False,
                       model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """A caption file (one a line) and its embeddings, cached: (captions, (n, dim), status)."""
    captions = read_lines(path)
    vecs, status = cached_embeddings(
        path, model, lambda: tools.encode_sentences(model, captions, verbose=show_progress),
        model_hash, rows=len(captions))
    return captions, vecs, status


def image_collection(model: dict, path: str, show_progress: bool = False,
                     model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """FEATS.npy, its names and its embeddings, cached: (names, (n, dim), status)."""
    feats, names = read_image_features(path, model["options"]["dim_image"])

    def compute() -> np.ndarray:
        with progress(len(feats), "embedding images", show_progress) as bar:
            return embed_feature_file(model, feats, path, on_progress=bar.update)

    vecs, status = cached_embeddings(path, model, compute, model_hash, rows=len(feats))
    return names, vecs, status
