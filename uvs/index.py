"""Large collections: caption or image embeddings in a faiss index, saved as one file.

Exact inner product (`IndexFlatIP`) up to `EXACT_LIMIT` vectors, an inverted-file index
(`IndexIVFFlat`, full vectors kept) beyond. Cosine models rank by inner product, so faiss's
scores are final; order models rank by order error, so faiss proposes candidates by inner
product and they are re-scored exactly (on a flat index: every vector, exactly).

File layout: `uvs-index 1` line, one JSON line of metadata, `count` lines each a JSON string
(the caption, or the image path), then faiss's own serialisation. `head -2 INDEX` shows it.
faiss-cpu (the `[index]` extra) is imported only here, inside the functions.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from uvs import corpus, index_ondisk
from uvs.datasets import check_finite
from uvs.errors import UVSError, one_line
from uvs.extras import import_from
from uvs.features import embed_block, read_image_features
from uvs.fileio import atomic_path, open_regular
from uvs.metrics import top_k
from uvs.progress import progress
from uvs.retrieval import model_method, scores
from uvs.store_rows import StoreRows
from uvs.stores import is_store, open_store

MAGIC = b"uvs-index"
VERSION = 1
MAX_VERSION = 2  # version 2: on disk, the faiss part in INDEX.faiss + INDEX.ivfdata
EXACT_LIMIT = 100_000
KINDS = ("captions", "images")
TYPES = ("auto", "flat", "ivf")
_CHUNK = 65536
_TIES = 8  # extra neighbours fetched so that equal scores at the k-th place order by row


@dataclass
class Index:
    """A faiss index with what it indexes: `names[i]` is row i; `meta` says model and kind."""

    index: object  # faiss.Index over (count, dim) float32 unit vectors
    meta: dict
    names: list[str]
    lists_tmp: str | None = None  # on-disk inverted lists written, not yet renamed (`save`)


def _faiss():
    return import_from("index", "faiss")


def default_nlist(n: int) -> int:
    """Inverted lists for n vectors: the power of two nearest √n, at least 16."""
    return max(16, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))


def default_nprobe(nlist: int) -> int:
    """Lists visited per query: 1/16 of them, at least 8 (recall@10 0.95 at 1M in the benchmark)."""
    return min(nlist, max(8, nlist // 16))


def build(vectors: np.ndarray, names: Sequence[str], meta: dict, index_type: str = "auto",
          nlist: int | None = None, nprobe: int | None = None, seed: int = 0,
          on_progress: Callable[[int], None] | None = None) -> Index:
    """Index vectors: (n, dim) float32 unit rows named by `names`; `meta` needs 'kind', 'method'.

    index_type 'auto' is 'flat' (exact) up to EXACT_LIMIT vectors, else 'ivf' (approximate).
    """
    faiss = _faiss()
    _check_args(index_type, meta)
    n, dim = vectors.shape
    if n != len(names) or n == 0:
        raise UVSError(None, f"{n} vectors for {len(names)} names")
    index_type, nlist, nprobe = _plan(n, index_type, nlist, nprobe)
    index = _new_index(faiss, dim, index_type, nlist, nprobe)
    if index_type == "ivf":
        sample = training_rows(n, nlist, seed)
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    for start in range(0, n, _CHUNK):
        index.add(np.ascontiguousarray(vectors[start:start + _CHUNK], dtype=np.float32))
        if on_progress:
            on_progress(min(_CHUNK, n - start))
    return _finish(index, names, meta, n, dim, index_type, nlist, nprobe)


def _check_args(index_type: str, meta: dict) -> None:
    if index_type not in TYPES:
        raise UVSError(None, f"index type must be one of {', '.join(TYPES)}, not {index_type!r}")
    if meta.get("kind") not in KINDS:
        raise UVSError(None, f"index kind must be one of {', '.join(KINDS)}")


def _plan(n: int, index_type: str, nlist: int | None, nprobe: int | None):
    """(type, nlist, nprobe) for n vectors: 'auto' is flat up to EXACT_LIMIT."""
    if index_type == "auto":
        index_type = "flat" if n <= EXACT_LIMIT else "ivf"
    if index_type == "flat":
        return "flat", None, None
    nlist = min(nlist or default_nlist(n), n)
    return "ivf", nlist, min(nprobe or default_nprobe(nlist), nlist)


def _new_index(faiss, dim: int, index_type: str, nlist: int | None, nprobe: int | None):
    if index_type == "flat":
        return faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.nprobe = nprobe
    return index


def training_rows(n: int, nlist: int, seed: int = 0) -> np.ndarray:
    """The rows an IVF quantiser is trained on: 64 per list (all when fewer), sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))


def _finish(index, names, meta, n, dim, index_type, nlist, nprobe) -> Index:
    if index_type == "ivf":
        index.make_direct_map()  # reconstruct() for the exact re-ranking of order models
    meta = {"format": "uvs-index", "version": VERSION, **meta, "count": n, "dim": dim,
            "type": index_type, "nlist": nlist, "nprobe": nprobe}
    return Index(index, meta, list(names))


def build_stream(rows, dim: int, embed: Callable[[np.ndarray, int], np.ndarray],
                 names: Sequence[str], meta: dict, index_type: str = "auto",
                 nlist: int | None = None, nprobe: int | None = None, seed: int = 0,
                 on_progress: Callable[[int], None] | None = None,
                 on_disk: str | None = None, block_rows: int | None = None) -> Index:
    """Index a store's rows (`uvs.store_rows.StoreRows`) read one chunk at a time.

    `embed(block, first_row)` turns (m, d) stored rows into (m, dim) unit vectors. An IVF
    quantiser is trained on the same sample of rows as `build` takes, read first; memory is
    the index itself plus one chunk and the sample. `on_disk` (the final index path): an IVF
    index whose inverted lists are merged into a file beside it (`uvs.index_ondisk`), built
    `block_rows` rows at a time; memory is then one block.
    """
    faiss = _faiss()
    _check_args(index_type, meta)
    n = len(rows)
    if n != len(names) or n == 0:
        raise UVSError(None, f"{n} rows for {len(names)} names")
    index_type, nlist, nprobe = _plan(n, index_type, nlist, nprobe)
    if on_disk and index_type != "ivf":
        raise UVSError(on_disk, "an on-disk index is an inverted file: --type ivf or auto "
                       f"above {EXACT_LIMIT} rows")
    index = _new_index(faiss, dim, index_type, nlist, nprobe)
    if index_type == "ivf":
        sample = training_rows(n, nlist, seed)
        raw = rows.take(sample)
        bad = ~np.isfinite(raw).all(axis=1)
        if bad.any():
            raise UVSError(rows.path, f"row {int(sample[np.argmax(bad)])} holds NaN or Inf")
        index.train(np.ascontiguousarray(embed(raw, 0), dtype=np.float32))
        del raw
    if on_disk:
        folder = os.path.dirname(os.path.abspath(on_disk))
        if not os.path.isdir(folder):
            raise UVSError(on_disk, f"cannot write: folder {folder} does not exist")
        lists_tmp = f"{on_disk}.ivfdata.tmp"
        embedded = ((first, np.ascontiguousarray(embed(block, first), dtype=np.float32))
                    for first, block in rows.blocks())
        index = index_ondisk.add_in_blocks(faiss, index, embedded, lists_tmp,
                                           block_rows or index_ondisk.BLOCK_ROWS, on_progress)
        built = _finish(index, names, {**meta, "storage": "on-disk",
                                       "version": index_ondisk.FORMAT_VERSION},
                        n, dim, index_type, nlist, nprobe)
        built.lists_tmp = lists_tmp
        return built
    for first, block in rows.blocks():
        index.add(np.ascontiguousarray(embed(block, first), dtype=np.float32))
        if on_progress:
            on_progress(len(block))
    return _finish(index, names, meta, n, dim, index_type, nlist, nprobe)


def save(index: Index, path: str | os.PathLike) -> None:
    """Write the index as one file, atomically."""
    faiss = _faiss()
    path = os.fspath(path)
    version, meta = VERSION, index.meta
    if index.meta.get("storage") == "on-disk":
        meta = {**meta, **index_ondisk.save_parts(faiss, index.index, path, index.lists_tmp),
                "version": index_ondisk.FORMAT_VERSION}
        version = index_ondisk.FORMAT_VERSION
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + b" %d\n" % version)
        f.write(json.dumps(meta, ensure_ascii=False).encode("utf-8") + b"\n")
        for name in index.names:
            f.write(json.dumps(name, ensure_ascii=False).encode("utf-8") + b"\n")
        if version == VERSION:
            faiss.write_index(index.index, faiss.PyCallbackIOWriter(f.write))


def is_index(path: str) -> bool:
    """Whether the file starts as an index written by `save` does."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC) + 1) == MAGIC + b" "


def _open(path: str):
    return open_regular(path, "index file")


def read_info(path: str | os.PathLike) -> dict:
    """What the index file at `path` holds (its metadata line, checked), without loading it."""
    path = os.fspath(path)
    with _open(path) as f:
        return read_meta(f, path)


def read_meta(f, path: str) -> dict:
    """The metadata line of an open index file, checked."""
    head = f.readline(64)
    if not head.startswith(MAGIC + b" "):
        raise UVSError(path, "not a uvs index (build one with `uvs index build`)")
    try:
        version = int(head.split()[1])
        meta = json.loads(f.readline().decode("utf-8"))
    except (ValueError, IndexError, UnicodeDecodeError):
        raise UVSError(path, "damaged uvs index header") from None
    if version > MAX_VERSION:
        raise UVSError(path, f"uvs index version {version} is newer than this uvs reads "
                       f"({MAX_VERSION}); upgrade uvs")
    if not isinstance(meta, dict) or not {"kind", "method", "count", "dim"} <= set(meta):
        raise UVSError(path, "damaged uvs index header")
    return meta


def load(path: str | os.PathLike) -> Index:
    """Read an index written by `save`."""
    faiss = _faiss()
    path = os.fspath(path)
    with _open(path) as f:
        meta = read_meta(f, path)
        try:
            names = [json.loads(f.readline().decode("utf-8")) for _ in range(meta["count"])]
            if meta.get("storage") == "on-disk":
                index = index_ondisk.load_parts(faiss, path, meta)
            else:
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read))
        except (ValueError, UnicodeDecodeError, RuntimeError) as err:
            raise UVSError(path, f"damaged uvs index ({one_line(err)})") from None
    if index.ntotal != meta["count"] or index.d != meta["dim"] or len(names) != meta["count"]:
        raise UVSError(path, "damaged uvs index (counts disagree)")
    return Index(index, meta, names)


def _flat_vectors(index) -> np.ndarray:
    """The stored vectors of an IndexFlat, without copying: (ntotal, d)."""
    faiss = _faiss()
    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def _exact(method: str, kind: str, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Scores of one query against rows: a photo ranks captions, anything else ranks images."""
    if kind == "captions":
        return scores(method, vectors, query[None, :])[:, 0]
    return scores(method, query[None, :], vectors)[0]


def search(index: Index, query: np.ndarray, k: int = 5, candidates: int | None = None,
           nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Best k rows for one embedded query (dim,): (rows, scores), higher scores better.

    Order models: `candidates` (default max(100, 10k)) proposed by inner product, re-scored
    exactly; on a flat index every row is scored exactly.
    """
    faiss = _faiss()
    method, kind, n = index.meta["method"], index.meta["kind"], index.meta["count"]
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if query.shape[0] != index.meta["dim"]:
        raise UVSError(None, f"query is {query.shape[0]}-d; the index holds "
                       f"{index.meta['dim']}-d vectors")
    params = None
    if index.meta["type"] == "ivf":
        params = faiss.SearchParametersIVF(nprobe=nprobe or index.meta["nprobe"])
    if method == "order" and index.meta["type"] == "flat":
        row = np.concatenate([_exact(method, kind, query, _flat_vectors(index.index)[j:j + _CHUNK])
                              for j in range(0, n, _CHUNK)])
        idx = top_k(row, k)
        return idx, row[idx]
    want = k + _TIES if method != "order" else max(k, candidates or max(100, 10 * k))
    D, I = index.index.search(query[None, :], min(n, want), params=params)
    keep = I[0] >= 0
    rows, sims = I[0][keep], D[0][keep]
    if method == "order":
        sims = _exact(method, kind, query, index.index.reconstruct_batch(rows))
    order = np.lexsort((rows, -sims))[:k]  # equal scores: lower row first, as top_k
    return rows[order], sims[order]


def build_collection(model: dict, captions: str | None = None, images: str | None = None,
                     model_path: str | None = None, index_type: str = "auto",
                     nlist: int | None = None, nprobe: int | None = None,
                     show_progress: bool = False, on_disk: str | None = None,
                     block_rows: int | None = None) -> tuple[Index, str]:
    """Embed a caption file or FEATS.npy with `model` (cached) and index it: (index, cache).

    The metadata names the model by its fingerprint, so that searching with another is refused.
    """
    if (captions is None) == (images is None):
        raise UVSError(None, "index one collection: a caption file or a feature file")

    fingerprint = corpus.model_fingerprint(model)
    source = captions or images
    meta = {"kind": "captions" if captions else "images", "method": model_method(model),
            "model": fingerprint, "model_path": model_path, "source": source,
            "source_sha256": corpus.content_sha256(source)}
    stream = dict(index_type=index_type, nlist=nlist, nprobe=nprobe, on_disk=on_disk,
                  block_rows=block_rows)
    if images and is_store(images):
        return _build_from_store(model, images, meta, show_progress, **stream), "streamed"
    if captions and is_store(captions):
        return _build_from_sentences(model, captions, model_path, meta, show_progress,
                                     **stream), "streamed"
    if on_disk:
        raise UVSError(source, "an on-disk index is built from a .zarr store (uvs features "
                       "or uvs encode sentences -o X.zarr)")
    collect = corpus.caption_collection if captions else corpus.image_collection
    names, vecs, cache = collect(model, source, show_progress, model_hash=fingerprint)
    with progress(len(vecs), "indexing", show_progress) as bar:
        built = build(vecs, names, meta, index_type=index_type, nlist=nlist, nprobe=nprobe,
                      on_progress=bar.update)
    return built, cache


def _build_from_store(model: dict, path: str, meta: dict, show_progress: bool,
                      **stream) -> Index:
    """A FEATS.zarr store embedded and indexed chunk by chunk (no embeddings cache)."""

    feats, names = read_image_features(path, model["options"]["dim_image"])
    with progress(len(feats), "embedding and indexing", show_progress) as bar:
        return build_stream(feats, model["options"]["dim"],
                            lambda block, first: embed_block(model, block, path, first),
                            names, meta, on_progress=bar.update, **stream)


def _build_from_sentences(model: dict, path: str, model_path: str | None, meta: dict,
                          show_progress: bool, **stream) -> Index:
    """A store of sentence embeddings (`uvs encode sentences -o X.zarr`) indexed chunk by
    chunk; it must have been embedded with this very model."""
    store = open_store(path, "sentences")
    if model_path is None or store.meta["fingerprint"]["model"] != corpus.vse_hash(model_path):
        raise UVSError(path, "these sentences were embedded with another model; embed them "
                       "with this one (`uvs encode sentences MODEL ... -o X.zarr`)")
    rows = StoreRows(store)

    def embed(block: np.ndarray, first: int) -> np.ndarray:
        check_finite(block, path, first)
        return block

    with progress(len(rows), "indexing", show_progress) as bar:
        return build_stream(rows, model["options"]["dim"], embed, store.names(rows.status),
                            meta, on_progress=bar.update, **stream)
