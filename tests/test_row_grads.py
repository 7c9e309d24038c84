"""uvs.row_grads: a lookup table's gradient stored as its rows, updates bit for bit as before."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from models import tiny_options, tiny_worddict
from pytensor.compile.mode import get_mode
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import ancestors

from uvs import backend, optim
from uvs.adam_op import AdamStep
from uvs.homogeneous_data import prepare_data
from uvs.inc_rows import UniqueRows
from uvs.model import init_params
from uvs.row_grads import lookup_indices, stored_rows
from uvs.train import compile_update
from uvs.utils import init_tparams

CAPTIONS = [["a dog runs on the beach", "red car", "the cat sits", "blue grass"],
            ["the red dog", "a cat on a car", "grass", "blue beach"],
            ["a car", "the dog sits on the grass", "red", "cat"]]


def _updates(options, params, dense: bool, monkeypatch) -> tuple[list, dict]:
    """Parameters, optimizer state and stored gradients after each of three updates, with the
    lookup gradient stored as its rows, or (`dense`) as the whole table."""
    with monkeypatch.context() as m:
        if dense:
            m.setattr(optim, "stored_rows", lambda *a, **k: None)
        tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        f_grad_shared, f_update = compile_update(tparams, options)
    rng = np.random.RandomState(7)
    out = []
    for caps in CAPTIONS:  # other words each time: the last update's rows are not this one's
        f_grad_shared(*prepare_data(caps, rng.rand(4, options["dim_image"]), tiny_worddict(),
                                    n_words=options["n_words"]))
        grads = optim.stored_gradients(f_grad_shared)
        f_update(np.float32(0.01))
        state = optim.optimizer_state(f_update, tparams)
        out.append((grads, {k: v.get_value() for k, v in tparams.items()},
                    {k: v.get_value() for k, v in state.items()}))
    rows_step = any(isinstance(n.op, AdamStep) and not isinstance(n.inputs[5], Constant)
                    for n in f_update.maker.fgraph.apply_nodes)  # a table stepped by its rows
    return out, {"rows_step": rows_step, "state": sorted(out[-1][2])}


@pytest.mark.parametrize("encoder,method,clip", [("gru", None, 2.0), ("bow", None, 2.0),
                                                 ("gru", "order", 2.0), ("bow", None, 0.0)])
def test_updates_are_bit_for_bit_those_of_the_whole_table(encoder, method, clip, monkeypatch):
    options = tiny_options(encoder=encoder, method=method, abs_=method == "order")
    options.update(n_words=len(tiny_worddict()) + 2, grad_clip=clip)
    params = init_params(options, rng=np.random.RandomState(5))
    rows, info = _updates(options, params, dense=False, monkeypatch=monkeypatch)
    whole, whole_info = _updates(options, params, dense=True, monkeypatch=monkeypatch)
    assert info["rows_step"] and not whole_info["rows_step"]
    assert info["state"] == whole_info["state"]  # moments and step count; no gradients
    for got, want in zip(rows, whole, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a.keys() == b.keys()
            for k in a:
                assert np.array_equal(a[k], b[k]), k


def _decoder_and_aligner(kind: str):
    """(compile(tparams), params, batches) of a tiny decoder (`init`) or alignment model."""
    rng = np.random.RandomState(3)
    T, B, V = 6, 4, 30
    xs = [rng.randint(2, V, size=(T, B)).astype(np.int64) for _ in range(3)]
    mask = np.ones((T, B), np.float32)
    if kind == "decoder":
        from uvs.decoding.model import build_model
        from uvs.decoding.model import init_params as init_decoder

        o = {"n_words": V, "dim_word": 6, "dim": 8, "dimctx": 10, "decoder": "gru",
             "doutput": False, "inject": "init", "grad_clip": 5.0, "decay_c": 0.0}
        params = init_decoder(o, rng=np.random.RandomState(0))
        ctx = rng.randn(B, 10).astype(np.float32)

        def build(tparams):
            _, inps, cost = build_model(tparams, o)
            return optim.build_optimizer(tparams, inps, cost, o)
        return build, params, [(x, mask, ctx) for x in xs]
    from uvs.align.model import init_params as init_aligner
    from uvs.align.train import compile_update as compile_aligner

    o = {"n_words": V, "dim_word": 6, "dim": 8, "dim_image": 10, "margin": 1.0,
         "grad_clip": 2.0, "optimizer": "adam_textbook"}
    params = init_aligner(o, rng=np.random.RandomState(0))
    feats = np.abs(rng.randn(B, 3, 10)).astype(np.float32)
    rmask = np.ones((B, 3), np.float32)
    return (lambda tparams: compile_aligner(tparams, o)), params, \
        [(x, mask, feats, rmask) for x in xs]


def record_updates(f_grad_shared, f_update, tparams, batches) -> list[dict]:
    """Stored gradients, parameters and optimizer state after each update, one per batch."""
    out = []
    for batch in batches:
        f_grad_shared(*batch)
        out.append(optim.stored_gradients(f_grad_shared))
        f_update(np.float32(0.01))
        out.append({k: v.get_value() for k, v in tparams.items()})
        out.append({k: v.get_value()
                    for k, v in optim.optimizer_state(f_update, tparams).items()})
    return out


@pytest.mark.parametrize("kind", ["decoder", "alignment"])
def test_decoder_and_aligner_updates_are_bit_for_bit_as_before(kind, monkeypatch):
    build, params, batches = _decoder_and_aligner(kind)
    runs = []
    for dense in (False, True):
        with monkeypatch.context() as m:
            if dense:
                m.setattr(optim, "stored_rows", lambda *a, **k: None)
            tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
            f_grad_shared, f_update = build(tparams)
        assert ("Wemb_grad_rows" in {v.name for v in f_grad_shared.get_shared()}) != dense
        runs.append(record_updates(f_grad_shared, f_update, tparams, batches))
    for a, b in zip(*runs, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert np.array_equal(a[k], b[k]), k


def test_a_lookup_gradient_is_stored_as_its_rows():
    options = tiny_options()
    worddict = tiny_worddict()
    options["n_words"] = len(worddict) + 2
    tparams = init_tparams(init_params(options, rng=np.random.RandomState(0)))
    f_grad_shared, _ = compile_update(tparams, options)
    x, mask, im = prepare_data(CAPTIONS[0], np.ones((4, options["dim_image"])), worddict,
                               n_words=options["n_words"])
    f_grad_shared(x, mask, im)
    shared = {v.name: v.get_value() for v in f_grad_shared.get_shared()}
    assert "Wemb_grad" not in shared and "encoder_W_grad" in shared
    assert np.array_equal(shared["Wemb_grad_rows"], np.unique(x))
    assert shared["Wemb_grad_values"].shape == (len(np.unique(x)), options["dim_word"])
    # built in a (k, d) table at each word's position among the rows: no (n_words, d) table
    adds = [n for n in f_grad_shared.maker.fgraph.apply_nodes
            if getattr(n.op, "adds_into_first_input", False)]
    assert len(adds) == 1
    where = adds[0].inputs[adds[0].op.index_input]
    assert any(isinstance(a.owner.op, UniqueRows) for a in ancestors([where])
               if a.owner is not None)


@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])  # C, then `perform`
def test_adam_step_over_rows_is_the_dense_step(mode):
    rng = np.random.RandomState(0)
    n, d = 40, 33
    rows = np.array([0, 3, 4, 17, 39], np.int64)
    g_rows = rng.randn(len(rows), d).astype(np.float32)
    dense = np.zeros((n, d), np.float32)
    dense[rows] = g_rows
    p0, m0, v0 = (rng.randn(n, d).astype(np.float32) for _ in range(3))
    v0 = np.abs(v0)
    p, g, m, v = (pt.fmatrix(s) for s in "pgmv")
    lr, r = pt.fscalar("lr"), pt.lvector("r")
    mode = get_mode(mode)
    f_rows = backend.function([p, g, m, v, lr, r], AdamStep(0.1, 0.001, 1e-8)(
        p, g, m, v, lr, r), mode=mode)
    f_dense = backend.function([p, g, m, v, lr], AdamStep(0.1, 0.001, 1e-8)(p, g, m, v, lr),
                               mode=mode)
    got = f_rows(p0, g_rows, m0, v0, np.float32(0.01), rows)
    want = f_dense(p0, dense, m0, v0, np.float32(0.01))
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)  # every row steps; the unlisted ones with zeros
    with pytest.raises(ValueError, match="rows of a table of 40: 3 after 4, not increasing"):
        f_rows(p0, g_rows, m0, v0, np.float32(0.01), rows[[0, 2, 1, 3, 4]])
    with pytest.raises(ValueError, match="rows of a table of 40: 40 after"):
        f_rows(p0, g_rows, m0, v0, np.float32(0.01), np.array([0, 3, 4, 17, 40]))
    with pytest.raises(ValueError, match="4 gradient rows for 5 listed rows"):
        f_rows(p0, g_rows[:4], m0, v0, np.float32(0.01), rows)
    # no rows listed: the whole gradient when it is p's size, else a table stepped with zeros
    got = f_rows(p0, dense, m0, v0, np.float32(0.01), np.zeros(0, np.int64))
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    got = f_rows(p0, g_rows[:0], m0, v0, np.float32(0.01), np.zeros(0, np.int64))
    want = f_dense(p0, np.zeros_like(dense), m0, v0, np.float32(0.01))
    for a, b in zip(got, want, strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="adam step over rows"):
        f_rows(p0, np.ascontiguousarray(g_rows[:, :5]), m0, v0, np.float32(0.01), rows)


def test_only_rows_added_into_zeros_are_a_lookup_gradient():
    W = pytensor.shared(np.ones((6, 3), np.float32), name="W")
    x = pt.lvector("x")
    lookup = pytensor.grad((W[x] ** 2).sum(), W)
    assert lookup_indices(lookup) is not None
    assert lookup_indices(pytensor.grad((W ** 2).sum(), W)) is None  # every row
    assert lookup_indices(lookup + W) is None  # weight decay: every row
    assert lookup_indices(pytensor.grad((W[x] ** 2).sum() + (W[x + 1] ** 2).sum(), W)) is None
    assert stored_rows(lookup, mode="JAX") is None  # uvs's C Ops do not run there
    rows, values = stored_rows(lookup)
    f = backend.function([x], [rows, values, lookup])
    r, vals, table = f(np.array([4, 1, 4, -1]))
    assert np.array_equal(r, [1, 4, 5]) and np.array_equal(vals, table[r])
    assert not np.delete(table, r, axis=0).any()
