"""Hostile photos and photo lists: a tiny PNG declaring a huge picture, names that a list of
lines cannot hold, FEATS.paths.txt that is not UTF-8, FIFOs where photos should be."""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from hang import no_hang
from models import write_tiny_model
from vggfixtures import DENSE

from uvs.errors import UVSError

pytest.importorskip("PIL")


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("size", "fragment"), [
    ((13000, 13000), "too large to decode safely"),
    ((9000, 9000), "9000 x 9000 pixels: more than the 67108864 pixels"),
])
def test_a_tiny_png_declaring_a_huge_picture(tmp_path, size, fragment):
    from uvs.photos import load_image

    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(*size))
    assert len(path.read_bytes()) < 100
    with no_hang(), pytest.raises(UVSError) as err:
        load_image(path)
    assert str(err.value).startswith(f"{path}: ") and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_features_refuses_the_bomb_in_one_line(tmp_path, net):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(13000, 13000))
    out = tmp_path / "f.npy"
    one_line_error(run("features", path, "-o", out, "--weights", net.weights, "--strict", "-q"),
                   str(path), "too large to decode safely")
    assert not out.exists()


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x0b", "\x0c", "\x85", "\x1c", "\r"])
def test_names_a_list_of_lines_cannot_hold(tmp_path, sep):
    out = tmp_path / "f.npy"
    res = run("features", f"a{sep}b.png", "-o", out, "-q")
    one_line_error(res, "a path with a line break or separator")
    assert res.stderr.isprintable() or res.stderr.endswith("\n")
    assert not out.exists() and not (tmp_path / "f.paths.txt").exists()


def test_paths_file_is_read_as_written(tmp_path):
    from uvs.features import read_image_features

    feats = tmp_path / "f.npy"
    np.save(feats, np.ones((2, 3), np.float32))
    (tmp_path / "f.paths.txt").write_text("a b.png\nc\u00e9.png\n", encoding="utf-8")
    assert read_image_features(str(feats))[1] == ["a b.png", "c\u00e9.png"]


@pytest.fixture
def feats_not_utf8(tmp_path):
    feats = tmp_path / "f.npy"
    np.save(feats, np.ones((2, DENSE[1]), np.float32))
    listing = tmp_path / "f.paths.txt"
    listing.write_bytes(b"a.png\n\xff\xfe.png\n")
    return feats, listing


def test_search_images_with_a_paths_file_not_utf8(tmp_path, feats_not_utf8):
    feats, listing = feats_not_utf8
    model, *_ = write_tiny_model(tmp_path, "uvs", dim_image=DENSE[1])
    one_line_error(run("search", model, "--text", "a dog", "--images", feats), str(listing),
                   "line 2 is not UTF-8 text")


def test_caption_image_features_with_a_paths_file_not_utf8(tmp_path, feats_not_utf8):
    from test_decoding_files import write_released

    from uvs.decoding.files import read_decoder, write_decoder

    feats, listing = feats_not_utf8
    npz, dictionary, _ = write_released(tmp_path)
    mf = read_decoder(npz, dictionary)
    path = str(tmp_path / "dec.npz")
    write_decoder(path, mf.params, {**mf.options, "condition": "features"}, mf.worddict)
    np.save(feats, np.ones((2, 6), np.float32))
    one_line_error(run("caption", path, "--image-features", feats), str(listing),
                   "line 2 is not UTF-8 text")


def test_a_fifo_named_in_boxes_is_skipped_at_once(tmp_path, net):
    from PIL import Image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 60, 3), 120, np.uint8)).save(good)
    boxes = tmp_path / "boxes.jsonl"
    boxes.write_text(json.dumps({"path": str(fifo), "boxes": []}) + "\n"
                     + json.dumps({"path": str(good), "boxes": [[0, 0, 30, 20]]}) + "\n")
    out = tmp_path / "r.npz"
    with no_hang():
        res = ok(run("features", "--regions", boxes, "-o", out, "--weights", net.weights, "-q",
                     "--json"))
    skipped = json.loads(res.stdout)["skipped"]
    assert skipped == [{"path": str(fifo), "box": None,
                        "problem": "a FIFO, not a regular file: refusing to read it"}]
    one_line_error(run("features", "--regions", boxes, "-o", tmp_path / "s.npz", "--weights",
                       net.weights, "--strict", "-q"), str(fifo), "a FIFO, not a regular file")
    assert not (tmp_path / "s.npz").exists()
