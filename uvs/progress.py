"""Progress bars on stderr (tqdm), shown only when asked for."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm


@contextlib.contextmanager
def progress(total: int, label: str, show: bool) -> Iterator:
    """A bar with `.update(n)`, drawn on stderr when `show`, else a no-op."""
    with tqdm(total=total, desc=label, file=sys.stderr, disable=not show, unit="item",
              leave=True, dynamic_ncols=True) as bar:
        yield bar
