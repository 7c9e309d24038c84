"""Region feature files: boxes per photo, and the `.npz` that holds their CNN features.

A regions file is one `.npz` (no pickle) with
  features (rows, dim) float32   VGG-19 fc7 of each box's crop warped to 224 x 224, unit rows
  image    (rows,) int64         the photo each row belongs to, 0, 0, ..., 1, ... (sorted)
  boxes    (rows, 4) float32     x0, y0, x1, y1 in pixels; each photo's first row is the
                                 whole image
  paths    (images,) str         the photos, in order
Boxes come from a JSON-lines file (one {"path": ..., "boxes": [[x0, y0, x1, y1], ...]} per
photo), from `grid` (GRID below) or from torchvision's Faster R-CNN (`detector`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from uvs.errors import UVSError, os_reason
from uvs.fileio import atomic_path, open_regular
from uvs.modelfile import Archive, shown
from uvs.photos import MAX_PIXELS

DEFAULT_BOXES = 19  # the paper: the top 19 detections, plus the whole image
# The fixed `grid` boxes, as fractions (x0, y0, x1, y1) of the photo: the 9 cells of a 3 x 3
# grid, the 4 quadrants, the 4 halves (top, bottom, left, right), the centre half and the
# centre three quarters.
GRID = ([(i / 3, j / 3, (i + 1) / 3, (j + 1) / 3) for j in range(3) for i in range(3)]
        + [(i / 2, j / 2, (i + 1) / 2, (j + 1) / 2) for j in range(2) for i in range(2)]
        + [(0, 0, 1, 0.5), (0, 0.5, 1, 1), (0, 0, 0.5, 1), (0.5, 0, 1, 1)]
        + [(0.25, 0.25, 0.75, 0.75), (0.125, 0.125, 0.875, 0.875)])
KEYS = ("features", "image", "boxes", "paths")


@dataclass
class Regions:
    """A regions file in memory; `offsets[k]:offsets[k + 1]` are photo k's rows."""

    features: np.ndarray
    image: np.ndarray
    boxes: np.ndarray
    paths: list[str]
    path: str = ""

    @property
    def offsets(self) -> np.ndarray:
        return np.searchsorted(self.image, np.arange(len(self.paths) + 1))

    def __len__(self) -> int:
        return len(self.paths)

    def of(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(features (R, dim), boxes (R, 4)) of photo k."""
        a, b = self.offsets[k:k + 2]
        return self.features[a:b], self.boxes[a:b]

    def subset(self, order: np.ndarray) -> Regions:
        """The photos `order` (indices), in that order."""
        off = self.offsets
        rows = np.concatenate([np.arange(off[k], off[k + 1]) for k in order])
        counts = off[np.asarray(order) + 1] - off[np.asarray(order)]
        image = np.repeat(np.arange(len(order)), counts)
        return Regions(self.features[rows], image, self.boxes[rows],
                       [self.paths[k] for k in order], self.path)


def grid_boxes(width: int, height: int, count: int = DEFAULT_BOXES) -> list[list[float]]:
    """The first `count` GRID boxes in pixels for a width x height photo."""
    return [[x0 * width, y0 * height, x1 * width, y1 * height]
            for x0, y0, x1, y1 in GRID[:count]]


MAX_COORD = 2.0**20  # a box coordinate in pixels beyond this is not from a photo
MAX_BOX_FILE = 256 * 2**20  # bytes of a BOXES.jsonl
MAX_JSON_NUMBER = 40  # characters of one number in BOXES.jsonl


def box_problem(box, width: int, height: int) -> str | None:
    """Why a box cannot be cropped from a width x height photo, or None."""
    if not isinstance(box, (list, tuple)) or len(box) != 4 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in box):
        return "is not four numbers [x0, y0, x1, y1]"
    if not all(math.isfinite(v) for v in box):
        return "holds NaN or Inf"
    if not all(abs(v) <= MAX_COORD for v in box):
        return "holds a coordinate beyond 2**20"
    x0, y0, x1, y1 = box
    if x1 - x0 < 1 or y1 - y0 < 1:
        return "is empty (needs x1 - x0 >= 1 and y1 - y0 >= 1)"
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return f"lies outside the {width} x {height} image"
    return None


def _json_number(kind: type):
    """A parser of BOXES.jsonl's numbers that refuses one written longer than MAX_JSON_NUMBER
    characters (before Python converts 5000 digits)."""
    def parse(text: str):
        if len(text) > MAX_JSON_NUMBER:
            raise ValueError(f"a number of {len(text)} characters")
        return kind(text)
    return parse


def read_box_list(path: str) -> list[tuple[str, list]]:
    """[(photo path, boxes)] from a JSON-lines file; a line that is not one is an error."""

    try:
        with open_regular(path, "boxes file") as f:
            raw = f.read(MAX_BOX_FILE + 1)
    except OSError as err:
        raise UVSError(path, f"cannot read ({os_reason(err)})") from None
    if len(raw) > MAX_BOX_FILE:
        raise UVSError(path, f"more than {MAX_BOX_FILE} bytes: not a boxes file")
    try:
        lines = raw.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise UVSError(path, "not UTF-8 text") from None
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_int=_json_number(int),
                             parse_float=_json_number(float))
        except json.JSONDecodeError as err:
            raise UVSError(path, f"line {n} is not JSON ({err.msg})") from None
        except RecursionError:
            raise UVSError(path, f"line {n} is nested too deeply") from None
        except ValueError as err:
            raise UVSError(path, f"line {n}: {err}") from None
        if (not isinstance(obj, dict) or not isinstance(obj.get("path"), str)
                or not isinstance(obj.get("boxes"), list)):
            raise UVSError(path, f'line {n}: expected {{"path": "...", "boxes": [[x0, y0, '
                           'x1, y1], ...]}')
        out.append((obj["path"], obj["boxes"]))
    if not out:
        raise UVSError(path, "no photos listed")
    return out


def write_regions(path: str, features: np.ndarray, image: np.ndarray, boxes: np.ndarray,
                  paths: list[str]) -> None:
    """One `.npz`, atomically."""
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, features=np.asarray(features, np.float32),
                 image=np.asarray(image, np.int64), boxes=np.asarray(boxes, np.float32),
                 paths=np.array(paths, dtype=str))


def read_regions(path: str) -> Regions:
    """A regions file, checked: every header (shape, type, size; no zip bomb) before any data
    is read, then shapes agree, rows sorted by photo, every photo has a row, boxes sane."""

    if not os.path.lexists(path):
        raise UVSError(path, "regions file not found")
    with Archive(path, not_npz="not a regions .npz (made by `uvs features --regions`?)") as z:
        missing = [k for k in KEYS if k not in z.members]
        if missing:
            raise UVSError(path, f"not a regions file: no {', '.join(missing)} (made by "
                           "`uvs features --regions`?)")
        m = {k: z.members[k] for k in KEYS}
        f_shape = m["features"].shape
        if len(f_shape) != 2 or m["features"].dtype.kind != "f":
            raise UVSError(path, f"features must be a 2-D float array, not "
                           f"{m['features'].dtype} {f_shape}")
        rows = f_shape[0]
        if m["image"].shape != (rows,) or m["image"].dtype.kind not in "iu":
            raise UVSError(path, f"image must be {rows} integers, one per row")
        if m["boxes"].shape != (rows, 4) or m["boxes"].dtype.kind not in "iuf":
            raise UVSError(path, f"boxes must be ({rows}, 4) numbers, not "
                           f"{m['boxes'].dtype} {m['boxes'].shape}")
        if len(m["paths"].shape) != 1 or m["paths"].dtype.kind != "U":
            raise UVSError(path, "paths must be a 1-D array of strings")
        f, im, bx, paths = (z.read(k) for k in KEYS)
    n = len(paths)
    if len(f) and (np.any(np.diff(im) < 0) or im[0] < 0 or im[-1] >= n):
        raise UVSError(path, f"image indices must be sorted and within 0..{n - 1}")
    counts = np.bincount(im.astype(np.int64), minlength=n)[:n] if len(f) else np.zeros(n, int)
    if np.any(counts == 0):
        k = int(np.argmin(counts))
        raise UVSError(path, f"photo {k} ({shown(paths[k])}) has no region")
    bad = ~np.isfinite(f).all(axis=1)
    if bad.any():
        raise UVSError(path, f"row {int(np.argmax(bad))} holds NaN or Inf")

    bx = bx.astype(np.float64)
    with np.errstate(all="ignore"):
        wrong = ~(np.isfinite(bx).all(axis=1) & (bx >= 0).all(axis=1)
                  & (bx[:, 2] - bx[:, 0] >= 1) & (bx[:, 3] - bx[:, 1] >= 1)
                  & (bx[:, 2] * bx[:, 3] <= MAX_PIXELS))
    if wrong.any():
        r = int(np.argmax(wrong))
        raise UVSError(path, f"box of row {r} {bx[r].tolist()} is not x0, y0, x1, y1 pixels "
                       f"inside a photo of at most {MAX_PIXELS} pixels")
    return Regions(f.astype(np.float32, copy=False), im.astype(np.int64),
                   bx.astype(np.float32), [str(p) for p in paths], path)


def match_split(regions: Regions, n_images: int, names: list[str] | None,
                what: str) -> Regions:
    """The regions of a split's `n_images` photos, in the split's order.

    By path (or file name) when the split names its photos (`names`): every one must be in
    the file. By row order when it does not: the counts must agree. Otherwise a one-line error.
    """
    if names is not None:
        if len(names) != n_images:
            raise UVSError(regions.path, f"{what} names {len(names)} photos for {n_images} "
                           "images")
        index = {p: k for k, p in enumerate(regions.paths)}
        base = {os.path.basename(p): k for k, p in enumerate(regions.paths)}
        found = [index.get(p, base.get(os.path.basename(p))) for p in names]
        if None in found:
            missing = names[found.index(None)]
            raise UVSError(regions.path, f"photo {missing!r} of {what} is not in the regions "
                           f"file ({found.count(None)} of {n_images} missing)")
        return regions.subset(np.array(found))
    if len(regions) != n_images:
        raise UVSError(regions.path, f"{len(regions)} photos, but {what} has {n_images}: "
                       "regions are matched by path or row order")
    return regions
