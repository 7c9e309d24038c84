"""Using an alignment model: load it, encode words and regions, rank with S_kl in bounded memory.

S_kl = Σ_t max_i v_iᵀ s_t is computed for a block of images against the sentences a tile at a
time: one tile's region-word dot products take about CHUNK_BYTES, so memory stays bounded
whatever the number of images and sentences. Identical sentences are scored once, so they tie
exactly.
"""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from uvs import backend, queries
from uvs.align.model import KIND, build_region_encoder, build_sentence_encoder
from uvs.datasets import layout, load_split, split_paths
from uvs.errors import UVSError
from uvs.evaluation import evalrank as embedding_evalrank
from uvs.fileio import read_lines
from uvs.metrics import five_folds, mean_of_folds, ranks, recall_summary, tie_rule
from uvs.modelfile import read_model
from uvs.progress import progress
from uvs.regions import Regions, match_split, read_regions
from uvs.tools import load_model as load_vse
from uvs.utils import init_tparams
from uvs.vocab import tokenize, word_ids

CHUNK_BYTES = 64 * 2**20
BLOCK_ROWS = 1024  # regions per image block at least, when the block is tiled over sentences
TILE_WORDS = 512  # words per tile at least: a narrower product may sum in another order


def load_model(path: str | os.PathLike) -> dict:
    """An alignment model with its compiled encoders: 'f_words' (x, mask) -> (T, B, dim) and
    'f_regions' (N, dim_image) -> (N, dim); also 'options', 'worddict', 'params', 'path'."""
    mf = read_model(path, kind=KIND)
    return compile_model(mf.params, mf.options, mf.worddict, mf.path)


def compile_model(params: dict, options: dict, worddict: dict, path: str = "",
                  tparams: dict | None = None, mode: str | None = None) -> dict:
    """The model dict of `load_model` from its parts (on `tparams` if given, the training's
    shared parameters), compiled in PyTensor `mode` (default `uvs.backend.mode()`)."""
    tparams = tparams if tparams is not None else init_tparams(params)
    [x, m], s = build_sentence_encoder(tparams, options)
    [r], v = build_region_encoder(tparams, options)
    return {"options": options, "worddict": worddict, "params": params, "path": path,
            "f_words": backend.function([x, m], s, mode=mode, name="f_words"),
            "f_regions": backend.function([r], v, mode=mode, name="f_regions")}


def prepare_words(caps: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(x: (T, B) int64, mask: (T, B) float32) of word index lists, padded at the end."""
    T = max(len(c) for c in caps)
    x = np.zeros((T, len(caps)), np.int64)
    mask = np.zeros((T, len(caps)), np.float32)
    for j, c in enumerate(caps):
        x[:len(c), j] = c
        mask[:len(c), j] = 1.0
    return x, mask


def sentence_ids(model: dict, sentences: list[str], where: str | None = None) -> list[list[int]]:
    """Word indices of each sentence; an empty sentence is an error."""
    o = model["options"]
    out = []
    for n, s in enumerate(sentences):
        tokens = tokenize(s)
        if not tokens:
            raise UVSError(where, f"sentence {n + 1} has no words")
        out.append(word_ids(tokens, model["worddict"], o["n_words"]))
    return out


def encode_words(model: dict, sentences: list[str], batch_size: int = 128,
                 verbose: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every word's vector, sentence after sentence: (words, dim) float32, and offsets (n+1,)."""
    ids = sentence_ids(model, sentences)
    lengths = np.array([len(c) for c in ids])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    out = np.zeros((offsets[-1], model["options"]["dim"]), np.float32)
    by_length = defaultdict(list)
    for i, n in enumerate(lengths):
        by_length[int(n)].append(i)
    with progress(len(ids), "encoding sentences", verbose) as bar:
        for n, members in sorted(by_length.items()):
            for a in range(0, len(members), batch_size):
                batch = members[a:a + batch_size]
                x, mask = prepare_words([ids[i] for i in batch])
                s = model["f_words"](x, mask)
                for j, i in enumerate(batch):
                    out[offsets[i]:offsets[i + 1]] = s[:n, j]
                bar.update(len(batch))
    return out, offsets


def encode_regions(model: dict, features: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """v = W_m·CNN + b_m of every region row: (rows, dim) float32."""
    return np.concatenate([model["f_regions"](np.asarray(features[a:a + batch_size],
                                                         np.float32))
                           for a in range(0, max(len(features), 1), batch_size)])


def region_max(dots: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """best[k] = max of rows starts[k]..starts[k+1]-1 of dots: (n, words), each image ≥ 1 row.

    Images of equal region counts reduce as one (n, R, words) view; otherwise each image's
    rows are gathered j-th by j-th, a short image repeating its last row (max is idempotent).
    NumPy's `maximum.reduceat` along rows gives the same numbers about 10x slower.
    """
    counts = np.diff(starts)
    n = len(counts)
    if n and counts.min() == counts.max():
        return dots[starts[0]:starts[-1]].reshape(n, counts[0], -1).max(axis=1)
    first, last = starts[:-1], starts[1:] - 1
    best = dots[first]
    for j in range(1, int(counts.max(initial=1))):
        np.maximum(best, dots[np.minimum(first + j, last)], out=best)
    return best


def score_matrix(v: np.ndarray, region_offsets: np.ndarray, w: np.ndarray,
                 word_offsets: np.ndarray, chunk_bytes: int = CHUNK_BYTES):
    """Yields (first image, S block) with S[k, l] = Σ_{t in l} max_{i in k} v_i·w_t.

    v: (regions, dim), images by region_offsets (n_images + 1,); w: (words, dim), sentences
    by word_offsets (n_sentences + 1,). A block of images (at least `BLOCK_ROWS` regions when
    there are that many) meets the sentences a tile at a time, each tile's dot products in
    one reused buffer of ≤ chunk_bytes, reduced over regions while it is still warm: products
    of useful shapes, whatever the collection's size, and bounded memory.
    """
    n = len(region_offsets) - 1
    per_region = 4 * max(len(w), 1)
    starts = word_offsets[:-1]
    v = np.ascontiguousarray(v, np.float32)
    w = np.ascontiguousarray(w, np.float32)
    cap = max(chunk_bytes // per_region, BLOCK_ROWS)  # regions in an image block
    whole = int(region_offsets[-1] - region_offsets[0]) * len(w)  # every product at once
    buf = np.empty(max(min(chunk_bytes // 4, whole), 1), np.float32)
    a = 0
    while a < n:
        b = a + 1
        while b < n and region_offsets[b + 1] - region_offsets[a] <= cap:
            b += 1
        ra, rb = region_offsets[a], region_offsets[b]
        S = np.empty((b - a, len(starts)), np.float32)
        for c0, c1 in _sentence_tiles(word_offsets, max(TILE_WORDS, len(buf) // (rb - ra))):
            w0, w1 = word_offsets[c0], word_offsets[c1]
            if (rb - ra) * (w1 - w0) > len(buf):  # one image and one sentence at least
                buf = np.empty((rb - ra) * (w1 - w0), np.float32)
            dots = np.dot(v[ra:rb], w[w0:w1].T,
                          out=buf[:(rb - ra) * (w1 - w0)].reshape(rb - ra, w1 - w0))
            best = region_max(dots, region_offsets[a:b + 1] - ra)  # (b - a, tile's words)
            S[:, c0:c1] = np.add.reduceat(best.astype(np.float64), starts[c0:c1] - w0, axis=1)
        yield a, S
        a = b


def _sentence_tiles(word_offsets: np.ndarray, words: int):
    """(first, end) sentence ranges of at most `words` words each (at least one sentence)."""
    ns = len(word_offsets) - 1
    c0 = 0
    while c0 < ns:
        c1 = int(np.searchsorted(word_offsets, word_offsets[c0] + words, side="right")) - 1
        c1 = min(max(c1, c0 + 1), ns)
        yield c0, c1
        c0 = c1


def pair_scores(model: dict, regions: Regions, sentences: list[str], verbose: bool = False,
                chunk_bytes: int = CHUNK_BYTES):
    """score(im_idx (c, 1), cap_idx (m, 1)) -> (c, m) float32 S_kl of those photos and
    sentences (indices as floats, for `uvs.metrics.ranks`), or None when the model gives
    NaN/Inf vectors. Unique sentences are encoded once; blocks stay within chunk_bytes."""
    unique = list(dict.fromkeys(sentences))
    index = {s: i for i, s in enumerate(unique)}
    col = np.array([index[s] for s in sentences])
    w, woff = encode_words(model, unique, verbose=verbose)
    v = encode_regions(model, regions.features)
    if not (np.isfinite(w).all() and np.isfinite(v).all()):
        return None
    return vector_scores(v, regions.offsets, w, woff, col, chunk_bytes)


def vector_scores(v: np.ndarray, roff: np.ndarray, w: np.ndarray, woff: np.ndarray,
                  col: np.ndarray, chunk_bytes: int = CHUNK_BYTES):
    """`pair_scores`' score function for encoded vectors: regions v (images by roff), unique
    sentences' words w (by woff); caption c is unique sentence col[c]."""

    def score(im_idx, cap_idx):
        ims = im_idx[:, 0].astype(np.int64)
        caps = col[cap_idx[:, 0].astype(np.int64)]
        out = np.empty((len(ims), len(caps)), np.float32)
        # rows of consecutive images go through score_matrix together
        sub_off = np.concatenate([[0], np.cumsum(roff[ims + 1] - roff[ims])])
        if (np.diff(ims) == 1).all():  # a run of images: a view, no copy
            sub_v = v[roff[ims[0]]:roff[ims[-1] + 1]]
        else:
            sub_v = v[np.concatenate([np.arange(roff[k], roff[k + 1]) for k in ims])]
        used = np.unique(caps)
        if len(used) == len(woff) - 1:  # every sentence: no copy of the word vectors
            sub_w, sub_woff = w, woff
        else:
            wrows = np.concatenate([np.arange(woff[c], woff[c + 1]) for c in used])
            sub_w = w[wrows]
            sub_woff = np.concatenate([[0], np.cumsum(woff[used + 1] - woff[used])])
        pos = np.searchsorted(used, caps)
        for a, block in score_matrix(sub_v, sub_off, sub_w, sub_woff, chunk_bytes):
            out[a:a + len(block)] = block[:, pos]
        return out

    return score


def rank_alignment(v: np.ndarray, roff: np.ndarray, w: np.ndarray, woff: np.ndarray,
                   col: np.ndarray, ties: str = "last",
                   chunk_bytes: int = CHUNK_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """(i2t (n,), t2i (5n,)) ranks by S_kl of encoded vectors, as `rank_scores` ranks them
    (arguments as `vector_scores`')."""
    n = len(roff) - 1
    return ranks(np.arange(n, dtype=np.float64)[:, None],
                 np.arange(len(col), dtype=np.float64)[:, None],
                 score=vector_scores(v, roff, w, woff, col, chunk_bytes), ties=ties,
                 chunk=max(1, chunk_bytes // (4 * len(col))))


def _indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Photos (n, 1) and sentences (5n, 1) as the index "vectors" `pair_scores` takes."""
    return (np.arange(n, dtype=np.float64)[:, None],
            np.arange(5 * n, dtype=np.float64)[:, None])


def rank_scores(model: dict, regions: Regions, sentences: list[str], ties: str = "last",
                verbose: bool = False, chunk_bytes: int = CHUNK_BYTES) -> dict:
    """R@1/5/10, medr, meanr both ways for images and their 5 captions each, ranked by S_kl.

    Scores are made block by block (unique sentences once), never as a words x regions whole.
    """
    if len(sentences) != 5 * len(regions):
        raise UVSError(regions.path, f"{len(regions)} photos need {5 * len(regions)} "
                       f"captions, got {len(sentences)}")
    score = pair_scores(model, regions, sentences, verbose, chunk_bytes)
    if score is None:
        return None
    n = len(regions)
    i2t, t2i = ranks(*_indices(n), score=score, ties=ties,
                     chunk=max(1, chunk_bytes // (4 * 5 * n)))
    return recall_summary(i2t, t2i)


def image_names(data: str, split: str, data_dir=None) -> list[str] | None:
    """The split's photo names, one a line beside its captions: NAME_{split}_images.txt, or
    the sample's NAME_{split}_photos.paths.txt; None when there is neither."""
    folder = os.path.dirname(split_paths(data, split, data_dir)[0])
    for name in (f"{data}_{split}_images.txt", f"{data}_{split}_photos.paths.txt"):
        if os.path.exists(os.path.join(folder, name)):
            return read_lines(os.path.join(folder, name))
    return None


def split_regions(regions_path: str | None, data: str, split: str, n_images: int,
                  data_dir=None, dim_image: int | None = None) -> Regions:
    """The regions of one split, matched and checked: `{split}` in the path is replaced;
    no path means DIR/DATA/DATA_{split}_regions.npz beside the captions."""
    if regions_path is None:
        caps_path, _ = split_paths(data, split, data_dir)
        regions_path = os.path.join(os.path.dirname(caps_path), f"{data}_{split}_regions.npz")
        if not os.path.exists(regions_path):
            raise UVSError(regions_path, "no region features for this data set: make them "
                           "with `uvs features --regions` and give --regions")
    r = read_regions(regions_path.replace("{split}", split))
    if dim_image is not None and r.features.shape[1] != dim_image:
        raise UVSError(r.path, f"region features are {r.features.shape[1]} wide but the "
                       f"model expects dim_image = {dim_image}")
    return match_split(r, n_images, image_names(data, split, data_dir),
                       f"the {split} split of {data}")


def _split_with_regions(model: dict, regions_path: str | None, data: str | None, split: str,
                        data_dir) -> tuple:
    """(the split, its regions, the tie rule) as `evalrank` scores them; `data` defaults to
    the model's."""
    data = data or model["options"].get("data")
    if not data:
        raise UVSError(model.get("path"), "the model names no data set: pass one")
    ds = load_split(data, split, data_dir)
    regions = split_regions(regions_path, data, split, len(ds.caps) // 5, data_dir,
                            model["options"]["dim_image"])
    return ds, regions, tie_rule(layout(data, data_dir))


def evalrank(model: dict, regions_path: str | None, data: str | None = None, split: str = "dev",
             data_dir=None, fold5: bool = False, verbose: bool = False) -> dict:
    """Retrieval both ways ranked by S_kl; with `fold5` the mean of 5 equal folds (COCO 1K)."""
    ds, regions, ties = _split_with_regions(model, regions_path, data, split, data_dir)
    n = len(ds.caps) // 5
    if not fold5:
        return _finite(rank_scores(model, regions, ds.caps, ties, verbose), model)
    folds = [_finite(rank_scores(model, regions.subset(np.arange(n)[im]), ds.caps[caps], ties,
                                 verbose), model) for im, caps in five_folds(n, regions.path)]
    return {**mean_of_folds(folds), "folds": folds}


def evalrank_file(path: str, regions_path: str | None = None, data: str | None = None,
                  split: str = "dev", data_dir=None, fold5: bool = False,
                  verbose: bool = False) -> dict:
    """`evalrank` of any retrieval model file, by its kind: an alignment model ranks by S_kl
    over the split's regions (`regions_path`), an embedding model as `uvs.evaluation`."""
    mf = read_model(path)
    if mf.kind == KIND:
        model = compile_model(mf.params, mf.options, mf.worddict, mf.path)
        return evalrank(model, regions_path, data=data, split=split, data_dir=data_dir,
                        fold5=fold5, verbose=verbose)
    if regions_path is not None:
        raise UVSError(mf.path, f"--regions is for alignment models; this is a {mf.kind} model")
    return embedding_evalrank(load_vse(path), data=data, split=split, data_dir=data_dir,
                              fold5=fold5, verbose=verbose)


def evalrank_queries(model: dict, regions_path: str | None, data: str | None = None,
                     split: str = "dev", data_dir=None, fold5: bool = False, k: int = 10,
                     verbose: bool = False):
    """`evalrank` with its per-query results, as `uvs.queries.evalrank_queries` gives them for
    embedding models: (metrics, QueryResults, the split, the regions file). Scores are S_kl."""
    ds, regions, ties = _split_with_regions(model, regions_path, data, split, data_dir)
    n = len(ds.caps) // 5
    parts = five_folds(n, regions.path) if fold5 else [(slice(0, n), slice(0, 5 * n))]
    folds = []
    for im, caps in parts:
        part = regions.subset(np.arange(n)[im]) if fold5 else regions
        score = _finite(pair_scores(model, part, ds.caps[caps], verbose), model)
        folds.append(queries.query_results(None, *_indices(len(part)), ties, k, score=score))
    if not fold5:
        return queries.metrics_of(folds[0]), folds[0], ds, regions.path
    per_fold = [queries.metrics_of(q) for q in folds]
    return ({**mean_of_folds(per_fold), "folds": per_fold},
            queries.concat_folds(folds, n // 5), ds, regions.path)


def _finite(result, model):
    if result is None:
        raise UVSError(model.get("path"), "the model gives NaN or Inf word or region vectors")
    return result
