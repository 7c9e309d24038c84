"""The store a batch job writes: a Zarr group, rows in input order, one chunk per task.

Layout of `OUT.zarr/` (a directory on a file system that the client and every worker see):
  zarr.json        the group; attributes["uvs"]: format, version, kind, rows, chunk_rows,
                   width, arrays, fingerprint (model hash, inputs hash, options)
  <array>/         (rows, width) float32 Zarr arrays (`features` or `embeddings`), chunked by
                   chunk_rows rows: chunk k holds rows [k * chunk_rows, (k + 1) * chunk_rows)
  status/          (rows,) int8: 0 not written, 1 a row, 2 skipped (unreadable input),
                   3 a row from a truncated photo
  inputs.txt       the job's inputs (photo paths, sentences or row names), one a line
  inputs.idx.npy   (chunks + 1,) int64 byte offsets of each chunk's first line in inputs.txt
  uvs-done/K.json  chunk K's completion marker, written (atomically) after its rows; it holds
                   what the task skipped or warned about
  parts/K.jsonl    text results (captions) of chunk K, where the job makes text
Zarr writes each chunk file atomically; a chunk without a marker is redone by a rerun.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np

from uvs.cluster import need
from uvs.errors import UVSError
from uvs.fileio import write_text

FORMAT = "uvs-store"
VERSION = 1
INPUTS = "inputs.txt"
OFFSETS = "inputs.idx.npy"
DONE = "uvs-done"
PARTS = "parts"
OK, SKIPPED, TRUNCATED = 1, 2, 3


def _zarr():
    return need("zarr", "a .zarr store")


class Store:
    """An open store: its metadata, arrays, inputs and completion markers."""

    def __init__(self, path: str, meta: dict):
        self.path = path
        self.meta = meta

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])

    @property
    def chunk_rows(self) -> int:
        return int(self.meta["chunk_rows"])

    @property
    def chunks(self) -> int:
        return -(-self.rows // self.chunk_rows)

    def chunk_range(self, k: int) -> tuple[int, int]:
        """Rows [a, b) of chunk k."""
        a = k * self.chunk_rows
        return a, min(a + self.chunk_rows, self.rows)

    def array(self, name: str):
        return _zarr().open_array(os.path.join(self.path, name), mode="r+")

    def marker_path(self, k: int) -> str:
        return os.path.join(self.path, DONE, f"{k:08d}.json")

    def done(self) -> set[int]:
        """The chunks recorded as complete."""
        folder = os.path.join(self.path, DONE)
        return {int(n[:-5]) for n in os.listdir(folder)
                if n.endswith(".json") and n[:-5].isdigit()}

    def markers(self) -> Iterator[dict]:
        """The completion markers, in chunk order."""
        for k in sorted(self.done()):
            with open(self.marker_path(k), encoding="utf-8") as f:
                yield json.load(f)

    def chunk_inputs(self, k: int) -> list[str]:
        """The input lines of chunk k (read from inputs.txt at its byte offset)."""
        offsets = np.load(os.path.join(self.path, OFFSETS), mmap_mode="r")
        with open(os.path.join(self.path, INPUTS), "rb") as f:
            f.seek(int(offsets[k]))
            raw = f.read(int(offsets[k + 1] - offsets[k]))
        return raw.decode("utf-8").split("\n")[:-1]

    def write_chunk(self, k: int, arrays: dict[str, np.ndarray], status: np.ndarray,
                    report: dict, text: str | None = None) -> None:
        """Chunk k's rows (each array (b - a, width)), then its marker: complete only now."""
        a, b = self.chunk_range(k)
        for name, values in arrays.items():
            self.array(name)[a:b] = values
        self.array("status")[a:b] = status
        if text is not None:
            write_text(os.path.join(self.path, PARTS, f"{k:08d}.jsonl"), text)
        write_text(self.marker_path(k), json.dumps({"chunk": k, "rows": [a, b], **report}))

    def status(self) -> np.ndarray:
        """(rows,) int8 for every row (0 where its chunk is not written)."""
        return self.array("status")[:]

    def missing(self) -> list[int]:
        return sorted(set(range(self.chunks)) - self.done())

    def check_complete(self) -> None:
        """UVSError unless every chunk is written."""
        missing = self.missing()
        if missing:
            raise UVSError(self.path, f"{len(missing)} of {self.chunks} chunks are not written "
                           "yet (an interrupted job, or shards not all run): rerun the job "
                           "command, or `uvs store merge` the shards")

    def names(self, status: np.ndarray | None = None) -> list[str]:
        """The inputs of the rows that hold a result (skipped inputs left out)."""
        status = self.status() if status is None else status
        keep = (status == OK) | (status == TRUNCATED)
        with open(os.path.join(self.path, INPUTS), encoding="utf-8", newline="\n") as f:
            return [line[:-1] for line, k in zip(f, keep, strict=True) if k]

    def part_path(self, k: int) -> str:
        return os.path.join(self.path, PARTS, f"{k:08d}.jsonl")


def open_store(path: str | os.PathLike, kind: str | None = None) -> Store:
    """An existing store, checked to be a uvs store (of `kind`, when given)."""
    path = os.fspath(path).rstrip("/")
    zarr = _zarr()
    if not os.path.isdir(path):
        raise UVSError(path, "store not found")
    try:
        attrs = dict(zarr.open_group(path, mode="r").attrs)
    except Exception as err:  # zarr raises several kinds for a folder that is not a group
        raise UVSError(path, f"not a Zarr store ({type(err).__name__})") from None
    meta = attrs.get("uvs")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UVSError(path, "a Zarr store, but not one written by uvs (no uvs attributes)")
    if meta.get("version", 0) > VERSION:
        raise UVSError(path, f"uvs store version {meta['version']} is newer than this uvs "
                       f"reads ({VERSION}); upgrade uvs")
    if kind is not None and meta.get("kind") != kind:
        raise UVSError(path, f"a store of {meta.get('kind')}, not of {kind}")
    return Store(path, meta)


def _copy_inputs(lines: Iterable[str], folder: str, chunk_rows: int) -> tuple[int, str]:
    """inputs.txt and inputs.idx.npy in `folder`: (row count, sha256 of the lines)."""
    import hashlib

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
    zarr = _zarr()
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
