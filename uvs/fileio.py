"""Atomic writes: a temporary file in the target's folder, renamed into place when complete."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator

import numpy as np

from uvs.errors import UVSError, os_reason


def normal_mode(bits: int = 0o666) -> int:
    """`bits` less the process's umask: the mode `open()` (or `mkdir()` with 0o777) gives."""
    umask = os.umask(0)
    os.umask(umask)
    return bits & ~umask


def _mode_for(path: str) -> int:
    """The permissions of the regular file `path` replaces, else a new file's normal mode."""
    try:
        st = os.lstat(path)
    except OSError:
        return normal_mode()
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else normal_mode()


def write_error(path: str | os.PathLike, err: OSError) -> UVSError:
    """`PATH: cannot write: No space left on device` (or whichever reason) for `err`."""
    return UVSError(path, f"cannot write: {os_reason(err)}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The result keeps the permissions of the file it replaces, or gets a new file's normal mode.
    `suffix` keeps an extension that a writer insists on (``np.save`` appends ``.npy``).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UVSError(path, f"cannot write: folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp" + suffix,
                                   dir=folder)
    except OSError as err:
        raise write_error(path, err) from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path))  # mkstemp made it private
        os.replace(tmp, path)
    except OSError as err:  # a full disk included: the file the user asked for is named
        raise write_error(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def open_regular(path: str | os.PathLike, what: str = "file") -> io.BufferedReader:
    """Open `path` for reading in binary only if it is a regular file (symbolic links to one
    followed): a FIFO, device or folder is refused at once instead of blocking the read."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UVSError(path, f"{what} not found") from None
    except IsADirectoryError:
        raise UVSError(path, f"a folder, not a {what}") from None
    except (OSError, ValueError) as err:  # ValueError: a NUL in the path
        raise UVSError(path, f"cannot read ({os_reason(err)})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "a device")
            raise UVSError(path, f"{kind}, not a regular file: refusing to read it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """`np.save` to exactly `path`, atomically."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, array)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to `path`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


# What str.splitlines() ends a line at, besides "\n" and "\r": a name holding one cannot be
# one line of a list that is read back.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def has_line_break(text: str) -> bool:
    """Whether `text` holds a character that any reader of lines may split at."""
    return any(c in text for c in LINE_BREAKS)


NPY_MAGIC = b"\x93NUMPY"


def load_npy(path: str | os.PathLike, mmap: bool = False, what: str = "file") -> np.ndarray:
    """A `.npy` array (memory-mapped if `mmap`), never unpickled: a file that is no `.npy`
    (a text file, a pickle) or that holds Python objects is one line saying so."""
    path = os.fspath(path)
    with open_regular(path, what) as f:  # a FIFO would block np.load
        try:
            head = f.read(len(NPY_MAGIC))
        except OSError as err:
            raise UVSError(path, f"cannot read: {os_reason(err)}") from None
    if head != NPY_MAGIC:
        kind = "an .npz archive" if head.startswith(b"PK") else (
            "text" if _looks_like_text(path) else "some other file")
        raise UVSError(path, f"not a .npy array: it is {kind} (a .npy starts with "
                       "NumPy's header; `uvs features` or numpy.save writes one)")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err):
            raise UVSError(path, "holds Python objects, not numbers: refused") from None
        raise UVSError(path, f"not a readable .npy array ({err})") from None
    except (OSError, EOFError) as err:
        raise UVSError(path, f"not a readable .npy array ({err})") from None


def _looks_like_text(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(4096).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return True


def read_lines(path: str | os.PathLike) -> list[str]:
    """UTF-8 lines exactly as written, minus their newline; an empty line or file is an error.

    A UTF-8 byte-order mark at the start is dropped; a final newline ends the last line.
    """
    path = os.fspath(path)
    try:
        with open_regular(path) as f:
            raw = f.read()
    except OSError as err:
        raise UVSError(path, f"cannot read ({os_reason(err)})") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw:
        raise UVSError(path, "the file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise UVSError(path, f"line {line} is not UTF-8 text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    for n, ln in enumerate(lines, 1):
        if not ln.strip():
            raise UVSError(path, f"line {n} is empty")
    return lines


# --- outputs never over inputs -------------------------------------------------------------

def companion_files(path: str | os.PathLike) -> list[str]:
    """`path` and the files uvs keeps beside it: a released model's `X.pkl` and
    `X.dictionary.pkl`, a run's `.last.npz`/`.log.jsonl`, `FEATS.paths.txt`."""
    path = os.fspath(path)
    stem = path[:-4] if path.endswith((".npz", ".npy")) else path
    return [path, path + ".pkl", path + ".dictionary.pkl", stem + ".paths.txt",
            stem + ".last.npz", stem + ".log.jsonl"]


def _stat(path: str):
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def check_not_input(output: str | os.PathLike, inputs, writes=(), plain=()) -> None:
    """Refuse to write `output` (or the files `writes` beside it) over one of `inputs`.

    inputs: paths the command reads (None entries skipped), each with its companion files
    (`companion_files`, refused even before they exist: uvs would read them later) and
    embedding caches (`SOURCE.uvs-<hash>.npz`); plain: inputs without companions (photos: one
    stat each). Links, `..` and hard links are resolved. One line naming both.
    """
    output = os.fspath(output)
    written = [(w, _stat(w), os.path.realpath(w))
               for w in (output, *(os.fspath(w) for w in writes))]
    checks = [(os.fspath(i), False) for i in plain if i is not None]
    checks += [(os.fspath(i), True) for i in inputs if i is not None]
    for given, with_companions in checks:
        reads = companion_files(given) if with_companions else [given]
        stats = [(r, _stat(r)) for r in reads]
        for w, wst, real in written:
            clash = next((r for r, st in stats if st is not None and wst is not None
                          and os.path.samestat(st, wst)), None)
            if clash is None and with_companions:
                clash = next((r for r in reads if os.path.realpath(r) == real), None)
                if clash is None and _is_cache_of(w, given):
                    clash = w
            if clash is not None:
                which = given if clash == given else f"{clash}, beside {given}"
                raise UVSError(output, f"would write over an input of this command "
                               f"({which}): give the output another name")


def _is_cache_of(path: str, source: str) -> bool:
    """Whether `path` is an embedding cache kept beside `source` (`SOURCE.uvs-<hash>.npz`)."""
    real, src = os.path.realpath(path), os.path.realpath(source)
    return real.startswith(src + ".uvs-") and real.endswith(".npz")


def check_replaceable(output: str | os.PathLike, looks_right, what: str) -> None:
    """Refuse to replace an existing file at `output` unless `looks_right(path)` says it is
    `what` this command writes (an older one of its outputs), e.g. never a model by features."""
    output = os.fspath(output)
    if not os.path.lexists(output):
        return
    if not os.path.isfile(output):
        raise UVSError(output, "exists and is not a regular file: give the output another name")
    try:
        ours = bool(looks_right(output))
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise UVSError(output, f"exists and is not {what}: refusing to overwrite it (remove "
                       "it first, or give the output another name)")


def is_npy(path: str) -> bool:
    """Whether the file starts as a `.npy` does."""
    with open(path, "rb") as f:
        return f.read(len(NPY_MAGIC)) == NPY_MAGIC


def npz_members(path: str) -> set[str]:
    """The array names of a `.npz` (from its zip directory; nothing is decompressed)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return {n[:-4] for n in z.namelist() if n.endswith(".npy")}
    except zipfile.BadZipFile:
        return set()
