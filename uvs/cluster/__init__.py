"""Batch jobs in chunks on one machine or a Dask cluster, written into a Zarr store.

`store`: the store (rows in input order, a fingerprint, a completion marker per chunk);
`inputs`: the input list, split into chunks; `tasks`: what one task computes on a worker
(models loaded once per worker process); `run`: planning, sharding, execution and progress;
`merge`: combining stores written by independent shards. Dask, distributed and zarr (the
`[cluster]` extra) are imported only inside the functions.
"""

from __future__ import annotations

import importlib

from uvs.errors import UVSError

EXTRA = "pip install 'uvs[cluster]' (dask, distributed, zarr)"


def need(module: str, why: str):
    """Import `module` of the `[cluster]` extra, or a one-line UVSError saying `why` needs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UVSError(None, f"{why} needs {module.split('.')[0]}, which is not installed: "
                       f"{EXTRA}") from None


def is_store(path) -> bool:
    """True for a path that names a Zarr store (`*.zarr`)."""
    return str(path).rstrip("/\\").endswith(".zarr")
