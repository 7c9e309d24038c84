"""Encoders against the NumPy float64 reference, for every layout and encoder, quirks included."""

import numpy as np
import pytest
import reference
from models import write_tiny_model

from uvs import tools
from uvs.gru_op import GRUForward

SENTENCES = [
    "a dog runs on the beach",
    "",
    "café naïve 日本",
    "dog\u00a0runs",                    # no-break space: one token, in the dictionary
    "  a\tdog \x0b runs\r\n",          # ASCII whitespace of every kind
    "zebra dog",                        # unknown word -> UNK
    "car grass",                        # the two rarest words: UNK in VSE models
    "A DOG",                            # no lowercasing
    "a", "dog", "runs", "on", "the", "red", "blue", "car",
    "cat sits on the red car", "the cat sits", "a blue car on the grass",
]

CASES = [
    ("uvs", "gru", None, False),
    ("vse", "gru", None, False),
    ("vse", "bow", None, False),
    ("order", "gru", "order", True),
    ("order", "gru", "cosine", False),
]


# every GRU case with both implementations: the fused Op and the original's `scan` graph
GRUS = [(case, gru) for case in CASES for gru in (("scan", "fused") if case[1] == "gru" else
                                                  ("scan",))]


@pytest.fixture(scope="module", params=GRUS,
                ids=lambda c: "-".join(map(str, c[0])) + ("-" + c[1] if c[0][1] == "gru" else ""))
def loaded(request, tmp_path_factory):
    (layout, encoder, method, abs_), gru = request.param
    path, params, options, worddict = write_tiny_model(
        tmp_path_factory.mktemp(layout), layout, encoder, method, abs_)
    model = tools.load_model(path, gru=gru)
    ops = {type(n.op) for n in model["f_senc"].maker.fgraph.apply_nodes}
    assert (GRUForward in ops) == (gru == "fused")
    return model, params, options, worddict


def test_sentences_match_reference(loaded):
    model, params, options, worddict = loaded
    got = tools.encode_sentences(model, SENTENCES, batch_size=2)
    want = reference.encode_sentences(params, options, worddict, SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), options["dim"])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_images_match_reference(loaded):
    model, params, options, _ = loaded
    im = np.random.RandomState(3).rand(7, options["dim_image"]).astype("float32")
    im /= np.linalg.norm(im, axis=1, keepdims=True)
    np.testing.assert_allclose(tools.encode_images(model, im),
                               reference.encode_images(params, options, im), atol=1e-5)


def test_errors_match_reference(loaded):
    model, params, options, worddict = loaded
    s = tools.encode_sentences(model, SENTENCES)
    im = tools.encode_images(model, np.random.RandomState(4).rand(5, options["dim_image"]))
    got = tools.compute_errors(model, s, im)
    if options.get("method") == "order":
        want = reference.order_errors(s.astype(np.float64), im.astype(np.float64))
    else:
        want = -s.astype(np.float64) @ im.T
    assert got.shape == (len(SENTENCES), 5)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the original graph, compiled by PyTensor, gives the same numbers
    np.testing.assert_allclose(tools.compile_errors(options)(s, im), got, atol=1e-6)


def test_batching_does_not_change_vectors(loaded):
    model = loaded[0]
    one = tools.encode_sentences(model, SENTENCES, batch_size=1)
    many = tools.encode_sentences(model, SENTENCES, batch_size=128)
    np.testing.assert_allclose(one, many, atol=1e-6)


def test_unk_rule_and_eos(tmp_path):
    path, params, options, worddict = write_tiny_model(tmp_path, "vse")
    model = tools.load_model(path)
    v = tools.encode_sentences(model, ["car", "zebra", "grass", "cat", ""])
    # VSE's n_words = len(worddict): its two rarest words are UNK like an unknown word
    np.testing.assert_allclose(v[0], v[1], atol=1e-7)
    np.testing.assert_allclose(v[2], v[1], atol=1e-7)
    assert not np.allclose(v[3], v[1])
    # the empty sentence is the <eos> step alone
    np.testing.assert_allclose(v[4], reference.l2norm(reference.gru_last(params, [0])[None])[0],
                               atol=1e-6)


def test_order_model_keeps_rarest_words(tmp_path):
    path, *_ = write_tiny_model(tmp_path, "order", method="order", abs_=True)
    v = tools.encode_sentences(tools.load_model(path), ["car", "zebra"])
    assert not np.allclose(v[0], v[1])
    assert (v >= 0).all()  # abs


def test_no_break_space_is_not_a_separator(tmp_path):
    model = tools.load_model(write_tiny_model(tmp_path, "uvs")[0])
    v = tools.encode_sentences(model, ["dog\u00a0runs", "dog runs"])
    assert not np.allclose(v[0], v[1])


def test_encode_images_rejects_bad_features(tmp_path):
    from uvs.errors import UVSError

    model = tools.load_model(write_tiny_model(tmp_path, "uvs")[0])
    with pytest.raises(UVSError, match="expects"):
        tools.encode_images(model, np.zeros((2, 11), dtype="float32"))
    bad = np.ones((2, 10), dtype="float32")
    bad[1, 3] = np.nan
    with pytest.raises(UVSError, match="NaN"):
        tools.encode_images(model, bad)


def test_repeated_sentences_get_identical_vectors(tmp_path):
    model = tools.load_model(write_tiny_model(tmp_path, "uvs")[0])
    X = ["a dog runs", "the cat sits", "a dog runs", "red car", "a dog runs", "the cat sits"]
    v = tools.encode_sentences(model, X, batch_size=2)
    assert np.array_equal(v[0], v[2]) and np.array_equal(v[0], v[4])
    assert np.array_equal(v[1], v[5])
    np.testing.assert_allclose(v[:4], tools.encode_sentences(model, X[:2] + X[3:4] + X[2:3])[
        [0, 1, 3, 2]], atol=1e-6)
