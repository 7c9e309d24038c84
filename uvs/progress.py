"""Progress bars on stderr, shown only when asked for."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click


class _Silent:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def progress(total: int, label: str, show: bool) -> Iterator:
    """A bar with `.update(n)`, drawn on stderr when `show`, else a no-op."""
    if not show:
        yield _Silent()
        return
    with click.progressbar(length=total, label=label, file=sys.stderr,
                           show_pos=True, show_eta=True) as bar:
        yield bar
