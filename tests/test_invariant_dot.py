"""The batch-invariant product: C and NumPy bit for bit, rows independent of their batch."""

import numpy as np
import pytensor.tensor as pt
import pytest

from uvs import backend
from uvs.invariant_dot import batch_invariant, invariant_dot


@pytest.fixture(scope="module")
def c_dot():
    x, w = pt.matrix("x", dtype="float32"), pt.matrix("w", dtype="float32")
    f = backend.function([x, w], invariant_dot(x, w), mode="CVM")
    assert all(hasattr(t, "cthunk") for t in f.vm.thunks)
    return f


def numpy_dot(x, w):
    out = [None]
    invariant_dot.perform(None, [x, w], [out])
    return out[0]


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 13])
@pytest.mark.parametrize("k,m", [(1, 1), (7, 15), (64, 16), (33, 17), (130, 40), (0, 5)])
def test_c_is_numpy_bit_for_bit(c_dot, n, k, m):
    rng = np.random.RandomState(n * 1000 + k * 10 + m)
    x, w = rng.randn(n, k).astype("float32"), rng.randn(k, m).astype("float32")
    got = c_dot(x, w)
    assert got.shape == (n, m) and got.dtype == np.float32
    assert got.tobytes() == numpy_dot(x, w).tobytes()
    np.testing.assert_allclose(got, x.astype("float64") @ w.astype("float64"), rtol=1e-4,
                               atol=1e-4)


def test_a_row_does_not_depend_on_the_rows_beside_it(c_dot):
    rng = np.random.RandomState(0)
    x, w = rng.randn(61, 300).astype("float32"), rng.randn(300, 1000).astype("float32")
    full = c_dot(x, w)
    for start, stop in [(0, 1), (5, 6), (3, 8), (13, 61), (1, 60), (7, 19)]:
        part = c_dot(np.ascontiguousarray(x[start:stop]), w)
        assert part.tobytes() == full[start:stop].tobytes(), (start, stop)
    strided = c_dot(x[::2], w)  # non-contiguous input: copied, same rows
    assert strided.tobytes() == full[::2].tobytes()


def test_bad_shapes_are_one_line_errors(c_dot):
    with pytest.raises(ValueError, match="do not multiply"):
        c_dot(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match="float32 matrices"):
        invariant_dot(pt.vector("v", dtype="float32"), pt.matrix("w", dtype="float32"))


def test_batch_invariant_replaces_every_product():
    x = pt.matrix("x", dtype="float32")
    w1 = pt.matrix("w1", dtype="float32")
    w2 = pt.matrix("w2", dtype="float32")
    h = pt.tanh(pt.dot(x, w1) + 1)
    out = pt.special.softmax(pt.dot(h, w2) + pt.dot(x, w1).sum(), axis=-1)
    (inv,) = batch_invariant([out])
    f = backend.function([x, w1, w2], inv, mode="CVM")
    names = {type(n.op).__name__ for n in f.maker.fgraph.apply_nodes}
    assert "InvariantDot" in names
    assert not names & {"Dot", "Dot22", "Dot22Scalar", "Gemm", "Gemv", "Ger"}
    rng = np.random.RandomState(1)
    args = [rng.randn(*s).astype("float32") for s in ((9, 20), (20, 30), (30, 11))]
    ref = backend.function([x, w1, w2], out, mode="CVM")(*args)
    np.testing.assert_allclose(f(*args), ref, rtol=1e-5, atol=1e-7)
