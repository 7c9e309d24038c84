"""uvs.backend: float32, a linked BLAS for the C backend, the mode and its override."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from uvs import backend

backend.configure()
ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter that imports this checkout's uvs."""
    environ = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=300
    )


def test_floatx_is_float32() -> None:
    import pytensor

    assert pytensor.config.floatX == "float32"


def test_describe_keys() -> None:
    info = backend.describe()
    assert set(info) == {"pytensor", "mode", "floatX", "blas"}
    assert info["floatX"] == "float32"
    assert info["mode"] in backend.MODES
    assert isinstance(info["blas"], str) and info["blas"]


def test_cvm_dot_uses_blas() -> None:
    import pytensor.tensor as pt
    from pytensor.tensor.blas import GemmRelated

    x, y = pt.matrix("x"), pt.matrix("y")
    f = backend.function([x, y], pt.dot(x, y), mode="CVM")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 48)).astype("float32")
    b = rng.standard_normal((48, 32)).astype("float32")
    out = f(a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)

    blas = backend.blas()
    if blas.source == "none":
        pytest.skip("no BLAS configured for PyTensor's C backend")
    nodes = zip(f.vm.nodes, f.vm.thunks, strict=True)
    gemms = [(n, t) for n, t in nodes if isinstance(n.op, GemmRelated)]
    assert gemms, [n.op for n in f.vm.nodes]
    assert all(hasattr(t, "cthunk") for _, t in gemms), "BLAS op fell back to Python"
    maps = Path("/proc/self/maps")
    if blas.library and maps.exists():
        assert str(Path(blas.library).resolve()) in maps.read_text()


def test_wheel_flags_rename_blas_symbols() -> None:
    wheel = backend._wheel_blas()
    if wheel is None:
        pytest.skip("scipy-openblas32 not installed")
    assert "-Dsgemm_=scipy_sgemm_" in wheel.ldflags
    assert "-Dddot_=scipy_ddot_" in wheel.ldflags
    assert Path(wheel.library).exists()


def test_mode_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UVS_MODE", "numba")
    assert backend.mode() == "NUMBA"
    assert backend.describe()["mode"] == "NUMBA"
    assert backend.mode("cvm") == "CVM"  # an argument wins over the environment
    assert backend.describe("cvm")["mode"] == "CVM"
    monkeypatch.setenv("UVS_MODE", "cvm")
    assert backend.mode() == "CVM"
    monkeypatch.delenv("UVS_MODE")
    assert backend.mode() in backend.MODES
    with pytest.raises(ValueError, match="mode='GPU'"):
        backend.mode("gpu")


def test_function_takes_the_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytensor.tensor as pt
    from pytensor.link.numba.linker import NumbaLinker

    monkeypatch.setenv("UVS_MODE", "cvm")
    x = pt.vector("x")
    f = backend.function([x], 2 * x, mode="numba")
    assert isinstance(f.maker.linker, NumbaLinker)
    np.testing.assert_allclose(f(np.ones(3, dtype="float32")), 2)


def test_bad_mode_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UVS_MODE", "gpu")
    with pytest.raises(ValueError, match="UVS_MODE='GPU'.*CVM"):
        backend.mode()


def test_bad_blas_choice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UVS_BLAS", "mkl")
    with pytest.raises(ValueError, match="UVS_BLAS='mkl'"):
        backend._choose(None)


def test_user_ldflags_are_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTENSORRC", str(tmp_path / "missing"))
    assert backend._user_ldflags('floatX=float32,blas__ldflags="-lblas -lm"') == "-lblas -lm"
    assert backend._user_ldflags("floatX=float32") is None
    rc = tmp_path / "pytensorrc"
    rc.write_text("[blas]\nldflags = -lmyblas\n")
    monkeypatch.setenv("PYTENSORRC", str(rc))
    assert backend._user_ldflags("") == "-lmyblas"
    assert backend._choose("-lmyblas") == backend.Blas("user", "-lmyblas")


def test_user_ldflags_left_alone() -> None:
    code = (
        "import os, uvs, pytensor; from uvs import backend;"
        "print(pytensor.config.blas__ldflags); print(backend.describe()['blas'])"
    )
    res = run_python(code, PYTENSOR_FLAGS="blas__ldflags=-lopenblas")
    assert res.returncode == 0, res.stderr
    ldflags, text = res.stdout.splitlines()[-2:]
    assert ldflags == "-lopenblas"
    assert text.startswith("user")


def test_no_debug_info_unless_the_user_set_cxxflags() -> None:
    code = "import pytensor; from uvs import backend; backend.configure(); " \
           "print(repr(pytensor.config.gcc__cxxflags))"
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == repr(backend.NO_DEBUG_INFO)
    res = run_python(code, PYTENSOR_FLAGS="gcc__cxxflags=-O2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == "'-O2'"


@pytest.mark.parametrize("user, want", [({}, ("4", "1000")),
                                        ({"GOMP_SPINCOUNT": "7"}, ("4", "7")),
                                        ({"OMP_WAIT_POLICY": "active"}, ("4", None)),
                                        ({"OPENBLAS_THREAD_TIMEOUT": "9"}, ("9", "1000"))])
def test_idle_threads_sleep_unless_the_user_said_otherwise(user, want) -> None:
    code = ("import os; from uvs import backend; backend.configure(); "
            "print(repr((os.environ.get('OPENBLAS_THREAD_TIMEOUT'), "
            "os.environ.get('GOMP_SPINCOUNT'))))")
    keys = ("OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    environ = {k: v for k, v in os.environ.items() if k not in keys}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**environ, **user, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split("\n")[-2] == repr(want)


def test_import_changes_nothing() -> None:
    code = (
        "import os, warnings, numpy, scipy, numba, click, pytensor.tensor, pytensor.scan;"
        "before = (os.environ.get('PYTENSOR_FLAGS'), list(warnings.filters));"
        "import uvs, uvs.tools, uvs.train, uvs.gru_op;"
        "print(before == (os.environ.get('PYTENSOR_FLAGS'), list(warnings.filters)));"
        "print(pytensor.config.floatX); uvs.backend.configure(); print(pytensor.config.floatX);"
        "print(before == (os.environ.get('PYTENSOR_FLAGS'), list(warnings.filters)))"
    )
    res = run_python(code, PYTENSOR_FLAGS="floatX=float64")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "float64", "float32", "True"]


def test_configure_prints_no_blas_warning() -> None:
    code = "from uvs import backend; backend.configure(); print(backend.blas().source)"
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    assert "could not link to a BLAS" not in res.stderr


def test_no_blas_falls_back_with_one_warning() -> None:
    code = (
        "import uvs; from uvs import backend;"
        "print(backend.mode(), backend.mode()); print(backend.describe()['blas'])"
    )
    res = run_python(code, UVS_BLAS="none", UVS_MODE="")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == f"{backend.FALLBACK_MODE} {backend.FALLBACK_MODE}"
    assert res.stdout.splitlines()[1].startswith("none")
    assert res.stderr.count("uvs: no BLAS") == 1
    assert "could not link to a BLAS" not in res.stderr


def test_update_functions_keep_their_buffers():
    """f_grad_shared and f_update keep their intermediates' memory between calls; other
    functions free it (PyTensor's default)."""
    from collections import OrderedDict

    import pytensor.tensor as pt

    from uvs.optim import adam
    from uvs.utils import init_tparams

    tparams = init_tparams(OrderedDict(W=np.ones((3, 2), "float32")))
    x = pt.matrix("x", dtype="float32")
    cost = pt.exp(pt.dot(x, tparams["W"])).sum()
    f_grad, f_update = adam(pt.scalar("lr", dtype="float32"), tparams,
                            pt.grad(cost, [tparams["W"]]), [x], cost)
    assert not f_grad.vm.allow_gc and not f_update.vm.allow_gc
    f = backend.function([x], cost)
    assert f.vm.allow_gc
    for _ in range(2):  # the kept buffers are reused, not stale
        assert f_grad(np.ones((4, 3), "float32")) == pytest.approx(f(np.ones((4, 3), "float32")))


def test_unused_rewrites_change_no_compiled_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rewrites uvs leaves out for compile time exist in PyTensor, and a GRU model's
    gradient compiles to the same nodes without them as with them."""
    import pytensor.tensor as pt
    from models import tiny_options
    from pytensor.compile.mode import optdb

    from uvs.model import build_model, init_params
    from uvs.utils import init_tparams

    assert all(name in optdb["canonicalize"] for name in backend._UNUSED_REWRITES)
    options = tiny_options(encoder="gru")
    options["n_words"] = 20
    tparams = init_tparams(init_params(options, rng=np.random.RandomState(0)))
    inputs, cost = build_model(tparams, options)
    grads = pt.grad(cost, list(tparams.values()))

    def nodes() -> list[str]:
        f = backend.function(inputs, [cost, *grads])
        return [str(node.op) for node in f.maker.fgraph.toposort()]

    trimmed = nodes()
    monkeypatch.setattr(backend, "_UNUSED_REWRITES", ())
    assert nodes() == trimmed
