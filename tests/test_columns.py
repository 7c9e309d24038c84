"""uvs.columns: a table's columns read as rows in C, and their gradient added back in index
order, the same floats as PyTensor's `w.T[idx]` and its gradient."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

from uvs import backend
from uvs.columns import ScatterColumns, TakeColumns, take_columns


def _case(seed: int = 0):
    rng = np.random.RandomState(seed)
    w = rng.randn(37, 50).astype(np.float32)
    idx = rng.randint(-50, 50, size=300).astype(np.int64)  # repeats and negative indices
    a = (rng.randn(300, 37) * 1e3).astype(np.float32)
    return w, idx, a


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])  # C, then `perform`
def test_columns_and_their_gradient_bit_for_bit(mode):
    w0, idx, a0 = _case()
    w, i, a = pt.fmatrix("w"), pt.lvector("i"), pt.fmatrix("a")
    out = take_columns(w, i)
    f = backend.function([w, i, a], [out, pt.grad((out * a).sum(), w)], mode=get_mode(mode))
    assert {TakeColumns, ScatterColumns} <= {type(n.op) for n in f.maker.fgraph.toposort()}
    got, grad = f(w0, idx, a0)
    want = np.zeros_like(w0)
    np.add.at(want.T, idx, a0)  # the additions in index order
    assert np.array_equal(got, w0.T[idx])
    assert np.array_equal(grad, want) and grad.flags.c_contiguous
    ref = w.T[i]  # PyTensor's own gather and gradient
    g = backend.function([w, i, a], [ref, pt.grad((ref * a).sum(), w)], mode=get_mode("CVM"))
    for x, y in zip(g(w0, idx, a0), (got, grad), strict=True):
        assert np.array_equal(x, y)


def test_the_gradient_zeroes_a_reused_output():
    w0, idx, a0 = _case(1)
    w, i, a = pt.fmatrix("w"), pt.lvector("i"), pt.fmatrix("a")
    f = backend.function([w, i, a], pt.grad((take_columns(w, i) * a).sum(), w),
                         keep_buffers=True)
    first = f(w0, idx, a0).copy()
    assert np.array_equal(f(w0, idx, a0), first)  # not added onto the last call's table


def test_bad_indices_and_shapes_are_one_line_errors():
    w, i = pt.fmatrix("w"), pt.lvector("i")
    f = backend.function([w, i], take_columns(w, i), mode=get_mode("CVM"))
    ones = np.ones((3, 4), np.float32)
    with pytest.raises(IndexError, match="index 4 is out of bounds for axis 1 with size 4"):
        f(ones, np.array([0, 4]))
    with pytest.raises(IndexError, match="index -5 is out of bounds"):
        f(ones, np.array([-5]))
    y, v = pt.fmatrix("y"), pt.lscalar("v")
    s = backend.function([y, i, v], ScatterColumns()(y, i, v), mode=get_mode("CVM"))
    with pytest.raises(ValueError, match="2 rows for 3 indices into 5 columns"):
        s(ones[:2], np.array([0, 1, 2]), 5)
    with pytest.raises(TypeError, match="int64 indices"):
        TakeColumns()(w, pt.ivector("j"))
    with pytest.raises(TypeError, match="a float32 matrix"):
        TakeColumns()(pt.dmatrix("d"), i)


def test_other_dtypes_and_jax_keep_pytensors_gather():
    w, i = pt.dmatrix("w"), pt.lvector("i")
    assert not isinstance(take_columns(w, i).owner.op, TakeColumns)
    f32 = pt.fmatrix("f")
    assert not isinstance(take_columns(f32, i, mode="JAX").owner.op, TakeColumns)


@pytest.mark.parametrize("factored", [False, True])
def test_log_bilinear_updates_as_with_pytensors_gather(factored, monkeypatch):
    """Three MLBL (MLBL-F) updates give the parameters PyTensor's `R.T[X]` gave."""
    import scipy.sparse as sp

    import uvs.mnlm.mlbl as mlbl
    import uvs.mnlm.mlblf as mlblf

    module = mlblf if factored else mlbl

    def three_updates() -> dict:
        np.random.seed(0)
        kw = dict(V=300, K=12, D=20, h=16, context=3, batchsize=6, eta_t=0.43, gamma_r=3e-7,
                  gamma_c=1e-8, f=0.99, p_i=0.23, p_f=0.23, T=20.0, dropout=0.0)
        net = mlblf.MLBLF(**kw, factors=5) if factored else mlbl.MLBL(**kw)
        net.init_params()
        rng = np.random.RandomState(0)
        for _ in range(3):
            X = rng.randint(0, 300, size=(6, 3))
            Im = np.abs(rng.randn(6, 20)).astype(np.float32)
            Y = sp.csr_matrix((np.ones(6), (np.arange(6), rng.randint(0, 300, 6))),
                              shape=(6, 300))
            net.train_step(X, Im, Y)
        ops = {type(n.op) for n in net.compile().maker.fgraph.toposort()}
        return {n: net._tp[n].get_value() for n in net.PARAMS}, TakeColumns in ops

    now, columns = three_updates()
    monkeypatch.setattr(module, "take_columns", lambda w, i, mode=None: w.T[i])
    before, columns_before = three_updates()
    assert columns and not columns_before
    for name, value in before.items():
        np.testing.assert_allclose(now[name], value, rtol=1e-6, atol=1e-8, err_msg=name)
