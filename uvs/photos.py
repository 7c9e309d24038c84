"""Photos from disk as (H, W, 3) uint8 RGB, whatever their mode, orientation or damage.

Pillow (the `[images]` extra) is imported only when a photo is read; `need` does that for
`uvs.vgg` too.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np

from uvs.errors import UVSError, one_line, os_reason
from uvs.extras import import_from
from uvs.fileio import open_regular

MAX_ASPECT = 32  # a thinner picture would be resized to millions of pixels along one side
# The most pixels a photo may declare (8192 x 8192): checked from its header before decoding,
# below Pillow's own decompression-bomb limit; decoding it takes ~200 MB per copy.
MAX_PIXELS = 2**26


def need(module: str):
    """Import a module of the `[images]` extra, or say how to install it."""

    return import_from("images", module)


# --- decoding -------------------------------------------------------------------------------

@contextlib.contextmanager
def _truncated_ok(allow: bool):
    ImageFile = need("PIL.ImageFile")
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = allow
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def check_photo(path: str | os.PathLike) -> str:
    """`path` if it names a readable regular file, else one line saying why not (asked before
    any optional package is imported, so a typo is not reported as a missing extra)."""
    path = os.fspath(path)
    open_regular(path, "photo").close()  # missing, a folder, a FIFO, unreadable: one line
    return path


def _too_large(path: str, size: tuple) -> UVSError:
    w, h = size
    return UVSError(path, f"{w} x {h} pixels: more than the {MAX_PIXELS} pixels a photo may "
                    "have (refused before decoding)")


def _open(path: str, allow_truncated: bool):
    check_photo(path)
    Image = need("PIL.Image")
    with _truncated_ok(allow_truncated), open_regular(path, "photo") as fh, \
            warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(fh) as img:
                if img.size[0] * img.size[1] > MAX_PIXELS:
                    raise _too_large(path, img.size)
                img.load()
                return img.copy()
        except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
            raise UVSError(path, f"cannot read: {os_reason(err)}") from None
        except Image.UnidentifiedImageError:
            raise UVSError(path, "not an image Pillow can read") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UVSError(path, f"too large to decode safely ({one_line(err)}; at most "
                           f"{MAX_PIXELS} pixels)") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise UVSError(path, f"damaged image ({one_line(err)})") from None


def _to_rgb(img) -> np.ndarray:
    """Any Pillow mode as (H, W, 3) uint8 RGB: 16-bit scaled, alpha over white, CMYK converted."""
    ImageOps = need("PIL.ImageOps")
    Image = need("PIL.Image")
    with contextlib.suppress(Exception):  # a broken EXIF block leaves the photo unrotated
        img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I") or img.mode == "F":
        grey = np.asarray(img).astype(np.float64)
        if img.mode != "F":  # 16-bit integer samples
            grey = grey / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def decode(path: str) -> tuple[np.ndarray, bool]:
    """(pixels, truncated): a truncated file is decoded as far as it goes."""
    try:
        pixels, truncated = _to_rgb(_open(path, allow_truncated=False)), False
    except UVSError as err:
        if "truncated" not in err.problem and "broken data stream" not in err.problem:
            raise
        pixels, truncated = _to_rgb(_open(path, allow_truncated=True)), True
    h, w = pixels.shape[:2]
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise UVSError(path, f"{w} x {h} pixels: too elongated for 224 x 224 crops")
    return pixels, truncated


def load_image(path: str | os.PathLike) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, EXIF-rotated; greyscale, alpha, CMYK, 16-bit handled."""
    return decode(os.fspath(path))[0]
