"""The squared norm Op (uvs/norms.py) and the clipping built on it."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from uvs import backend
from uvs.norms import ClipScale, SquaredNorm, clip_scale, squared_norm
from uvs.optim import clip_each_norm, clip_global_norm

PY = Mode(linker="py", optimizer="fast_run")  # runs the Op's NumPy `perform`


def _arrays():
    rng = np.random.RandomState(0)
    return [rng.randn(300, 700).astype("float32") * 3, rng.randn(17).astype("float32"),
            np.zeros((0, 4), "float32"), rng.randn(5, 6, 7).astype("float32"),
            np.float32(2.5) * np.ones((), "float32")]


@pytest.mark.parametrize("mode", [None, PY])
def test_squared_norm_is_the_double_sum(mode):
    xs = [pt.tensor(dtype="float32", shape=(None,) * a.ndim) for a in _arrays()]
    norm = squared_norm(xs)
    assert isinstance(norm.owner.op, SquaredNorm)
    f = backend.function(xs, norm, mode=mode)
    got = f(*_arrays())
    want = sum(float(np.square(a, dtype=np.float64).sum()) for a in _arrays())
    assert got.dtype == np.float32 and got == np.float32(want)


def test_strided_input_is_read_as_its_values():
    x = pt.matrix("x", dtype="float32")
    f = backend.function([x], squared_norm([x.T[::2]]))
    a = np.arange(12, dtype="float32").reshape(3, 4)
    assert f(a) == np.float32((a.T[::2].astype(np.float64) ** 2).sum())


@pytest.mark.parametrize("clip", [clip_global_norm, clip_each_norm])
@pytest.mark.parametrize("limit", [1.0, 1e6])
def test_clipping_is_the_graph_it_replaced(clip, limit):
    arrays = _arrays()[:2]
    xs = [pt.tensor(dtype="float32", shape=(None,) * a.ndim) for a in arrays]
    got = backend.function(xs, clip(xs, np.float32(limit)))(*arrays)
    g2 = [float(np.square(a, dtype=np.float64).sum()) for a in arrays]
    norms = [sum(g2)] * 2 if clip is clip_global_norm else g2
    for a, b, n in zip(got, arrays, norms, strict=True):
        want = b / np.sqrt(n) * limit if n > limit ** 2 else b
        np.testing.assert_allclose(a, want, rtol=1e-6)


def test_other_dtypes_use_pytensors_sums():
    x = pt.vector("x", dtype="float64")
    assert not isinstance(squared_norm([x]).owner.op, SquaredNorm)


@pytest.mark.parametrize("mode", [None, PY])
@pytest.mark.parametrize("mutable", [False, True])
def test_clip_scale_rescales_over_the_limit_only(mode, mutable):
    rng = np.random.RandomState(2)
    g0 = rng.randn(300, 700).astype("float32") * 3
    g, g2 = pt.matrix("g", dtype="float32"), pt.scalar("g2", dtype="float32")
    limit = np.float32(1.7)
    switch = backend.function([g, g2], pt.switch(g2 > limit ** 2, g / pt.sqrt(g2) * limit, g))
    f = backend.function([pytensor.In(g, mutable=mutable), g2], clip_scale(g, g2, limit),
                         mode=mode)
    assert [type(n.op) for n in f.maker.fgraph.toposort()] == [ClipScale]
    for n2 in (np.float32(17.0), limit * limit, np.float32(np.nan)):  # over, at, NaN
        arg = g0.copy()
        got = f(arg, n2)
        want = (limit * g0) / np.sqrt(n2) if n2 > limit * limit else g0
        assert np.array_equal(got, want)  # float32 (limit·g)/√g2, C and NumPy alike
        np.testing.assert_allclose(got, switch(g0, n2), rtol=2e-7)  # the graph it replaced
        if mutable:
            assert np.array_equal(arg, got)  # rescaled where it lay
        else:
            assert np.array_equal(arg, g0)


def test_clipping_rescales_in_place_where_nothing_else_reads():
    x = pt.matrix("x", dtype="float32")
    grads = [x * 2, x * 3]
    f = backend.function([x], clip_global_norm(grads, np.float32(1.0)))
    ops = [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, ClipScale)]
    assert len(ops) == 2 and all(op.inplace for op in ops)
    a = np.ones((3, 4), np.float32)
    got = f(a)
    norm = np.sqrt(np.float32(13 * 12))
    assert np.allclose(got[0], 2 / norm) and np.allclose(got[1], 3 / norm)


def test_jax_and_other_dtypes_keep_the_switch():
    x64 = pt.vector("x", dtype="float64")
    assert not isinstance(clip_scale(x64, (x64 ** 2).sum(), 1.0).owner.op, ClipScale)
    x = pt.vector("x", dtype="float32")
    assert not isinstance(clip_scale(x, squared_norm([x], "JAX"), np.float32(1), "JAX").owner.op,
                          ClipScale)


def _table_of_rows():
    """A (50, 9) table of zeros but rows 3, 7, 41, with those rows listed."""
    rng = np.random.RandomState(4)
    table = np.zeros((50, 9), "float32")
    rows = np.array([3, 7, 41])
    table[rows] = rng.randn(3, 9).astype("float32") * 5
    return table, rows, rng.randn(4, 2).astype("float32")


@pytest.mark.parametrize("mode", [None, PY])
def test_a_table_of_zeros_but_listed_rows_reads_those_rows_alone(mode):
    table, rows, other = _table_of_rows()
    t, o, r = pt.fmatrix("t"), pt.fmatrix("o"), pt.lvector("r")
    listed = SquaredNorm((0,))(t, o, r)
    f = backend.function([t, o, r], [listed, SquaredNorm()(t, o)], mode=mode)
    sparse, dense = f(table, other, rows)
    assert sparse == dense
    poisoned = table.copy()
    poisoned[10] = 1e6  # a row not listed is not read
    assert f(poisoned, other, rows)[0] == sparse
    g2 = pt.fscalar("g2")
    for mutable in (False, True):  # the rescaling in place where the table may be changed
        scale = backend.function([pytensor.In(t, mutable=mutable), g2, r],
                                 ClipScale(2.0, rows=True)(t, g2, r), mode=mode)
        assert [n.op.inplace for n in scale.maker.fgraph.toposort()] == [mutable]
        whole = backend.function([t, g2], ClipScale(2.0)(t, g2), mode=mode)
        assert np.array_equal(scale(table.copy(), sparse, rows), whole(table, sparse))
        assert np.array_equal(scale(table.copy(), np.float32(1.0), rows), table)  # under


@pytest.mark.parametrize("mode", [None, PY])
def test_listed_rows_must_increase_within_the_table(mode):
    table, _, other = _table_of_rows()
    t, o, r = pt.fmatrix("t"), pt.fmatrix("o"), pt.lvector("r")
    f = backend.function([t, o, r], SquaredNorm((0,))(t, o, r), mode=mode)
    g2 = pt.fscalar("g2")
    scale = backend.function([t, g2, r], ClipScale(2.0, rows=True)(t, g2, r), mode=mode)
    for bad in ([3, 3], [7, 3], [50], [-1]):
        with pytest.raises(ValueError, match="not increasing rows of the table"):
            f(table, other, np.array(bad))
        with pytest.raises(ValueError, match="not increasing rows of the table"):
            scale(table, np.float32(1e9), np.array(bad))
    with pytest.raises(TypeError, match="int64 rows of float32 matrices"):
        SquaredNorm((1,))(t, o, pt.fvector("f"))
    with pytest.raises(TypeError, match="int64 rows of a float32 matrix"):
        ClipScale(2.0, rows=True)(t, g2)
