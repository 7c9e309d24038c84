"""HTML reports: training curves of runs side by side, and retrieval results query by query.

One self-contained file (plots as inline SVG from matplotlib, photos as data URIs, no
network); needs the `report` extra: matplotlib, jinja2, Pillow.
"""

from __future__ import annotations

import importlib

from uvs.errors import UVSError
from uvs.extras import install_advice

EXTRA = install_advice("report")
MODULES = {"matplotlib": "matplotlib", "jinja2": "jinja2", "PIL": "Pillow"}


def need(module: str):
    """Import a module of the `report` extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        name = MODULES.get(module.split(".")[0], module)
        raise UVSError(None, f"the HTML report needs {name}, which is not installed: "
                       f"{EXTRA}") from None


def check_installed() -> None:
    """Fail early, before long work, when a part of the `report` extra is missing."""
    for module in MODULES:
        need(module)
