"""Model files on disk: the two released layouts and uvs's own, detected by what is there.

- visual-semantic-embedding: `X.npz` + `X.npz.pkl` (options) + `X.npz.dictionary.pkl`;
- order-embedding: `X.npz` + `X.pkl` holding `{'options': ..., 'worddict': ...}`;
- uvs: one `X.npz` whose `__uvs__` entry is UTF-8 JSON (format, version, options, worddict).
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from uvs.errors import UVSError
from uvs.fileio import atomic_path

FORMAT = "uvs-model"
VERSION = 1
META_KEY = "__uvs__"
EXTRA_PREFIX = "optim:"  # arrays that are not parameters: optimizer state in checkpoints
ENCODERS = ("gru", "bow")


@dataclass
class ModelFile:
    """What a model file holds, whatever its layout."""

    path: str
    layout: str  # 'vse', 'order' or 'uvs'
    params: OrderedDict
    options: dict
    worddict: OrderedDict
    extra: dict = field(default_factory=dict)  # uvs checkpoints: training state, optimizer


def _exists(path: str) -> bool:
    return os.path.isfile(path)


def locate(path: str | os.PathLike) -> tuple[str, str, str | None]:
    """(layout guess, .npz path, companion pickle) for a path as a user gives it."""
    path = os.fspath(path)
    if path.endswith(".pkl") and not path.endswith(".npz.pkl") and _exists(path[:-4] + ".npz"):
        return "order", path[:-4] + ".npz", path
    if not path.endswith(".npz") and _exists(path + ".npz"):
        path = path + ".npz"
    if not _exists(path):
        raise UVSError(path, "model file not found")
    if path.endswith(".npz") and _exists(path + ".pkl"):
        return "vse", path, path + ".pkl"
    if path.endswith(".npz") and _exists(path[:-4] + ".pkl"):
        return "order", path, path[:-4] + ".pkl"
    return "uvs", path, None


def _load_arrays(path: str) -> OrderedDict:
    errors = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
    try:
        archive = np.load(path, allow_pickle=False)
    except errors as err:
        raise UVSError(path, f"not a readable NumPy .npz model archive ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UVSError(path, "not a .npz model archive (it holds a single array)")
    try:
        with archive:
            return OrderedDict((k, archive[k]) for k in archive.files)
    except errors as err:
        raise UVSError(path, f"damaged .npz model archive ({err})") from None


def _load_vse(npz: str, pkl: str) -> tuple[dict, OrderedDict]:
    from uvs.legacy import load_pickle

    dictionary = npz + ".dictionary.pkl"
    if not _exists(dictionary):
        raise UVSError(dictionary, f"word dictionary of {npz} not found")
    return load_pickle(pkl), load_pickle(dictionary)


def _load_order(pkl: str) -> tuple[dict, OrderedDict]:
    from uvs.legacy import load_pickle

    blob = load_pickle(pkl)
    if not isinstance(blob, dict) or "options" not in blob or "worddict" not in blob:
        raise UVSError(pkl, "expected a pickle of {'options': ..., 'worddict': ...}")
    return blob["options"], blob["worddict"]


def _load_meta(path: str, arrays: OrderedDict) -> tuple[dict, OrderedDict, dict]:
    if META_KEY not in arrays:
        raise UVSError(path, "not a model file: no uvs metadata and no companion .pkl "
                       "(expected X.npz.pkl + X.npz.dictionary.pkl, or X.pkl)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"),
                          object_pairs_hook=OrderedDict)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UVSError(path, f"unreadable uvs metadata ({err})") from None
    if meta.get("format") != FORMAT or not isinstance(meta.get("version"), int):
        raise UVSError(path, "unreadable uvs metadata (no format/version)")
    if meta["version"] > VERSION:
        raise UVSError(path, f"uvs model format version {meta['version']} is newer than this "
                       f"uvs reads ({VERSION}); upgrade uvs")
    extra = {k: v for k, v in meta.items()
             if k not in ("format", "version", "options", "worddict")}
    extra["arrays"] = OrderedDict((k[len(EXTRA_PREFIX):], arrays.pop(k))
                                  for k in list(arrays) if k.startswith(EXTRA_PREFIX))
    return dict(meta["options"]), OrderedDict(meta["worddict"]), extra


def _shape(arrays: OrderedDict, name: str) -> tuple:
    return tuple(arrays[name].shape)


def validate(mf: ModelFile) -> None:
    """Check that options, dictionary and parameter shapes agree; raise UVSError if not."""
    o, p = mf.options, mf.params
    for key in ("dim", "dim_word", "dim_image", "encoder"):
        if key not in o:
            raise UVSError(mf.path, f"options lack {key!r}")
    if o["encoder"] not in ENCODERS:
        raise UVSError(mf.path, f"unknown encoder {o['encoder']!r} (expected gru or bow)")
    if not isinstance(mf.worddict, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in mf.worddict.items()):
        raise UVSError(mf.path, "word dictionary is not a mapping of words to indices")
    dim, dw, di = o["dim"], o["dim_word"], o["dim_image"]
    expected = {"Wemb": (None, dw), "ff_image_W": (di, dim), "ff_image_b": (dim,)}
    if o["encoder"] == "gru":
        expected.update({"encoder_W": (dw, 2 * dim), "encoder_b": (2 * dim,),
                         "encoder_U": (dim, 2 * dim), "encoder_Wx": (dw, dim),
                         "encoder_Ux": (dim, dim), "encoder_bx": (dim,)})
    elif dim != dw:
        raise UVSError(mf.path, f"a bag-of-words model needs dim == dim_word ({dim} != {dw})")
    for name, shape in expected.items():
        if name not in p:
            raise UVSError(mf.path, f"parameter {name} is missing")
        got = _shape(p, name)
        if len(got) != len(shape) or any(
                s is not None and s != g for s, g in zip(shape, got, strict=True)):
            raise UVSError(mf.path, f"parameter {name} has shape {got}, options say "
                           f"{tuple('?' if s is None else s for s in shape)}")
        if not np.issubdtype(p[name].dtype, np.floating):
            raise UVSError(mf.path, f"parameter {name} is {p[name].dtype}, not floating point")
    o.setdefault("n_words", _shape(p, "Wemb")[0])
    if o["n_words"] > _shape(p, "Wemb")[0]:
        raise UVSError(mf.path, f"n_words = {o['n_words']} but Wemb has "
                       f"{_shape(p, 'Wemb')[0]} rows")


def kind_of(options: dict, extra: dict) -> str:
    """'decoder' for a generator (uvs `kind`, or skip-thoughts' `dimctx` option), else 'vse'."""
    if "kind" in extra:
        return str(extra["kind"])
    return "decoder" if isinstance(options, dict) and "dimctx" in options else "vse"


class WrongKind(UVSError):
    """A model file of another kind (`.kind`, e.g. 'decoder') where a VSE model was expected."""

    def __init__(self, path: str, problem: str, kind: str):
        super().__init__(path, problem)
        self.kind = kind


def not_a_vse_model(path: str, kind: str) -> WrongKind:
    return WrongKind(path, f"this is a {kind} model, not a visual-semantic embedding model"
                    + (" (use `uvs caption` / `uvs evalcap` with it)" if kind == "decoder"
                       else ""), kind)


def read_model(path: str | os.PathLike) -> ModelFile:
    """Read any supported model file (path as `X`, `X.npz` or `X.pkl`), validated."""
    layout, npz, pkl = locate(path)
    arrays = _load_arrays(npz)
    extra: dict = {}
    if layout == "vse":
        from uvs.legacy import load_pickle

        if kind_of(load_pickle(pkl), {}) != "vse":
            raise not_a_vse_model(npz, "decoder")
        options, worddict = _load_vse(npz, pkl)
    elif layout == "order":
        options, worddict = _load_order(pkl)
    else:
        options, worddict, extra = _load_meta(npz, arrays)
        if kind_of(options, extra) != "vse":
            raise not_a_vse_model(npz, kind_of(options, extra))
    if not isinstance(options, dict):
        raise UVSError(pkl or npz, "model options are not a dictionary")
    params = OrderedDict((k, np.asarray(v, dtype="float32")) for k, v in arrays.items())
    mf = ModelFile(npz, layout, params, dict(options), worddict, extra)
    validate(mf)
    return mf


def _jsonable(value):
    """Options as JSON: NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_model(path: str | os.PathLike, params: dict, options: dict, worddict: dict,
                extra_meta: dict | None = None, extra_arrays: dict | None = None) -> None:
    """Write the uvs format: one `.npz`, parameters plus JSON metadata, atomically.

    Checkpoints add `extra_meta` (JSON) and `extra_arrays` (optimizer state).
    """
    meta = {"format": FORMAT, "version": VERSION, "options": _jsonable(options),
            "worddict": {str(k): int(v) for k, v in worddict.items()},
            **_jsonable(extra_meta or {})}
    blob = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    arrays = {k: np.asarray(v) for k, v in params.items()}
    arrays.update({EXTRA_PREFIX + k: np.asarray(v) for k, v in (extra_arrays or {}).items()})
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays, **{META_KEY: blob})
