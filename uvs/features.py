"""Image-feature files from `uvs features`: FEATS.npy, its row names, rows checked and embedded."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from uvs.datasets import open_features
from uvs.errors import UVSError
from uvs.fileio import read_lines
from uvs.store_rows import open_rows
from uvs.stores import is_store
from uvs.tools import check_features, embed_checked_images


def paths_file(features_path: str | os.PathLike) -> str:
    """The list of image paths written beside `FEATS.npy`: `FEATS.paths.txt`."""
    base = os.fspath(features_path)
    return (base[:-4] if base.endswith(".npy") else base) + ".paths.txt"


def read_image_features(path: str, dim_image: int | None = None) -> tuple[np.ndarray, list[str]]:
    """FEATS.npy (memory-mapped) and its row names from `FEATS.paths.txt` (else `#row`), or a
    FEATS.zarr store's rows (`uvs.store_rows.StoreRows`, read lazily) and their paths."""
    if is_store(path):
        feats, names = open_rows(path)
    else:
        feats = open_features(path, mmap=True)
    if dim_image is not None and feats.shape[1] != dim_image:
        raise UVSError(path, f"features are {feats.shape[1]}-d; the model expects {dim_image}")
    if is_store(path):
        return feats, names
    listing = paths_file(path)
    if not os.path.lexists(listing):
        return feats, [f"#{i}" for i in range(len(feats))]

    names = read_lines(listing)  # split at "\n" only, as `uvs features` writes it
    if len(names) != len(feats):
        raise UVSError(listing, f"{len(names)} paths for {len(feats)} feature rows in {path}")
    return feats, names


def feature_rows(path: str, row: int, width: int) -> np.ndarray:
    """Row `row` of FEATS.npy: (1, width), its width and the row checked."""
    feats, _ = read_image_features(path, width)
    if not 0 <= row < len(feats):
        raise UVSError(path, f"row {row} is out of range: the file has {len(feats)} rows")
    return feats[row:row + 1]


def feature_row(model: dict, path: str, row: int) -> np.ndarray:
    """Row `row` of FEATS.npy as a (1, dim_image) float32 query, checked."""
    feats = feature_rows(path, row, model["options"]["dim_image"])

    return check_features(model, feats, path, first_row=row)


def embed_feature_file(model: dict, feats: np.ndarray, path: str = "",
                       chunk: int = 65536,
                       on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """encode_images over a (possibly memory-mapped) feature array in chunks, rows unit-normed."""
    out = np.zeros((len(feats), model["options"]["dim"]), dtype=np.float32)
    for start in range(0, len(feats), chunk):
        block = embed_block(model, feats[start:start + chunk], path, start)
        out[start:start + len(block)] = block
        if on_progress:
            on_progress(len(block))
    return out


def embed_block(model: dict, block: np.ndarray, path: str = "", first_row: int = 0
                ) -> np.ndarray:
    """Rows of image features (m, dim_image), checked and unit-normed, embedded: (m, dim)."""

    block = check_features(model, block, path, first_row=first_row)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return embed_checked_images(model, block / np.maximum(norms, 1e-12))
