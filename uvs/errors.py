"""The one exception uvs raises for bad input: it names the file and the problem."""

from __future__ import annotations

import os


class UVSError(Exception):
    """Bad input: `str(err)` is one line, `PATH: problem`."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(problem if self.path is None else f"{self.path}: {problem}")


def one_line(err: BaseException | str, limit: int = 200) -> str:
    """A library's error message as one printable line of at most `limit` characters (+ ...)."""
    detail = " ".join(str(err).split()) or type(err).__name__
    if not detail.isprintable():
        detail = ascii(detail)
    return detail if len(detail) <= limit else detail[:limit] + "..."


def os_reason(err: BaseException) -> str:
    """Why an OSError happened, in words: its strerror, else its errno's, else its message
    (NumPy's short writes on a full disk carry neither: '4096 requested and 0 written')."""
    code = getattr(err, "errno", None)
    return getattr(err, "strerror", None) or (os.strerror(code) if code else None) or one_line(err)
