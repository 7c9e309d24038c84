"""Model files on disk: the two released layouts and uvs's own, detected by what is there.

- visual-semantic-embedding: `X.npz` + `X.npz.pkl` (options) + `X.npz.dictionary.pkl`;
- order-embedding: `X.npz` + `X.pkl` holding `{'options': ..., 'worddict': ...}`;
- uvs: one `X.npz` whose `__uvs__` entry is UTF-8 JSON (format, version, options, worddict).

Nothing is trusted: the archive is checked member by member (no encryption, stored or deflate
only, unique plain names, `.npy` headers read before any data and capped by the compressed
size), the JSON header against a schema, and the options, dictionary and every array against
the model's *kind* (`KINDS`: the options it needs and the parameter shapes they imply) before
a byte of parameter data is allocated.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from uvs.errors import UVSError, os_reason
from uvs.fileio import atomic_path, open_regular
from uvs.legacy import load_pickle

FORMAT = "uvs-model"
VERSION = 1
META_KEY = "__uvs__"
EXTRA_PREFIX = "optim:"  # arrays that are not parameters: optimizer state in checkpoints

# Limits on what a model archive may declare (README, "Hostile files").
MAX_MEMBERS = 10_000
MAX_META_BYTES = 64 * 2**20  # the JSON header
MAX_META_DEPTH = 32  # nesting of the JSON header
MAX_NUMBER_CHARS = 40  # a JSON number written longer than this is refused
MAX_DIMS = 32
# A parameter beyond this magnitude is refused: trained models stay far below it, and such a
# value saturates every tanh and softmax, so the model's output would be garbage.
MAX_PARAM = 1e5
DEFLATE_RATIO = 1032  # the most deflate can expand: a member may declare no more than this
# A zip bomb: deflated members together may expand beyond DEFLATED_FREE_BYTES only up to this
# ratio (real arrays compress a few times; uvs writes its files uncompressed).
DEFLATED_RATIO = 64
DEFLATED_FREE_BYTES = 256 * 2**20
NOT_NPZ = ("not a model file (not a .npz archive, and no companion .pkl of a released model "
           "beside it)")
STALE_TEMP_SECONDS = 600  # a temporary of write_model untouched this long is a dead run's


@dataclass
class ModelFile:
    """What a model file holds, whatever its layout."""

    path: str
    layout: str  # 'vse', 'order' or 'uvs'
    params: OrderedDict
    options: dict
    worddict: OrderedDict
    extra: dict = field(default_factory=dict)  # uvs checkpoints: training state, optimizer
    kind: str = "vse"


def shown(name: object) -> str:
    """A name from a file, safe to print: control characters and escapes spelled out."""
    text = str(name)
    return text if text.isprintable() else ascii(text)[1:-1]


# --- schemas: options and the kinds of model ---------------------------------------------

Shape = tuple  # of int (exact) or None (any size)


@dataclass(frozen=True)
class OptionSpec:
    """One option a kind needs in a model file: its type, and the range or choices it must
    lie in (not `uvs.options.Option`, a trainer's option)."""

    type: type  # int, float, bool or str
    required: bool = True
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def problem(self, value: object) -> str | None:
        """Why `value` does not fit, or None."""
        kinds = (int, float) if self.type is float else (self.type,)
        if isinstance(value, bool) and self.type is not bool or not isinstance(value, kinds):
            return f"is {type(value).__name__} {_brief(value)}, not {self.type.__name__}"
        if self.type is float and not math.isfinite(value):
            return f"is {value}"
        if self.low is not None and value < self.low:
            return f"is {value}, below {self.low}"
        if self.high is not None and value > self.high:
            return f"is {value}, above {self.high}"
        if self.choices and value not in self.choices:
            return f"is {_brief(value)}, not one of {', '.join(map(str, self.choices))}"
        return None


def _fmt_shape(shape: Shape) -> str:
    """(?, 300): a shape with the sizes left open shown as ?."""
    sizes = ["?" if s is None else str(s) for s in shape]
    return f"({', '.join(sizes)}{',' if len(sizes) == 1 else ''})"


def _brief(value: object) -> str:
    text = shown(repr(value))
    return text if len(text) <= 40 else text[:40] + "..."


@dataclass(frozen=True)
class ModelKind:
    """A kind of model: the options it needs and the parameters (name -> shape) they imply.

    `shapes(options)` gets options already checked against `options`; `check(options)` returns
    a problem with options taken together (or None). `vocabulary` names the parameter whose
    rows are the words: `n_words` defaults to them and may not exceed them. `released_extras`
    are arrays that released files of this kind carry besides the parameters (ignored).
    A released file (options pickled beside the arrays) is of this kind when its options hold
    `released_key`; `released_dictionary(path)` reads that layout's dictionary file (default:
    one pickle of word -> index); `released_layout` names that layout. `usage` is said when
    a file of this kind is given where another kind is needed. `read_pickled(path)` reads a
    released model that is one pickled object (the log-bilinear models' `pickle.dump(net)`).
    """

    name: str
    options: dict[str, OptionSpec]
    shapes: Callable[[dict], dict[str, Shape]]
    check: Callable[[dict], str | None] | None = None
    vocabulary: str | None = "Wemb"
    released_extras: tuple[str, ...] = ()
    released_key: str | None = None
    released_dictionary: Callable[[str], object] | None = None
    released_layout: str = "vse"
    usage: str = ""
    read_pickled: Callable[[str], ModelFile] | None = None


KINDS: dict[str, ModelKind] = {}
# where each kind is declared, beside its model: imported when a file of that kind is met
KIND_MODULES = {"vse": "uvs.model", "align": "uvs.align.model",
                "decoder": "uvs.decoding.files", "mlbl": "uvs.mnlm.files",
                "mlblf": "uvs.mnlm.files", "scnlm": "uvs.mnlm.files"}


def pickled_instance(path: str) -> bool:
    """Whether `path` is a regular file that starts as Python 2's pickle of a class instance
    (the log-bilinear models' `pickle.dump(net)`: protocol 0/1 `copy_reg._reconstructor`,
    protocol 2 NEWOBJ). A FIFO or folder is not looked into (the reader refuses it)."""
    try:
        with open_regular(path) as fh:
            head = fh.read(64)
    except (UVSError, OSError):
        return False
    return head.startswith(b"ccopy_reg\n_reconstructor\n") or (
        head.startswith(b"\x80\x02c") and b"\n" in head[3:] and not head.startswith(b"PK"))


def register_kind(kind: ModelKind) -> None:
    """Make a kind of model readable by `read_model(path, kind=...)` (and its uvs header).

    How a model family adds its kind: one call at the top level of the module beside its
    model, `register_kind(ModelKind(name="mlbl", options={"dim": OptionSpec(int, low=1)},
    shapes=mlbl_shapes, usage="..."))` (see `ModelKind`), and that module named under the
    kind's name in `KIND_MODULES`, so that reading a file of the kind imports it first (as
    `uvs.model` declares 'vse', `uvs.align.model` 'align', `uvs.decoding.files` 'decoder').
    """
    KINDS[kind.name] = kind


def model_kind(name: str) -> ModelKind | None:
    """The registered kind `name` (importing the module that declares it), or None."""
    if name not in KINDS and name in KIND_MODULES:
        importlib.import_module(KIND_MODULES[name])
    return KINDS.get(name)


def released_kind(options: object) -> str:
    """The kind of a released file from its pickled options: the first kind whose
    `released_key` they hold, else 'vse'."""
    for name in KIND_MODULES:
        model_kind(name)
    for spec in KINDS.values():
        if spec.released_key and isinstance(options, dict) and spec.released_key in options:
            return spec.name
    return "vse"


def _check_plain(where: str, what: str, value: object, depth: int = 0) -> None:
    """Options must be plain JSON-like data (what `info` prints and `convert` writes)."""
    if depth > MAX_META_DEPTH:
        raise UVSError(where, f"{what} nests deeper than {MAX_META_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(where, what, item, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise UVSError(where, f"{what} has a key that is not text ({_brief(key)})")
            _check_plain(where, what, item, depth + 1)
        return
    raise UVSError(where, f"{what} holds a {type(value).__name__}, which is not plain data")


def check_options(where: str, kind: ModelKind, options: object) -> dict:
    """`options` checked against `kind` (types, ranges, choices); a copy; UVSError if not."""
    if not isinstance(options, dict):
        raise UVSError(where, f"model options are not a dictionary but {type(options).__name__}")
    _check_plain(where, "model options", options)
    for name, spec in kind.options.items():
        if name not in options:
            if spec.required:
                raise UVSError(where, f"options lack '{name}' (a {kind.name} model needs it)")
            continue
        problem = spec.problem(options[name])
        if problem:
            raise UVSError(where, f"option '{name}' {problem}")
    options = dict(options)
    problem = kind.check(options) if kind.check else None
    if problem:
        raise UVSError(where, problem)
    return options


def check_worddict(where: str, worddict: object, n_words: int) -> OrderedDict:
    """word -> index, every index in 0 ≤ i < max(n_words, len + 2) (released VSE files number
    their words 2..len+1 with n_words = len); UVSError if not."""
    if not isinstance(worddict, dict):
        raise UVSError(where, "word dictionary is not a mapping of words to indices")
    limit = max(n_words, len(worddict) + 2)
    for word, index in worddict.items():
        if not isinstance(word, str) or isinstance(index, bool) or not isinstance(index, int):
            raise UVSError(where, f"word dictionary is not a mapping of words to indices "
                           f"({_brief(word)}: {_brief(index)})")
        if not 0 <= index < limit:
            raise UVSError(where, f"word {_brief(word)} has index {index}, outside 0..{limit - 1}")
    return OrderedDict(worddict)


# --- the archive -------------------------------------------------------------------------

@dataclass
class Member:
    """One `.npy` member of an archive, its header read and checked."""

    info: zipfile.ZipInfo
    shape: tuple
    dtype: np.dtype
    fortran: bool
    offset: int  # where the data starts in the member


class Archive:
    """A `.npz` opened for checked reading: `members` (name -> Member) before any data."""

    def __init__(self, path: str, not_npz: str = NOT_NPZ):
        self.path = path
        try:
            with open_regular(path) as f:
                head = f.read(4)
                size = os.fstat(f.fileno()).st_size
        except OSError as err:
            raise UVSError(path, f"cannot read ({os_reason(err)})") from None
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise UVSError(path, not_npz)
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:
            raise UVSError(path, f"damaged .npz archive ({shown(err)})") from None
        try:
            self.members = self._members(size)
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.zip.close()

    def _members(self, size: int) -> OrderedDict:
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise UVSError(self.path, f"the archive holds {len(infos)} members (at most "
                           f"{MAX_MEMBERS} are read)")
        out: OrderedDict = OrderedDict()
        for info in infos:
            name = info.filename
            key = name[:-4] if name.endswith(".npy") else None
            if (not key or not key.isprintable() or "/" in key or "\\" in key
                    or key.startswith(".")):
                raise UVSError(self.path, f"member '{shown(name)}' is not a plain .npy array "
                               "name")
            if key in out:
                raise UVSError(self.path, f"member '{shown(name)}' appears twice")
            if info.flag_bits & 0x1:
                raise UVSError(self.path, f"member '{shown(name)}' is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UVSError(self.path, f"member '{shown(name)}' uses compression method "
                               f"{info.compress_type} (only stored and deflate are read)")
            cap = (info.compress_size if info.compress_type == zipfile.ZIP_STORED
                   else DEFLATE_RATIO * info.compress_size + 1024)
            if info.header_offset + info.compress_size > size or info.file_size > cap:
                raise UVSError(self.path, f"member '{shown(name)}' declares {info.file_size} "
                               f"bytes from {info.compress_size} compressed (damaged or forged)")
            out[key] = self._header(info)
        deflated = [i for i in infos if i.compress_type == zipfile.ZIP_DEFLATED]
        declared = sum(i.file_size for i in deflated)
        packed = sum(i.compress_size for i in deflated)
        if declared > max(DEFLATED_FREE_BYTES, DEFLATED_RATIO * packed):
            raise UVSError(self.path, f"its compressed members expand to {declared} bytes from "
                           f"{packed} (more than {DEFLATED_RATIO} times: a zip bomb?)")
        return out

    def _open(self, info: zipfile.ZipInfo):
        try:
            return self.zip.open(info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError,
                NotImplementedError, zlib.error) as err:
            raise UVSError(self.path, f"damaged .npz archive (member '{shown(info.filename)}': "
                           f"{shown(err)})") from None

    def _header(self, info: zipfile.ZipInfo) -> Member:
        fmt = np.lib.format
        name = shown(info.filename)
        with self._open(info) as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise ValueError(f".npy format version {version}")
                offset = f.tell()
            except (ValueError, TypeError, SyntaxError, EOFError, OSError, zlib.error,
                    zipfile.BadZipFile, KeyError, OverflowError, RecursionError) as err:
                raise UVSError(self.path, f"member '{name}' is not a readable .npy array "
                               f"({shown(' '.join(str(err).split()))[:200]})") from None
        if len(shape) > MAX_DIMS or dtype.hasobject or dtype.itemsize == 0:
            raise UVSError(self.path, f"member '{name}' is not a plain array ({dtype}, "
                           f"{len(shape)} dimensions)")
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.file_size:
            raise UVSError(self.path, f"member '{name}' declares shape {shape} of {dtype} "
                           f"({nbytes} bytes) in {info.file_size - offset} bytes (damaged "
                           "or forged)")
        return Member(info, tuple(shape), dtype, bool(fortran), offset)

    def read(self, key: str) -> np.ndarray:
        """The data of member `key`, read into an array of exactly the declared size."""
        m = self.members[key]
        out = np.empty(math.prod(m.shape), dtype=m.dtype)
        view = memoryview(out).cast("B")
        with self._open(m.info) as f:
            try:
                f.read(m.offset)
                done = 0
                while done < len(view):
                    n = f.readinto(view[done:])
                    if not n:
                        raise EOFError("the data ends early")
                    done += n
                if f.read(1):
                    raise ValueError("data after the array")
            except (EOFError, ValueError, OSError, zlib.error, zipfile.BadZipFile) as err:
                raise UVSError(self.path, f"damaged .npz archive (member "
                               f"'{shown(m.info.filename)}': {shown(err)})") from None
        return out.reshape(m.shape, order="F" if m.fortran else "C")


def read_npz(path: str | os.PathLike, expected: dict[str, tuple[Shape, str]]) -> OrderedDict:
    """Exactly the arrays `expected` (name -> (shape, dtype kinds such as 'f' or 'U')) from a
    `.npz`, each checked before it is read; UVSError if the file holds anything else."""
    path = os.fspath(path)
    with Archive(path) as z:
        if set(z.members) != set(expected):
            raise UVSError(path, f"holds {', '.join(map(shown, z.members))}, expected "
                           f"{', '.join(expected)}")
        for key, (shape, kinds) in expected.items():
            _check_member(path, key, z.members[key], shape, kinds)
        return OrderedDict((key, z.read(key)) for key in expected)


def _check_member(path: str, key: str, m: Member, shape: Shape, kinds: str) -> None:
    if len(m.shape) != len(shape) or any(s is not None and s != g
                                         for s, g in zip(shape, m.shape, strict=True)):
        raise UVSError(path, f"{key} has shape {m.shape}, expected "
                       f"{_fmt_shape(shape)}")
    if m.dtype.kind not in kinds or m.dtype.names is not None or m.dtype.subdtype is not None:
        what = {"f": "floating point", "u": "unsigned integers", "U": "text"}.get(kinds, kinds)
        raise UVSError(path, f"{key} is {m.dtype}, not {what}")


# --- the JSON header ---------------------------------------------------------------------

def _json_pairs(pairs: list) -> OrderedDict:
    out = OrderedDict()
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {_brief(key)} appears twice in one object")
        out[key] = value
    return out


def _json_number(kind: type) -> Callable[[str], object]:
    def parse(text: str) -> object:
        if len(text) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number of {len(text)} characters")
        return kind(text)
    return parse


def _depth(value: object) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        obj, d = todo.pop()
        if isinstance(obj, dict):
            obj = list(obj.values())
        if isinstance(obj, list):
            deepest = max(deepest, d)
            if d > MAX_META_DEPTH:
                break
            todo.extend((x, d + 1) for x in obj)
    return deepest


def parse_meta(path: str, raw: np.ndarray) -> dict:
    """The `__uvs__` header (uint8 UTF-8 JSON) checked against the schema: an object with
    format, version, options and worddict of the right types; UVSError if not."""
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"), object_pairs_hook=_json_pairs,
                          parse_int=_json_number(int), parse_float=_json_number(float))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        detail = "nested too deeply" if isinstance(err, RecursionError) else shown(err)
        raise UVSError(path, f"unreadable uvs metadata ({detail[:200]})") from None
    if not isinstance(meta, dict):
        raise UVSError(path, f"unreadable uvs metadata (a JSON {type(meta).__name__}, not an "
                       "object)")
    if _depth(meta) > MAX_META_DEPTH:
        raise UVSError(path, f"unreadable uvs metadata (nested deeper than {MAX_META_DEPTH})")
    version = meta.get("version")
    if meta.get("format") != FORMAT or isinstance(version, bool) or not isinstance(version, int):
        raise UVSError(path, "unreadable uvs metadata (no format/version)")
    if version < 1:
        raise UVSError(path, f"unreadable uvs metadata (version {version})")
    if version > VERSION:
        raise UVSError(path, f"uvs model format version {version} is newer than this "
                       f"uvs reads ({VERSION}); upgrade uvs")
    for key in ("options", "worddict"):
        if not isinstance(meta.get(key), dict):
            raise UVSError(path, f"unreadable uvs metadata ({key!r} is missing or not an "
                           "object)")
    if not isinstance(meta.get("kind", "vse"), str):
        raise UVSError(path, "unreadable uvs metadata ('kind' is not text)")
    return meta


# --- reading -----------------------------------------------------------------------------

def _exists(path: str) -> bool:
    return os.path.isfile(path)


def locate(path: str | os.PathLike) -> tuple[str, str, str | None]:
    """(layout guess, .npz path, companion pickle) for a path as a user gives it."""
    path = os.fspath(path)
    if path.endswith(".pkl") and not path.endswith(".npz.pkl") and _exists(path[:-4] + ".npz"):
        if pickled_instance(path):  # a log-bilinear model's pickle, not a companion
            return "uvs", path, None
        return "order", path[:-4] + ".npz", path
    if not path.endswith(".npz") and _exists(path + ".npz"):
        path = path + ".npz"
    if not os.path.exists(path):
        raise UVSError(path, "model file not found")  # a FIFO or folder: refused on opening
    if path.endswith(".npz") and _exists(path + ".pkl"):
        return "vse", path, path + ".pkl"
    if path.endswith(".npz") and _exists(path[:-4] + ".pkl") and not pickled_instance(
            path[:-4] + ".pkl"):
        return "order", path, path[:-4] + ".pkl"
    return "uvs", path, None


def _load_dictionary(npz: str, spec: ModelKind | None, dictionary: str | None) -> object:
    """The released layout's word dictionary: `dictionary`, else `X.npz.dictionary.pkl`."""
    path = dictionary or npz + ".dictionary.pkl"
    if not _exists(path):
        raise UVSError(path, f"word dictionary of {npz} not found"
                       + ("" if dictionary else " (give its path with --dictionary)"))
    reader = spec.released_dictionary if spec and spec.released_dictionary else load_pickle
    return reader(path)


def _load_order(pkl: str) -> tuple[dict, OrderedDict]:
    blob = load_pickle(pkl)
    if not isinstance(blob, dict) or "options" not in blob or "worddict" not in blob:
        raise UVSError(pkl, "expected a pickle of {'options': ..., 'worddict': ...}")
    return blob["options"], blob["worddict"]


def _read_meta(z: Archive) -> dict:
    if META_KEY not in z.members:
        raise UVSError(z.path, "not a model file: no uvs metadata and no companion .pkl "
                       "(expected X.npz.pkl + X.npz.dictionary.pkl, or X.pkl)")
    m = z.members[META_KEY]
    _check_member(z.path, "the uvs metadata", m, (None,), "u")
    if m.dtype.itemsize != 1 or m.shape[0] > MAX_META_BYTES:
        raise UVSError(z.path, f"the uvs metadata is {m.shape[0]} x {m.dtype} (at most "
                       f"{MAX_META_BYTES} bytes)")
    return parse_meta(z.path, z.read(META_KEY))


def _optim_shape(name: str, shapes: dict[str, tuple], ndim: int) -> Shape:
    """An optimizer array named after a parameter (`NAME_adam_m`) is shaped like it."""
    owners = [p for p in shapes if name.startswith(p + "_")]
    return shapes[max(owners, key=len)] if owners else (None,) * ndim


def _read_pickled(path: str) -> ModelFile:
    """A model pickled as one object, read by the first kind that reads such files."""
    for name in KIND_MODULES:
        model_kind(name)
    readers = [k.read_pickled for k in KINDS.values() if k.read_pickled]
    if not readers:
        raise UVSError(path, "a pickled object, and no kind of model reads one")
    return readers[0](path)


def _wrong_kind(npz: str, own: str, kind: str) -> UVSError:
    spec = model_kind(own)
    usage = f" ({spec.usage})" if spec and spec.usage else ""
    article = "an" if own[:1].lower() in "aeiou" else "a"
    return UVSError(npz, f"this is {article} {shown(own)} model, not a {kind} model{usage}")


def read_model(path: str | os.PathLike, kind: str | None = None,
               dictionary: str | os.PathLike | None = None, arrays: bool = True) -> ModelFile:
    """Read any supported model file (path as `X`, `X.npz` or `X.pkl`), validated.

    `kind` (a name in KINDS) is what the caller needs; a file says its own kind (a uvs
    header, or a released file's options, see `released_kind`) and is refused if it differs.
    `dictionary` replaces the released layout's `X.npz.dictionary.pkl`. Options, dictionary
    and every array are checked against the kind before any parameter data is read;
    parameters come back as finite float32. `arrays=False` reads headers only: each array
    is then a read-only float32 placeholder of its shape (zeros, no memory), unchecked.
    """
    layout, npz, pkl = locate(path)
    dictionary = os.fspath(dictionary) if dictionary is not None else None
    if layout == "uvs" and pickled_instance(npz):
        mf = _read_pickled(npz)
        if kind is not None and mf.kind != kind:
            raise _wrong_kind(npz, mf.kind, kind)
        return mf
    with Archive(npz) as z:
        extra: dict = {}
        if layout == "vse":
            options = load_pickle(pkl)
            own = released_kind(options)
            if kind is not None and own != kind:
                raise _wrong_kind(npz, own, kind)
            worddict = _load_dictionary(npz, model_kind(own), dictionary)
            where, words_where = pkl, dictionary or npz + ".dictionary.pkl"
        elif layout == "order":
            options, worddict = _load_order(pkl)
            own = released_kind(options)
            where = words_where = pkl
        else:
            meta = _read_meta(z)
            options, worddict = meta["options"], meta["worddict"]
            where = words_where = npz
            extra = {k: v for k, v in meta.items()
                     if k not in ("format", "version", "options", "worddict")}
            own = extra.get("kind", "vse")
        if kind is not None and own != kind:
            raise _wrong_kind(npz, own, kind)
        spec = model_kind(own)
        if spec is None:
            raise UVSError(npz, f"unknown kind of model '{shown(own)}' (this uvs reads "
                           f"{', '.join(sorted(set(KINDS) | set(KIND_MODULES)))})")
        options = check_options(where, spec, options)
        shapes = _check_arrays(z, spec, options)
        worddict = check_worddict(words_where, worddict, options.get("n_words", 0))
        params = OrderedDict()
        others = OrderedDict()
        for key in z.members:
            if not arrays and (key in shapes or key.startswith(EXTRA_PREFIX)):
                value = np.broadcast_to(np.float32(0), z.members[key].shape)
            elif key in shapes:
                value = _finite(z, key, MAX_PARAM)
            elif key.startswith(EXTRA_PREFIX):
                value = _finite(z, key)
            else:
                continue
            if key in shapes:
                params[key] = value
            else:
                others[key[len(EXTRA_PREFIX):]] = value
    if layout == "uvs":
        extra["arrays"] = others
    elif layout == "vse":
        layout = spec.released_layout
    return ModelFile(npz, layout, params, options, worddict, extra, own)


def _check_arrays(z: Archive, spec: ModelKind, options: dict) -> dict[str, tuple]:
    """Every member against the kind's shapes (float data only); n_words from the vocabulary."""
    expected = spec.shapes(options)
    shapes = {}
    for name, shape in expected.items():
        if name not in z.members:
            raise UVSError(z.path, f"parameter {name} is missing")
        m = z.members[name]
        if len(m.shape) != len(shape) or any(
                s is not None and s != g for s, g in zip(shape, m.shape, strict=True)):
            raise UVSError(z.path, f"parameter {name} has shape {m.shape}, options say "
                           f"{_fmt_shape(shape)}")
        _check_member(z.path, f"parameter {name}", m, shape, "f")
        shapes[name] = m.shape
    for key, m in z.members.items():
        if key in expected or key == META_KEY or key in spec.released_extras:
            continue
        if not key.startswith(EXTRA_PREFIX):
            raise UVSError(z.path, f"member '{shown(key)}' is not a parameter of a "
                           f"{spec.name} model")
        _check_member(z.path, f"optimizer array {shown(key)}", m,
                      _optim_shape(key[len(EXTRA_PREFIX):], shapes, len(m.shape)), "f")
    if spec.vocabulary:
        rows = shapes[spec.vocabulary][0]
        options.setdefault("n_words", rows)
        if options["n_words"] > rows:
            raise UVSError(z.path, f"n_words = {options['n_words']} but {spec.vocabulary} "
                           f"has {rows} rows")
    return shapes


def _finite(z: Archive, key: str, limit: float | None = None) -> np.ndarray:
    array = z.read(key).astype(np.float32, copy=False)
    problem = param_problem(array, limit)
    if problem:
        raise UVSError(z.path, f"{shown(key)} {problem}")
    return array


def param_problem(array: np.ndarray, limit: float | None = MAX_PARAM) -> str | None:
    """Why a parameter array cannot be a trained model's (NaN, Inf, |value| > limit), or None."""
    if not np.isfinite(array).all():
        return "holds NaN or Inf"
    if limit is not None and array.size and float(np.abs(array).max()) > limit:
        return (f"holds values up to {float(np.abs(array).max()):.3g}, beyond ±{limit:g} "
                "(no trained model has such weights)")
    return None


def validate(mf: ModelFile) -> None:
    """Check that options, dictionary and parameter shapes agree (for a ModelFile built in
    memory); raise UVSError if not."""
    spec = model_kind(mf.kind)
    if spec is None:
        raise UVSError(mf.path, f"unknown kind of model '{shown(mf.kind)}'")
    options = check_options(mf.path, spec, mf.options)
    for name, shape in spec.shapes(options).items():
        if name not in mf.params:
            raise UVSError(mf.path, f"parameter {name} is missing")
        got = tuple(mf.params[name].shape)
        if len(got) != len(shape) or any(
                s is not None and s != g for s, g in zip(shape, got, strict=True)):
            raise UVSError(mf.path, f"parameter {name} has shape {got}, options say "
                           f"{_fmt_shape(shape)}")
        if not np.issubdtype(mf.params[name].dtype, np.floating):
            raise UVSError(mf.path, f"parameter {name} is {mf.params[name].dtype}, not "
                           "floating point")
        problem = param_problem(np.asarray(mf.params[name], np.float32))
        if problem:
            raise UVSError(mf.path, f"parameter {name} {problem}")
    if spec.vocabulary:
        options.setdefault("n_words", mf.params[spec.vocabulary].shape[0])
    mf.options.update(options)
    check_worddict(mf.path, mf.worddict, mf.options.get("n_words", 0))


# --- writing -----------------------------------------------------------------------------

def _jsonable(value):
    """Options as JSON: NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def remove_stale_temporaries(path: str | os.PathLike, age: float = STALE_TEMP_SECONDS) -> list:
    """Delete what killed writes of `path` left: uvs's own temporaries of exactly this target
    (`.NAME.<random>.tmp.npz`), regular files (never a link) untouched for `age` seconds."""
    path = os.path.abspath(os.fspath(path))
    folder, base = os.path.split(path)
    pattern = re.compile(r"\." + re.escape(base) + r"\.[a-z0-9_]{8}\.tmp\.npz")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if (entry.is_file(follow_symlinks=False) and st.st_uid == os.getuid()
                    and now - st.st_mtime > age):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


def write_model(path: str | os.PathLike, params: dict, options: dict, worddict: dict,
                extra_meta: dict | None = None, extra_arrays: dict | None = None) -> None:
    """Write the uvs format: one `.npz`, parameters plus JSON metadata, atomically.

    Checkpoints add `extra_meta` (JSON) and `extra_arrays` (optimizer state). Temporaries
    that killed writes of the same file left behind are removed first.
    """
    meta = {"format": FORMAT, "version": VERSION, "options": _jsonable(options),
            "worddict": {str(k): int(v) for k, v in worddict.items()},
            **_jsonable(extra_meta or {})}
    blob = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
    arrays = {k: np.asarray(v) for k, v in params.items()}
    arrays.update({EXTRA_PREFIX + k: np.asarray(v) for k, v in (extra_arrays or {}).items()})
    remove_stale_temporaries(path)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays, **{META_KEY: blob})
