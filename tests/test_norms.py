"""The squared norm Op (uvs/norms.py) and the clipping built on it."""

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from uvs import backend
from uvs.norms import SquaredNorm, squared_norm
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
