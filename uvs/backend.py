"""PyTensor set-up: float32 graphs, a linked BLAS and the compile mode, as arguments.

Importing uvs changes nothing. `configure()` runs once, when uvs first builds a graph
(`uvs.utils.init_tparams`) or compiles one (`function`), and sets through `pytensor.config`
`floatX = float32` and a BLAS for PyTensor's C backend, first found of:

1. the user's own `blas__ldflags` (`PYTENSOR_FLAGS` or `.pytensorrc`), left alone;
2. the `scipy-openblas32` wheel (a dependency of uvs). Its symbols carry a
   `scipy_` prefix, so `-Dsgemm_=scipy_sgemm_ ...` goes into the flags: PyTensor
   passes non `-l`/`-L` flags to the compiler of its BLAS Ops;
3. a system OpenBLAS (`libopenblas.so` in a standard directory);
4. whatever PyTensor finds itself; with nothing at all, uvs warns once and
   compiles with the Numba backend instead (it uses NumPy's BLAS).

`UVS_BLAS` (`auto`, `scipy-openblas32`, `system`, `none`) restricts the search. The compile
mode is an argument (`function(..., mode=...)`, `mode(name)`), `$UVS_MODE` only its default.
The compile cache stays PyTensor's (`base_compiledir`, `~/.pytensor` unless set), so warm
starts are fast. `PYTENSOR_FLAGS` and the warning filters are left as the user set them.
"""

from __future__ import annotations

import configparser
import ctypes
import importlib.metadata
import importlib.util
import os
import shlex
import sys
import sysconfig
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODES = ("CVM", "NUMBA", "JAX", "FAST_RUN")
# From benchmarks/backend_bench.py (GRU encoder, batch 128, dim 1024): C + OpenBLAS
# trains 1.4-1.8x faster than Numba and encodes about as fast or faster. JAX was
# 1.1x faster still, but it is no dependency and its `scan` needs static shapes.
DEFAULT_MODE = "CVM"
FALLBACK_MODE = "NUMBA"
BLAS_CHOICES = ("auto", "scipy-openblas32", "system", "none")

# Every routine PyTensor's BLAS header (pytensor/tensor/blas_headers.py) declares
# that OpenBLAS provides; renamed to the `scipy_` symbols of the wheel.
_REAL = (
    "axpy copy dot gbmv gemm gemv ger rot rotg rotm rotmg sbmv scal spmv spr spr2 swap "
    "symm symv syr syr2 syr2k syrk tbmv tbsv tpmv tpsv trmm trmv trsm trsv"
)
_COMPLEX = (
    "axpy copy gbmv gemm gemv gerc geru hbmv hemm hemv her her2 her2k herk hpmv hpr hpr2 "
    "scal swap symm syr2k syrk tbmv tbsv tpmv tpsv trmm trmv trsm trsv"
)
BLAS_ROUTINES: tuple[str, ...] = (
    tuple(f"{p}{r}_" for p in "sd" for r in _REAL.split())
    + tuple(f"{p}{r}_" for p in "cz" for r in _COMPLEX.split())
    + ("csscal_", "zdscal_")
)

NO_DEBUG_INFO = "-g0"  # gcc__cxxflags uvs sets unless the user set some
_NO_BLAS_WARNING = "PyTensor could not link to a BLAS installation"


@dataclass(frozen=True)
class Blas:
    """A BLAS for PyTensor's C backend: where it came from and how to link it."""

    source: str  # "user", "scipy-openblas32", "system", "pytensor" or "none"
    ldflags: str = ""
    library: str = ""  # the shared library file, when known
    version: str = ""
    prefix: str = ""  # symbol prefix of the library's own functions


_blas: Blas | None = None
_configured = False
_warned = False


def _quote(path: str | Path) -> str:
    return shlex.quote(str(path))


def _wheel_blas() -> Blas | None:
    """The `scipy-openblas32` wheel, found without importing it."""
    if sys.platform not in ("linux", "darwin"):
        return None
    try:
        spec = importlib.util.find_spec("scipy_openblas32")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    libdir = Path(next(iter(spec.submodule_search_locations))) / "lib"
    ext = ".dylib" if sys.platform == "darwin" else ".so"
    libs = sorted(libdir.glob(f"libscipy_openblas*{ext}")) if libdir.is_dir() else []
    if not libs:
        return None
    lib = libs[0]
    name = lib.name[3 : -len(ext)]
    defines = " ".join(f"-D{r}=scipy_{r}" for r in BLAS_ROUTINES)
    ldflags = f"-L{_quote(libdir)} -l{name} -Wl,-rpath,{_quote(libdir)} {defines}"
    try:
        version = importlib.metadata.version("scipy-openblas32")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return Blas("scipy-openblas32", ldflags, str(lib), version, prefix="scipy_")


def _lib_dirs() -> list[Path]:
    """Standard directories a system OpenBLAS lives in."""
    dirs = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    for base in ("/usr/local/lib", "/usr/lib", "/lib"):
        if multiarch:
            dirs.append(Path(base) / multiarch)
        dirs.append(Path(base))
    dirs += [Path("/usr/lib64"), Path("/usr/local/lib64")]
    if sys.platform == "darwin":
        dirs += [Path("/opt/homebrew/opt/openblas/lib"), Path("/usr/local/opt/openblas/lib")]
    return dirs


def _system_blas() -> Blas | None:
    """A system OpenBLAS with plain (LP64, unprefixed) symbols."""
    if sys.platform not in ("linux", "darwin"):
        return None
    ext = ".dylib" if sys.platform == "darwin" else ".so"
    for d in _lib_dirs():
        lib = d / f"libopenblas{ext}"
        if lib.exists():
            ldflags = f"-L{_quote(d)} -lopenblas -Wl,-rpath,{_quote(d)}"
            return Blas("system", ldflags, str(lib.resolve()), prefix="")
    return None


def _parse_flags(flags: str) -> dict[str, str]:
    """`PYTENSOR_FLAGS` as a dict, parsed as PyTensor does (later keys win)."""
    splitter = shlex.shlex(flags, posix=True)
    splitter.whitespace = ","
    splitter.whitespace_split = True
    pairs = (kv.strip().split("=", 1) for kv in splitter)
    return {kv[0]: kv[1] for kv in pairs if len(kv) == 2}


def _user_setting(flags: str, key: str) -> str | None:
    """A PyTensor setting `section__option` as the user set it (`PYTENSOR_FLAGS` first, then
    `.pytensorrc`), or None."""
    value = _parse_flags(flags).get(key)
    if value is not None:
        return value
    rc = configparser.RawConfigParser()
    rc_env = os.getenv("PYTENSORRC", "~/.pytensorrc")
    files = [Path(s).expanduser() for s in rc_env.split(os.pathsep)]
    section, option = key.split("__", 1)
    try:
        rc.read(files)
        return rc.get(section, option)
    except (configparser.Error, UnicodeDecodeError):
        return None


def _user_ldflags(flags: str) -> str | None:
    """`blas__ldflags` as the user set it (`PYTENSOR_FLAGS` first, then `.pytensorrc`)."""
    return _user_setting(flags, "blas__ldflags")


def _choose(user: str | None) -> Blas | None:
    """The BLAS uvs configures, or `None` to leave the search to PyTensor."""
    choice = os.environ.get("UVS_BLAS", "auto").strip().lower() or "auto"
    if choice not in BLAS_CHOICES:
        raise ValueError(f"UVS_BLAS={choice!r}: expected one of {', '.join(BLAS_CHOICES)}")
    candidates = {"scipy-openblas32": _wheel_blas, "system": _system_blas}
    found = [f() for k, f in candidates.items() if choice in ("auto", k)]
    found = [b for b in found if b is not None]
    if user is not None:
        # Our own flags, inherited by a child process, are still ours.
        same = [b for b in found + [_wheel_blas(), _system_blas()] if b and b.ldflags == user]
        return same[0] if same else Blas("user", user)
    if choice == "none":
        return Blas("none")
    return found[0] if found else None


def configure() -> None:
    """Make PyTensor build float32 graphs and link a BLAS, as the original Theano code ran; once.

    Through `pytensor.config`: `PYTENSOR_FLAGS` is not rewritten, and a `blas__ldflags` the
    user set is left alone.
    """
    global _blas, _configured
    if _configured:
        return
    import pytensor

    flags = os.environ.get("PYTENSOR_FLAGS", "")
    user = _user_ldflags(flags)
    _blas = _choose(user)
    pytensor.config.floatX = "float32"
    # OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) after each product, taking the
    # cores from the OpenMP loops that follow it (Adam's step, the softmax): set before the
    # library loads, 2^4 puts them to sleep at once (benchmarks/roofline.py measures it).
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    # The same the other way: libgomp's idle threads spin 300 000 rounds (milliseconds) after
    # each OpenMP loop of uvs's C Ops, over the products that follow; 1 000 (libgomp's own
    # value for oversubscribed cores) puts them to sleep within microseconds. Read when
    # libgomp loads, with uvs's first C module; a wait policy the user set is left alone.
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    if _user_setting(flags, "gcc__cxxflags") is None:
        # PyTensor builds every C module with -g; -g0 (after it) drops the debug information,
        # which changes no instruction and saves about a fifth of a cold compile
        # (benchmarks/compile_bench.py).
        pytensor.config.gcc__cxxflags = NO_DEBUG_INFO
    if _blas is None:
        # PyTensor searches itself, now; uvs says in one line if that fails (`_default_mode`).
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_BLAS_WARNING)
            _ = pytensor.config.blas__ldflags
    elif user is None:
        pytensor.config.blas__ldflags = _blas.ldflags
    _configured = True


def blas() -> Blas:
    """The BLAS PyTensor's C backend links (configures PyTensor)."""
    import pytensor

    configure()
    if _blas is not None and _blas.source not in ("none",):
        return _blas
    ldflags = pytensor.config.blas__ldflags  # may run PyTensor's own search
    return Blas("pytensor", ldflags) if ldflags else Blas("none")


def _cdll(b: Blas) -> ctypes.CDLL | None:
    if not b.library:
        return None
    try:
        return ctypes.CDLL(b.library)
    except OSError:
        return None


def blas_threads(n: int | None = None) -> int | None:
    """Get, or set to `n`, the thread count of the configured OpenBLAS (`None` if unknown)."""
    b = blas()
    lib = _cdll(b)
    if lib is None:
        return None
    try:
        if n is not None:
            getattr(lib, f"{b.prefix}openblas_set_num_threads")(ctypes.c_int(int(n)))
        return int(getattr(lib, f"{b.prefix}openblas_get_num_threads")())
    except AttributeError:
        return None


def _blas_text(b: Blas) -> str:
    """A one-line account of the BLAS, e.g. `scipy-openblas32 0.3.x (...so), 4 threads`."""
    if b.source == "none":
        return (
            "none: PyTensor's C backend has no BLAS (pip install scipy-openblas32, "
            f"or set blas__ldflags); uvs compiles with {FALLBACK_MODE}"
        )
    if b.source in ("user", "pytensor"):
        return f"{b.source} blas__ldflags: {b.ldflags}"
    detail = []
    lib = _cdll(b)
    if lib is not None:
        try:
            get_config = getattr(lib, f"{b.prefix}openblas_get_config")
            get_config.restype = ctypes.c_char_p
            detail.append(get_config().decode())
        except (AttributeError, UnicodeDecodeError):
            pass
    threads = blas_threads()
    if threads is not None:
        detail.append(f"{threads} threads")
    name = f"{b.source} {b.version}".strip() if b.source != "system" else "system OpenBLAS"
    return f"{name} ({b.library}{'; ' if detail else ''}{'; '.join(detail)})"


def _outside_uvs() -> int:
    """The `stacklevel` of the first caller outside uvs, for warnings."""
    here = Path(__file__).resolve().parent
    frame, level = sys._getframe(1), 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().parent == here:
        frame, level = frame.f_back, level + 1
    return level


def _default_mode() -> str:
    """DEFAULT_MODE, or FALLBACK_MODE when the C backend has no compiler or BLAS."""
    global _warned
    if DEFAULT_MODE != "CVM":
        return DEFAULT_MODE
    import pytensor

    reason = ""
    if not pytensor.config.cxx:
        reason = "no C++ compiler"
    elif blas().source == "none":
        reason = "no BLAS for PyTensor's C backend"
    if not reason:
        return DEFAULT_MODE
    if not _warned:
        _warned = True
        warnings.warn(
            f"uvs: {reason}; compiling with mode {FALLBACK_MODE}", stacklevel=_outside_uvs()
        )
    return FALLBACK_MODE


def mode(name: str | None = None) -> str:
    """The PyTensor mode to compile with: `name` if given, else `$UVS_MODE`, else the default."""
    source = "mode"
    if name is None:
        name, source = os.environ.get("UVS_MODE", ""), "UVS_MODE"
    name = name.strip().upper()
    if not name:
        return _default_mode()
    if name not in MODES:
        raise ValueError(f"{source}={name!r}: expected one of {', '.join(MODES)}")
    return name


_mode = mode  # `function` takes a `mode` argument


# uvs's C Ops (the fused GRU, `uvs.rowwise`) have no Numba implementation: under NUMBA they
# run their NumPy `perform` (the GRU's still faster than Numba's scan), which Numba announces
# once per Op.
_NUMBA_FALLBACK = ("Numba will use object mode to run (GRU(Forward|Backward)|InvariantDot|"
                   "SoftmaxRows|SoftmaxRowsGrad|SoftmaxNLL(Bias)?Rows|SoftmaxNLL(Bias)?RowsGrad|"
                   "SoftmaxNLLBiasRowsFused|SoftmaxXentRows(Grad|Fused)?|DrawRows|FastUnary|"
                   "BeamCandidates|"
                   "ReluRNN(Forward|Backward)|OrderErrors|OrderErrorsGrad|AdamStep|"
                   "MomentumStep|SquaredNorm|ClipScale|IncRows|ZeroFill|UniqueRows|BagOfWords|"
                   "BagOfWordsGrad|TakeColumns|ScatterColumns|AxisSum)")


# PyTensor's rewrites of products with orthogonal, symmetric, diagonal or selection matrices:
# uvs's graphs have none, yet each asks its assumption machinery of every product and
# transpose — an eighth of a warm compile (benchmarks/compile_bench.py). The same compiled
# graphs without them (tests/test_backend.py).
_UNUSED_REWRITES = ("orthogonal_dot_transpose_to_eye", "selection_dot_to_indexing",
                    "useless_symmetric_transpose", "dot_diag_to_elemwise")


def function(inputs: Any, outputs: Any = None, mode: Any = None, keep_buffers: bool = False,
             **kwargs: Any) -> Any:
    """`pytensor.function`, compiled in `mode` (a name or a PyTensor `Mode`), else `$UVS_MODE`,
    else the default. keep_buffers: intermediate results keep their memory between calls
    (PyTensor's `allow_gc` off), for functions called again and again, like an update."""
    import pytensor
    from pytensor.compile.mode import get_mode

    # on PyTensor: imported where uvs compiles, like PyTensor; axis_sums, inc_rows register rewrites
    from uvs import axis_sums, ccflags, inc_rows, prebuild  # noqa: F401

    configure()
    if mode is None or isinstance(mode, str):
        mode = _mode(mode)
    # PyTensor folds a scalar factor into a product (Dot22Scalar) even when the product has
    # other clients, so a clipped gradient g·c/|g| recomputed each large weight gradient
    # (12 % of a decoder update); without the fold it is one product and an elementwise scale.
    mode = get_mode(mode).excluding("local_dot22_to_dot22scalar", *_UNUSED_REWRITES)
    if keep_buffers and hasattr(mode.linker, "allow_gc"):
        mode = mode.clone(link_kwargs={"allow_gc": False})
    if getattr(mode.linker, "c_thunks", False):  # PyTensor's C backend
        ccflags.use_remembered_march()  # not asked of gcc again in each process
        mode = prebuild.in_parallel(mode)  # a cold cache's C modules built on every core
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NUMBA_FALLBACK)
        return pytensor.function(inputs, outputs, mode=mode, **kwargs)


def describe(mode: str | None = None) -> dict[str, str]:
    """Which PyTensor, mode (`mode`, else the default) and BLAS are in use, for benchmarks and
    `uvs info`."""
    import pytensor

    configure()
    return {
        "pytensor": pytensor.__version__,
        "mode": _mode(mode),
        "floatX": pytensor.config.floatX,
        "blas": _blas_text(blas()),
    }
