"""Hostile region inputs: regions .npz (zip bomb, forged header, bad boxes), BOXES.jsonl
(huge numbers, deep nesting, FIFOs), each refused in one line before memory or time runs out."""

from __future__ import annotations

import io
import os
import struct
import zipfile

import numpy as np
import pytest
from clirun import one_line_error, run
from hang import no_hang

from uvs import modelfile
from uvs.align.model import init_params
from uvs.errors import UVSError
from uvs.modelfile import write_model
from uvs.regions import read_box_list, read_regions, write_regions

WORDS = ["a", "dog", "runs", "on", "the", "beach"]
OPTIONS = {"n_words": 9, "dim_word": 4, "dim": 5, "dim_image": 6, "margin": 1.0}


@pytest.fixture
def align_model(tmp_path):
    path = str(tmp_path / "al.npz")
    write_model(path, init_params(OPTIONS, rng=np.random.RandomState(0)), OPTIONS,
                {w: i + 2 for i, w in enumerate(WORDS)}, extra_meta={"kind": "align"})
    return path


def good_arrays(rows: int = 3):
    return {"features": np.ones((rows, 6), np.float32), "image": np.arange(rows),
            "boxes": np.tile(np.array([0, 0, 50, 40], np.float32), (rows, 1)),
            "paths": np.array([f"p{i}.jpg" for i in range(rows)])}


def npy_bytes(array=None, header=None, data=b"") -> bytes:
    if header is None:
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()
    text = repr(header).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    head = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + data


def write_zip(path, members: dict, compress=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, data in members.items():
            z.writestr(name + ".npy", data)
    return str(path)


def refused(path: str, *fragments: str) -> str:
    with no_hang(), pytest.raises(UVSError) as info:
        read_regions(path)
    message = str(info.value)
    assert message.startswith(path + ": ") and "\n" not in message and message.isprintable()
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_good_regions_still_read(tmp_path):
    path = str(tmp_path / "r.npz")
    a = good_arrays()
    write_regions(path, a["features"], a["image"], a["boxes"], list(a["paths"]))
    r = read_regions(path)
    assert r.paths == ["p0.jpg", "p1.jpg", "p2.jpg"] and r.boxes.shape == (3, 4)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    # 8 MiB of zeros deflate to ~8 KiB; with the free allowance at 1 MiB this is a bomb, as a
    # 7.6 MB file inflating to 8 GB is with the real one (256 MiB)
    monkeypatch.setattr(modelfile, "DEFLATED_FREE_BYTES", 2**20)
    members = {k: npy_bytes(v) for k, v in good_arrays().items()}
    members["features"] = npy_bytes(np.zeros((2**19, 4), np.float32))
    members["image"] = npy_bytes(np.zeros(2**19, np.int64))
    members["boxes"] = npy_bytes(np.tile(np.float32([0, 0, 5, 5]), (2**19, 1)))
    path = write_zip(tmp_path / "bomb.npz", members, zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 200_000
    refused(path, "compressed members expand to", "a zip bomb?")


def test_compressed_regions_within_the_ratio_are_read(tmp_path):
    a = good_arrays()
    np.savez_compressed(tmp_path / "c.npz", **a)
    assert len(read_regions(str(tmp_path / "c.npz"))) == 3


def test_a_header_declaring_931_tib(tmp_path, align_model, sample_data):
    members = {k: npy_bytes(v) for k, v in good_arrays().items()}
    members["features"] = npy_bytes(header={"descr": "<f4", "fortran_order": False,
                                            "shape": (2**38, 1000)}, data=b"\0" * 64)
    path = write_zip(tmp_path / "huge.npz", members)
    refused(path, "declares shape (274877906944, 1000) of float32")
    one_line_error(run("align", "show", align_model, "--regions", path, "--text", "a dog",
                       "--json"), path, "declares shape")
    one_line_error(run("evalrank", align_model, "--regions", path, "--data", "sample",
                       "--data-dir", sample_data), path, "declares shape")


@pytest.mark.parametrize(("box", "fragment"), [
    ([np.nan, 0, 5, 5], "box of row 1"),
    ([0, 0, 3e38, 3e38], "inside a photo of at most"),
    ([-5, 0, 5, 5], "box of row 1"),
    ([0, 0, 0.5, 5], "box of row 1"),
])
def test_bad_boxes_in_a_regions_file(tmp_path, align_model, box, fragment):
    a = good_arrays()
    a["boxes"][1] = box
    path = str(tmp_path / "r.npz")
    np.savez(path, **a)
    refused(path, fragment)
    out = tmp_path / "out.png"
    one_line_error(run("align", "show", align_model, "--regions", path, "--row", 1,
                       "--text", "a dog", "-o", out), path, fragment)
    assert not out.exists()


def test_string_boxes_in_a_regions_file(tmp_path):
    a = good_arrays()
    a["boxes"] = np.array([["0", "0", "5", "5"]] * 3)
    np.savez(tmp_path / "s.npz", **a)
    refused(str(tmp_path / "s.npz"), "boxes must be (3, 4) numbers, not <U1")


def test_a_fifo_as_regions_file(tmp_path):
    fifo = str(tmp_path / "r.npz")
    os.mkfifo(fifo)
    refused(fifo, "a FIFO, not a regular file")


# --------------------------------------------------------------------------- BOXES.jsonl
def boxes_file(tmp_path, text: str) -> str:
    path = tmp_path / "boxes.jsonl"
    path.write_text(text, encoding="utf-8")
    return str(path)


LINE = '{"path": "a.png", "boxes": [[0, 0, %s, 5]]}'


@pytest.mark.parametrize(("line", "fragment"), [
    (LINE % ("1" + "0" * 400), "line 2: a number of 401 characters"),
    (LINE % ("1" + "0" * 5000), "line 2: a number of 5001 characters"),
    (LINE % ("1e" + "9" * 50), "line 2: a number of 52 characters"),
    ("[" * 100_000 + "]" * 100_000, "line 2 is nested too deeply"),
])
def test_hostile_box_lines(tmp_path, line, fragment):
    path = boxes_file(tmp_path, '{"path": "b.png", "boxes": []}\n' + line + "\n")
    with no_hang(), pytest.raises(UVSError) as info:
        read_box_list(path)
    assert str(info.value).startswith(path + ": ") and fragment in str(info.value)


def test_hostile_box_lines_through_the_cli(tmp_path):
    path = boxes_file(tmp_path, "[" * 100_000 + "]" * 100_000 + "\n")
    out = tmp_path / "r.npz"
    one_line_error(run("features", "--regions", path, "-o", out, "-q"), path,
                   "nested too deeply")
    assert not out.exists()


def test_a_fifo_as_boxes_file_or_photo(tmp_path):
    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    with pytest.raises(UVSError, match="a FIFO, not a regular file"):
        read_box_list(fifo)
    pytest.importorskip("PIL.Image")
    from uvs.photos import load_image

    with pytest.raises(UVSError, match="pipe: a FIFO, not a regular file"):
        load_image(fifo)


def test_huge_box_numbers_are_not_boxes(tmp_path):
    from uvs.regions import box_problem

    assert "beyond 2**20" in box_problem([0, 0, 10**30, 5], 10, 10)
    assert box_problem([0, 0, 5, 5], 10, 10) is None


def test_fifos_are_refused_wherever_a_file_is_read(tmp_path):
    from uvs.datasets import open_features, read_captions
    from uvs.fileio import read_lines
    from uvs.legacy import load_pickle
    from uvs.modelfile import read_model

    fifo = str(tmp_path / "pipe")
    os.mkfifo(fifo)
    for reader in (read_captions, open_features, read_lines, load_pickle, read_model):
        with no_hang(what=reader.__name__), \
                pytest.raises(UVSError, match="a FIFO, not a regular file"):
            reader(fifo)
