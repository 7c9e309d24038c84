"""Adam's fused step (uvs/adam_op.py) against the elementwise graph it replaces."""

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from uvs import optim
from uvs.adam_op import AdamStep
from uvs.utils import init_tparams

PY = Mode(linker="py", optimizer="fast_run")  # runs the Op's NumPy `perform`


def _run(optimizer, mode=None, steps=4):
    """Parameters after `steps` updates of a tiny least-squares problem."""
    rng = np.random.RandomState(0)
    params = OrderedDict([("W", rng.randn(70, 30).astype("float32")),
                          ("b", rng.randn(30).astype("float32"))])
    tparams = init_tparams(params)
    x = pt.matrix("x", dtype="float32")
    cost = ((pt.dot(x, tparams["W"]) + tparams["b"]) ** 2).sum()
    grads = pt.grad(cost, list(tparams.values()))
    lr = pt.scalar("lr", dtype="float32")
    f_grad, f_update = optim.OPTIMIZERS[optimizer](lr, tparams, grads, [x], cost, mode=mode)
    xv = rng.randn(5, 70).astype("float32")
    for _ in range(steps):
        f_grad(xv)
        f_update(np.float32(0.01))
    state = optim.optimizer_state(f_update, tparams)
    return f_update, [p.get_value() for p in tparams.values()] + \
        [v.get_value() for v in state.values()]


@pytest.mark.parametrize("optimizer", ["adam", "adam_textbook"])
@pytest.mark.parametrize("steps,rtol", [(1, 1e-6), (4, 1e-3)])
def test_fused_step_is_the_graph(optimizer, steps, rtol, monkeypatch):
    """One step agrees to float32 rounding (the compiler may fuse a multiply-add the graph's
    loop does not); over four steps of this ill-conditioned problem those last bits grow."""
    f_update, fused = _run(optimizer, steps=steps)
    ops = [n.op for n in f_update.maker.fgraph.apply_nodes]
    assert sum(isinstance(op, AdamStep) and op.inplace for op in ops) == 2  # one pass each
    monkeypatch.setattr(optim, "adam_step", lambda *a, **k: None)  # the elementwise graph
    f_update, graph = _run(optimizer, steps=steps)
    assert not any(isinstance(n.op, AdamStep) for n in f_update.maker.fgraph.apply_nodes)
    assert len(fused) == len(graph) == 7  # W, b, their m and v; the step count
    for a, b in zip(fused, graph, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))


def test_numpy_perform_is_the_c():
    _, c = _run("adam", steps=1)
    _, py = _run("adam", mode=PY, steps=1)
    for a, b in zip(c, py, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_copying_step_leaves_its_inputs():
    p, g, m, v = (pt.vector(n, dtype="float32") for n in "pgmv")
    lr = pt.scalar("lr", dtype="float32")
    outs = AdamStep(0.1, 0.001, 1e-8)(p, g, m, v, lr)
    f = pytensor.function([p, g, m, v, lr], outs, mode=Mode(linker="c", optimizer=None))
    arrays = [np.full(5, x, np.float32) for x in (1.0, 0.5, 0.2, 0.3)]
    before = [a.copy() for a in arrays]
    p_t, m_t, v_t = f(*arrays, np.float32(0.1))
    assert all((a == b).all() for a, b in zip(arrays, before, strict=True))
    np.testing.assert_allclose(m_t, 0.1 * 0.5 + 0.9 * 0.2, rtol=1e-6)
    np.testing.assert_allclose(v_t, 0.001 * 0.25 + 0.999 * 0.3, rtol=1e-6)
    np.testing.assert_allclose(p_t, 1.0 - 0.1 * m_t / (np.sqrt(v_t) + 1e-8), rtol=1e-6)
