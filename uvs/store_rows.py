"""A complete store's result rows, read lazily chunk by chunk, sliced like a 2-D array."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from uvs.errors import UVSError
from uvs.stores import OK, TRUNCATED, Store, open_store


class StoreRows:
    """The rows of one array of a store that hold a result (skipped inputs left out).

    Behaves as a read-only (n, width) float32 array for `len`, `shape`, integer and slice
    indexing and `np.asarray` (which reads everything); `blocks()` reads chunk by chunk.
    """

    ndim = 2
    dtype = np.dtype("float32")

    def __init__(self, store: Store, name: str | None = None):
        store.check_complete()
        name = name or next(iter(store.meta["arrays"]))
        self.store = store
        self.path = store.path
        self._arr = store.array(name)
        status = store.status()
        keep = (status == OK) | (status == TRUNCATED)
        self._index = None if keep.all() else np.flatnonzero(keep)
        self.status = status
        self.shape = (int(keep.sum()), int(self._arr.shape[1]))

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        out = self[0:len(self)]
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            rows = self[key[0]]
            return rows[(slice(None), *key[1:])] if rows.ndim == 2 else rows[key[1:]]
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= k < len(self):
                raise IndexError(f"row {key} out of range for {len(self)} rows")
            return self[k:k + 1][0]
        if not isinstance(key, slice):
            return self.take(np.asarray(key))
        start, stop, step = key.indices(len(self))
        if step != 1:
            return self.take(np.arange(start, stop, step))
        if self._index is None:
            return np.asarray(self._arr[start:stop], dtype=np.float32)
        rows = self._index[start:stop]
        if len(rows) == 0:
            return np.zeros((0, self.shape[1]), np.float32)
        block = self._arr[int(rows[0]):int(rows[-1]) + 1]
        return np.asarray(block[rows - rows[0]], dtype=np.float32)

    def take(self, which: np.ndarray) -> np.ndarray:
        """Rows `which` (ints, any order), read one store chunk at a time."""
        which = np.asarray(which, dtype=np.int64)
        out = np.zeros((len(which), self.shape[1]), np.float32)
        stored = which if self._index is None else self._index[which]
        chunk = self.store.chunk_rows
        order = np.argsort(stored, kind="stable")
        for k in np.unique(stored // chunk):
            sel = order[(stored[order] // chunk) == k]
            a, b = self.store.chunk_range(int(k))
            out[sel] = np.asarray(self._arr[a:b])[stored[sel] - a]
        return out

    def blocks(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) for each store chunk in order, skipped rows left out."""
        first = 0
        for k in range(self.store.chunks):
            a, b = self.store.chunk_range(k)
            block = np.asarray(self._arr[a:b], dtype=np.float32)
            if self._index is not None:
                st = self.status[a:b]
                block = block[(st == OK) | (st == TRUNCATED)]
            if len(block):
                yield first, block
                first += len(block)


def open_rows(path: str, kinds: tuple[str, ...] = ("features",)) -> tuple[StoreRows, list[str]]:
    """A complete store's rows and their names (the inputs that gave them)."""
    store = open_store(path)
    if store.meta["kind"] not in kinds:
        raise UVSError(path, f"a store of {store.meta['kind']}; {' or '.join(kinds)} expected")
    rows = StoreRows(store)
    return rows, store.names(rows.status)

