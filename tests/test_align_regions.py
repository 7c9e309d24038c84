"""Region features: crops against a direct computation, the regions file, bad boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirun import ok, one_line_error, run

from uvs.errors import UVSError
from uvs.regions import GRID, grid_boxes, match_split, read_regions, write_regions

COLOURS = {"red": (200, 30, 40), "green": (20, 180, 60), "blue": (30, 60, 220)}
# constant rectangles (x0, y0, x1, y1) on a grey photo of 96 x 64 pixels
RECTS = {"red": (0, 0, 40, 30), "green": (40, 30, 96, 64), "blue": (10, 40, 30, 60)}


def _photo():
    pixels = np.full((64, 96, 3), 128, np.uint8)
    for name, (x0, y0, x1, y1) in RECTS.items():
        pixels[y0:y1, x0:x1] = COLOURS[name]
    return pixels


def _direct(net, colour):
    """fc7 of a 224 x 224 photo of one colour, computed from scratch (Caffe preprocessing)."""
    import torch

    x = torch.tensor(colour, dtype=torch.float32)[[2, 1, 0]]  # BGR
    x = x - torch.tensor([103.939, 116.779, 123.68])
    x = x.view(1, 3, 1, 1).expand(1, 3, 224, 224).contiguous()
    with torch.inference_mode():
        out = net.module(x).numpy()[0].astype(np.float64)
    return out / np.linalg.norm(out)


@pytest.fixture
def photos(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    paths = []
    for name in ("a.png", "b.png"):
        Image.fromarray(_photo()).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    return paths


def test_box_crops_match_direct_computation(net):
    from uvs.vgg import box_features

    got = box_features(net, _photo(), [RECTS[c] for c in COLOURS])
    for row, colour in zip(got, COLOURS.values(), strict=True):
        np.testing.assert_allclose(row, _direct(net, colour), rtol=1e-4, atol=1e-5)
    # a different colour gives a different feature, so the test can fail
    assert np.abs(got[0] - got[1]).max() > 1e-3


def test_features_regions_file_and_bad_boxes(net, photos, tmp_path):
    boxes = tmp_path / "boxes.jsonl"
    a, b = photos
    boxes.write_text(
        json.dumps({"path": a, "boxes": [list(RECTS["red"]), [0, 0, 200, 10],
                                         list(RECTS["blue"])]}) + "\n"
        + json.dumps({"path": b, "boxes": [[5, 5, 5, 20], list(RECTS["green"])]}) + "\n"
        + '{"path": "' + b + '", "boxes": [[NaN, 0, 4, 4]]}\n')
    out = tmp_path / "r.npz"
    res = ok(run("features", "--regions", boxes, "-o", out, "--weights", net.weights, "-q"))
    assert f"skipped {a} box 1: box [0, 0, 200, 10] lies outside the 96 x 64 image" in res.stderr
    assert f"skipped {b} box 0" in res.stderr and "is empty" in res.stderr
    assert "holds NaN or Inf" in res.stderr
    r = read_regions(str(out))
    assert r.paths == [a, b, b]
    assert list(r.image) == [0, 0, 0, 1, 1, 2]
    np.testing.assert_array_equal(r.boxes[0], [0, 0, 96, 64])  # whole image first
    np.testing.assert_array_equal(r.boxes[1], RECTS["red"])
    np.testing.assert_allclose(r.features[1], _direct(net, COLOURS["red"]), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(r.features[2], _direct(net, COLOURS["blue"]), rtol=1e-4,
                               atol=1e-5)
    with np.load(out, allow_pickle=False) as z:  # no pickle anywhere in the file
        assert sorted(z.files) == ["boxes", "features", "image", "paths"]
    one_line_error(run("features", "--regions", boxes, "-o", tmp_path / "s.npz", "--weights",
                       net.weights, "--strict", "-q"), a, "box 1", "outside")


def test_grid_default_is_19_boxes_plus_whole_image(net, photos, tmp_path):
    out = tmp_path / "g.npz"
    res = ok(run("features", *photos, "--regions", "grid", "-o", out, "--weights",
                 net.weights, "--json", "-q"))
    assert json.loads(res.stdout)["rows"] == 40
    r = read_regions(str(out))
    assert len(GRID) == 19 and list(np.bincount(r.image)) == [20, 20]
    np.testing.assert_allclose(r.boxes[1:20], grid_boxes(96, 64))
    assert grid_boxes(96, 64)[0] == [0, 0, 32, 64 / 3]


def test_detector_without_cached_weights_says_where(net, photos, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    one_line_error(run("features", *photos, "--regions", "detector", "-o", tmp_path / "d.npz",
                       "--weights", net.weights, "-q"),
                   str(tmp_path / "torch"), "Faster R-CNN weights", "https://")
    assert not (tmp_path / "d.npz").exists()


def test_regions_file_checks_and_matching(tmp_path):
    path = str(tmp_path / "r.npz")
    f = np.ones((5, 3), np.float32)
    boxes = np.tile(np.float32([0, 0, 8, 6]), (5, 1))
    write_regions(path, f, np.array([0, 0, 1, 2, 2]), boxes, ["x", "y", "z"])
    r = read_regions(path)
    assert len(r) == 3 and list(r.offsets) == [0, 2, 3, 5]
    m = match_split(r, 3, ["dir/z", "x", "y"], "the dev split")
    assert m.paths == ["z", "x", "y"] and list(m.image) == [0, 0, 1, 1, 2]
    assert match_split(r, 3, None, "dev") is r
    with pytest.raises(UVSError, match="3 photos, but the test split has 4"):
        match_split(r, 4, None, "the test split")
    with pytest.raises(UVSError, match="'w' of dev is not in the regions file"):
        match_split(r, 3, ["x", "w", "y"], "dev")  # names decide, not the count
    write_regions(path, f, np.array([0, 0, 2, 2, 2]), boxes, ["x", "y", "z"])
    with pytest.raises(UVSError, match=r"photo 1 \(y\) has no region"):
        read_regions(path)
    np.save(tmp_path / "one.npy", f)
    np.savez(tmp_path / "other.npz", features=f)
    with pytest.raises(UVSError, match="no image, boxes, paths"):
        read_regions(str(tmp_path / "other.npz"))
