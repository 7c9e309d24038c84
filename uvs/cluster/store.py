"""Making the store a batch job writes (`uvs.stores` describes it, opens and reads it).

Zarr writes each chunk file atomically; a chunk without a marker is redone by a rerun.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable

import numpy as np

from uvs.errors import UVSError
from uvs.stores import DONE, FORMAT, INPUTS, OFFSETS, PARTS, VERSION, Store, open_store, zarr_module


def _copy_inputs(lines: Iterable[str], folder: str, chunk_rows: int) -> tuple[int, str]:
    """inputs.txt and inputs.idx.npy in `folder`: (row count, sha256 of the lines)."""
    h, offsets, pos, n = hashlib.sha256(), [0], 0, 0
    with open(os.path.join(folder, INPUTS), "wb") as f:
        for line in lines:
            raw = line.encode("utf-8") + b"\n"
            f.write(raw)
            h.update(raw)
            pos += len(raw)
            n += 1
            if n % chunk_rows == 0:
                offsets.append(pos)
    if n % chunk_rows:
        offsets.append(pos)
    np.save(os.path.join(folder, OFFSETS), np.array(offsets, np.int64))
    return n, h.hexdigest()


def differences(want: dict, have: dict) -> list[str]:
    """The fingerprint fields that differ, as 'name' (nested: 'options.crops')."""
    out = []
    for key in sorted(set(want) | set(have)):
        a, b = want.get(key), have.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{d}" for d in differences(a, b)]
        elif a != b:
            out.append(key)
    return out


def check_fingerprint(store: Store, fingerprint: dict) -> None:
    """UVSError unless the store was started by the same job (inputs, model, options)."""
    diff = differences(fingerprint, store.meta.get("fingerprint", {}))
    if diff:
        raise UVSError(store.path, "this store belongs to another job (it differs in "
                       f"{', '.join(diff)}); write to a new path, or delete it to start over")


def create_or_open(path: str | os.PathLike, kind: str, lines: Iterable[str], chunk_rows: int,
                   fingerprint: dict, arrays: dict[str, int], text: bool = False) -> Store:
    """The store at `path` for this job: made (atomically: built aside, renamed into place) or,
    when it exists, opened and checked to belong to the same job.

    lines: the inputs, one per row; fingerprint: what decides the results (the inputs' hash is
    added); arrays: name -> width of each (rows, width) float32 result.
    """
    zarr = zarr_module()
    path = os.fspath(path).rstrip("/")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UVSError(path, f"cannot write: folder {parent} does not exist")
    if os.path.exists(path) and not os.path.isdir(path):
        raise UVSError(path, "exists and is not a store (a folder)")
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=parent)
    try:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)  # before anything else is there
        rows, digest = _copy_inputs(lines, tmp, chunk_rows)
        if rows == 0:
            raise UVSError(path, "no inputs: the job has nothing to do")
        fingerprint = {**fingerprint, "inputs": digest, "rows": rows, "chunk_rows": chunk_rows}
        if os.path.isdir(path):
            store = open_store(path, kind)
            check_fingerprint(store, fingerprint)
            return store
        meta = {"format": FORMAT, "version": VERSION, "kind": kind, "rows": rows,
                "chunk_rows": chunk_rows, "arrays": arrays, "fingerprint": fingerprint}
        for name, width in arrays.items():
            group.create_array(name, shape=(rows, width), chunks=(chunk_rows, width),
                               dtype="float32", fill_value=0.0)
        group.create_array("status", shape=(rows,), chunks=(chunk_rows,), dtype="int8",
                           fill_value=0)
        group.attrs["uvs"] = meta
        os.mkdir(os.path.join(tmp, DONE))
        if text:
            os.mkdir(os.path.join(tmp, PARTS))
        try:
            os.rename(tmp, path)  # fails if a concurrent shard made it first
        except OSError:
            store = open_store(path, kind)
            check_fingerprint(store, fingerprint)
            return store
        return Store(path, meta)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
