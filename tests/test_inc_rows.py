"""uvs.inc_rows: an embedding lookup's gradient rows added in C, exactly as np.add.at adds them."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.tensor.subtensor import AdvancedIncSubtensor1

from uvs import backend
from uvs.inc_rows import IncRows


def _ops(f) -> list[type]:
    return [type(n.op) for n in f.maker.fgraph.toposort()]


@pytest.mark.parametrize("mutable", [False, True])
@pytest.mark.parametrize("y_rows", ["each", "one"])
def test_rows_add_in_index_order_bit_for_bit(mutable, y_rows):
    rng = np.random.RandomState(0)
    x0 = rng.randn(50, 37).astype(np.float32)
    idx = rng.randint(-50, 50, size=300).astype(np.int64)  # repeats and negative indices
    y0 = rng.randn(300 if y_rows == "each" else 1, 37).astype(np.float32) * 1e3
    x, y, i = pt.fmatrix("x"), pt.fmatrix("y"), pt.lvector("i")
    f = backend.function([pytensor.In(x, mutable=mutable), y, i], IncRows()(x, y, i),
                         mode=get_mode("CVM"))
    assert [n.op.inplace for n in f.maker.fgraph.toposort()] == [mutable]  # adds where x lies
    want = x0.copy()
    np.add.at(want, idx, y0)
    assert np.array_equal(f(x0.copy(), y0, idx), want)  # the same additions in the same order
    py = backend.function([x, y, i], IncRows()(x, y, i), mode="NUMBA")
    assert np.array_equal(py(x0.copy(), y0, idx), want)  # `perform`


def test_out_of_range_and_mismatched_rows_are_errors():
    x, y, i = pt.fmatrix("x"), pt.fmatrix("y"), pt.lvector("i")
    f = backend.function([x, y, i], IncRows()(x, y, i), mode=get_mode("CVM"))
    ones = np.ones((4, 3), np.float32)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 0 with size 4"):
        f(ones, ones[:1], np.array([0, 4]))
    with pytest.raises(IndexError, match="index -5 is out of bounds"):
        f(ones, ones[:1], np.array([-5]))
    with pytest.raises(ValueError, match="3 rows of 3 values cannot be added at 2 indices"):
        f(ones, ones[:3], np.array([0, 1]))
    with pytest.raises(TypeError, match="float32 matrix, float32 rows and int64 indices"):
        IncRows()(x, y, pt.ivector("j"))


def test_the_lookup_gradient_becomes_inc_rows_in_the_c_backend_only():
    rng = np.random.RandomState(1)
    W = pytensor.shared(rng.randn(30, 8).astype(np.float32))
    x = pt.lvector("x")
    g = pytensor.grad((W[x] ** 2).sum(), W)
    idx = rng.randint(0, 30, size=40)
    want = np.zeros((30, 8), np.float32)
    np.add.at(want, idx, 2 * W.get_value()[idx])
    c = backend.function([x], g, mode="CVM")
    assert IncRows in _ops(c) and AdvancedIncSubtensor1 not in _ops(c)
    assert [n.op.inplace for n in c.maker.fgraph.toposort() if isinstance(n.op, IncRows)] == [True]
    assert np.array_equal(c(idx), want)
    numba = backend.function([x], g, mode="NUMBA")
    assert IncRows not in _ops(numba)
    assert np.array_equal(numba(idx), want)
    # one value per row, spread over the columns, keeps PyTensor's own Op (and its broadcast)
    per_row = pt.fmatrix("r", shape=(None, 1))
    z = pt.zeros((30, 8), dtype="float32")
    spread = backend.function([x, per_row], pt.inc_subtensor(z[x], per_row), mode="CVM")
    assert IncRows not in _ops(spread)
    ones = np.ones((40, 1), np.float32)
    want_spread = np.zeros((30, 8), np.float32)
    np.add.at(want_spread, idx, ones)
    assert np.array_equal(spread(idx, ones), want_spread)
    # float64 tables keep PyTensor's own Op
    W64 = pytensor.shared(rng.randn(30, 8))
    c64 = backend.function([x], pytensor.grad((W64[x] ** 2).sum(), W64), mode="CVM")
    assert IncRows not in _ops(c64)
