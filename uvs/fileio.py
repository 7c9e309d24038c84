"""Atomic writes: a temporary file in the target's folder, renamed into place when complete."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from collections.abc import Iterator

import numpy as np

from uvs.errors import UVSError


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
    reason = err.strerror or (os.strerror(err.errno) if err.errno else None) or str(err)
    return UVSError(path, f"cannot write: {reason}")


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
        raise UVSError(path, f"cannot read ({getattr(err, 'strerror', None) or err})") from None
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


def read_lines(path: str | os.PathLike) -> list[str]:
    """UTF-8 lines exactly as written, minus their newline; an empty line or file is an error.

    A UTF-8 byte-order mark at the start is dropped; a final newline ends the last line.
    """
    path = os.fspath(path)
    try:
        with open_regular(path) as f:
            raw = f.read()
    except OSError as err:
        raise UVSError(path, f"cannot read ({err.strerror or err})") from None
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
