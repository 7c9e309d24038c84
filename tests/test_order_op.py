"""The order errors Op (uvs/order_op.py) against the original's broadcast graph."""

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

from uvs import backend
from uvs.model import order_violations
from uvs.order_op import OrderErrors, order_errors_op

PY = Mode(linker="py", optimizer="fast_run")  # runs the Ops' NumPy `perform`


def _build(fused, mode=None):
    """f(s, im, G) -> [E, d Σ G⊙E / d s, d / d im]."""
    s = pt.matrix("s", dtype="float32")
    im = pt.matrix("im", dtype="float32")
    G = pt.matrix("G", dtype="float32")
    if fused:
        E = order_errors_op(s, im)
    else:
        E = order_violations(s.dimshuffle(0, "x", 1), im.dimshuffle("x", 0, 1), {}).sum(axis=2)
    return backend.function([s, im, G], [E, *pt.grad((E * G).sum(), [s, im])], mode=mode)


@pytest.mark.parametrize("n,m,d", [(1, 1, 1), (5, 3, 7), (16, 16, 40), (3, 9, 130)])
def test_fused_is_the_graph(n, m, d):
    rng = np.random.RandomState(n * 100 + m + d)
    s, im = np.abs(rng.randn(n, d)).astype("float32"), np.abs(rng.randn(m, d)).astype("float32")
    im[0, 0] = s[0, 0]  # an exact tie: no violation, no gradient
    G = (rng.randn(n, m) * (rng.rand(n, m) < 0.7)).astype("float32")  # zeros skipped
    fused = _build(True)
    assert any(isinstance(nd.op, OrderErrors) for nd in fused.maker.fgraph.apply_nodes)
    want = _build(False)(s, im, G)
    for mode in (None, PY):
        for a, b in zip(_build(True, mode)(s, im, G), want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_mismatched_dimensions_are_one_clear_error():
    f = _build(True)
    with pytest.raises(ValueError, match="sentences of dimension 4, images of 3"):
        f(np.zeros((2, 4), "float32"), np.zeros((2, 3), "float32"), np.zeros((2, 2), "float32"))
