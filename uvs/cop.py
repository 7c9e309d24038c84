"""Plumbing shared by uvs's C Ops (`uvs.gru_op`, `uvs.relu_rnn`, `uvs.rowwise`).

PyTensor keys an `ExternalCOp`'s compile cache by the hash of its own C files only, so an Op
that puts `fastmath.h` (beside this module) in front of its code adds the header's hash to
its `c_code_cache_version`. `BlasCOp` is an Op whose C calls the BLAS PyTensor links,
`OpenMPCOp` one whose C loops spread over OpenMP threads; `available` says where they run.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from pytensor.graph.basic import Apply
from pytensor.graph.utils import MethodNotDefined
from pytensor.link.c.cmodule import GCC_compiler
from pytensor.link.c.op import ExternalCOp

from uvs import backend, ccflags

FASTMATH = "fastmath.h"  # float math shared by the C files, put in front of each
OMP_SUPPORT = "omp_support.h"  # threads and array helpers of the OpenMP Ops, put in front
BLAS_SUPPORT = "blas_support.c"  # products and array helpers, put before a BlasCOp's own file


def available(mode: Any = None) -> bool:
    """Whether uvs's C Ops run in `mode` (a name, else uvs's default; a PyTensor `Mode` is taken
    as one that runs them): every mode but JAX, which cannot call them (NUMBA runs their
    `perform`)."""
    return not (mode is None or isinstance(mode, str)) or backend.mode(mode) != "JAX"


@functools.cache
def openmp() -> bool:
    """Whether PyTensor's C compiler builds with OpenMP (asked once per machine)."""
    return ccflags.remembered("openmp", lambda: bool(GCC_compiler.try_flags(["-fopenmp"])))


@functools.cache
def support_header(name: str) -> tuple[str, str]:
    """(text, sha256) of a C header beside this module: C Ops prepend the text and add the
    hash to their cache version, as PyTensor hashes only their own file."""
    text = (Path(__file__).with_name(name)).read_text()
    return text, hashlib.sha256(text.encode()).hexdigest()


def fastmath_header() -> tuple[str, str]:
    """`support_header` of fastmath.h, the float math shared by the C files."""
    return support_header(FASTMATH)


class BlasCOp(ExternalCOp):
    """An Op whose C (`blas_support.c`, then its own `c_file`) is linked to the BLAS PyTensor's
    own Gemm links (same flags, so uvs's `scipy_` renames apply)."""

    __props__ = ()
    c_file = ""

    def __init__(self) -> None:
        super().__init__([BLAS_SUPPORT, self.c_file])

    def c_support_code(self, **kwargs: Any) -> str:
        from pytensor.tensor.blas_headers import blas_header_text

        return (blas_header_text() + fastmath_header()[0] + support_header(OMP_SUPPORT)[0]
                + super().c_support_code(**kwargs))

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<math.h>", "<stdlib.h>", "<string.h>"]

    def c_libraries(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags()

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        # -fno-trapping-math and -fopenmp-simd let the elementwise loops vectorize
        return [*ldflags(libs=False, flags=True), "-fno-trapping-math", "-fopenmp-simd"]

    def c_lib_dirs(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags(libs=False, libs_dir=True)

    def c_header_dirs(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags(libs=False, include_dir=True)

    def c_code_cache_version(self) -> tuple:
        from pytensor.tensor.blas_headers import blas_header_version

        return (*super().c_code_cache_version(), blas_header_version(), fastmath_header()[1],
                support_header(OMP_SUPPORT)[1])

    def _check_c(self, node: Apply) -> None:
        import pytensor

        if not pytensor.config.blas__ldflags:
            raise MethodNotDefined("no BLAS linked: the NumPy implementation runs instead")
        if node.outputs[0].dtype not in ("float32", "float64"):
            raise MethodNotDefined(f"no C code for {node.outputs[0].dtype}")


class OpenMPCOp(ExternalCOp):
    """An Op whose C (its `c_file`) spreads its loops over OpenMP threads where PyTensor's
    compiler builds with OpenMP; -fno-trapping-math lets those loops vectorize."""

    __props__ = ()
    c_file = ""

    def __init__(self) -> None:
        super().__init__(self.c_file)

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<math.h>", "<stdlib.h>", "<string.h>"]

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        return ["-fno-math-errno", "-fno-trapping-math", *(["-fopenmp"] if openmp() else [])]

    def c_support_code(self, **kwargs: Any) -> str:
        return support_header(OMP_SUPPORT)[0] + super().c_support_code(**kwargs)

    def c_code_cache_version(self) -> tuple:
        return (*super().c_code_cache_version(), support_header(OMP_SUPPORT)[1])
