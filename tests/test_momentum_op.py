"""uvs.momentum_op: the log-bilinear models' momentum step in one pass, as the graph it replaced."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from uvs import backend
from uvs.momentum_op import MomentumStep, momentum_step

PY = Mode(linker="py", optimizer="fast_run")  # runs the Op's NumPy `perform`


def _graph(p, g, delta, lr, p_t, decay):
    """The update as `uvs.mnlm.lbl` built it before the Op."""
    if decay:
        g = g + np.asarray(decay, dtype="float32") * p
    new_delta = p_t * delta - lr * g.reshape(p.shape)
    return p + new_delta, new_delta


@pytest.mark.parametrize("mode", [None, PY])
@pytest.mark.parametrize("decay", [0.0, 3e-7, 0.01])
def test_the_step_is_the_graph_it_replaced_in_place(mode, decay):
    rng = np.random.RandomState(5)
    p0 = rng.randn(3, 400, 100).astype("float32")  # above the threaded loop's 65 536
    g0 = rng.randn(3, 400, 100).astype("float32")
    d0 = rng.randn(3, 400, 100).astype("float32") * 0.1
    p = pytensor.shared(p0.copy())
    delta = pytensor.shared(d0.copy())
    g = pt.tensor3("g", dtype="float32")
    lr, p_t = pt.scalar("lr", dtype="float32"), pt.scalar("p_t", dtype="float32")
    new_p, new_delta = momentum_step(p, g, delta, lr, p_t, decay)
    f = backend.function([g, lr, p_t], [], updates=[(p, new_p), (delta, new_delta)], mode=mode)
    ops = [n.op for n in f.maker.fgraph.toposort()]
    assert len(ops) == 1 and isinstance(ops[0], MomentumStep) and ops[0].inplace
    want = backend.function([g, lr, p_t], list(_graph(pytensor.shared(p0), g,
                                                      pytensor.shared(d0), lr, p_t, decay)))
    buffer = p.get_value(borrow=True)
    f(g0, np.float32(0.01), np.float32(0.9))
    wp, wd = want(g0, np.float32(0.01), np.float32(0.9))
    np.testing.assert_allclose(p.get_value(), wp, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(delta.get_value(), wd, rtol=1e-6, atol=1e-7)
    assert p.get_value(borrow=True) is buffer  # updated where it lies


def test_a_gradient_of_another_size_is_an_error():
    p = pytensor.shared(np.zeros((4, 3), np.float32))
    delta = pytensor.shared(np.zeros((4, 3), np.float32))
    g = pt.matrix("g", dtype="float32")
    new_p, new_delta = momentum_step(p, g, delta, np.float32(0.1), np.float32(0.5))
    f = backend.function([g], [], updates=[(p, new_p), (delta, new_delta)], mode="CVM")
    with pytest.raises(ValueError, match="arrays of one size"):
        f(np.zeros((2, 3), np.float32))


def test_float64_and_jax_keep_the_graph():
    p = pytensor.shared(np.zeros(3))
    assert momentum_step(p, p * 2, p, np.float32(0.1), np.float32(0.5)) is None
    q = pytensor.shared(np.zeros(3, np.float32))
    assert momentum_step(q, q * 2, q, pt.scalar(dtype="float32"), pt.scalar(dtype="float32"),
                         mode="JAX") is None


def test_a_fortran_ordered_parameter_steps_into_a_copy():
    p0 = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    p = pytensor.shared(p0.copy(order="F"), borrow=True)
    delta = pytensor.shared(np.zeros((4, 3), np.float32))
    g = pt.matrix("g", dtype="float32")
    new_p, new_delta = momentum_step(p, g, delta, np.float32(0.5), np.float32(0.0))
    f = backend.function([g], [], updates=[(p, new_p), (delta, new_delta)], mode="CVM")
    g0 = np.arange(12, dtype=np.float32).reshape(4, 3)
    f(g0)
    np.testing.assert_array_equal(p.get_value(), p0 - 0.5 * g0)
    np.testing.assert_array_equal(delta.get_value(), -0.5 * g0)
