"""What the report's gallery shows: names of images, their thumbnails, and each query's list.

An image is named by a line of a `.paths.txt` (as `uvs features` writes beside FEATS.npy):
when the line is the path of a photo that exists, the photo is embedded as a small JPEG
thumbnail (a data URI, so the page does not depend on the photo staying where it was);
otherwise the line itself (a scene name, say) stands for the image, or its row number.
"""

from __future__ import annotations

import base64
import io
import os

import numpy as np

from uvs.errors import UVSError
from uvs.fileio import read_lines
from uvs.photos import decode
from uvs.queries import QueryResults
from uvs.report import need

THUMB = 160  # pixels on the longer side
SHOWN = 5  # results shown per query


def read_names(path: str, n_images: int) -> list[str]:
    """One name per image from a UTF-8 list of n_images lines (or 5 per image: every 5th)."""
    names = read_lines(path)
    if len(names) == 5 * n_images:
        names = names[::5]
    if len(names) != n_images:
        raise UVSError(path, f"{len(names)} names for {n_images} images (expected one a line)")
    return names


def split_names_file(ims_path: str, data: str, split: str) -> str | None:
    """The list naming a data split's images, if there is one: FEATS.paths.txt beside its
    features, else `NAME_{split}_photos.paths.txt` in the data set's folder (the sample's)."""
    base = ims_path[:-4] if ims_path.endswith(".npy") else ims_path
    folder = os.path.dirname(ims_path)
    for candidate in (base + ".paths.txt",
                      os.path.join(folder, f"{data}_{split}_photos.paths.txt")):
        if os.path.isfile(candidate):
            return candidate
    return None


def photo_file(name: str, folder: str) -> str | None:
    """The photo a name stands for, if it is a file: as given, or relative to `folder`."""
    for candidate in (name, os.path.join(folder, name)):
        if os.path.isfile(candidate):
            return candidate
    return None


def thumbnail(path: str, size: int = THUMB) -> str | None:
    """A JPEG data URI of the photo at most `size` pixels wide or high; None if unreadable."""
    Image = need("PIL.Image")
    try:
        pixels, _ = decode(path)
    except UVSError:
        return None
    img = Image.fromarray(pixels)
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Images:
    """The gallery's images: a label each, and a thumbnail for those that are photos."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.thumbs: list[str] = []
        self._thumb_of: dict[str, int] = {}

    def add(self, label: str, photo: str | None = None) -> int:
        """Append an image labelled `label` (a photo file if `photo`); returns its index."""
        thumb = -1
        if photo is not None:
            key = os.path.realpath(photo)
            if key not in self._thumb_of:
                uri = thumbnail(photo)
                self._thumb_of[key] = len(self.thumbs) if uri else -1
                if uri:
                    self.thumbs.append(uri)
            thumb = self._thumb_of[key]
        self.items.append({"label": label, "thumb": thumb})
        return len(self.items) - 1

    def add_named(self, names: list[str] | None, count: int, folder: str = ".",
                  on_progress=None) -> None:
        """`count` images named by `names` (photo files relative to `folder`), else `#row`."""
        for i in range(count):
            if names is None:
                self.add(f"#{i}")
            else:
                self.add(names[i], photo_file(names[i], folder))
            if on_progress:
                on_progress(1)


def _rounded(a: np.ndarray) -> list:
    return np.round(np.asarray(a, np.float64), 4).tolist()


def evaluation_gallery(queries: QueryResults, captions: list[str], images: Images,
                       shown: int = SHOWN) -> dict:
    """Gallery data of an evaluation: every query both ways, with ranks and ground truth."""
    n = len(images.items)
    return {
        "images": images.items, "thumbs": images.thumbs, "captions": list(captions),
        "directions": [
            {"key": "i2t", "title": "image → text", "query_kind": "image",
             "result_kind": "caption", "rank": queries.i2t_ranks.tolist(),
             "gt": queries.i2t_gt.tolist(), "top": queries.i2t_top[:, :shown].tolist(),
             "score": _rounded(queries.i2t_scores[:, :shown])},
            {"key": "t2i", "title": "text → image", "query_kind": "caption",
             "result_kind": "image", "rank": queries.t2i_ranks.tolist(),
             "gt": (np.arange(5 * n) // 5).tolist(),
             "top": queries.t2i_top[:, :shown].tolist(),
             "score": _rounded(queries.t2i_scores[:, :shown])},
        ]}


def search_gallery(query_kind: str, query: str | int, result_kind: str, rows: list[int],
                   scores: list[float], images: Images, captions: list[str]) -> dict:
    """Gallery data of one search: the query (an index into images or captions) and its hits."""
    return {
        "images": images.items, "thumbs": images.thumbs, "captions": captions,
        "directions": [
            {"key": "search", "title": "search", "query_kind": query_kind,
             "result_kind": result_kind, "query": [query], "rank": None, "gt": None,
             "top": [list(map(int, rows))], "score": [_rounded(scores)]}]}
