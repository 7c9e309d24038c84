"""uvs.prebuild: a cold cache's C modules built side by side, then found by PyTensor's linking."""

from __future__ import annotations

import json

import pytest
from test_backend import run_python

# Compiles four distinct elementwise nodes and a product into an empty cache, counting the
# modules uvs.prebuild built and those PyTensor's linking still had to build (CLinker's own
# compile_cmodule); prints them, the results and the same numbers for a second, warm compile.
SCRIPT = """
import json, sys
import numpy as np
from pytensor.link.c.basic import CLinker
from uvs import backend, prebuild
backend.configure()
import pytensor.tensor as pt

counts = {"prebuilt": 0, "linking": 0}
original_prebuild, original_compile = prebuild.prebuild, CLinker.compile_cmodule

def counted_prebuild(nodes, workers=None):
    n = original_prebuild(nodes, workers)
    counts["prebuilt"] += n
    return n

def counted_compile(self, location=None):
    counts["linking"] += 1
    return original_compile(self, location)

prebuild.prebuild, CLinker.compile_cmodule = counted_prebuild, counted_compile
if sys.argv[-1] == "fail":  # every parallel build fails: PyTensor builds them itself
    prebuild.Build.run_gcc = lambda self, folder: None
x, w = pt.matrix("x"), pt.matrix("w")
outs = [pt.tanh(x @ w).sum(axis=0), pt.exp(x * 0.5).max(axis=1), pt.sqrt(abs(x) + 2.0),
        pt.log1p(x * x).mean()]
a = np.random.RandomState(0).rand(4, 3).astype("float32")
result = {}
for run in ("cold", "warm"):
    f = backend.function([x, w], outs)
    got = f(a, a.T.copy())
    want = [np.tanh(a @ a.T).sum(0), np.exp(a * 0.5).max(1), np.sqrt(abs(a) + 2),
            np.log1p(a * a).mean()]
    result[run] = {**counts, "linker": type(f.maker.linker).__name__,
                   "error": max(float(np.abs(g - w_).max()) for g, w_ in zip(got, want))}
    counts.update(prebuilt=0, linking=0)
print(json.dumps(result))
"""


def _compile(tmp_path, how: str) -> dict:
    res = run_python(SCRIPT.replace("sys.argv[-1]", repr(how)),
                     PYTENSOR_FLAGS=f"base_compiledir={tmp_path}")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


@pytest.mark.slow
def test_a_cold_cache_is_built_in_parallel_and_linking_builds_nothing(tmp_path):
    got = _compile(tmp_path, "parallel")
    cold, warm = got["cold"], got["warm"]
    assert cold["linker"] == "PrebuildVMLinker"
    assert cold["prebuilt"] >= 4 and cold["linking"] == 0, cold
    assert warm["prebuilt"] == 0 and warm["linking"] == 0, warm
    assert cold["error"] < 1e-5 and warm["error"] < 1e-5


@pytest.mark.slow
def test_failed_parallel_builds_are_left_to_pytensor(tmp_path):
    cold = _compile(tmp_path, "fail")["cold"]
    assert cold["prebuilt"] == 0 and cold["linking"] >= 4, cold
    assert cold["error"] < 1e-5


def test_other_linkers_are_left_alone():
    from pytensor.compile.mode import get_mode

    from uvs import prebuild

    numba = get_mode("NUMBA")
    assert prebuild.in_parallel(numba) is numba
    cvm = prebuild.in_parallel(get_mode("CVM").clone(link_kwargs={"allow_gc": False}))
    assert type(cvm.linker).__name__ == "PrebuildVMLinker" and cvm.linker.allow_gc is False


def test_compile_jobs_from_the_environment(monkeypatch):
    from pytensor.compile.mode import get_mode

    from uvs import prebuild
    from uvs.errors import UVSError

    monkeypatch.delenv("UVS_COMPILE_JOBS", raising=False)
    monkeypatch.setattr(prebuild.os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert prebuild.jobs() == prebuild.MAX_JOBS == 16  # not 64 gcc at once by default
    monkeypatch.setenv("UVS_COMPILE_JOBS", "3")
    assert prebuild.jobs() == 3
    monkeypatch.setenv("UVS_COMPILE_JOBS", "1")  # PyTensor's own builds, one at a time
    cvm = get_mode("CVM")
    assert prebuild.in_parallel(cvm) is cvm
    for bad in ("0", "two", "-2"):
        monkeypatch.setenv("UVS_COMPILE_JOBS", bad)
        with pytest.raises(UVSError, match=f"UVS_COMPILE_JOBS='{bad}': expected a whole"):
            prebuild.jobs()
