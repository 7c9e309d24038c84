"""Plumbing shared by uvs's C Ops (`uvs.gru_op`, `uvs.rowwise`): the float math header.

PyTensor keys an `ExternalCOp`'s compile cache by the hash of its own C file only, so an Op
that puts `fastmath.h` (beside this module) in front of its code adds the header's hash to
its `c_code_cache_version`.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

FASTMATH = "fastmath.h"  # float math shared by gru_op.c and rowwise.c, put in front of both


@functools.cache
def fastmath_header() -> tuple[str, str]:
    """(text, sha256) of fastmath.h: C Ops prepend the text and add the hash to their cache
    version, as PyTensor hashes only their own file."""
    text = (Path(__file__).with_name(FASTMATH)).read_text()
    return text, hashlib.sha256(text.encode()).hexdigest()
