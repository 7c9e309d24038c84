"""A guard for hostile-input tests: a hang or a blow-up fails the test instead of stopping
the suite (SIGALRM). A generous bound on a hang, not a timing assertion."""

from __future__ import annotations

import signal
from contextlib import contextmanager


@contextmanager
def no_hang(seconds: int = 60, what: str = "the call"):
    """Fail with AssertionError if the block runs longer than `seconds` (main thread only)."""
    def hung(*_):
        raise AssertionError(f"{what} did not end within {seconds} s (a hang or a blow-up)")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
