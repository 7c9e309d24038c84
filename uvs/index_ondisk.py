"""IVF indexes whose inverted lists live on disk, for collections beyond one machine's RAM.

The path faiss documents ("Indexes that do not fit in RAM"; `faiss.contrib.ondisk`): train
the IVF quantiser once, add the collection block by block to copies of the empty trained
index (each block written to a file), then merge the blocks' inverted lists into one
`OnDiskInvertedLists` file that is memory-mapped at search time. On disk an index is three
files side by side: INDEX (the uvs header and the names), INDEX.faiss (faiss's index, which
names its lists file) and INDEX.ivfdata (the lists); they can move together.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from uvs.errors import UVSError, one_line
from uvs.fileio import atomic_path

FORMAT_VERSION = 2  # a uvs index file whose faiss part is in INDEX.faiss + INDEX.ivfdata
BLOCK_ROWS = 1_000_000


@contextlib.contextmanager
def _no_c_stdout() -> Iterator[None]:
    """faiss's on-disk lists print notes with C printf; keep them off stdout (JSON goes there)."""
    import ctypes

    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def add_in_blocks(faiss, trained, blocks: Iterator[tuple[int, np.ndarray]],
                  lists_path: str, block_rows: int = BLOCK_ROWS,
                  on_progress: Callable[[int], None] | None = None):
    """`trained` (an empty trained IndexIVF) holding every (first row, vectors) block, its
    inverted lists merged into the file `lists_path`; one block index in memory at a time."""
    folder = tempfile.mkdtemp(prefix=".uvs-blocks.", dir=os.path.dirname(lists_path) or ".")
    try:
        files, part = [], None

        def flush():
            nonlocal part
            if part is not None and part.ntotal:
                files.append(os.path.join(folder, f"block{len(files):06d}.index"))
                faiss.write_index(part, files[-1])
            part = None

        for first, vectors in blocks:
            if part is None:
                part = faiss.clone_index(trained)
            part.add_with_ids(vectors, np.arange(first, first + len(vectors), dtype=np.int64))
            if on_progress:
                on_progress(len(vectors))
            if part.ntotal >= block_rows:
                flush()
        flush()
        lists, keep = [], []
        for name in files:
            block = faiss.read_index(name, faiss.IO_FLAG_MMAP)
            ivf = faiss.extract_index_ivf(block)
            lists.append(ivf.invlists)
            ivf.own_invlists = False  # the lists outlive their index during the merge
            keep.append(block)
        with _no_c_stdout():
            ondisk = faiss.OnDiskInvertedLists(trained.nlist, trained.code_size, lists_path)
            vector = faiss.InvertedListsPtrVector()
            for inv in lists:
                vector.push_back(inv)
            total = ondisk.merge_from_multiple(vector.data(), vector.size(), False)
        trained.ntotal = total
        trained.replace_invlists(ondisk, True)
        ondisk.this.disown()
        return trained
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_parts(faiss, index, path: str, lists_tmp: str) -> dict:
    """INDEX.ivfdata (renamed from `lists_tmp`) and INDEX.faiss beside `path`; the metadata
    that names them."""

    lists = path + ".ivfdata"
    os.replace(lists_tmp, lists)
    faiss.downcast_InvertedLists(index.invlists).filename = os.path.abspath(lists)
    with atomic_path(path + ".faiss") as tmp:
        faiss.write_index(index, tmp)
    return {"faiss_file": os.path.basename(path) + ".faiss",
            "ivfdata_file": os.path.basename(lists)}


def load_parts(faiss, path: str, meta: dict):
    """The faiss index of an on-disk uvs index, its lists memory-mapped from beside `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    index_file = os.path.join(folder, meta["faiss_file"])
    for name in (meta["faiss_file"], meta["ivfdata_file"]):
        if not os.path.isfile(os.path.join(folder, name)):
            raise UVSError(path, f"{name} is missing: an on-disk index is three files side by "
                           "side (INDEX, INDEX.faiss, INDEX.ivfdata)")
    try:
        with _no_c_stdout():
            return faiss.read_index(index_file, faiss.IO_FLAG_ONDISK_SAME_DIR)
    except RuntimeError as err:
        raise UVSError(index_file, f"damaged on-disk index ({one_line(err)})") from None
