"""uvs.inc_rows: an embedding lookup's gradient rows added in C, exactly as np.add.at adds them."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.tensor.basic import Alloc
from pytensor.tensor.subtensor import AdvancedIncSubtensor1

from uvs import backend
from uvs.inc_rows import IncRows, UniqueRows, ZeroFill
from uvs.optim import clip_global_norm


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


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])
def test_zero_fill_zeroes_in_place_or_makes_new_zeros(mode):
    x = pt.fmatrix("x")
    n, d = pt.lscalar("n"), pt.lscalar("d")
    f = backend.function([pytensor.In(x, mutable=True), n, d], ZeroFill()(x, n, d),
                         mode=get_mode(mode), accept_inplace=True)
    a = np.ones((4, 3), np.float32)
    out = f(a, 4, 3)
    assert np.array_equal(out, np.zeros((4, 3))) and np.array_equal(a, np.zeros((4, 3)))
    b = np.ones((4, 3), np.float32)
    out = f(b, 2, 5)  # another shape: new zeros, x left as it was
    assert out.shape == (2, 5) and not out.any() and b.all()
    out = f(np.ones((6, 3), np.float32)[::2], 3, 3)  # not contiguous: new zeros
    assert out.shape == (3, 3) and not out.any()


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_a_lookup_gradient_update_reuses_the_last_gradient(clip):
    """f_grad_shared's `Wemb_grad <- IncRows(zeros, ...)`: the zeros are the last gradient,
    zeroed where it lies (no new 10 000-row table per update); the values are np.add.at's."""
    rng = np.random.RandomState(3)
    W = pytensor.shared(rng.randn(30, 8).astype(np.float32), name="W")
    gsh = pytensor.shared(np.zeros((30, 8), np.float32), name="W_grad")
    x = pt.lvector("x")
    g = pytensor.grad((W[x] ** 2).sum(), W)
    if clip:
        g = clip_global_norm([g], np.float32(clip))[0]
    f = backend.function([x], [], updates=[(gsh, g)], mode="CVM")
    ops = _ops(f)
    assert ZeroFill in ops and Alloc not in ops
    buffer = gsh.get_value(borrow=True)
    for _ in range(3):  # stale rows of the last gradient are gone
        idx = rng.randint(0, 30, size=12)
        f(idx)
        want = np.zeros((30, 8), np.float32)
        np.add.at(want, idx, 2 * W.get_value()[idx])
        if clip:
            norm = np.sqrt(np.float32(np.square(want, dtype=np.float64).sum()))
            want = (np.float32(clip) * want) / norm
            np.testing.assert_allclose(gsh.get_value(), want, rtol=1e-6)
        else:
            assert np.array_equal(gsh.get_value(), want)
        assert gsh.get_value(borrow=True) is buffer
    gsh.set_value(np.ones((5, 8), np.float32))  # a value of another shape: fresh zeros
    f(idx)
    assert np.array_equal(gsh.get_value(), want) if not clip else gsh.get_value().shape == (30, 8)


def test_a_gradient_read_elsewhere_keeps_fresh_zeros():
    rng = np.random.RandomState(4)
    W = pytensor.shared(rng.randn(30, 8).astype(np.float32))
    gsh = pytensor.shared(np.ones((30, 8), np.float32))
    x = pt.lvector("x")
    g = pytensor.grad((W[x] ** 2).sum(), W)
    f = backend.function([x], gsh.sum(), updates=[(gsh, g)], mode="CVM")
    idx = np.array([1, 1, 2])
    assert f(idx) == 240.0  # the old value, read before it is replaced
    want = np.zeros((30, 8), np.float32)
    np.add.at(want, idx, 2 * W.get_value()[idx])
    assert np.array_equal(gsh.get_value(), want)


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])  # C, then `perform`
def test_unique_rows_are_the_named_rows_once_increasing(mode):
    i, n = pt.lmatrix("i"), pt.lscalar("n")
    f = backend.function([i, n], UniqueRows()(i, n), mode=get_mode(mode))
    idx = np.array([[5, -1, 5], [0, 2, -10]])
    rows, where = f(idx, 10)
    assert np.array_equal(rows, [0, 2, 5, 9])
    assert np.array_equal(where, [2, 3, 2, 0, 1, 0])  # each index's row among them, flat
    assert np.array_equal(rows[where], np.where(idx < 0, idx + 10, idx).ravel())
    rows, where = f(np.zeros((0, 3), np.int64), 4)
    assert rows.shape == where.shape == (0,)
    with pytest.raises(IndexError, match="index 10 is out of bounds for axis 0 with size 10"):
        f(np.array([[1, 10]]), 10)
    with pytest.raises(IndexError, match="index -11 is out of bounds"):
        f(np.array([[-11]]), 10)


@pytest.mark.parametrize("encoder", ["lookup", "bow"])
def test_a_lookup_gradient_is_normed_and_clipped_over_its_rows(encoder):
    """f_grad_shared's clipped lookup gradient: the norm and the rescaling read the rows the
    words name (`SparseTableRows`), and give what the whole table gives, update after
    update (stale rows of the last gradient included)."""
    from uvs.bag_of_words import bag_of_words
    from uvs.norms import ClipScale, SquaredNorm

    rng = np.random.RandomState(5)
    W = pytensor.shared(rng.randn(40, 8).astype(np.float32), name="W")
    V = pytensor.shared(rng.randn(8, 3).astype(np.float32), name="V")
    x, m = pt.lmatrix("x"), pt.fmatrix("m")
    s = bag_of_words(W, x, m) if encoder == "bow" else W[x.flatten()] * m.reshape((-1, 1))
    grads = pytensor.grad((pt.dot(s, V) ** 2).sum(), [W, V])
    clipped = clip_global_norm(grads, np.float32(1.0))
    shared = [pytensor.shared(np.zeros_like(p.get_value())) for p in (W, V)]
    fns = [backend.function([x, m], [], updates=list(zip(shared, clipped, strict=True)),
                            mode=get_mode("CVM").excluding(*skip))
           for skip in ((), ("uvs_sparse_rows",))]
    nodes = [n.op for n in fns[0].maker.fgraph.toposort()]
    assert any(isinstance(op, SquaredNorm) and op.rows_of == (0,) for op in nodes)
    assert any(isinstance(op, ClipScale) and op.rows for op in nodes)
    assert not any(isinstance(op, UniqueRows) for op in _ops(fns[1]))
    for _ in range(3):
        xv = rng.randint(-40, 40, size=(6, 4))
        mv = (rng.rand(6, 4) > 0.3).astype(np.float32)
        got = []
        for f in fns:
            f(xv, mv)
            got.append([g.get_value().copy() for g in shared])
        for a, b in zip(*got, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
        assert np.abs(got[0][0]).sum() > 0
