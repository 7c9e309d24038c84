"""The C compiler's answers about this processor, found once per machine, not per process.

Every process that compiles asks gcc which flags `-march=native` stands for, then compiles and
runs a test program with them (PyTensor), and whether OpenMP builds (uvs's C Ops): a third of
a second each time, most of a warm start. The answers depend only on the compiler and the
processor, so uvs keeps them in PyTensor's compile folder (`uvs-ccflags.json`) under a key of
both, and hands them to PyTensor before it asks. A file that does not read back as expected is
ignored and written anew.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from pytensor import config
from pytensor.link.c.cmodule import GCC_compiler

from uvs.errors import UVSError
from uvs.fileio import write_text

FILE = "uvs-ccflags.json"
MAX_BYTES = 1 << 16  # a few machines' answers; anything larger is not uvs's file
MAX_MACHINES = 8  # keys kept (a compile folder shared by several machines over NFS)


def _processor() -> str | None:
    """The first processor's model and feature flags (Linux), else None: no key, no memory."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            first = f.read(1 << 16).split("\n\n")[0]
    except OSError:
        return None
    lines = [ln for ln in first.splitlines()
             if ln.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features")]
    return "\n".join(lines) or None


@functools.cache
def machine_key() -> str | None:
    """A hash of the compiler (path, size, time) and the processor; None where either is
    unknown. Once per process: both answers use it."""
    cxx = shutil.which(config.cxx) if config.cxx else None
    cpu = _processor()
    if cxx is None or cpu is None:
        return None
    st = os.stat(os.path.realpath(cxx))
    text = json.dumps([os.path.realpath(cxx), st.st_size, st.st_mtime_ns,
                       config.gcc__cxxflags, cpu])
    return hashlib.sha256(text.encode()).hexdigest()


def _path() -> str:
    return os.path.join(config.compiledir, FILE)


def _read() -> dict[str, dict[str, Any]]:
    """The remembered answers, {key: {name: value}}; {} if absent or not as uvs wrote it."""
    try:
        with open(_path(), "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        known = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict) or not all(isinstance(v, dict) for v in known.values()):
        return {}
    return known


def _valid(name: str, value: Any) -> bool:
    if name == "march":
        return isinstance(value, list) and all(  # ["-march=x", "-mavx", "--param", "a=1"]
            isinstance(f, str) and f.isprintable() and f and f.split() == [f] for f in value)
    return isinstance(value, bool)


def remembered(name: str, find: Callable[[], Any]) -> Any:
    """The answer `name` for this machine: remembered, else `find()` and remembered."""
    key = machine_key()
    if key is None:
        return find()
    known = _read()
    if _valid(name, known.get(key, {}).get(name)):
        return known[key][name]
    value = find()
    if _valid(name, value):
        entry = {**known.pop(key, {}), name: value}
        kept = dict(list(known.items())[-(MAX_MACHINES - 1):])
        try:
            write_text(_path(), json.dumps({**kept, key: entry}))
        except UVSError:
            pass  # an unwritable compile folder: found again next time
    return value


def _detect_march() -> list[str] | None:
    GCC_compiler.compile_args()  # PyTensor's own detection, which sets march_flags
    return GCC_compiler.march_flags


def use_remembered_march() -> None:
    """Give PyTensor its `-march=native` flags for this machine before it looks for them
    (unless it has them, or the user's gcc__cxxflags choose a -march)."""
    if not config.cxx or GCC_compiler.march_flags is not None:
        return
    if any(f.startswith(("-march=", "--march=")) for f in config.gcc__cxxflags.split()):
        return
    GCC_compiler.march_flags = remembered("march", _detect_march)
