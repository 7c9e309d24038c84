"""The Zarr stores that batch jobs write, opened and read: rows in input order, a chunk a task.

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

import hashlib
import json
import os
from collections.abc import Iterator

import numpy as np

from uvs.errors import UVSError
from uvs.extras import need_cluster
from uvs.fileio import write_text

FORMAT = "uvs-store"
VERSION = 1
INPUTS = "inputs.txt"
OFFSETS = "inputs.idx.npy"
DONE = "uvs-done"
PARTS = "parts"
OK, SKIPPED, TRUNCATED = 1, 2, 3


def zarr_module():
    """zarr (the `[cluster]` extra), or a one-line UVSError."""
    return need_cluster("zarr", "a .zarr store")


def is_store(path) -> bool:
    """True for a path that names a Zarr store (`*.zarr`)."""
    return str(path).rstrip("/\\").endswith(".zarr")


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
        return zarr_module().open_array(os.path.join(self.path, name), mode="r+")

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
    zarr = zarr_module()
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


def store_digest(path: str | os.PathLike) -> str:
    """sha256 of a complete store's fingerprint (what its rows were computed from)."""
    store = open_store(path)
    store.check_complete()
    return hashlib.sha256(json.dumps(store.meta["fingerprint"], sort_keys=True)
                          .encode()).hexdigest()
