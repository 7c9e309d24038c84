"""uvs.ccflags: gcc's answers about the processor, asked once per machine and remembered."""

from __future__ import annotations

import json

import pytest
from test_backend import run_python

# Prints what PyTensor's -march flags and uvs's OpenMP answer came to, and which of them had to
# be asked of gcc in this process.
SCRIPT = """
import json
from uvs import backend, ccflags, cop
backend.configure()
from pytensor.link.c.cmodule import GCC_compiler
asked = []
detect, try_flags = ccflags._detect_march, GCC_compiler.try_flags
ccflags._detect_march = lambda: asked.append("march") or detect()
GCC_compiler.try_flags = lambda flags, **k: asked.append("openmp") or try_flags(flags, **k)
ccflags.use_remembered_march()
print(json.dumps({"march": GCC_compiler.march_flags, "openmp": cop.openmp(), "asked": asked}))
"""


def _ask(tmp_path, flags: str = "") -> dict:
    res = run_python(SCRIPT, PYTENSOR_FLAGS=f"base_compiledir={tmp_path}{flags}")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[-1])


def _file(tmp_path):
    (found,) = tmp_path.glob("compiledir_*/uvs-ccflags.json")
    return found


@pytest.mark.slow
def test_asked_once_then_remembered(tmp_path):
    first = _ask(tmp_path)
    assert first["asked"] == ["march", "openmp"] and isinstance(first["openmp"], bool)
    assert any(f.startswith("-march=") for f in first["march"]) or first["march"] == []
    second = _ask(tmp_path)
    assert second == {**first, "asked": []}  # the same answers, no gcc asked


@pytest.mark.slow
@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"k": 3}', b"{" * 100000,
                                     b'{"%s": {"march": ["-mavx\\n-o /tmp/x"]}}'])
def test_a_file_not_as_uvs_wrote_it_is_asked_again_and_rewritten(tmp_path, content):
    first = _ask(tmp_path)
    path = _file(tmp_path)
    key = next(iter(json.loads(path.read_text())))
    path.write_bytes(content.replace(b"%s", key.encode()))
    again = _ask(tmp_path)
    assert again["march"] == first["march"] and "march" in again["asked"]
    assert json.loads(path.read_text())[key]["march"] == first["march"]


@pytest.mark.slow
def test_a_users_march_is_left_to_pytensor(tmp_path):
    got = _ask(tmp_path, ",gcc__cxxflags=-march=x86-64")
    assert got["march"] is None and "march" not in got["asked"]
