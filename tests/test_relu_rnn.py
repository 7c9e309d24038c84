"""The fused ReLU recurrence (uvs/relu_rnn.py) against the alignment model's `scan`: values,
gradients, the C and NumPy implementations, and the model's cost and update."""

from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.scan.op import Scan

from uvs import backend
from uvs.align.model import _recurrence, build_model, init_params
from uvs.relu_rnn import ReluRNNBackward, ReluRNNForward
from uvs.utils import init_tparams

DIM = 4
# (T, B, steps kept per column): padding at the end and a gap in the middle
SHAPES = [(1, 1, [1]), (1, 3, [1, 1, 0]), (4, 1, [3]), (5, 3, [5, 2, 1]), (6, 2, [6, 4])]
PY = Mode(linker="py", optimizer="fast_run")  # runs the Ops' NumPy `perform`


def _inputs(T, B, kept, dtype):
    rng = np.random.RandomState(T * 10 + B)
    e = rng.randn(T, B, DIM).astype(dtype)
    mask = np.zeros((T, B), dtype=dtype)
    for j, k in enumerate(kept):
        mask[:k, j] = 1
    if T > 2 and B > 1:
        mask[1, -1] = 0
    e[0, 0, 0] = -0.25  # with b[0] = 0.25: a pre-activation of exactly 0 (max(a, 0) = a)
    weights = rng.randn(T, B, DIM).astype(dtype)
    return e, mask, weights


def _build(impl, direction, mode=None, dtype="float32"):
    """f(e, mask, C) -> [h, d cost / d (e, W, b)] of one direction of the BRNN."""
    rng = np.random.RandomState(3)
    b = rng.uniform(-0.3, 0.3, DIM).astype(dtype)
    b[0] = 0.25
    tparams = init_tparams(OrderedDict([
        (f"brnn_W{direction}", (rng.randn(DIM, DIM) * 0.6).astype(dtype)),
        (f"brnn_b{direction}", b)]))
    e = pt.tensor3("e", dtype=dtype)
    mask = pt.matrix("mask", dtype=dtype)
    weights = pt.tensor3("C", dtype=dtype)
    h = _recurrence(tparams, e, mask, direction, impl)
    cost = (h * weights).sum() + (h[-1] ** 2).sum()
    wrt = [e, tparams[f"brnn_W{direction}"], tparams[f"brnn_b{direction}"]]
    return backend.function([e, mask, weights], [h, *pt.grad(cost, wrt)], mode=mode)


@pytest.mark.parametrize("direction", ["f", "b"])
def test_fused_is_the_scan_in_values_and_gradients(direction):
    scan, fused = _build("scan", direction), _build("fused", direction)
    nodes = [n.op for n in fused.maker.fgraph.apply_nodes]
    assert not any(isinstance(op, Scan) for op in nodes)
    assert any(isinstance(op, ReluRNNBackward) for op in nodes)
    assert all(hasattr(t, "cthunk") for t in fused.vm.thunks if hasattr(t, "op")
               and isinstance(t.op, ReluRNNForward | ReluRNNBackward))
    for T, B, kept in SHAPES:
        args = _inputs(T, B, kept, "float32")
        for a, b in zip(fused(*args), scan(*args), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_numpy_perform_is_the_c():
    c, py = _build("fused", "f"), _build("fused", "f", mode=PY)
    for T, B, kept in SHAPES:
        args = _inputs(T, B, kept, "float32")
        for a, b in zip(c(*args), py(*args), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_float64_gradient_is_the_finite_difference():
    f = _build("fused", "b", dtype="float64")
    e, mask, weights = _inputs(5, 3, [5, 2, 1], "float64")
    e[0, 0, 0] = 0.1  # away from the kink for the finite difference
    de = f(e, mask, weights)[1]
    step = 1e-6
    for idx in [(0, 0, 1), (2, 1, 3), (4, 0, 2)]:
        hi, lo = e.copy(), e.copy()
        hi[idx] += step
        lo[idx] -= step

        def value(x):
            h = f(x, mask, weights)[0]
            return (h * weights).sum() + (h[-1] ** 2).sum()
        assert abs((value(hi) - value(lo)) / (2 * step) - de[idx]) < 1e-6


def test_wrong_shapes_are_one_clear_error():
    f = _build("fused", "f")
    e, mask, weights = _inputs(3, 2, [3, 3], "float32")
    with pytest.raises(ValueError, match="mask has the wrong shape"):
        f(e, mask[:, :1], weights)


def test_alignment_cost_and_gradients_are_the_scans():
    o = {"n_words": 30, "dim_word": 6, "dim": 5, "dim_image": 7, "margin": 1.0}
    params = init_params(o, rng=np.random.RandomState(0))
    rng = np.random.RandomState(1)
    x = rng.randint(1, 30, size=(6, 4)).astype(np.int64)
    mask = np.ones((6, 4), np.float32)
    mask[4:, 1] = 0
    mask[2:, 3] = 0
    regions = rng.randn(4, 3, 7).astype(np.float32)
    rmask = np.ones((4, 3), np.float32)
    rmask[2, 2] = 0
    out = {}
    for impl in ("scan", "fused"):
        tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        inps, cost = build_model(tparams, o, impl)
        grads = pt.grad(cost, list(tparams.values()))
        out[impl] = backend.function(inps, [cost, *grads])(x, mask, regions, rmask)
    assert out["scan"][0] > 0
    for a, b in zip(out["fused"], out["scan"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
