"""PyTensor set-up: float32 graphs, a linked BLAS and the compile mode, decided before import."""

from __future__ import annotations

import os
import sys

MODES = ("CVM", "NUMBA", "JAX", "FAST_RUN")
DEFAULT_MODE = "CVM"


def configure() -> None:
    """Make PyTensor build float32 graphs, as the original Theano code ran."""
    if "pytensor" in sys.modules:
        import pytensor

        pytensor.config.floatX = "float32"
        return
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "floatX=float32") if f)


def mode() -> str:
    """The PyTensor mode uvs compiles with: `$UVS_MODE`, else the default."""
    name = os.environ.get("UVS_MODE", DEFAULT_MODE).upper()
    if name not in MODES:
        raise ValueError(f"UVS_MODE={name!r}: expected one of {', '.join(MODES)}")
    return name


def function(inputs, outputs, **kwargs):
    """`pytensor.function` in uvs's mode."""
    import pytensor

    return pytensor.function(inputs, outputs, mode=mode(), **kwargs)


def describe() -> dict:
    """Which PyTensor, mode and BLAS are in use, for benchmarks and `uvs info`."""
    import pytensor

    return {
        "pytensor": pytensor.__version__,
        "mode": mode(),
        "floatX": pytensor.config.floatX,
        "blas": pytensor.config.blas__ldflags or "none",
    }
