"""Retrieval both ways (uvs.retrieval, the seeds' uvs.demo), arithmetic, the corpus cache."""

import os

import numpy as np
import pytest
import reference
from models import write_tiny_model
from vggfixtures import DENSE, photo

from uvs import corpus, demo, retrieval, tools
from uvs.errors import UVSError

CAPTIONS = ["a dog runs on the beach", "a red car", "a blue car", "a cat sits", "the sky",
            "a bird flies", "a dog sits on the grass"]


@pytest.fixture(scope="module", params=["cosine", "order"])
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    method = None if request.param == "cosine" else "order"
    path, *_ = write_tiny_model(folder, "uvs", method=method, abs_=method == "order",
                                dim_image=DENSE[1])
    return tools.load_model(path)


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_scores_are_negated_errors(model):
    rng = np.random.default_rng(0)
    s, im = (np.abs(unit_rows(rng.standard_normal((n, 8)))) for n in (5, 7))
    got = retrieval.scores(retrieval.model_method(model), s, im)
    s64, im64 = s.astype(np.float64), im.astype(np.float64)
    if model["options"].get("method") == "order":
        want = -reference.order_errors(s64, im64)
    else:
        want = s64 @ im64.T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not np.signbit(retrieval.scores("order", s, s + 1)).any()  # zero errors: 0, never -0


def test_top_k_breaks_ties_by_row_and_stops_at_n():
    row = np.array([0.5, 0.9, 0.5, 0.9, 0.1], np.float32)
    assert retrieval.top_k(row, 3).tolist() == [1, 3, 0]
    assert retrieval.top_k(row, 10).tolist() == [1, 3, 0, 2, 4]


def test_rankings_match_brute_force(model):
    rng = np.random.default_rng(1)
    cvecs = tools.encode_sentences(model, CAPTIONS)
    imvecs = tools.encode_images(model, unit_rows(rng.standard_normal((6, DENSE[1]))))
    rows, sims = retrieval.rank_captions(model, imvecs[2], cvecs, k=3)
    full = -tools.compute_errors(model, cvecs, imvecs[2:3])[:, 0]
    assert rows.tolist() == np.argsort(-full, kind="stable")[:3].tolist()
    np.testing.assert_allclose(sims, full[rows], rtol=1e-5, atol=1e-6)
    rows, sims = retrieval.rank_images(model, cvecs[0], imvecs, k=4)
    full = -tools.compute_errors(model, cvecs[:1], imvecs)[0]
    assert rows.tolist() == np.argsort(-full, kind="stable")[:4].tolist()


def test_arithmetic_is_normalised_and_nonnegative_for_abs_models(model):
    vec = tools.encode_sentences(model, ["a blue car"])[0]
    got = retrieval.arithmetic(model, vec, ["blue"], ["red"])
    red, blue = tools.encode_sentences(model, ["red", "blue"])
    want = vec - blue + red
    want /= np.linalg.norm(want)
    if model["options"].get("abs"):
        want = np.abs(want)
        assert (got >= 0).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    PIL = pytest.importorskip("PIL.Image")
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(5):
        paths.append(str(folder / f"p{i}.png"))
        PIL.fromarray(photo(50 + 10 * i, 70, seed=i)).save(paths[-1])
    return paths


def test_seeds_api_both_ways(model, net, photos):
    cvecs = tools.encode_sentences(model, CAPTIONS)
    got = demo.retrieve_captions(model, net, CAPTIONS, cvecs, photos[0], k=3)
    q = tools.encode_images(model, demo.compute_features(net, [photos[0]]))
    want = np.argsort(tools.compute_errors(model, cvecs, q)[:, 0], kind="stable")[:3]
    assert got == [CAPTIONS[i] for i in want]
    imvecs = tools.encode_images(model, demo.compute_features(net, photos))
    got = demo.retrieve_images(model, photos, imvecs, "a red car", k=2)
    s = tools.encode_sentences(model, ["a red car"])
    want = np.argsort(tools.compute_errors(model, s, imvecs)[0], kind="stable")[:2]
    assert got == [photos[i] for i in want]


def test_regularities_rank_photo_minus_plus(model, net, photos):
    imvecs = tools.encode_images(model, demo.compute_features(net, photos))
    names = [os.path.basename(p) for p in photos]
    got = demo.regularities(model, net, names, imvecs, photos[1], "blue", "red", k=5)
    query = retrieval.arithmetic(model, imvecs[1], ["blue"], ["red"])
    want = np.argsort(-retrieval.scores(retrieval.model_method(model), query[None], imvecs)[0],
                      kind="stable")
    assert got == [names[i] for i in want]
    reranked = demo.regularities(model, net, names, imvecs, photos[1], "blue", "red", k=3,
                                 rerank=True)
    assert sorted(reranked) == sorted(got[:3])


# --- cache ----------------------------------------------------------------------------------

def test_caption_embeddings_are_cached_by_model_and_content(model, tmp_path, monkeypatch):
    caps_file = tmp_path / "corpus.txt"
    caps_file.write_text("\n".join(CAPTIONS) + "\n", encoding="utf-8")
    caps, first, status = corpus.caption_collection(model, str(caps_file))
    assert status == "stored" and caps == CAPTIONS
    np.testing.assert_array_equal(first, tools.encode_sentences(model, CAPTIONS))

    def refuse(*a, **k):
        raise AssertionError("re-encoded")

    monkeypatch.setattr(tools, "encode_sentences", refuse)
    _, again, status = corpus.caption_collection(model, str(caps_file))
    assert status == "hit"
    np.testing.assert_array_equal(again, first)
    monkeypatch.undo()
    caps_file.write_text("\n".join(CAPTIONS[:3]) + "\n", encoding="utf-8")
    caps, changed, status = corpus.caption_collection(model, str(caps_file))
    assert status == "stored" and changed.shape[0] == 3
    cached = [f for f in os.listdir(tmp_path) if f.startswith("corpus.txt.uvs-")]
    fingerprint = corpus.model_fingerprint(model)
    assert cached == [os.path.basename(corpus.cache_path(str(caps_file), fingerprint))]


def test_cache_is_rebuilt_when_damaged_and_skipped_when_unwritable(model, tmp_path):
    caps_file = tmp_path / "corpus.txt"
    caps_file.write_text("a dog\n", encoding="utf-8")
    cache = corpus.cache_path(str(caps_file), corpus.model_fingerprint(model))
    with open(cache, "wb") as f:
        f.write(b"garbage")
    assert corpus.caption_collection(model, str(caps_file))[2] == "stored"
    os.unlink(cache)
    os.mkdir(cache)  # cannot be replaced by a file
    assert corpus.caption_collection(model, str(caps_file))[2] == "unwritable"


def test_fingerprint_follows_parameters(model):
    before = corpus.model_fingerprint(model)
    assert corpus.model_fingerprint(model) == before
    other = dict(model, params=dict(model["params"]))
    other["params"]["ff_image_b"] = other["params"]["ff_image_b"] + 1
    assert corpus.model_fingerprint(other) != before


def test_feature_files_and_their_names(model, tmp_path):
    rng = np.random.default_rng(2)
    feats = tmp_path / "f.npy"
    np.save(feats, rng.standard_normal((4, DENSE[1])).astype(np.float32) * 3)
    names, vecs, _ = corpus.image_collection(model, str(feats))
    assert names == ["#0", "#1", "#2", "#3"]
    want = tools.encode_images(model, unit_rows(np.load(feats)))
    np.testing.assert_allclose(vecs, want, rtol=1e-5, atol=1e-6)
    (tmp_path / "f.paths.txt").write_text("a.jpg\nb.jpg\n", encoding="utf-8")
    with pytest.raises(UVSError, match="2 paths for 4 feature rows"):
        corpus.image_collection(model, str(feats))
    np.save(tmp_path / "g.npy", np.zeros((2, 5), np.float32))
    with pytest.raises(UVSError, match="5-d; the model expects"):
        corpus.image_collection(model, str(tmp_path / "g.npy"))
    bad = rng.standard_normal((3, DENSE[1])).astype(np.float32)
    bad[1, 2] = np.nan
    np.save(tmp_path / "h.npy", bad)
    with pytest.raises(UVSError, match="row 1 holds NaN"):
        corpus.image_collection(model, str(tmp_path / "h.npy"))
