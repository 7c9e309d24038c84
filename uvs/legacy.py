"""Reading the released files: safe unpickling of Python-2.7 (cPickle) pickles."""

from __future__ import annotations

import collections
import io
import os
import pickle

from uvs.errors import UVSError, one_line

# The only globals a released options/dictionary pickle names (dict, list, tuple, str, int,
# float, bool and None have opcodes of their own and never go through find_class).
_PLAIN_GLOBALS = {("collections", "OrderedDict")}

# What a NumPy ndarray (and a NumPy scalar) pickle needs, under NumPy 1.x and 2.x module names.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
}

# Files people hand over by mistake, told apart by their first bytes.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (an .npz or a .zip?)"),
    (b"\x93NUMPY", "a .npy file"),
    (b"\x1f\x8b", "gzip-compressed"),
)

_UNREADABLE = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    MemoryError,
    RecursionError,
    UnicodeDecodeError,
)


def _numpy_global(which: str) -> object:
    import numpy

    if which in ("ndarray", "dtype"):
        return getattr(numpy, which)
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, which)


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only allow-listed globals and never imports anything else."""

    def __init__(self, file: io.BufferedIOBase, path: str, allow_numpy: bool):
        super().__init__(file, encoding="bytes")
        self._path = path
        self._allow_numpy = allow_numpy

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _PLAIN_GLOBALS:
            return collections.OrderedDict
        if self._allow_numpy and (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(_NUMPY_GLOBALS[module, name])
        what = f"{module}.{name}"
        if not what.isprintable():
            what = ascii(what)
        allowed = "plain data, OrderedDict and NumPy arrays" if self._allow_numpy else (
            "plain data and OrderedDict")
        raise UVSError(
            self._path,
            f"refusing to load {what} from an untrusted pickle (only {allowed} are allowed)",
        )

    def persistent_load(self, pid: object) -> object:
        raise pickle.UnpicklingError("it holds a persistent id, which plain data never does")


def _text(data: bytes) -> str:
    """A Python-2 byte string as text: UTF-8, or Latin-1 where it is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _to_text(obj: object, seen: dict[int, object]) -> object:
    """Every bytes inside `obj` (keys, values, items) as str; containers keep type and order."""
    if isinstance(obj, bytes):
        return _text(obj)
    kind = type(obj)
    if kind not in (dict, collections.OrderedDict, list, tuple, set, frozenset):
        return obj  # numbers, None, str, NumPy arrays and dtypes: as loaded
    if id(obj) in seen:
        return seen[id(obj)]
    if kind is list:
        out_list: list = []
        seen[id(obj)] = out_list
        out_list.extend(_to_text(x, seen) for x in obj)
        return out_list
    if kind is dict or kind is collections.OrderedDict:
        out_dict = kind()
        seen[id(obj)] = out_dict
        for key, value in obj.items():
            out_dict[_to_text(key, seen)] = _to_text(value, seen)
        return out_dict
    converted = kind(_to_text(x, seen) for x in obj)  # tuple, set, frozenset
    seen[id(obj)] = converted
    return converted


def load_pickle(path: str | os.PathLike, allow_numpy: bool = False) -> object:
    """Load a Python-2 pickle safely; byte strings come back as str (UTF-8, else Latin-1)."""
    where = os.fspath(path)
    try:
        fh = open(where, "rb")
    except FileNotFoundError:
        raise UVSError(where, "file not found") from None
    except OSError as err:
        raise UVSError(where, f"cannot read ({err.strerror or err})") from None
    with fh:
        try:
            head = fh.read(8)
            if not head:
                raise UVSError(where, "not a readable pickle (the file is empty)")
            for magic, what in _MAGIC:
                if head.startswith(magic):
                    raise UVSError(where, f"not a readable pickle ({what})")
            fh.seek(0)
            loaded = _RestrictedUnpickler(fh, where, allow_numpy).load()
        except UVSError:
            raise
        except _UNREADABLE as err:
            raise UVSError(where, f"not a readable pickle ({one_line(err)})") from None
        except OSError as err:
            raise UVSError(where, f"cannot read ({err.strerror or err})") from None
    try:
        return _to_text(loaded, {})
    except RecursionError:
        raise UVSError(where, "not a readable pickle (nested too deeply)") from None
