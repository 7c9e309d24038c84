"""Combining the stores of shards that ran apart (no shared file system) into one store."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from uvs.cluster.store import check_fingerprint, create_or_open
from uvs.errors import UVSError
from uvs.stores import INPUTS, Store, open_store

_DERIVED = ("inputs", "rows", "chunk_rows")  # create_or_open adds these from the inputs


def _lines(store: Store):
    with open(os.path.join(store.path, INPUTS), encoding="utf-8", newline="\n") as f:
        for line in f:
            yield line[:-1]


def merge(sources: Sequence[str], output: str) -> dict:
    """Copy every written chunk of `sources` (stores of one job) into `output`.

    The sources must share one fingerprint; `output` is made like them, or must be a store of
    the same job. A chunk already in `output` is not copied again.
    """
    if not sources:
        raise UVSError(None, "give the stores to merge")
    stores = [open_store(s) for s in sources]
    first = stores[0]
    for other in stores[1:]:
        check_fingerprint(other, first.meta["fingerprint"])
    given = {k: v for k, v in first.meta["fingerprint"].items() if k not in _DERIVED}
    dest = create_or_open(output, first.meta["kind"], _lines(first), first.chunk_rows, given,
                          first.meta["arrays"], text=first.meta["kind"] == "captions")
    have, copied = dest.done(), 0
    for src in stores:
        for k in sorted(src.done() - have):
            a, b = src.chunk_range(k)
            arrays = {name: src.array(name)[a:b] for name in src.meta["arrays"]}
            with open(src.marker_path(k), encoding="utf-8") as f:
                report = {key: v for key, v in json.load(f).items()
                          if key not in ("chunk", "rows")}
            text = None
            if os.path.exists(src.part_path(k)):
                with open(src.part_path(k), encoding="utf-8") as f:
                    text = f.read()
            dest.write_chunk(k, arrays, src.array("status")[a:b], report, text)
            have.add(k)
            copied += 1
    return {"output": dest.path, "copied": copied, "chunks": dest.chunks,
            "missing_chunks": len(dest.missing()), "complete": not dest.missing()}


def describe(path: str) -> dict:
    """What a store holds: kind, rows, chunks written and missing, fingerprint."""
    store = open_store(path)
    skipped = sum(len(m.get("skipped", [])) for m in store.markers())
    return {"store": store.path, "kind": store.meta["kind"], "rows": store.rows,
            "chunk_rows": store.chunk_rows, "chunks": store.chunks,
            "written_chunks": len(store.done()), "missing_chunks": len(store.missing()),
            "skipped": skipped, "arrays": store.meta["arrays"],
            "fingerprint": store.meta["fingerprint"]}
