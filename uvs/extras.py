"""The optional parts (setup.cfg's extras): what each needs, whether it is there, how to get it.

The distribution is `uvs-embeddings` (the name `uvs` on the package index is someone else's
project); the import name and the command stay `uvs`. It is installed from its checkout, so the
advice is an editable install of the extra there.
"""

from __future__ import annotations

import importlib
import importlib.util

from uvs.errors import UVSError

DISTRIBUTION = "uvs-embeddings"
# extra -> (module imported, package that provides it)
EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "images": (("torch", "torch"), ("torchvision", "torchvision"), ("PIL", "Pillow")),
    "captions": (("pycocoevalcap", "pycocoevalcap"),),
    "index": (("faiss", "faiss-cpu"),),
    "report": (("matplotlib", "matplotlib"), ("jinja2", "jinja2"), ("PIL", "Pillow")),
}
CPU_TORCH = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
CLUSTER = "pip install 'uvs[cluster]' (dask, distributed, zarr)"


def install_advice(extra: str) -> str:
    """One line saying how to install the extra `extra` of this project."""
    packages = ", ".join(p for _, p in EXTRAS[extra])
    line = (f"in the uvs checkout run pip install -e '.[{extra}]' (the [{extra}] extra of "
            f"{DISTRIBUTION}: {packages})")
    if extra == "images":
        line += f"; for PyTorch without the CUDA packages, first {CPU_TORCH}"
    return line


def missing(extra: str) -> list[str]:
    """The packages of `extra` that cannot be imported, found without importing them."""
    out = []
    for module, package in EXTRAS[extra]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found and package not in out:
            out.append(package)
    return out


def require(extra: str, what: str | None = None) -> None:
    """Refuse at once, before any slow work, when a package of `extra` is missing."""
    gone = missing(extra)
    if gone:
        names = gone[0] if len(gone) == 1 else f"{', '.join(gone[:-1])} and {gone[-1]}"
        verb, them = ("is", "it") if len(gone) == 1 else ("are", "them")
        why = f" ({what} needs {them})" if what else ""
        raise UVSError(None, f"{names} {verb} not installed{why}: {install_advice(extra)}")


def import_from(extra: str, module: str):
    """Import `module` of `extra`, or one line naming the missing package and the advice."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = next((p for m, p in EXTRAS[extra] if m == top), top)
        raise UVSError(None, f"{package} is not installed: {install_advice(extra)}") from None


def need_cluster(module: str, why: str):
    """Import `module` of the `[cluster]` extra, or a one-line UVSError saying `why` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UVSError(None, f"{why} needs {module.split('.')[0]}, which is not installed: "
                       f"{CLUSTER}") from None
