"""Build a function's missing C modules on several cores before PyTensor links it.

PyTensor builds each node's C module while it links a function, one gcc at a time under its
cache lock: a first run spent nine tenths of its compile there. `PrebuildVMLinker` first
finds the nodes whose modules are not in the cache, runs their gcc builds side by side (gcc
is a subprocess, so threads suffice), then gives each module to PyTensor's cache through its
own `module_from_key`, with the key, source and compile command a serial build would have
used. Linking then finds every module cached. A build that fails here is left to PyTensor's
own, which reports it as always. `$UVS_COMPILE_JOBS` sets the builds at once (default: the
usable cores, at most 16; 1 leaves every build to PyTensor).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pytensor.compile.mode import Mode
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.utils import MethodNotDefined
from pytensor.link.c.basic import CLinker, get_module_cache
from pytensor.link.c.cmodule import ModuleCache, dlimport, get_module_hash
from pytensor.link.c.op import COp
from pytensor.link.vm import VMLinker

from uvs.errors import UVSError

MAX_JOBS = 16  # a gcc build takes 0.1-0.2 GB; a first run builds about fifty modules


@dataclass
class Build:
    """One missing module: its cache key and source, and the gcc call that makes it."""

    key: Any
    module_hash: str
    src_code: str
    module_name: str
    compiler: Any
    args: dict
    library: str | None = None  # the built .so, once gcc succeeded

    def get_src_code(self) -> str:
        return self.src_code

    def compile_cmodule(self, location: str) -> Any:
        """What `ModuleCache.module_from_key` asks of a linker: the module, loaded from
        `location` (the cache's new folder), where the prebuilt files move."""
        folder = os.path.dirname(self.library)
        for name in os.listdir(folder):
            shutil.move(os.path.join(folder, name), os.path.join(location, name))
        open(os.path.join(location, "__init__.py"), "w").close()
        return dlimport(os.path.join(location, os.path.basename(self.library)))

    def run_gcc(self, folder: str) -> None:
        """gcc into `folder`; `library` stays None if it fails."""
        try:
            self.compiler.compile_str(module_name=self.module_name, src_code=self.src_code,
                                      location=folder, py_module=False, **self.args)
        except Exception:  # noqa: BLE001 - PyTensor's own build reports it
            return
        library = [f for f in os.listdir(folder) if f.startswith(self.module_name + ".")]
        self.library = os.path.join(folder, library[0]) if library else None


def _build_of(node: Apply, cache: ModuleCache) -> Build | None:
    """The build that linking `node` would run, made the way `COp.make_c_thunk` makes it (the
    VM linker passes no `no_recycling`); None if its module is cached or it has no C code."""
    op = node.op
    if not isinstance(op, COp) or type(op).make_thunk is not COp.make_thunk:
        return None
    try:
        op.prepare_node(node, storage_map=None, compute_map=None, impl="c")
        linker = CLinker().accept(FunctionGraph(node.inputs, node.outputs), no_recycling=[])
        key = linker.cmodule_key()
        if not key or key in cache.entry_from_key:
            return None
        module = linker.get_dynamic_module()
        src_code = module.code()
        args = {"include_dirs": linker.header_dirs(), "lib_dirs": linker.lib_dirs(),
                "libs": linker.libraries(), "preargs": linker.compile_args()}
        compiler = linker.c_compiler()
    except (NotImplementedError, MethodNotDefined, KeyError):
        return None
    module_hash = get_module_hash(src_code, key)
    if module_hash in cache.module_hash_to_key_data:
        return None
    return Build(key, module_hash, src_code, module.code_hash, compiler, args)


def jobs() -> int:
    """How many gcc builds run at once: `$UVS_COMPILE_JOBS`, else the usable cores up to
    `MAX_JOBS`."""
    value = os.environ.get("UVS_COMPILE_JOBS", "").strip()
    if not value:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        return min(cores, MAX_JOBS)
    if not value.isdigit() or int(value) < 1:
        raise UVSError(None, f"UVS_COMPILE_JOBS={value!r}: expected a whole number, 1 or more")
    return int(value)


def prebuild(nodes: list[Apply], workers: int | None = None) -> int:
    """Build the missing C modules of `nodes` on `workers` threads (default: `jobs()`) and put
    them in PyTensor's cache; returns how many were built."""
    cache = get_module_cache()
    builds: dict[str, Build] = {}
    seen = set()
    for node in nodes:
        # nodes alike (an Adam step per parameter) share one module: its key is found once
        if not any(isinstance(v, Constant) for v in node.inputs):
            alike = (node.op, tuple(v.type for v in node.inputs),
                     tuple(node.inputs.index(v) for v in node.inputs),  # x * x is not x * y
                     tuple(v.type for v in node.outputs))
            if alike in seen:
                continue
            seen.add(alike)
        build = _build_of(node, cache)
        if build is not None:
            builds.setdefault(build.module_hash, build)
    if len(builds) < 2:
        return 0  # nothing to overlap: PyTensor builds it as fast
    workers = workers or jobs()
    # outside the cache folder, which PyTensor's cache cleans as it likes
    with tempfile.TemporaryDirectory(prefix="uvs-prebuild-") as scratch:
        folders = [tempfile.mkdtemp(dir=scratch) for _ in builds]
        with ThreadPoolExecutor(min(workers, len(builds))) as pool:
            list(pool.map(Build.run_gcc, builds.values(), folders))
        built = 0
        for build in builds.values():
            if build.library is not None:
                cache.module_from_key(key=build.key, lnk=build)
                built += 1
    return built


class PrebuildVMLinker(VMLinker):
    """PyTensor's VM linker, building the graph's missing C modules in parallel first."""

    def make_all(self, *args: Any, **kwargs: Any) -> Any:
        if self.c_thunks is not False:
            prebuild(self.schedule(self.fgraph))
        return super().make_all(*args, **kwargs)


def in_parallel(mode: Mode) -> Mode:
    """`mode` with its VM linker (PyTensor's C backend) building C modules in parallel first;
    a mode with another linker (Numba, JAX), or `$UVS_COMPILE_JOBS` 1, as it is."""
    linker = mode.linker
    if type(linker) is not VMLinker or linker.fgraph is not None or jobs() == 1:
        return mode
    new = PrebuildVMLinker(allow_gc=linker.allow_gc, use_cloop=linker.use_cloop,
                           callback=linker.callback, callback_input=linker.callback_input,
                           lazy=linker.lazy, schedule=linker._scheduler,
                           c_thunks=linker.c_thunks,
                           allow_partial_eval=linker.allow_partial_eval)
    return type(mode)(linker=new, optimizer=mode.provided_optimizer)
