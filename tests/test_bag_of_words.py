"""uvs.bag_of_words: the bag-of-words sentence and its gradient, bit for bit the graph's."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

from uvs import backend
from uvs.bag_of_words import BagOfWords, BagOfWordsGrad, bag_of_words
from uvs.inc_rows import ZeroFill
from uvs.optim import clip_global_norm


def _graph(W, x, mask):
    """The original's bag of words: gathered word vectors, masked, summed over time."""
    emb = W[x.flatten()].reshape((x.shape[0], x.shape[1], W.shape[1]))
    return (emb * mask[:, :, None]).sum(0)


def _data(T=7, B=5, V=40, d=33, seed=0):
    rng = np.random.RandomState(seed)
    W = (rng.randn(V, d) * 3).astype(np.float32)
    x = rng.randint(-V, V, size=(T, B)).astype(np.int64)  # repeats and negative indices
    mask = (rng.rand(T, B) < 0.8).astype(np.float32) * rng.rand(T, B).astype(np.float32)
    g = rng.randn(B, d).astype(np.float32)
    return W, x, mask, g


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])
def test_sentences_and_gradient_are_the_graphs_bit_for_bit(mode):
    W0, x0, m0, g0 = _data()
    W = pytensor.shared(W0)
    x, mask, g = pt.lmatrix("x"), pt.fmatrix("mask"), pt.fmatrix("g")
    s = bag_of_words(W, x, mask)
    assert isinstance(s.owner.op, BagOfWords)
    ref = _graph(W, x, mask)
    f = backend.function([x, mask, g], [s, pytensor.grad((s * g).sum(), W), ref,
                                        pytensor.grad((ref * g).sum(), W)], mode=get_mode(mode))
    got, dW, want, dW_want = f(x0, m0, g0)
    assert got.tobytes() == want.tobytes()  # products in float32, summed in double
    assert dW.tobytes() == dW_want.tobytes()  # the same additions in the same order
    if mode == "CVM":
        assert BagOfWordsGrad in [type(n.op) for n in f.maker.fgraph.toposort()]


def test_a_gradient_update_adds_into_the_last_gradient():
    W0, x0, m0, g0 = _data(seed=1)
    W = pytensor.shared(W0)
    gsh = pytensor.shared(np.zeros_like(W0))
    x, mask = pt.lmatrix("x"), pt.fmatrix("mask")
    cost = (bag_of_words(W, x, mask) ** 2).sum()
    grad = clip_global_norm([pytensor.grad(cost, W)], np.float32(1.0))[0]
    f = backend.function([x, mask], cost, updates=[(gsh, grad)], mode="CVM")
    ops = [n.op for n in f.maker.fgraph.toposort()]
    assert any(isinstance(o, ZeroFill) for o in ops)
    assert [o.inplace for o in ops if isinstance(o, BagOfWordsGrad)] == [True]
    ref = backend.function([x, mask], grad, mode="CVM")
    buffer = gsh.get_value(borrow=True)
    for seed in (2, 3):  # stale rows of the last gradient are gone
        _, x1, m1, _ = _data(seed=seed)
        f(x1, m1)
        assert np.array_equal(gsh.get_value(), ref(x1, m1))
        assert gsh.get_value(borrow=True) is buffer


def test_bad_words_and_shapes_are_errors():
    W = pytensor.shared(np.ones((4, 3), np.float32))
    x, mask = pt.lmatrix("x"), pt.fmatrix("mask")
    f = backend.function([x, mask], bag_of_words(W, x, mask), mode="CVM")
    ones = np.ones((2, 2), np.float32)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
        f(np.array([[0, 4], [1, 1]]), ones)
    with pytest.raises(ValueError, match=r"words \(2, 2\), mask \(2, 3\)"):
        f(np.zeros((2, 2), np.int64), np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="int64 words and a"):
        BagOfWords()(W, pt.imatrix("i"), mask)


def test_jax_and_float64_keep_the_graph():
    x, mask = pt.lmatrix("x"), pt.fmatrix("mask")
    assert bag_of_words(pytensor.shared(np.ones((4, 3))), x, mask) is None
    assert bag_of_words(pytensor.shared(np.ones((4, 3), np.float32)), x, mask, "JAX") is None
