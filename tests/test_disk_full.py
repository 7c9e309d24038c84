"""Out of disk space: every writer names the file it could not write, and leaves nothing."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest
from clirun import one_line_error, run
from models import write_tiny_model

from uvs import fileio, modelfile, regions, runs
from uvs.errors import UVSError


def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def assert_named(err, path) -> None:
    assert str(err.value) == f"{path}: cannot write: No space left on device"


def only(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_npy_and_write_text(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "save", full)
    with pytest.raises(UVSError) as err:
        fileio.save_npy(tmp_path / "a.npy", np.zeros(3))
    assert_named(err, tmp_path / "a.npy")
    monkeypatch.setattr(fileio, "open", lambda *a, **k: full(), raising=False)
    with pytest.raises(UVSError) as err:
        fileio.write_text(tmp_path / "a.txt", "x\n")
    assert_named(err, tmp_path / "a.txt")
    assert only(tmp_path) == []


def test_models_and_regions(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", full)
    path = tmp_path / "r.npz"
    with pytest.raises(UVSError) as err:
        regions.write_regions(str(path), np.ones((1, 2)), [0], [[0, 0, 4, 4]], ["a"])
    assert_named(err, path)
    assert only(tmp_path) == []


def test_a_training_log_names_itself(tmp_path, monkeypatch):
    run_ = runs.Run(str(tmp_path / "m.npz"))
    monkeypatch.setattr(runs.os, "write", full)
    with pytest.raises(UVSError) as err:
        run_.event("update", update=1)
    assert_named(err, tmp_path / "m.log.jsonl")


def test_the_index_writer(tmp_path, monkeypatch):
    pytest.importorskip("faiss")
    from uvs import index

    built = index.build(np.eye(4, dtype="float32"), ["a", "b", "c", "d"], {"kind": "images"})
    real_open = open

    class Full:
        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, data):
            self.n += 1
            if self.n > 6:  # past the header and names: inside faiss's writer
                full()
            return self.f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(index, "open", lambda p, m: Full(real_open(p, m)), raising=False)
    with pytest.raises(UVSError) as err:
        index.save(built, tmp_path / "i.idx")
    assert_named(err, tmp_path / "i.idx")
    assert only(tmp_path) == []


def test_convert_says_which_file(tmp_path, monkeypatch):
    base, *_ = write_tiny_model(tmp_path, layout="order", name="m")
    monkeypatch.setattr(modelfile.np, "savez", full)
    out = tmp_path / "out.npz"
    before = only(tmp_path)
    one_line_error(run("convert", base, "-o", out), f"{out}: cannot write: No space left on device")
    assert only(tmp_path) == before
