"""Data sets in the two released layouts, read and checked.

visual-semantic-embedding: `DIR/NAME/NAME_{train,dev,test}_caps.txt` + `NAME_{split}_ims.npy`
(one feature row per caption); order-embedding: `DIR/NAME/{train,val,test}.txt` +
`DIR/NAME/images/{cnn}/{split}.npy` (one row per image). Five captions per image throughout.
"""

from __future__ import annotations

import os

import numpy as np

from uvs import sample
from uvs.errors import UVSError, os_reason
from uvs.fileio import load_npy, open_regular
from uvs.vocab import ASCII_WHITESPACE

SPLITS = ("train", "dev", "test")
_ASCII_WS_BYTES = ASCII_WHITESPACE.encode("ascii")


class Split(tuple):
    """`(caps, ims)` of one split; `.caps_path`, `.ims_path` and `.per_caption` say where and how.

    caps: list of str, 5 per image; ims: (len(caps), d) or (len(caps) // 5, d) float32.
    """

    def __new__(cls, caps: list[str], ims: np.ndarray, caps_path: str, ims_path: str):
        self = super().__new__(cls, (caps, ims))
        self.caps_path = caps_path
        self.ims_path = ims_path
        return self

    @property
    def caps(self) -> list[str]:
        return self[0]

    @property
    def ims(self) -> np.ndarray:
        return self[1]

    @property
    def per_caption(self) -> bool:
        """True when `ims` repeats each image's row for its five captions."""
        return len(self[1]) == len(self[0])

    def image_rows(self) -> np.ndarray:
        """One feature row per image: (len(caps) // 5, d)."""
        return self[1][::5] if self.per_caption else self[1]


DEFAULT_ROOT = "data"
BOM = b"\xef\xbb\xbf"


def data_root(data_dir: str | os.PathLike | None = None) -> str:
    """`data_dir`, else `$UVS_DATA`, else `./data`; an explicit folder must exist.

    Only the default `./data` may be absent (the sample is generated there on first use).
    """
    if data_dir:
        root, origin = os.fspath(data_dir), "data folder"
    elif os.environ.get("UVS_DATA"):
        root, origin = os.environ["UVS_DATA"], "data folder ($UVS_DATA)"
    else:
        return DEFAULT_ROOT
    if not os.path.isdir(root):
        problem = "is not a folder" if os.path.exists(root) else "does not exist"
        raise UVSError(root, f"{origin} {problem}")
    return root


def read_captions(path: str) -> list[str]:
    """One caption per line, stripped of ASCII whitespace as the originals did; none empty.

    A UTF-8 byte-order mark at the start is dropped; a final newline ends the last caption.
    """
    try:
        with open_regular(path, "caption file") as f:
            raw = f.read()
    except OSError as err:
        raise UVSError(path, f"cannot read ({os_reason(err)})") from None
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    caps = []
    for n, line in enumerate(lines, 1):
        line = line.strip(_ASCII_WS_BYTES)
        if not line:
            raise UVSError(path, f"line {n} is empty")
        try:
            caps.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UVSError(path, f"line {n} is not UTF-8 text") from None
    if not caps:
        raise UVSError(path, "no captions")
    return caps


def open_features(path: str, mmap: bool = False) -> np.ndarray:
    """A 2-D float `.npy` of image features, as stored (memory-mapped if `mmap`)."""
    ims = load_npy(path, mmap, what="feature file")
    if not isinstance(ims, np.ndarray) or ims.ndim != 2:
        raise UVSError(path, f"expected a 2-D array of features, got shape {np.shape(ims)}")
    if not np.issubdtype(ims.dtype, np.floating):
        raise UVSError(path, f"features are {ims.dtype}, not floating point")
    return ims


def check_finite(feats: np.ndarray, path: str | None, first_row: int | None = None) -> None:
    """UVSError naming `path` and the first row of feats: (n, d) that holds NaN or Inf.

    feats is the whole array, or rows of it from `first_row` on (then the rows are numbered
    from there, and the count of bad rows, which would be of this block only, is left out).
    """
    bad = ~np.isfinite(feats).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad)) + (first_row or 0)
        count = f" ({int(bad.sum())} such rows)" if first_row is None else ""
        raise UVSError(path, f"row {row} holds NaN or Inf{count}")


def read_features(path: str) -> np.ndarray:
    """A 2-D float `.npy` of image features, finite, as float32."""
    ims = open_features(path)
    check_finite(ims, path)
    return ims.astype("float32", copy=False)


def check_split(caps: list[str], ims: np.ndarray, caps_path: str, ims_path: str) -> Split:
    """Five captions per image, and one feature row per caption or per image."""
    if len(caps) % 5:
        raise UVSError(caps_path, f"{len(caps)} captions is not a multiple of 5 "
                       "(five captions per image)")
    if len(ims) not in (len(caps), len(caps) // 5):
        raise UVSError(ims_path, f"{len(ims)} feature rows for {len(caps)} captions in "
                       f"{caps_path}: expected {len(caps)} (one per caption) or "
                       f"{len(caps) // 5} (one per image)")
    return Split(caps, ims, caps_path, ims_path)


def layout(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """'vse' or 'order', by which files the data set's folder holds (it only looks)."""
    loc = os.path.join(data_root(data_dir), name)
    if not os.path.isdir(loc):
        hint = "" if name == sample.NAME else (
            f"; --data {sample.NAME} uses the small synthetic data set, made on first use")
        raise UVSError(loc, f"data set {name!r} not found (set --data-dir or $UVS_DATA){hint}")
    if any(os.path.exists(os.path.join(loc, f"{name}_{s}_caps.txt")) for s in SPLITS):
        return "vse"
    if any(os.path.exists(os.path.join(loc, f"{s}.txt")) for s in ("train", "val", "test")):
        return "order"
    raise UVSError(loc, f"no {name}_{{train,dev,test}}_caps.txt nor {{train,val,test}}.txt")


def split_paths(name: str, split: str, data_dir=None, cnn: str | None = None) -> tuple[str, str]:
    """(captions path, features path) of one split in whichever layout is there."""
    if split not in SPLITS:
        raise UVSError(None, f"unknown split {split!r} (expected train, dev or test)")
    loc = os.path.join(data_root(data_dir), name)
    if layout(name, data_dir) == "vse":
        return (os.path.join(loc, f"{name}_{split}_caps.txt"),
                os.path.join(loc, f"{name}_{split}_ims.npy"))
    fname = "val" if split == "dev" else split
    if cnn is None:
        found = [c for c in ("10crop", "1crop")
                 if os.path.exists(os.path.join(loc, "images", c, f"{fname}.npy"))]
        cnn = found[0] if found else "10crop"
    return os.path.join(loc, f"{fname}.txt"), os.path.join(loc, "images", cnn, f"{fname}.npy")


def split_files(name: str, split: str, data_dir=None, cnn: str | None = None
                ) -> tuple[str, str]:
    """`split_paths`, the sample generated first if it is the sample and not there yet."""
    if name == sample.NAME:
        sample.ensure_sample(data_root(data_dir))
    return split_paths(name, split, data_dir, cnn)


def load_split(name: str, split: str, data_dir=None, cnn: str | None = None) -> Split:
    """Captions and features of one split, checked; the sample is generated on first use."""
    caps_path, ims_path = split_files(name, split, data_dir, cnn)
    return check_split(read_captions(caps_path), read_features(ims_path), caps_path, ims_path)


def load_dataset(name: str = "f8k", load_train: bool = True, data_dir=None,
                 cnn: str | None = None) -> tuple[Split | None, Split, Split]:
    """(train, dev, test), each `(caps, ims)`; train is None unless `load_train`."""
    train = load_split(name, "train", data_dir, cnn) if load_train else None
    return train, load_split(name, "dev", data_dir, cnn), load_split(name, "test", data_dir, cnn)
