"""Reading the released files: safe unpickling of Python-2.7 (cPickle) pickles.

The unpickler runs opcode by opcode (the standard library's Python unpickler) with every
operation that could run code, allocate without bound or recurse replaced by a checked one:
only allow-listed globals, only plain containers mutated, NumPy arrays only as
`_reconstruct` + `BUILD` of plain numeric data whose size is checked before it is built, and
limits on nesting, object count and decoded size (`LIMITS`, in the README). The limits hold
while loading: a tuple or frozenset counts as the expansion its shared references stand for
the moment it is made, and only plain scalars are ever hashed (dict keys, set members), so
no hash or comparison can walk more than one value.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct

from uvs.errors import UVSError, one_line, os_reason
from uvs.fileio import open_regular

# The limits, generous for every released file: dictionaries of 10k-30k words take ~200k
# operations and ~1 MB of text; Lasagne's vgg19.pkl is ~550 MB of float32 arrays.
MAX_DEPTH = 100  # containers inside containers (and MARKs open at once)
MAX_OBJECTS = 4_000_000  # operations read, and objects in the value counting each reference
MAX_TEXT = 64 * 2**20  # characters/bytes of strings in the value, counting each reference
MAX_ARRAY_BYTES = 2 * 2**30  # data of all NumPy arrays together
MAX_INT_BITS = 1024
MAX_KEY_INT_BITS = 64  # an integer dict key or set member (larger ones collide in hashing)
LIMITS = {"depth": MAX_DEPTH, "objects": MAX_OBJECTS, "text_bytes": MAX_TEXT,
          "array_bytes": MAX_ARRAY_BYTES, "int_bits": MAX_INT_BITS}

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
    LookupError,
    struct.error,
)

_IN_MEMORY = 64 * 2**20  # pickles up to this size are read into memory first
_NUMERIC_CODE = re.compile(r"[biufc][0-9]{1,2}")  # a plain dtype as NumPy pickles it: 'f4'
_REFUSED_OPCODES = {
    pickle.PERSID: "a persistent id", pickle.BINPERSID: "a persistent id",
    pickle.OBJ: "an object constructor", pickle.NEWOBJ: "an object constructor",
    pickle.NEWOBJ_EX: "an object constructor", pickle.EXT1: "an extension code",
    pickle.EXT2: "an extension code", pickle.EXT4: "an extension code",
    pickle.NEXT_BUFFER: "an out-of-band buffer", pickle.READONLY_BUFFER: "an out-of-band buffer",
    pickle.BYTEARRAY8: "a bytearray",
}


# Python-2 instances of these classes (`pickle.dump(net)` of the log-bilinear models of
# ryankiros/multimodal-neural-language-models) may be admitted, rebuilt as `LegacyObject`s.
MNLM_CLASSES = frozenset({"lm.mlbl.MLBL", "lm.mlblf.MLBLF"})


class LegacyObject:
    """A pickled Python-2 instance as plain data: its class's dotted name and its attribute
    dictionary. No code of that class exists here or runs."""

    __slots__ = ("class_name", "attrs")

    def __init__(self, class_name: str, attrs: dict | None = None):
        self.class_name = class_name
        self.attrs = {} if attrs is None else attrs

    def __repr__(self) -> str:
        return f"<LegacyObject {self.class_name} with {len(self.attrs)} attributes>"


class _ClassName:
    """What an admitted class's GLOBAL stands for while unpickling: only its name."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


_RECONSTRUCTOR = _ClassName("copy_reg._reconstructor")
_OBJECT = _ClassName("__builtin__.object")


class _Refused(Exception):
    """A pickle uvs will not read (beyond a limit, or asking for something not plain data)."""


def _numpy_global(which: str) -> object:
    import numpy

    if which in ("ndarray", "dtype"):
        return getattr(numpy, which)
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray
    return getattr(multiarray, which)


class _BoundedFile:
    """A file's read/readline that never asks for more bytes than the file has left (a
    length read from the file is never allocated before it is seen to be there)."""

    def __init__(self, fh: io.BufferedIOBase, left: int | None):
        self._fh = fh
        self._left = left

    def read(self, n: int = -1) -> bytes:
        if self._left is not None:
            n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._fh.readline()
        if self._left is not None:
            self._left -= len(line)
        return line


def _reader(fh: io.BufferedIOBase) -> io.BytesIO | _BoundedFile:
    """What the unpickler reads: small files from memory (fast), large ones bounded."""
    try:
        left = os.fstat(fh.fileno()).st_size - fh.tell()
    except (OSError, AttributeError, io.UnsupportedOperation):
        return _BoundedFile(fh, None)
    if left <= _IN_MEMORY:
        return io.BytesIO(fh.read())
    return _BoundedFile(fh, left)


def _plain_dtype(dt) -> bool:
    import numpy

    return (isinstance(dt, numpy.dtype) and dt.kind in "biufc" and dt.names is None
            and dt.subdtype is None and not dt.hasobject and dt.itemsize > 0)


class _RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler that resolves only allow-listed globals, calls them only with checked
    arguments, mutates only plain containers and stops at the limits above."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: io.BufferedIOBase, path: str, allow_numpy: bool,
                 objects: frozenset = frozenset()):
        self._source = _reader(file)
        super().__init__(self._source, encoding="bytes")
        self._path = path
        self._allow_numpy = allow_numpy
        self._objects = objects
        self._ops = 0
        self._array_bytes = 0
        self._depth: dict[int, int] = {}  # id -> nesting of each tuple/frozenset made
        self._size: dict[int, int] = {}  # id -> objects each tuple/frozenset expands to
        self._fresh: dict[int, object] = {}  # arrays/dtypes made by a reduce, not yet built

    def at_end(self) -> bool:
        """Whether the file holds nothing after what was loaded."""
        if isinstance(self._source, io.BytesIO):
            return self._source.tell() >= len(self._source.getbuffer())
        return self._source._left == 0 or not self._source._fh.peek(1)

    # the loop: the standard one, counting operations ------------------------------------
    def load(self) -> object:
        self._unframer = pickle._Unframer(self._file_read, self._file_readline)
        self.read = self._unframer.read
        self.readinto = self._unframer.readinto
        self.readline = self._unframer.readline
        self.metastack = []
        self.stack = []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch = self.read, self.dispatch
        try:
            while True:
                key = read(1)
                if not key:
                    raise EOFError("it ends before its STOP")
                self._ops += 1
                if self._ops > MAX_OBJECTS:
                    raise _Refused(f"it holds more than {MAX_OBJECTS} objects")
                dispatch[key[0]](self)
        except pickle._Stop as stop:
            return stop.value

    # globals ----------------------------------------------------------------------------
    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _PLAIN_GLOBALS:
            return collections.OrderedDict
        if self._allow_numpy and (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(_NUMPY_GLOBALS[module, name])
        what = f"{module}.{name}"
        if self._objects:
            if what == _RECONSTRUCTOR.name:
                return _RECONSTRUCTOR
            if what == _OBJECT.name:
                return _OBJECT
            if what in self._objects:
                return _ClassName(what)
        if not what.isprintable():
            what = ascii(what)
        allowed = "plain data, OrderedDict and NumPy arrays" if self._allow_numpy else (
            "plain data and OrderedDict")
        if self._objects:
            allowed += " and instances of " + ", ".join(sorted(self._objects))
        raise UVSError(
            self._path,
            f"refusing to load {what} from an untrusted pickle (only {allowed} are allowed)",
        )

    # nesting and expansion, measured as each tuple/frozenset is made ----------------------
    def _made(self, value, items) -> None:
        """Record the nesting and expanded size of a new tuple/frozenset of `items`, refusing
        it beyond the limits (shared references count at every place they appear)."""
        depth, size = 1, 1
        for x in items:
            if type(x) in (tuple, frozenset):
                depth = max(depth, 1 + self._depth.get(id(x), 1))
                size += self._size.get(id(x), 1)
            else:
                size += 1
        if depth > MAX_DEPTH:
            raise _Refused(f"it nests deeper than {MAX_DEPTH} levels")
        if size > MAX_OBJECTS:
            raise _Refused(f"it expands to more than {MAX_OBJECTS} objects")
        self._depth[id(value)] = depth
        self._size[id(value)] = size

    def _push_tuple(self, items) -> None:
        value = tuple(items)
        self._made(value, items)
        self.append(value)

    def load_mark(self) -> None:
        if len(self.metastack) >= MAX_DEPTH:
            raise _Refused(f"it nests deeper than {MAX_DEPTH} levels")
        super().load_mark()

    def load_tuple(self) -> None:
        self._push_tuple(self.pop_mark())

    def load_tuple_n(self, n: int) -> None:
        items = self.stack[-n:]
        if len(items) != n:
            raise pickle.UnpicklingError("a tuple opcode with too few items on the stack")
        del self.stack[-n:]
        self._push_tuple(items)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        _check_keys(items, "a frozenset member")
        value = frozenset(items)
        self._made(value, items)
        self.append(value)

    # containers are mutated only when they are the plain kind the opcode is for --------
    def _target(self, kinds: tuple, what: str):
        if not self.stack or type(self.stack[-1]) not in kinds:
            raise _Refused(f"it {what} something that is not a plain container")
        return self.stack[-1]

    def load_append(self) -> None:
        value = self.stack.pop()
        if not self.stack or type(self.stack[-1]) is not list:
            raise _Refused("it appends to something that is not a plain container")
        self.stack[-1].append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target((list,), "appends to").extend(items)

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        target = self._target((dict, collections.OrderedDict), "sets an item of")
        _check_keys((key,), "a dict key")
        target[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        target = self._target((dict, collections.OrderedDict), "sets an item of")
        _check_keys(items[0::2], "a dict key")
        for i in range(0, len(items) - 1, 2):
            target[items[i]] = items[i + 1]

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self._target((set,), "adds to")
        _check_keys(items, "a set member")
        target.update(items)

    # calls: only the allow-listed callables, with arguments checked first ---------------
    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if type(args) is not tuple:
            raise _Refused("a call's arguments are not a tuple")
        self.stack[-1] = self._call(func, args)

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        func = self.find_class(module, name)
        self.append(self._call(func, tuple(self.pop_mark())))

    def _legacy_object(self, cls: object) -> LegacyObject:
        obj = LegacyObject(cls.name)
        self._fresh[id(obj)] = obj
        return obj

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack[-1] if self.stack else None
        if (not self._objects or type(cls) is not _ClassName or cls.name not in self._objects
                or args != ()):
            raise pickle.UnpicklingError("it holds an object constructor, which plain data "
                                         "never does")
        self.stack[-1] = self._legacy_object(cls)

    def _call(self, func, args: tuple) -> object:
        if func is _RECONSTRUCTOR:
            if (len(args) != 3 or type(args[0]) is not _ClassName
                    or args[0].name not in self._objects or args[1] is not _OBJECT
                    or args[2] is not None):
                raise _Refused("copy_reg._reconstructor is called with other than (an admitted "
                               "class, object, None)")
            return self._legacy_object(args[0])
        if func is collections.OrderedDict:
            if len(args) > 1 or (args and type(args[0]) not in (list, tuple)):
                raise _Refused("OrderedDict is called with other than a list of pairs")
            pairs = args[0] if args else ()
            if any(type(p) not in (list, tuple) or len(p) != 2 for p in pairs):
                raise _Refused("OrderedDict is called with other than a list of pairs")
            _check_keys([p[0] for p in pairs], "a dict key")
            return collections.OrderedDict(pairs)
        if self._allow_numpy:
            name = next((n for n in ("_reconstruct", "scalar", "dtype")
                         if func is _numpy_global(n)), None)
            if name is not None:
                return getattr(self, "_numpy_" + name)(args)
        what = getattr(func, "__qualname__", type(func).__name__)
        raise _Refused(f"it calls {what}, which plain data never does")

    def _numpy__reconstruct(self, args: tuple) -> object:
        import numpy

        if (len(args) != 3 or args[0] is not numpy.ndarray or args[1] != (0,)
                or args[2] not in (b"b", "b")):
            raise _Refused("numpy _reconstruct is called with other than (ndarray, (0,), 'b')")
        array = _numpy_global("_reconstruct")(*args)
        self._fresh[id(array)] = array
        return array

    def _numpy_dtype(self, args: tuple) -> object:
        import numpy

        code = args[0] if args else None
        if isinstance(code, bytes):
            code = code.decode("ascii", "replace")
        if (len(args) != 3 or not isinstance(code, str) or not _NUMERIC_CODE.fullmatch(code)
                or args[2] not in (1, True)):
            raise _Refused(f"numpy dtype {code!r} is not a plain numeric type")
        dt = numpy.dtype(code, False, True)  # a copy: BUILD must not touch NumPy's own
        if not _plain_dtype(dt):
            raise _Refused(f"numpy dtype {code!r} is not a plain numeric type")
        self._fresh[id(dt)] = dt
        return dt

    def _numpy_scalar(self, args: tuple) -> object:
        if (len(args) != 2 or not _plain_dtype(args[0]) or id(args[0]) in self._fresh
                or type(args[1]) is not bytes or len(args[1]) != args[0].itemsize):
            raise _Refused("a numpy scalar that is not plain numeric data")
        return _numpy_global("scalar")(*args)

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1] if self.stack else None
        if self._fresh.pop(id(inst), None) is not inst or inst is None:
            raise _Refused("it sets the state of an object, which plain data never does")
        import numpy

        if isinstance(inst, LegacyObject):
            if type(state) is not dict or not all(type(k) in (bytes, str) for k in state):
                raise _Refused(f"the state of a {inst.class_name} is not a dictionary of "
                               "attributes")
            inst.attrs = state
        elif isinstance(inst, numpy.dtype):
            self._build_dtype(inst, state)
        else:
            self._build_array(inst, state)

    def _build_dtype(self, dt, state) -> None:
        endian = state[1] if type(state) is tuple and len(state) == 8 else None
        if isinstance(endian, bytes):
            endian = endian.decode("ascii", "replace")
        if (type(state) is not tuple or len(state) != 8 or state[0] != 3
                or endian not in ("<", ">", "|", "=")
                or state[2:] != (None, None, None, -1, -1, 0)):
            raise _Refused("a numpy dtype state that is not a plain numeric type")
        dt.__setstate__((3, endian, None, None, None, -1, -1, 0))

    def _build_array(self, array, state) -> None:
        if type(state) is not tuple or len(state) not in (4, 5):
            raise _Refused("a numpy array state that is not (version, shape, dtype, order, data)")
        if len(state) == 5 and state[0] not in (0, 1):
            raise _Refused(f"numpy array state version {state[0]!r}")
        shape, dt, fortran, data = state[-4:]
        if (type(shape) is not tuple or len(shape) > 32
                or not all(type(n) is int and n >= 0 for n in shape)):
            raise _Refused("a numpy array whose shape is not a tuple of sizes")
        if not _plain_dtype(dt) or id(dt) in self._fresh:
            raise _Refused(f"a numpy array of dtype {dt!r}: only plain numeric arrays are "
                           "allowed (no object, structured or string arrays)")
        if type(fortran) not in (bool, int) or fortran not in (0, 1):
            raise _Refused("a numpy array whose order flag is not a boolean")
        count = 1
        for n in shape:
            count *= n
        nbytes = count * dt.itemsize
        if self._array_bytes + nbytes > MAX_ARRAY_BYTES:
            raise _Refused(f"its arrays hold more than {MAX_ARRAY_BYTES} bytes")
        if type(data) is not bytes or len(data) != nbytes:
            raise _Refused(f"a numpy array of shape {shape} whose data is not {nbytes} bytes")
        self._array_bytes += nbytes
        array.__setstate__((1, shape, dt, bool(fortran), data))


for _code, _name in (("TUPLE", "load_tuple"), ("FROZENSET", "load_frozenset"),
                     ("MARK", "load_mark"), ("APPEND", "load_append"),
                     ("APPENDS", "load_appends"), ("SETITEM", "load_setitem"),
                     ("SETITEMS", "load_setitems"), ("ADDITEMS", "load_additems"),
                     ("REDUCE", "load_reduce"), ("INST", "load_inst"), ("BUILD", "load_build"),
                     ("NEWOBJ", "load_newobj")):
    _RestrictedUnpickler.dispatch[getattr(pickle, _code)[0]] = getattr(_RestrictedUnpickler, _name)
for _n, _code in ((1, pickle.TUPLE1), (2, pickle.TUPLE2), (3, pickle.TUPLE3)):
    _RestrictedUnpickler.dispatch[_code[0]] = (
        lambda self, n=_n: _RestrictedUnpickler.load_tuple_n(self, n))


# What may be hashed: scalars whose hash is cheap and whose collisions are few. A tuple key
# would be hashed (and compared) through every shared reference it holds, and crafted tuples
# or huge integers collide at will; the released files' keys are all words.
_KEY_TYPES = (str, bytes, int, float, bool, type(None))


def _check_keys(keys, what: str) -> None:
    """Refuse dict keys / set members other than plain scalars, before anything hashes them."""
    for key in keys:
        kind = type(key)
        if kind not in _KEY_TYPES:
            raise _Refused(f"{what} is a {kind.__name__}: only text, numbers and None may be "
                           "keys or set members in plain data")
        if kind is int and key.bit_length() > MAX_KEY_INT_BITS:
            raise _Refused(f"{what} is an integer of more than {MAX_KEY_INT_BITS} bits")


def _refuser(what: str):
    def refuse(self) -> None:
        raise pickle.UnpicklingError(f"it holds {what}, which plain data never does")
    return refuse


for _code, _what in _REFUSED_OPCODES.items():
    if _code == pickle.NEWOBJ:
        continue  # load_newobj refuses it unless instances of a class are admitted
    _RestrictedUnpickler.dispatch[_code[0]] = _refuser(_what)


def _children(obj) -> list | None:
    kind = type(obj)
    if kind in (list, tuple, set, frozenset):
        return list(obj)
    if kind is dict or kind is collections.OrderedDict:
        return [x for kv in obj.items() for x in kv]
    if kind is LegacyObject:
        return [obj.attrs]
    return None


def _leaf(obj: object) -> tuple[int, int]:
    """(objects, text bytes) of a value that holds no other."""
    if isinstance(obj, (str, bytes)):
        return 1, len(obj)
    if type(obj) is int and obj.bit_length() > MAX_INT_BITS:
        raise _Refused(f"it holds an integer of more than {MAX_INT_BITS} bits")
    return 1, 0


def _measure(value: object) -> None:
    """Refuse a loaded value beyond the limits, counting a shared object at every place it
    appears (what printing or converting it would produce), in time linear in its size."""
    if _children(value) is None:
        _leaf(value)
        return
    done: dict[int, tuple[int, int]] = {}  # id -> (objects, text) of the expanded subtree
    on_path: set[int] = set()
    todo: list[tuple[object, list | None]] = [(value, None)]
    while todo:
        obj, children = todo.pop()
        oid = id(obj)
        if children is not None:  # every child done: sum them up
            on_path.discard(oid)
            objects, text = 1, 0
            for child in children:
                o, t = done.get(id(child)) or _leaf(child)
                objects += o
                text += t
            if objects > MAX_OBJECTS:
                raise _Refused(f"it expands to more than {MAX_OBJECTS} objects")
            if text > MAX_TEXT:
                raise _Refused(f"its strings expand to more than {MAX_TEXT} bytes")
            done[oid] = (objects, text)
            continue
        if oid in done:
            continue
        if oid in on_path:
            raise _Refused("it contains itself")
        on_path.add(oid)
        if len(on_path) > MAX_DEPTH:
            raise _Refused(f"it nests deeper than {MAX_DEPTH} levels")
        children = _children(obj)
        todo.append((obj, children))
        for child in children:
            if id(child) not in done and _children(child) is not None:
                todo.append((child, None))


def _text(data: bytes) -> str:
    """A Python-2 byte string as text: UTF-8, or Latin-1 where it is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _to_text(obj: object, seen: dict[int, object]) -> object:
    """Every bytes inside `obj` (keys, values, items) as str; containers keep type and order.

    Shared objects (strings included) are converted once and stay shared.
    """
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, bytes):
        seen[id(obj)] = converted_text = _text(obj)
        return converted_text
    kind = type(obj)
    if kind is LegacyObject:
        out_obj = LegacyObject(obj.class_name)
        seen[id(obj)] = out_obj
        out_obj.attrs = _to_text(obj.attrs, seen)
        return out_obj
    if kind not in (dict, collections.OrderedDict, list, tuple, set, frozenset):
        return obj  # numbers, None, str, NumPy arrays and dtypes: as loaded
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


def _check_start(fh: io.BufferedIOBase, where: str) -> None:
    head = fh.read(8)
    if not head:
        raise UVSError(where, "not a readable pickle (the file is empty)")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise UVSError(where, f"not a readable pickle ({what})")
    fh.seek(0)


def _unreadable(where: str, err: Exception) -> UVSError:
    if isinstance(err, _Refused):
        return UVSError(where, f"refusing the pickle: {err}")
    return UVSError(where, f"not a readable pickle ({one_line(err)})")


def _load_one(unpickler: _RestrictedUnpickler, where: str) -> object:
    try:
        loaded = unpickler.load()
        _measure(loaded)
        return _to_text(loaded, {})
    except UVSError:
        raise
    except (_Refused, *_UNREADABLE) as err:
        raise _unreadable(where, err) from None
    except OSError as err:
        raise UVSError(where, f"cannot read ({os_reason(err)})") from None


def _open(where: str) -> io.BufferedReader:
    return open_regular(where)


def load_pickle(path: str | os.PathLike, allow_numpy: bool = False,
                objects: frozenset | set = frozenset()) -> object:
    """Load a Python-2 pickle safely; byte strings come back as str (UTF-8, else Latin-1).

    Instances of the classes named in `objects` (dotted names, e.g. `MNLM_CLASSES`) are
    admitted as `LegacyObject`s (protocol 0/1 `copy_reg._reconstructor`, protocol 2 NEWOBJ).
    """
    where = os.fspath(path)
    with _open(where) as fh:
        try:
            _check_start(fh, where)
        except OSError as err:
            raise UVSError(where, f"cannot read ({os_reason(err)})") from None
        return _load_one(_RestrictedUnpickler(fh, where, allow_numpy, frozenset(objects)),
                         where)


def load_pickles(path: str | os.PathLike, count: int, what: str) -> list:
    """Exactly `count` Python-2 pickles written one after another in one file (safely, as
    load_pickle). `what` names them for the error when the file holds fewer or more, e.g.
    "worddict then wordcount".
    """
    where = os.fspath(path)
    out = []
    with _open(where) as fh:
        try:
            _check_start(fh, where)
        except OSError as err:
            raise UVSError(where, f"cannot read ({os_reason(err)})") from None
        unpickler = _RestrictedUnpickler(fh, where, False)
        for n in range(count):
            if n and unpickler.at_end():
                raise UVSError(where, f"holds {n} pickle{'s' if n > 1 else ''}, expected "
                               f"{count} in a row ({what})")
            out.append(_load_one(unpickler, where))
        if not unpickler.at_end():
            raise UVSError(where, f"holds more than the {count} pickles expected ({what}): "
                           "a further pickle or trailing bytes after them")
    return out
