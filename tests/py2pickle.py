"""Test helper: byte streams exactly as Python 2.7 `cPickle.dump(obj, f[, protocol])` wrote."""

# Modelled on CPython 2.7 Modules/cPickle.c (save, put/put2, save_string, save_tuple, batch_list,
# batch_dict, batch_dict_exact, save_reduce). What a Python-3 value stands for:
# - `str` is a Python-2 `str` holding its UTF-8 bytes (what the released files hold); `bytes` is
#   a Python-2 `str` holding those bytes; `Py2Unicode` is a Python-2 `unicode`.
# - `int` is a Python-2 `int` when it fits a C long (64 bits), else a `long`; `Py2Long` forces it.
# - `collections.OrderedDict` goes through its Python 2.7 `__reduce__`:
#   `(OrderedDict, ([[key, value], ...],))`; a NumPy array through NumPy 1.x's (`_reconstruct`,
#   then a state tuple holding the `dtype` and the raw data as a Python-2 `str`).
# - `Global` and `Reduce` spell any other object (a code-running payload, say).
#
# Memo marks (`p<n>`, numbered from 1) hang on reference counts, which a Python-3 value does not
# carry, so that one part is modelled. cPickle's put() skips an object whose reference count is 1.
# Dict keys/values (protocol 0 walks iteritems()), list items (walked with an iterator) and the
# top-level object always have a second reference; a tuple's element, a reduce's argument tuple
# and, at protocol 2, a dict's key or value (batch_dict_exact borrows them) count as held only
# when the same Python object appears elsewhere in the value. Strings shorter than two bytes are
# never memoised nor looked up; non-empty lists and dicts always are (put2). A second occurrence
# of a memoised object is written `g<n>`.

from __future__ import annotations

import struct
from collections import OrderedDict

BATCHSIZE = 1000


class Py2Long(int):
    """A Python-2 `long` (written `L<n>L`), whatever its size."""


class Py2Unicode(str):
    """A Python-2 `unicode` object (written with the `V` / `X` opcodes)."""


class Global:
    """A module-level class or function that cPickle names with the GLOBAL opcode."""

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name


class Reduce:
    """An object whose `__reduce__` returned `(callable, args[, state])`."""

    def __init__(self, callable_: Global, args: tuple, state: object = None):
        self.callable = callable_
        self.args = args
        self.state = state


class Py2Instance:
    """An instance of a new-style Python-2 class `module.name` whose `__dict__` is `attrs`:
    protocol 0/1 write `copy_reg._reconstructor(cls, object, None)` then BUILD, protocol 2
    `cls` + empty tuple + NEWOBJ then BUILD (copy_reg's `__reduce_ex__`, cPickle save_reduce)."""

    def __init__(self, module: str, name: str, attrs: dict):
        self.module = module
        self.name = name
        self.attrs = attrs


def py2_str_repr(data: bytes) -> bytes:
    """Python 2.7 `repr()` of a `str` (PyString_Repr), as cPickle wrote it after `S`."""
    quote = b'"' if (b"'" in data and b'"' not in data) else b"'"
    out = bytearray(quote)
    for c in data:
        if c == quote[0] or c == 0x5C:
            out += b"\\" + bytes([c])
        elif c == 0x09:
            out += b"\\t"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c < 0x20 or c >= 0x7F:
            out += b"\\x%02x" % c
        else:
            out.append(c)
    out += quote
    return bytes(out)


def _raw_unicode_escape(text: str) -> bytes:
    """cPickle's modified_EncodeRawUnicodeEscape (wide build): the text after a `V` opcode."""
    out = bytearray()
    for ch in text:
        n = ord(ch)
        if n >= 0x10000:
            out += b"\\U%08x" % n
        elif n >= 256 or ch in "\\\n":
            out += b"\\u%04x" % n
        else:
            out.append(n)
    return bytes(out)


def _ndarray_reduce(arr, dtypes: dict[str, Reduce]) -> Reduce:
    """The reduce tree NumPy 1.x under Python 2 gave for a plain (non-object) array."""
    dt = arr.dtype
    if dt.hasobject or dt.names is not None or dt.subdtype is not None:
        raise ValueError("only plain numeric arrays are supported")
    if dt.str not in dtypes:  # builtin descrs are singletons: shared by every array of that type
        endian = {"=": "<", "|": "|"}.get(dt.byteorder, dt.byteorder)
        dtypes[dt.str] = Reduce(
            Global("numpy", "dtype"),
            (f"{dt.kind}{dt.itemsize}", 0, 1),
            (3, endian, None, None, None, -1, -1, 0),
        )
    fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
    return Reduce(
        Global("numpy.core.multiarray", "_reconstruct"),
        (Global("numpy", "ndarray"), (0,), "b"),
        (1, tuple(int(n) for n in arr.shape), dtypes[dt.str], fortran,
         arr.tobytes(order="F" if fortran else "C")),
    )


def _children(obj) -> list:
    if isinstance(obj, OrderedDict) or type(obj) is dict:
        return [x for kv in obj.items() for x in kv]
    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, Reduce):
        return [obj.args] + ([] if obj.state is None else [obj.state])
    if isinstance(obj, Py2Instance):
        return [obj.attrs]
    return []


def _count_refs(obj) -> dict[int, int]:
    """How many times each object is referenced from inside the value."""
    counts: dict[int, int] = {}
    stack = [obj]
    seen: set[int] = set()
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        for child in _children(o):
            counts[id(child)] = counts.get(id(child), 0) + 1
            stack.append(child)
    return counts


class _Writer:
    def __init__(self, protocol: int, refs: dict[int, int]):
        if protocol not in (0, 2):
            raise ValueError("protocol 0 (cPickle's default) or 2 only")
        self.proto = protocol
        self.refs = refs
        self.out = bytearray()
        self.memo: dict[object, int] = {}
        self.keep: list[object] = []  # keeps temporaries alive so their ids stay unique
        self.dtypes: dict[str, Reduce] = {}

    # memo -------------------------------------------------------------------------------
    def _shared(self, obj) -> bool:
        return self.refs.get(id(obj), 0) >= 2

    def put(self, key, obj, held: bool) -> None:
        if held:
            self.put2(key, obj)

    def put2(self, key, obj) -> None:
        n = len(self.memo) + 1
        self.memo[key] = n
        self.keep.append(obj)
        if self.proto == 0:
            self.out += b"p%d\n" % n
        elif n < 256:
            self.out += b"q" + bytes([n])
        else:
            self.out += b"r" + struct.pack("<i", n)

    def get(self, key) -> bool:
        n = self.memo.get(key)
        if n is None:
            return False
        if self.proto == 0:
            self.out += b"g%d\n" % n
        elif n < 256:
            self.out += b"h" + bytes([n])
        else:
            self.out += b"j" + struct.pack("<i", n)
        return True

    # scalars ----------------------------------------------------------------------------
    def save_int(self, n: int) -> None:
        if self.proto == 0 or not -0x80000000 <= n <= 0x7FFFFFFF:
            self.out += b"I%d\n" % n
        elif 0 <= n <= 0xFF:
            self.out += b"K" + bytes([n])
        elif 0 <= n <= 0xFFFF:
            self.out += b"M" + struct.pack("<H", n)
        else:
            self.out += b"J" + struct.pack("<i", n)

    def save_long(self, n: int) -> None:
        if self.proto == 0:
            self.out += b"L%dL\n" % n
            return
        if n == 0:
            self.out += b"\x8a\x00"
            return
        nbytes = (n.bit_length() if n > 0 else (-n).bit_length()) // 8 + 1
        data = n.to_bytes(nbytes, "little", signed=True)
        if n < 0 and nbytes > 1 and data[-1] == 0xFF and data[-2] & 0x80:
            data = data[:-1]
        if len(data) < 256:
            self.out += b"\x8a" + bytes([len(data)]) + data
        else:
            self.out += b"\x8b" + struct.pack("<i", len(data)) + data

    def save_float(self, x: float) -> None:
        if self.proto == 0:
            self.out += b"F" + format(x, ".17g").encode("ascii") + b"\n"  # 'g', 17 digits
        else:
            self.out += b"G" + struct.pack(">d", x)

    def save_string(self, obj, data: bytes, held: bool) -> None:
        if len(data) >= 2 and held and self.get(id(obj)):
            return
        if self.proto == 0:
            self.out += b"S" + py2_str_repr(data) + b"\n"
        elif len(data) < 256:
            self.out += b"U" + bytes([len(data)]) + data
        else:
            self.out += b"T" + struct.pack("<i", len(data)) + data
        if len(data) >= 2:
            self.put(id(obj), obj, held)

    def save_unicode(self, obj: str, held: bool) -> None:
        if len(obj) >= 2 and held and self.get(id(obj)):
            return
        if self.proto == 0:
            self.out += b"V" + _raw_unicode_escape(obj) + b"\n"
        else:
            data = obj.encode("utf-8")
            self.out += b"X" + struct.pack("<i", len(data)) + data
        if len(obj) >= 2:
            self.put(id(obj), obj, held)

    # containers -------------------------------------------------------------------------
    def save_tuple(self, obj: tuple, held: bool) -> None:
        if not obj:
            self.out += b"(t" if self.proto == 0 else b")"
            return
        if held and self.get(id(obj)):
            return
        if self.proto >= 2 and len(obj) <= 3:
            for item in obj:
                self.save(item, self._shared(item))
            self.out += b"\x85\x86\x87"[len(obj) - 1 : len(obj)]
        else:
            self.out += b"("
            for item in obj:
                self.save(item, self._shared(item))
            self.out += b"t"
        self.put(id(obj), obj, held)

    def save_list(self, obj: list, held: bool) -> None:
        if held and self.get(id(obj)):
            return
        self.out += b"(l" if self.proto == 0 else b"]"
        if not obj:
            self.put(id(obj), obj, held)
            return
        self.put2(id(obj), obj)
        if self.proto == 0:
            for item in obj:
                self.save(item, True)
                self.out += b"a"
            return
        items = list(obj)
        i = 0
        while i < len(items):  # batch_list: an iterator, so no empty batch at the end
            if len(items) - i == 1:
                self.save(items[i], True)
                self.out += b"a"
                break
            self.out += b"("
            for item in items[i : i + BATCHSIZE]:
                self.save(item, True)
            self.out += b"e"
            i += BATCHSIZE

    def save_dict(self, obj: dict, held: bool) -> None:
        if held and self.get(id(obj)):
            return
        self.out += b"(d" if self.proto == 0 else b"}"
        if not obj:
            self.put(id(obj), obj, held)
            return
        self.put2(id(obj), obj)
        if self.proto == 0:
            for key, value in obj.items():  # batch_dict over iteritems(): one SETITEM each
                self.save(key, True)
                self.save(value, True)
                self.out += b"s"
            return
        items = list(obj.items())  # batch_dict_exact: PyDict_Next, borrowed references
        if len(items) == 1:
            self.save(items[0][0], self._shared(items[0][0]))
            self.save(items[0][1], self._shared(items[0][1]))
            self.out += b"s"
            return
        i = 0
        while True:
            batch = items[i : i + BATCHSIZE]
            self.out += b"("
            for key, value in batch:
                self.save(key, self._shared(key))
                self.save(value, self._shared(value))
            self.out += b"u"
            i += BATCHSIZE
            if len(batch) != BATCHSIZE:
                break

    def save_global(self, obj: Global) -> None:
        key = ("global", obj.module, obj.name)
        if self.get(key):
            return
        self.out += b"c" + obj.module.encode() + b"\n" + obj.name.encode() + b"\n"
        self.put2(key, obj)

    def save_reduce(self, obj: Reduce, held: bool, memo_obj: object) -> None:
        if held and self.get(id(memo_obj)):
            return
        self.save(obj.callable, True)
        self.save(obj.args, self._shared(obj.args))
        self.out += b"R"
        if obj.state is not None and not isinstance(obj.state, dict):
            self.put2(id(memo_obj), memo_obj)
        else:
            self.put(id(memo_obj), memo_obj, held)
        if obj.state is not None:
            self.save(obj.state, self._shared(obj.state))
            self.out += b"b"

    def save_instance(self, obj: Py2Instance, held: bool) -> None:
        cls = Global(obj.module, obj.name)
        self.keep.append(cls)
        if self.proto < 2:
            args = (cls, Global("__builtin__", "object"), None)
            tree = Reduce(Global("copy_reg", "_reconstructor"), args, obj.attrs or None)
            self.keep += [args, tree]
            self.save_reduce(tree, held, obj)
            return
        if held and self.get(id(obj)):
            return
        self.save(cls, True)
        self.out += b")\x81"  # EMPTY_TUPLE, NEWOBJ
        self.put(id(obj), obj, held)
        if obj.attrs:
            self.save(obj.attrs, self._shared(obj.attrs))
            self.out += b"b"

    # dispatch ---------------------------------------------------------------------------
    def save(self, obj, held: bool) -> None:
        if obj is None:
            self.out += b"N"
        elif obj is True or obj is False:
            if self.proto >= 2:
                self.out += b"\x88" if obj else b"\x89"
            else:
                self.out += b"I01\n" if obj else b"I00\n"
        elif isinstance(obj, Py2Long):
            self.save_long(int(obj))
        elif isinstance(obj, int):
            if -(2**63) <= obj < 2**63:
                self.save_int(obj)
            else:
                self.save_long(obj)
        elif isinstance(obj, float):
            self.save_float(obj)
        elif isinstance(obj, Py2Unicode):
            self.save_unicode(obj, held)
        elif isinstance(obj, str):
            self.save_string(obj, obj.encode("utf-8"), held)
        elif isinstance(obj, bytes):
            self.save_string(obj, obj, held)
        elif isinstance(obj, tuple):
            self.save_tuple(obj, held)
        elif isinstance(obj, list):
            self.save_list(obj, held)
        elif isinstance(obj, OrderedDict):
            items = [[k, v] for k, v in obj.items()]
            self.keep.append(items)
            args = (items,)
            self.keep.append(args)
            self.save_reduce(Reduce(Global("collections", "OrderedDict"), args), held, obj)
        elif type(obj) is dict:
            self.save_dict(obj, held)
        elif isinstance(obj, Global):
            self.save_global(obj)
        elif isinstance(obj, Reduce):
            self.save_reduce(obj, held, obj)
        elif isinstance(obj, Py2Instance):
            self.save_instance(obj, held)
        elif type(obj).__name__ == "ndarray" and type(obj).__module__ == "numpy":
            tree = _ndarray_reduce(obj, self.dtypes)
            self.keep.append(tree)
            self.refs[id(tree.state[2])] = 2  # the array holds its dtype too
            self.save_reduce(tree, held, obj)
        else:
            raise TypeError(f"py2pickle cannot write {type(obj).__name__}")


def dumps_py2(obj: object, protocol: int = 0) -> bytes:
    """The bytes `cPickle.dump(obj, f, protocol)` wrote under Python 2.7 (default protocol 0)."""
    writer = _Writer(protocol, _count_refs(obj))
    if protocol >= 2:
        writer.out += b"\x80" + bytes([protocol])
    writer.save(obj, True)
    writer.out += b"."
    return bytes(writer.out)


def py2_reduce_payload(target: str) -> bytes:
    """A protocol-0 pickle whose `__reduce__` runs `os.system('touch TARGET')` when loaded."""
    command = ("touch " + target).encode("utf-8")
    return b"cos\nsystem\n(S" + py2_str_repr(command) + b"\ntR."
