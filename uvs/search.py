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
from uvs.features import read_image_features


@dataclass
class Hits:
    """The best rows of a collection for a query, best first."""

    kind: str  # what was searched: 'captions' or 'images'
    names: list[str]  # every row's caption or image name
    rows: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32, higher is better
    cache: str  # the embeddings: 'hit', 'stored', 'unwritable' (from the cache) or 'index'
    duplicates: np.ndarray | None = None  # (k,) identical rows folded into each hit

    @property
    def item(self) -> str:
        """What one hit is: 'caption' or 'image'."""
        return "caption" if self.kind == "captions" else "image"

    def results(self) -> list[dict]:
        """[{'rank', 'row', 'score', 'caption' or 'image', 'duplicates'}], best first."""
        dups = self.duplicates if self.duplicates is not None else \
            np.zeros(len(self.rows), np.int64)
        return [{"rank": r + 1, "row": int(i), "score": float(s), self.item: self.names[i],
                 "duplicates": int(d)}
                for r, (i, s, d) in enumerate(zip(self.rows, self.scores, dups, strict=True))]

    def summary(self, model_path: str, model: dict, query: dict, collection: str,
                all_duplicates: bool = False) -> dict:
        """The search as `--json` gives it: model, scoring, `query`, the collection, how
        identical rows were treated, results."""
        method = retrieval.model_method(model)
        results = self.results()
        return {"model": model_path, "method": method,
                "score": "negative order error" if method == "order" else "cosine similarity",
                "query": query,
                "collection": {"kind": self.kind, "path": collection, "count": len(self.names),
                               "cache": self.cache},
                "duplicates": "kept" if all_duplicates else "collapsed",
                "collapsed": sum(r["duplicates"] for r in results), "results": results}


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


def collapse(rows: np.ndarray, keys: Sequence, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the first k distinct `keys` along ranked `rows`, and for each how many
    later rows with the same key it stands for: ((<=k,), (<=k,)) int64."""
    first: dict = {}
    for pos, key in enumerate(keys):
        if key in first:
            first[key][1] += 1
        elif len(first) < k:
            first[key] = [pos, 0]
    kept = np.array([v for v in first.values()], np.int64).reshape(-1, 2)
    return kept[:, 0], kept[:, 1]


def _distinct(rank, key, k: int, n: int):
    """`rank(k')` -> (rows, scores) widened until k distinct `key(row)` are found and every
    row identical to one of them (which scores the same) is counted: past the lowest kept
    score, or all n rows."""
    want = k
    while True:
        rows, sims = rank(min(n, want))
        pos, dups = collapse(rows, [key(r) for r in rows], k)
        if len(rows) >= n or (len(pos) >= k and sims[-1] < sims[pos].min()):
            return rows[pos], sims[pos], dups
        want *= 4


def search(model: dict, query: np.ndarray, wanted: str, captions: str | None = None,
           images: str | None = None, index: str | None = None, k: int = 5,
           rerank: bool = False, candidates: int | None = None, nprobe: int | None = None,
           show_progress: bool = False, distinct: bool = False) -> Hits:
    """The best k rows for `query` (from `embed_query`) in one collection, given by its path.

    wanted: what the query finds (`finds`), checked against an index's kind; rerank: reorder
    the images found by closeness to their mean (the seeds' regularities); candidates,
    nprobe: see `uvs.index.search`; distinct: k different captions or images, each standing
    for its identical rows (same caption text, same name, or identical feature rows), counted
    in `Hits.duplicates`.
    """
    if sum(p is not None for p in (captions, images, index)) != 1:
        raise UVSError(None, "search one collection: a caption file, a feature file or an index")
    if index is not None:
        idx = uindex.load(index)
        check_index(idx, model, wanted, index)
        kind, names, cache = idx.meta["kind"], idx.names, "index"

        def rank(want):
            return uindex.search(idx, query, want, candidates=candidates, nprobe=nprobe)

        def key(row):
            return names[row]

        def vectors(rows):
            return idx.index.reconstruct_batch(rows)
    else:
        if captions is not None:
            kind = "captions"
            names, vecs, cache = corpus.caption_collection(model, captions, show_progress)
        else:
            kind = "images"
            names, vecs, cache = corpus.image_collection(model, images, show_progress)
        order_by = retrieval.rank_captions if kind == "captions" else retrieval.rank_images
        # identical feature rows are the same image: compared as the rows given, exactly (their
        # embeddings can differ in the last bits with the row's place in a BLAS product)
        feats = read_image_features(images)[0] if distinct and kind == "images" else None

        def rank(want):
            return order_by(model, query, vecs, want)

        def key(row):
            return names[row] if kind == "captions" else np.asarray(feats[row]).tobytes()

        def vectors(rows):
            return vecs[rows]
    if distinct:
        rows, sims, dups = _distinct(rank, key, k, len(names))
    else:
        (rows, sims), dups = rank(k), None
    if rerank and kind == "images":
        order = retrieval.rerank_by_mean(vectors(rows))
        rows, sims = rows[order], sims[order]
        dups = None if dups is None else dups[order]
    return Hits(kind, names, rows, sims, cache, dups)
