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

from uvs.errors import UVSError, one_line
from uvs.fileio import atomic_path
from uvs.retrieval import scores, top_k

MAGIC = b"uvs-index"
VERSION = 1
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


def _faiss():
    try:
        import faiss
    except ImportError:
        raise UVSError(None, "faiss is not installed: pip install 'uvs[index]' "
                       "(faiss-cpu)") from None
    return faiss


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
    if index_type not in TYPES:
        raise UVSError(None, f"index type must be one of {', '.join(TYPES)}, not {index_type!r}")
    if meta.get("kind") not in KINDS:
        raise UVSError(None, f"index kind must be one of {', '.join(KINDS)}")
    n, dim = vectors.shape
    if n != len(names) or n == 0:
        raise UVSError(None, f"{n} vectors for {len(names)} names")
    if index_type == "auto":
        index_type = "flat" if n <= EXACT_LIMIT else "ivf"
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
        nlist = nprobe = None
    else:
        nlist = min(nlist or default_nlist(n), n)
        nprobe = min(nprobe or default_nprobe(nlist), nlist)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n, size=min(n, 64 * nlist), replace=False))
        index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
        index.nprobe = nprobe
    for start in range(0, n, _CHUNK):
        index.add(np.ascontiguousarray(vectors[start:start + _CHUNK], dtype=np.float32))
        if on_progress:
            on_progress(min(_CHUNK, n - start))
    if index_type == "ivf":
        index.make_direct_map()  # reconstruct() for the exact re-ranking of order models
    meta = {"format": "uvs-index", "version": VERSION, **meta, "count": n, "dim": dim,
            "type": index_type, "nlist": nlist, "nprobe": nprobe}
    return Index(index, meta, list(names))


def save(index: Index, path: str | os.PathLike) -> None:
    """Write the index as one file, atomically."""
    faiss = _faiss()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(MAGIC + b" %d\n" % VERSION)
        f.write(json.dumps(index.meta, ensure_ascii=False).encode("utf-8") + b"\n")
        for name in index.names:
            f.write(json.dumps(name, ensure_ascii=False).encode("utf-8") + b"\n")
        faiss.write_index(index.index, faiss.PyCallbackIOWriter(f.write))


def _open(path: str):
    from uvs.fileio import open_regular

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
    if version > VERSION:
        raise UVSError(path, f"uvs index version {version} is newer than this uvs reads "
                       f"({VERSION}); upgrade uvs")
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
                     show_progress: bool = False) -> tuple[Index, str]:
    """Embed a caption file or FEATS.npy with `model` (cached) and index it: (index, cache).

    The metadata names the model by its fingerprint, so that searching with another is refused.
    """
    from uvs import corpus
    from uvs.progress import progress
    from uvs.retrieval import model_method

    if (captions is None) == (images is None):
        raise UVSError(None, "index one collection: a caption file or a feature file")
    fingerprint = corpus.model_fingerprint(model)
    source = captions or images
    collect = corpus.caption_collection if captions else corpus.image_collection
    names, vecs, cache = collect(model, source, show_progress, model_hash=fingerprint)
    meta = {"kind": "captions" if captions else "images", "method": model_method(model),
            "model": fingerprint, "model_path": model_path, "source": source,
            "source_sha256": corpus.file_sha256(source)}
    with progress(len(vecs), "indexing", show_progress) as bar:
        built = build(vecs, names, meta, index_type=index_type, nlist=nlist, nprobe=nprobe,
                      on_progress=bar.update)
    return built, cache
