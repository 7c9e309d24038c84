"""Clipping read by Adam's step (uvs.optim, AdamStep's limit): updates bit for bit as with the
clipping's own pass (`ClipScale`), clipped or not, whole gradients or stored rows."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
from models import tiny_options, tiny_worddict
from pytensor.compile.mode import Mode
from test_row_grads import CAPTIONS, _decoder_and_aligner, record_updates

from uvs import optim
from uvs.adam_op import AdamStep
from uvs.homogeneous_data import prepare_data
from uvs.model import init_params
from uvs.norms import ClipScale
from uvs.train import compile_update
from uvs.utils import init_tparams


def _ops(f, kind) -> list:
    return [n.op for n in f.maker.fgraph.apply_nodes if isinstance(n.op, kind)]


def _run(build, params, batches, own_pass: bool, monkeypatch) -> tuple[list, tuple]:
    """Stored gradients, parameters and optimizer state after each update; with the clipping
    as its own pass (`own_pass`: `ClipScale` stored) or read by Adam's step."""
    with monkeypatch.context() as m:
        if own_pass:
            m.setattr(optim, "_unclipped", lambda g: None)
        tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        f_grad_shared, f_update = build(tparams)
    out = record_updates(f_grad_shared, f_update, tparams, batches)
    limits = tuple(sorted({op.limit for op in _ops(f_update, AdamStep)}))
    return out, (limits, len(_ops(f_grad_shared, ClipScale)))


def _vse(encoder: str, method: str | None, clip: float):
    options = tiny_options(encoder=encoder, method=method, abs_=method == "order")
    options.update(n_words=len(tiny_worddict()) + 2, grad_clip=clip)
    params = init_params(options, rng=np.random.RandomState(5))
    rng = np.random.RandomState(7)
    batches = [prepare_data(caps, rng.rand(4, options["dim_image"]), tiny_worddict(),
                            n_words=options["n_words"]) for caps in CAPTIONS]
    return (lambda tparams: compile_update(tparams, options)), params, batches


@pytest.mark.parametrize("model", ["gru", "bow", "order", "bow-unclipped", "decoder",
                                   "alignment"])
def test_updates_are_bit_for_bit_those_of_the_clipping_pass(model, monkeypatch):
    if model in ("decoder", "alignment"):
        build, params, batches = _decoder_and_aligner(model)
    else:  # 0.05: every update clipped; 1e6: none (the step reads g as it is)
        build, params, batches = _vse(model.split("-")[0] if model != "order" else "gru",
                                      "order" if model == "order" else None,
                                      1e6 if model.endswith("unclipped") else 0.05)
    folded, (limits, clip_passes) = _run(build, params, batches, False, monkeypatch)
    own, (own_limits, own_passes) = _run(build, params, batches, True, monkeypatch)
    assert limits and 0.0 not in limits and clip_passes == 0  # every step reads its clipping
    assert own_limits == (0.0,) and own_passes > 0
    for a, b in zip(folded, own, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k


def test_the_squared_norm_is_not_optimizer_state():
    build, params, batches = _vse("bow", None, 0.05)
    tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
    f_grad_shared, f_update = build(tparams)
    names = {v.name for v in f_update.get_shared()}
    assert any(n.endswith("_grad_norm2") for n in names)
    assert not any("grad" in n for n in optim.optimizer_state(f_update, tparams))


@pytest.mark.parametrize("clipped", [True, False])
@pytest.mark.parametrize("rows", [False, True])
def test_numpy_perform_is_the_c(clipped, rows):
    import pytensor.tensor as pt

    from uvs import backend

    rng = np.random.RandomState(0)
    p0, m0, v0 = (rng.rand(12, 5).astype(np.float32) for _ in range(3))
    listed = np.array([1, 4, 9], np.int64) if rows else np.zeros(0, np.int64)
    g0 = rng.randn(len(listed) if rows else 12, 5).astype(np.float32)
    g2 = np.float32((g0.astype(np.float64) ** 2).sum())
    outs = []
    for limit, mode in ((0.5 if clipped else 1e4, None),  # C, then NumPy's `perform`
                        (0.5 if clipped else 1e4, Mode(linker="py", optimizer="fast_run")),
                        (0.0, None)):  # no clipping at all
        p, g, m, v = (pt.fmatrix(n) for n in "pgmv")
        lr, n2, r = pt.fscalar("lr"), pt.fscalar("n2"), pt.lvector("r")
        f = backend.function([p, g, m, v, lr, r, n2],
                              AdamStep(0.1, 0.001, 1e-8, limit=limit)(p, g, m, v, lr, r, n2),
                              mode=mode)
        outs.append(f(p0, g0, m0, v0, np.float32(0.01), listed, g2))
    for a, b, plain in zip(*outs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        assert np.array_equal(a, plain) != clipped  # rescaled only over the limit
