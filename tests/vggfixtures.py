"""Test material for photo features: a narrow VGG-19 as a Python-2 Lasagne pickle, and image
files of every awkward kind."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from py2pickle import dumps_py2

WIDTHS = (4, 4, 8, 8, 8)  # conv channels per block (VGG-19 has 64, 128, 256, 512, 512)
DENSE = (16, 12, 10)  # fc6, fc7, fc8 (VGG-19 has 4096, 4096, 1000)
BLOCKS = (2, 2, 4, 4, 4)


def narrow_vgg_values(seed: int = 0) -> list[np.ndarray]:
    """Lasagne's 'param values' for a narrow VGG-19: conv (out, in, 3, 3), dense (in, out)."""
    rng = np.random.default_rng(seed)
    values, cin = [], 3
    for width, n in zip(WIDTHS, BLOCKS, strict=True):
        for _ in range(n):
            scale = np.sqrt(2.0 / (cin * 9))
            values += [(rng.standard_normal((width, cin, 3, 3)) * scale).astype(np.float32),
                       (rng.standard_normal(width) * 0.1).astype(np.float32)]
            cin = width
    nin = cin * 49
    for nout in DENSE:
        values += [(rng.standard_normal((nin, nout)) * np.sqrt(2.0 / nin)).astype(np.float32),
                   (rng.standard_normal(nout) * 0.1 + 0.05).astype(np.float32)]
        nin = nout
    return values


def write_lasagne_vgg(path: str | os.PathLike, seed: int = 0) -> list[np.ndarray]:
    """A narrow `vgg19.pkl` in the Lasagne recipe's layout; returns its param values."""
    values = narrow_vgg_values(seed)
    blob = {"param values": values,
            "mean value": np.array([103.939, 116.779, 123.68], np.float32),
            "synset words": [f"class {i}" for i in range(DENSE[-1])]}
    with open(path, "wb") as f:
        f.write(dumps_py2(blob, protocol=2))
    return values


# --- photos of every awkward kind -----------------------------------------------------------

def _png16_rgb(path: str, pixels: np.ndarray) -> None:
    """A 48-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def photo(h: int = 40, w: int = 60, seed: int = 0) -> np.ndarray:
    """A smooth random photo: (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [np.sin(6 * x * rng.random() + 4 * y * rng.random() + rng.random() * 6)
              for _ in range(3)]
    return ((np.stack(planes, -1) * 0.45 + 0.5) * 255).astype(np.uint8)


def awkward_images(folder: str | os.PathLike) -> dict[str, str]:
    """Write one photo in every awkward form; name -> path. 'broken' and 'empty' are unreadable."""
    from PIL import Image

    folder = os.fspath(folder)
    rgb = photo()
    out = {}

    def save(name, img, **kw):
        out[name.split(".")[0]] = p = os.path.join(folder, name)
        img.save(p, **kw)

    save("rgb.png", Image.fromarray(rgb))
    save("jpeg.jpg", Image.fromarray(rgb), quality=95)
    save("grey.png", Image.fromarray(rgb[:, :, 1]))
    save("rgba.png", Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])))
    save("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    save("palette.png", Image.fromarray(rgb).convert("P"), transparency=0)
    save("grey16.png", Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257))
    out["rgb16"] = os.path.join(folder, "rgb16.png")
    _png16_rgb(out["rgb16"], rgb.astype(np.uint16) * 257)
    rotated = Image.fromarray(rgb)
    exif = rotated.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    save("exif.jpg", rotated, exif=exif, quality=95)
    save("large.jpg", Image.fromarray(photo(160, 240)), quality=95)
    with open(out["large"], "rb") as f:
        data = f.read()
    out["truncated"] = os.path.join(folder, "truncated.jpg")
    with open(out["truncated"], "wb") as f:
        f.write(data[: len(data) * 2 // 3])
    out["broken"] = os.path.join(folder, "broken.jpg")
    with open(out["broken"], "wb") as f:
        f.write(b"this is not a picture")
    out["empty"] = os.path.join(folder, "empty.png")
    open(out["empty"], "wb").close()
    return out
