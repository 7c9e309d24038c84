"""The seeds' `demo.py`: retrieval both ways and image arithmetic, on a maintained stack.

`build_convnet` and `compute_features` come from `uvs.vgg`, `load_image` from `uvs.photos`;
scores and queries from `uvs.retrieval`. The command line's search (cached corpora, feature
files, indexes) lives in `uvs.corpus`, `uvs.features` and `uvs.index`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from uvs.photos import load_image
from uvs.retrieval import (
    arithmetic,
    embed_photo,
    embed_text,
    rank_captions,
    rank_images,
    rerank_by_mean,
)
from uvs.vgg import ConvNet, build_convnet, compute_features

__all__ = ["build_convnet", "compute_features", "load_image", "retrieve_captions",
           "retrieve_images", "regularities"]


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
