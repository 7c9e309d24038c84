"""The fused GRU (uvs/gru_op.py) against the `scan` GRU it replaces: values, gradients, updates."""

import os
from collections import OrderedDict

import numpy as np
import pytensor.tensor as pt
import pytest
from models import tiny_options, tiny_worddict
from pytensor.compile.mode import Mode
from pytensor.scan.op import Scan

from uvs import backend, gru_op
from uvs.homogeneous_data import prepare_data
from uvs.layers import gru_layer, param_init_gru
from uvs.model import build_sentence_encoder, init_params
from uvs.optim import stored_gradients
from uvs.train import compile_update
from uvs.utils import init_tparams

NIN, DIM = 5, 4
WEIGHTS = ("W", "U", "b", "Wx", "Ux", "bx")
# (T, B, steps kept per column): padded steps (mask 0) at the end and in the middle
SHAPES = [(1, 1, [1]), (1, 3, [1, 1, 0]), (4, 1, [3]), (5, 3, [5, 2, 1]), (3, 2, [3, 3])]
PY = Mode(linker="py", optimizer="fast_run")  # runs the Ops' NumPy `perform`


def _params(dtype="float32"):
    rng = np.random.RandomState(0)
    params = param_init_gru({}, OrderedDict(), prefix="enc", nin=NIN, dim=DIM, rng=rng)
    return OrderedDict((k, (v + rng.uniform(-0.3, 0.3, v.shape)).astype(dtype))
                       for k, v in params.items())


def _inputs(T, B, kept, dtype="float32"):
    rng = np.random.RandomState(T * 10 + B)
    x = rng.randn(T, B, NIN).astype(dtype)
    mask = np.zeros((T, B), dtype=dtype)
    for j, k in enumerate(kept):
        mask[:k, j] = 1
    if T > 2 and B > 1:
        mask[1, -1] = 0  # a gap in the middle: the state is carried over
    h0 = (0.5 * rng.randn(B, DIM)).astype(dtype)
    weights = rng.randn(T, B, DIM).astype(dtype)
    return x, mask, h0, weights


def _build(impl, with_h0, mode=None, dtype="float32"):
    """f(x, mask, h0, C) -> [h, d cost / d (x, mask, h0, W, U, b, Wx, Ux, bx)]."""
    tparams = init_tparams(_params(dtype))
    x = pt.tensor3("x", dtype=dtype)
    mask = pt.matrix("mask", dtype=dtype)
    h0 = pt.matrix("h0", dtype=dtype)
    weights = pt.tensor3("C", dtype=dtype)
    h = gru_layer(tparams, x, h0 if with_h0 else None, {}, prefix="enc", mask=mask, impl=impl)[0]
    cost = (h * weights).sum() + (h[-1] ** 2).sum()
    wrt = [x, mask] + ([h0] if with_h0 else []) + [tparams[f"enc_{w}"] for w in WEIGHTS]
    f = backend.function([x, mask, h0, weights], [h, *pt.grad(cost, wrt)],
                         on_unused_input="ignore", mode=mode)
    return f


def _ops(f):
    return {type(node.op) for node in f.maker.fgraph.apply_nodes}


@pytest.mark.parametrize("with_h0", [False, True], ids=["h0=0", "h0 given"])
@pytest.mark.parametrize("mode", [None, PY], ids=["C", "numpy"])
def test_fused_matches_scan(with_h0, mode):
    reference = _build("scan", with_h0)
    fused = _build("fused", with_h0, mode=mode)
    assert Scan in _ops(reference) and Scan not in _ops(fused)
    assert gru_op.GRUForward in _ops(fused) and gru_op.GRUBackward in _ops(fused)
    names = ["h", "x", "mask"] + (["h0"] if with_h0 else []) + list(WEIGHTS)
    for T, B, kept in SHAPES:
        args = _inputs(T, B, kept)
        for name, want, got in zip(names, reference(*args), fused(*args), strict=True):
            assert got.shape == want.shape, (name, T, B)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}, T={T}, B={B}")


def test_fused_float64():
    reference = _build("scan", True, dtype="float64")
    fused = _build("fused", True, dtype="float64")
    args = _inputs(4, 3, [4, 2, 1], dtype="float64")
    for want, got in zip(reference(*args), fused(*args), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_mask_defaults_to_ones():
    outs = []
    for impl in ("scan", "fused"):
        tparams = init_tparams(_params())
        x = pt.tensor3("x", dtype="float32")
        h = gru_layer(tparams, x, None, {}, prefix="enc", impl=impl)[0]
        outs.append(backend.function([x], h))
    x = np.random.RandomState(1).randn(3, 2, NIN).astype("float32")
    np.testing.assert_allclose(outs[1](x), outs[0](x), rtol=1e-5, atol=1e-6)


def test_bad_shapes_are_refused():
    f = _build("fused", True)
    x, mask, h0, weights = _inputs(3, 2, [3, 3])
    with pytest.raises(ValueError):
        f(x, mask, h0[:1], weights)


def test_switch(monkeypatch):
    monkeypatch.delenv("UVS_GRU", raising=False)
    monkeypatch.delenv("UVS_MODE", raising=False)
    assert gru_op.gru_impl() == gru_op.DEFAULT == "fused"
    monkeypatch.setenv("UVS_GRU", "Scan")
    assert gru_op.gru_impl() == "scan"
    monkeypatch.setenv("UVS_GRU", "cudnn")
    with pytest.raises(ValueError, match="UVS_GRU"):
        gru_op.gru_impl()
    monkeypatch.delenv("UVS_GRU")
    monkeypatch.setenv("UVS_MODE", "JAX")
    assert gru_op.gru_impl() == "scan"
    # arguments win over the environment
    assert gru_op.gru_impl(mode="CVM") == "fused"
    monkeypatch.setenv("UVS_GRU", "scan")
    assert gru_op.gru_impl("fused") == "fused"
    with pytest.raises(ValueError, match="gru='cudnn'"):
        gru_op.gru_impl("cudnn")


def test_layer_takes_the_implementation(monkeypatch):
    monkeypatch.setenv("UVS_GRU", "scan")
    tparams = init_tparams(_params())
    x = pt.tensor3("x", dtype="float32")
    for impl, op in (("fused", gru_op.GRUForward), ("scan", Scan), (None, Scan)):
        f = backend.function([x], gru_layer(tparams, x, None, {}, prefix="enc", impl=impl)[0])
        assert op in _ops(f), impl


def _update(impl, options, params, batch):
    """Costs, gradients and parameters over two compile_update steps."""
    tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
    f_grad_shared, f_update = compile_update(tparams, options, gru=impl)
    out = []
    for _ in range(2):
        cost = float(f_grad_shared(*batch))
        grads = stored_gradients(f_grad_shared)
        f_update(1e-3)
        out.append((cost, grads, {k: v.get_value() for k, v in tparams.items()}))
    graph = {type(n.op) for n in f_grad_shared.maker.fgraph.apply_nodes}
    return out, graph


def test_compile_update_same_with_fused():
    options = tiny_options()
    worddict = tiny_worddict()
    options["n_words"] = len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(3))
    rng = np.random.RandomState(4)
    caps = ["a dog runs on the beach", "red car", "the cat sits", "blue grass"]
    batch = prepare_data(caps, rng.rand(4, options["dim_image"]), worddict,
                         n_words=options["n_words"])
    assert (batch[1] == 0).any()  # padded steps
    scan, scan_graph = _update("scan", options, params, batch)
    fused, fused_graph = _update("fused", options, params, batch)
    assert Scan in scan_graph and Scan not in fused_graph
    for (c_ref, g_ref, p_ref), (c, g, p) in zip(scan, fused, strict=True):
        assert c == pytest.approx(c_ref, rel=1e-5)
        for k in g_ref:
            np.testing.assert_allclose(g[k], g_ref[k], rtol=1e-4, atol=1e-6, err_msg=k)
        for k in p_ref:
            np.testing.assert_allclose(p[k], p_ref[k], atol=1e-5, err_msg=k)


def test_sentence_encoder_same_with_fused():
    options = tiny_options()
    options["n_words"] = 18
    params = init_params(options, rng=np.random.RandomState(5))
    x, mask, _ = prepare_data(["a dog runs", "red car on the beach", ""], np.zeros((3, 10)),
                              tiny_worddict(), n_words=18)
    out = []
    for impl, mode in (("scan", None), ("fused", None), ("fused", PY)):
        inputs, sents = build_sentence_encoder(init_tparams(params), options, gru=impl)
        f = backend.function(inputs, sents, mode=mode)
        assert (gru_op.GRUForward in _ops(f)) == (impl == "fused")
        out.append(f(x, mask))
    for got in out[1:]:
        np.testing.assert_allclose(got, out[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_installed_wheel_finds_the_c_source(tmp_path):
    """An installed wheel ships gru_op.c, and the fused GRU compiles from it."""
    import subprocess
    import sys
    import zipfile

    from test_packaging import build_wheel

    wheel = build_wheel(tmp_path)
    assert "uvs/gru_op.c" in zipfile.ZipFile(wheel).namelist()
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what installing a pure-Python wheel does
    code = (
        "import numpy as np, pytensor.tensor as pt, uvs.gru_op as g, uvs.backend as b;"
        "from collections import OrderedDict; from uvs.layers import gru_layer, param_init_gru;"
        "from uvs.utils import init_tparams;"
        "p = param_init_gru({}, OrderedDict(), prefix='e', nin=3, dim=2);"
        "x = pt.tensor3('x', dtype='float32');"
        "f = b.function([x], gru_layer(init_tparams(p), x, None, {}, prefix='e', impl='fused')[0],"
        " mode='CVM');"
        "print(g.__file__); print(f(np.ones((2, 1, 3), np.float32)).shape);"
        "print(any(hasattr(t, 'cthunk') for t in f.vm.thunks))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, shape, compiled = out.stdout.split("\n")[:3]
    assert where.startswith(str(site)) and shape == "(2, 1, 2)"
    assert compiled == "True" or backend.blas().source == "none"
