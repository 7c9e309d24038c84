"""faiss indexes: exact and approximate search, order models re-scored exactly, one-file format."""

import numpy as np
import pytest

from uvs import index as uindex
from uvs import retrieval
from uvs.errors import UVSError

pytest.importorskip("faiss")


def clustered(n, dim=16, clusters=40, seed=0, positive=False):
    """Unit vectors around random centres: (n, dim) float32 (non-negative for order models)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim))
    x = np.abs(x) if positive else x
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute(method, kind, q, vecs, k):
    row = (retrieval.scores(method, vecs, q[None])[:, 0] if kind == "captions"
           else retrieval.scores(method, q[None], vecs)[0])
    idx = retrieval.top_k(row, k)
    return idx, row[idx]


def make(n, method, kind, index_type, seed=0, **kw):
    vecs = clustered(n, positive=method == "order", seed=seed)
    names = [f"item {i}" for i in range(n)]
    idx = uindex.build(vecs, names, {"kind": kind, "method": method, "model": "m"},
                       index_type=index_type, **kw)
    return vecs, idx


@pytest.mark.parametrize("method", ["cosine", "order"])
@pytest.mark.parametrize("kind", ["captions", "images"])
def test_flat_index_is_exact(method, kind):
    vecs, idx = make(500, method, kind, "flat")
    queries = clustered(5, positive=method == "order", seed=9)
    for q in queries:
        rows, sims = uindex.search(idx, q, k=10)
        want_rows, want_sims = brute(method, kind, q, vecs, 10)
        assert rows.tolist() == want_rows.tolist()
        np.testing.assert_allclose(sims, want_sims, rtol=1e-5, atol=1e-6)


def test_ivf_cosine_recall_and_exact_scores():
    vecs, idx = make(4000, "cosine", "images", "ivf", nlist=32, nprobe=8)
    assert idx.meta["type"] == "ivf" and idx.meta["nprobe"] == 8
    found = 0
    for q in clustered(20, seed=5):
        rows, sims = uindex.search(idx, q, k=10)
        np.testing.assert_allclose(sims, vecs[rows] @ q, rtol=1e-5, atol=1e-6)
        found += len(set(rows) & set(brute("cosine", "images", q, vecs, 10)[0]))
    assert found / 200 >= 0.9
    rows, _ = uindex.search(idx, clustered(1, seed=5)[0], k=10, nprobe=32)  # every list: exact
    assert rows.tolist() == brute("cosine", "images", clustered(1, seed=5)[0], vecs, 10)[0].tolist()


@pytest.mark.parametrize("kind", ["captions", "images"])
def test_ivf_order_candidates_are_rescored_by_order_error(kind):
    vecs, idx = make(3000, "order", kind, "ivf", nlist=16, nprobe=16)
    q = clustered(1, positive=True, seed=7)[0]
    rows, sims = uindex.search(idx, q, k=5, candidates=300)
    _, exact = brute("order", kind, q, vecs[rows], 5)
    np.testing.assert_allclose(sims, exact, rtol=1e-5, atol=1e-6)
    assert (np.diff(sims) <= 0).all()
    rows, sims = uindex.search(idx, q, k=5, candidates=3000)  # every row a candidate
    want_rows, want_sims = brute("order", kind, q, vecs, 5)
    assert rows.tolist() == want_rows.tolist()


def test_auto_is_flat_when_small_ivf_when_large(monkeypatch):
    assert make(300, "cosine", "images", "auto")[1].meta["type"] == "flat"
    monkeypatch.setattr(uindex, "EXACT_LIMIT", 100)
    idx = make(300, "cosine", "images", "auto")[1]
    assert idx.meta["type"] == "ivf" and idx.meta["nlist"] == uindex.default_nlist(300)


def test_round_trip_keeps_names_meta_and_results(tmp_path):
    vecs = clustered(200, positive=True)
    names = ['a "quoted" café', "line\nbreak", "日本", "\u2028sep"] + [str(i) for i in range(196)]
    for index_type in ("flat", "ivf"):
        idx = uindex.build(vecs, names, {"kind": "images", "method": "order", "model": "m"},
                           index_type=index_type, nlist=8)
        path = tmp_path / f"{index_type}.idx"
        uindex.save(idx, path)
        back = uindex.load(path)
        assert back.names == names and back.meta == idx.meta
        q = vecs[3]
        for a, b in zip(uindex.search(idx, q, 7), uindex.search(back, q, 7), strict=True):
            np.testing.assert_array_equal(a, b)
    with open(tmp_path / "flat.idx", "rb") as f:
        assert f.readline() == b"uvs-index 1\n"


def test_bad_files_are_refused(tmp_path):
    vecs, idx = make(50, "cosine", "captions", "flat")
    good = tmp_path / "good.idx"
    uindex.save(idx, good)
    data = good.read_bytes()
    cases = {"other.idx": b"hello\n", "newer.idx": data.replace(b"uvs-index 1", b"uvs-index 9"),
             "cut.idx": data[: len(data) - 100], "nohead.idx": b"uvs-index 1\n{}\n"}
    problems = {"other.idx": "not a uvs index", "newer.idx": "newer than this uvs",
                "cut.idx": "damaged", "nohead.idx": "damaged"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UVSError) as err:
            uindex.load(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name))
        assert problems[name] in str(err.value)
    with pytest.raises(UVSError, match="index file not found"):
        uindex.load(tmp_path / "missing.idx")


def test_failed_save_leaves_the_old_index(tmp_path, monkeypatch):
    vecs, idx = make(50, "cosine", "captions", "flat")
    path = tmp_path / "i.idx"
    uindex.save(idx, path)
    before = path.read_bytes()
    import faiss

    def boom(*a):
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", boom)
    with pytest.raises(RuntimeError):
        uindex.save(idx, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.idx"]


def test_query_width_and_arguments_are_checked():
    _, idx = make(50, "cosine", "images", "flat")
    with pytest.raises(UVSError, match="query is 3-d"):
        uindex.search(idx, np.ones(3, np.float32))
    vecs = clustered(5)
    with pytest.raises(UVSError, match="index type"):
        uindex.build(vecs, list("abcde"), {"kind": "images", "method": "cosine"}, "hnsw")
    with pytest.raises(UVSError, match="5 vectors for 4 names"):
        uindex.build(vecs, list("abcd"), {"kind": "images", "method": "cosine"})
