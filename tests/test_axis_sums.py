"""uvs.axis_sums: sums along an axis in C, bit for bit as PyTensor's own CAReduce adds them."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

from uvs import backend
from uvs.axis_sums import AxisSum
from uvs.model import build_model, init_params
from uvs.utils import init_tparams


def _has_axis_sum(f) -> list[tuple[int, bool]]:
    return [(n.op.axis, n.op.squared) for n in f.maker.fgraph.toposort()
            if isinstance(n.op, AxisSum)]


def _layouts(a: np.ndarray) -> list[np.ndarray]:
    """a as C- and Fortran-ordered, reversed and strided arrays."""
    return [a, np.asfortranarray(a), a[::-1], a[:, ::-2]]


@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("squared", [False, True])
def test_sums_are_pytensors_bit_for_bit(axis, squared):
    x = pt.fmatrix("x")
    expr = ((x ** 2) if squared else x).sum(axis=axis)
    new = backend.function([x], expr)
    old = backend.function([x], expr, mode=get_mode("CVM").excluding("uvs_axis_sums"))
    assert _has_axis_sum(new) == [(axis, squared)] and not _has_axis_sum(old)
    py = backend.function([x], AxisSum(axis, squared)(x), mode="NUMBA")  # `perform`
    rng = np.random.RandomState(0)
    for shape in [(128, 1024), (9, 17), (40, 1000), (1, 5), (0, 4), (6, 0),
                  (1030, 1024)]:  # over 2^20 values: over threads
        for scale in (1e-3, 1.0, 1e5, 1e20):  # 1e20 squared overflows float: inf as PyTensor's
            a = (rng.randn(*shape) * scale + 3 * scale).astype(np.float32)
            for arr in _layouts(a):
                want = old(arr)
                # sums whose order shows: float terms of mixed scale added in double
                for got in (new(arr), py(arr)):
                    assert got.dtype == np.float32 and got.shape == want.shape
                    assert np.array_equal(got, want, equal_nan=True), (shape, scale)
    nan = np.ones((9, 10), np.float32)
    nan[2, 3], nan[5, 0] = np.nan, np.inf
    assert np.array_equal(new(nan), old(nan), equal_nan=True)


def test_only_float32_matrices_summed_along_one_axis_are_rewritten():
    x, y, t = pt.fmatrix("x"), pt.dmatrix("y"), pt.ftensor3("t")
    for ins, expr in (([x], x.sum()), ([x], x.max(axis=1)), ([x], (x ** 3).sum(axis=1)),
                      ([y], y.sum(axis=1)), ([t], t.sum(axis=2)),
                      ([x], x.sum(axis=1, acc_dtype="float32"))):
        assert not _has_axis_sum(backend.function(ins, expr)), expr


def test_errors_and_shapes():
    with pytest.raises(ValueError, match="axis 0 or 1"):
        AxisSum(2)
    with pytest.raises(TypeError, match="float32 matrix"):
        AxisSum(1)(pt.dmatrix())
    x = pt.fmatrix("x")
    out = AxisSum(0)(x)
    f = backend.function([x], out.shape)
    assert tuple(f(np.zeros((3, 7), np.float32))) == (7,)


def test_a_vse_update_sums_its_norms_this_way():
    o = {"n_words": 30, "dim_word": 8, "dim": 6, "dim_image": 10, "encoder": "bow",
         "margin": 0.2, "decay_c": 0.0}
    tparams = init_tparams(OrderedDict(init_params(o, rng=np.random.RandomState(0))))
    inps, cost = build_model(tparams, o)
    grads = pt.grad(cost, list(tparams.values()))
    f = backend.function(inps, [cost, *grads])
    assert (1, True) in _has_axis_sum(f)  # the sentences' norms
