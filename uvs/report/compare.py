"""How runs differ: labels from the options that tell runs of one kind apart, and the
options table, both bounded however many options a log holds."""

from __future__ import annotations

import json

from uvs.report.logs import Run

PATH_OPTIONS = {"saveto", "data_dir", "reload_"}  # differ between runs without meaning much
MAX_LABEL_OPTIONS = 6     # options named in a run's label
MAX_OPTION_ROWS = 200     # rows of the options table (those that differ first)
MAX_SHOWN = 80            # characters of a value in the table
MAX_LABEL_VALUE = 30      # characters of a value in a label


def _key(value) -> str:
    """A value as canonical text, to compare (a value too deep to write is its own kind)."""
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (RecursionError, ValueError):
        return "<nested too deeply>"


def show(value, limit: int = MAX_SHOWN) -> str:
    """A value as the page shows it, cut to `limit` characters."""
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, str):
        text = value
    elif value is None or isinstance(value, (bool, int)):
        text = str(value)
    else:
        text = _key(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def option_names(runs: list[Run]) -> list[str]:
    """Every option of every run, in the order met."""
    names: dict[str, None] = {}
    for r in runs:
        names.update(dict.fromkeys(r.options))
    return list(names)


def differing_options(runs: list[Run]) -> list[str]:
    """Option names whose values are not the same in every run (paths aside), in order."""
    if len(runs) < 2:
        return []
    return [k for k in option_names(runs) if k not in PATH_OPTIONS and
            len({_key(r.options[k]) if k in r.options else "\0unset" for r in runs}) > 1]


def _same_kind(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.kind, []).append(r)
    return groups


def labels(runs: list[Run]) -> list[str]:
    """Each run named by the options in which it differs from the runs of its kind, and
    by its kind when kinds are mixed (else its name); options it lacks are not named.

    Two runs equal in every option are told apart by their file names.
    """
    groups = _same_kind(runs)
    differing = {kind: differing_options(group) for kind, group in groups.items()}
    out = []
    for r in runs:
        parts = [f"{show(k, MAX_LABEL_VALUE)}={show(r.options[k], MAX_LABEL_VALUE)}"
                 for k in differing[r.kind] if k in r.options]
        if len(parts) > MAX_LABEL_OPTIONS:
            parts[MAX_LABEL_OPTIONS:] = [f"(+{len(parts) - MAX_LABEL_OPTIONS} more)"]
        if len(groups) > 1:
            parts.insert(0, f"{r.kind}:" if parts else r.kind)
        out.append(" ".join(parts) or r.name)
    if len(set(out)) < len(out):
        out = [r.name if text == r.name else f"{r.name} ({text})"
               for r, text in zip(runs, out, strict=True)]
    if len(set(out)) < len(out):
        out = [r.log for r in runs]
    return out


def option_rows(runs: list[Run]) -> tuple[list[dict], int]:
    """The options table's rows, [{'name', 'differs', 'cells'}], and how many were left out.

    An option differs when it is not the same among the runs of one kind; past
    MAX_OPTION_ROWS, those that differ are kept first.
    """
    names = option_names(runs)
    differ: set[str] = set()
    for group in _same_kind(runs).values():
        differ.update(differing_options(group))
    if len(names) > MAX_OPTION_ROWS:
        keep = [k for k in names if k in differ][:MAX_OPTION_ROWS]
        keep += [k for k in names if k not in differ][:MAX_OPTION_ROWS - len(keep)]
        kept = set(keep)
        names = [k for k in names if k in kept]
    rows = [{"name": show(k), "differs": k in differ,
             "cells": [show(r.options[k]) if k in r.options else "—" for r in runs]}
            for k in names]
    return rows, len(option_names(runs)) - len(rows)
