"""One query against one collection — a caption file, a feature file or an index: `uvs search`.

The query is a sentence, a photo or a row of a feature file, a photo's optionally moved by
words (photo − word + word). A photo finds captions; a sentence or a moved photo finds images.
Collections are embedded once and cached (`uvs.corpus`); an index must come from the same model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from uvs import corpus, retrieval, vgg
from uvs import index as uindex
from uvs.errors import UVSError


@dataclass
class Hits:
    """The best rows of a collection for a query, best first."""

    kind: str  # what was searched: 'captions' or 'images'
    names: list[str]  # every row's caption or image name
    rows: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32, higher is better
    cache: str  # the embeddings: 'hit', 'stored', 'unwritable' (from the cache) or 'index'

    @property
    def item(self) -> str:
        """What one hit is: 'caption' or 'image'."""
        return "caption" if self.kind == "captions" else "image"

    def results(self) -> list[dict]:
        """[{'rank', 'row', 'score', 'caption' or 'image'}], best first."""
        return [{"rank": r + 1, "row": int(i), "score": float(s), self.item: self.names[i]}
                for r, (i, s) in enumerate(zip(self.rows, self.scores, strict=True))]

    def summary(self, model_path: str, model: dict, query: dict, collection: str) -> dict:
        """The search as `--json` gives it: model, scoring, `query`, the collection, results."""
        method = retrieval.model_method(model)
        return {"model": model_path, "method": method,
                "score": "negative order error" if method == "order" else "cosine similarity",
                "query": query,
                "collection": {"kind": self.kind, "path": collection, "count": len(self.names),
                               "cache": self.cache},
                "results": self.results()}


def finds(image_query: bool, minus: Sequence[str] = (), plus: Sequence[str] = ()) -> str:
    """What a query finds: 'captions' for a plain photo, else 'images'."""
    return "captions" if image_query and not (minus or plus) else "images"


def embed_query(model: dict, text: str | None = None, photo: str | None = None,
                features: str | None = None, row: int = 0, weights: str = "torchvision",
                crops: int = 1, device: str | None = None, minus: Sequence[str] = (),
                plus: Sequence[str] = ()) -> np.ndarray:
    """One query in the joint space, (dim,): a sentence, a photo (through VGG-19 `weights`) or
    row `row` of a feature file, a photo's moved by −Σ minus + Σ plus."""
    if sum(q is not None for q in (text, photo, features)) != 1:
        raise UVSError(None, "a query is one of: a sentence, a photo, a row of a feature file")
    if text is not None:
        if minus or plus:
            raise UVSError(None, "words are added to or subtracted from an image query")
        return retrieval.embed_text(model, text)
    if features is not None:
        vec = retrieval.embed_feature_row(model, features, row)
    else:
        vec = retrieval.embed_photo(model, vgg.build_convnet(weights, device=device), photo,
                                    crops=crops)
    return retrieval.arithmetic(model, vec, minus, plus) if (minus or plus) else vec


def check_index(index, model: dict, wanted: str, path: str | None = None) -> None:
    """UVSError unless `index` was built with `model` and holds what the query finds (`wanted`)."""
    if index.meta.get("model") != corpus.model_fingerprint(model):
        raise UVSError(path, "this index was built with another model; rebuild it with "
                       "`uvs index build` for this one")
    kind = index.meta["kind"]
    if kind == "captions" and wanted != "captions":
        raise UVSError(path, "an index of captions answers a plain --image query")
    if kind == "images" and wanted != "images":
        raise UVSError(path, "an index of images answers --text (or --image with "
                       "--minus/--plus)")


def search(model: dict, query: np.ndarray, wanted: str, captions: str | None = None,
           images: str | None = None, index: str | None = None, k: int = 5,
           rerank: bool = False, candidates: int | None = None, nprobe: int | None = None,
           show_progress: bool = False) -> Hits:
    """The best k rows for `query` (from `embed_query`) in one collection, given by its path.

    wanted: what the query finds (`finds`), checked against an index's kind; rerank: reorder
    the images found by closeness to their mean (the seeds' regularities); candidates,
    nprobe: see `uvs.index.search`.
    """
    if sum(p is not None for p in (captions, images, index)) != 1:
        raise UVSError(None, "search one collection: a caption file, a feature file or an index")
    if index is not None:
        idx = uindex.load(index)
        check_index(idx, model, wanted, index)
        rows, sims = uindex.search(idx, query, k, candidates=candidates, nprobe=nprobe)
        kind, names, hits, cache = idx.meta["kind"], idx.names, None, "index"
        if rerank and kind == "images":
            hits = idx.index.reconstruct_batch(rows)
    elif captions is not None:
        kind = "captions"
        names, vecs, cache = corpus.caption_collection(model, captions, show_progress)
        rows, sims = retrieval.rank_captions(model, query, vecs, k)
        hits = vecs[rows]
    else:
        kind = "images"
        names, vecs, cache = corpus.image_collection(model, images, show_progress)
        rows, sims = retrieval.rank_images(model, query, vecs, k)
        hits = vecs[rows]
    if rerank and kind == "images":
        order = retrieval.rerank_by_mean(hits)
        rows, sims = rows[order], sims[order]
    return Hits(kind, names, rows, sims, cache)
