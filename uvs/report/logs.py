"""Training runs read from their JSON-lines logs: options, curves, and how runs differ.

Each `NAME.log.jsonl` holds `start` (options), `update` (cost), `valid` (dev metrics),
`diverged` and `end` events. Every numeric field of `update` and `valid` events is a curve,
so trainers that log other scores (a decoder's, an aligner's) are plotted without changes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from uvs.errors import UVSError

LOG_SUFFIX = ".log.jsonl"
NOT_METRICS = {"update", "epoch", "max_epochs", "uidx", "time"}  # and timings (`*seconds*`)
PATH_OPTIONS = {"saveto", "data_dir", "reload_"}  # differ between runs without meaning much
LOWER_IS_BETTER = ("cost", "loss", "medr", "meanr", "perplexity", "ppl", "error", "err")


@dataclass
class Run:
    """One training run: where its log is, its options, and its curves.

    curves: {(source, metric): {update: value}}, source 'update' (training) or 'valid' (dev),
    metric a dotted path into the event ('cost', 'i2t.r1', 'rsum', ...).
    """

    log: str
    options: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    diverged: list = field(default_factory=list)
    interrupted: list = field(default_factory=list)
    finished: bool = False
    resumed: int = 0

    @property
    def name(self) -> str:
        return os.path.basename(self.log)[:-len(LOG_SUFFIX)]

    @property
    def updates(self) -> int:
        return max((u for c in self.curves.values() for u in c), default=0)


def log_path(run: str | os.PathLike) -> str:
    """The training log of RUN: `X.log.jsonl` itself, or the log beside model `X.npz`."""
    path = os.fspath(run)
    if path.endswith(LOG_SUFFIX):
        candidates = [path]
    else:
        stem = path[:-4] if path.endswith(".npz") else path
        if stem.endswith(".last"):
            stem = stem[:-5]
        candidates = [stem + LOG_SUFFIX]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise UVSError(path, f"no training log found (looked for {candidates[0]})")


def _numbers(obj, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON object by dotted path (booleans are not numbers here)."""
    out = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_numbers(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def read_run(run: str | os.PathLike) -> Run:
    """A run from its log (or its model's path); a half-written last line is ignored."""
    path = log_path(run)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise UVSError(path, f"cannot read: {err.strerror}") from None
    lines = raw.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with a newline
    out = Run(log=path)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise UVSError(path, f"line {n} is not a JSON object") from None
        if not isinstance(event, dict):
            raise UVSError(path, f"line {n} is not a JSON object")
        _add_event(out, event)
    if not out.curves and not out.options:
        what = "only a half-written line" if partial.strip() else "no events"
        raise UVSError(path, f"{what}: not a training log, or the run has not started")
    return out


def _add_event(run: Run, event: dict) -> None:
    kind = event.get("event")
    if kind == "start":
        if isinstance(event.get("options"), dict):
            run.options.update(event["options"])  # a resumed run may change its schedule
        run.resumed += bool(event.get("resume"))
    elif kind in ("update", "valid") and isinstance(event.get("update"), (int, float)):
        update = int(event["update"])
        for metric, value in _numbers(event).items():
            if metric not in NOT_METRICS and "seconds" not in metric:
                # a resumed run repeats updates after its checkpoint: the later value wins
                run.curves.setdefault((kind, metric), {})[update] = value
    elif kind == "diverged":
        run.diverged.append(event)
    elif kind == "interrupted":
        run.interrupted.append(event)
    elif kind == "end":
        run.finished = True


def lower_is_better(metric: str) -> bool:
    """Costs, errors and ranks go down as a model improves; recalls and scores go up."""
    last = metric.rsplit(".", 1)[-1].lower()
    return any(last == w or last.endswith("_" + w) or last.startswith(w + "_")
               for w in LOWER_IS_BETTER)


def best_point(curve: dict[int, float], metric: str) -> tuple[int, float] | None:
    """(update, value) of the best value of a curve (the earliest when tied)."""
    if not curve:
        return None
    sign = 1.0 if lower_is_better(metric) else -1.0
    update = min(curve, key=lambda u: (sign * curve[u], u))
    return update, curve[update]


def differing_options(runs: list[Run]) -> list[str]:
    """Option names whose values are not the same in every run (paths aside), in order."""
    if len(runs) < 2:
        return []
    names: list[str] = []
    for r in runs:
        names.extend(k for k in r.options if k not in names)

    def value(r: Run, k: str) -> str:
        return json.dumps(r.options[k], sort_keys=True, default=str) if k in r.options \
            else "<unset>"

    return [k for k in names if k not in PATH_OPTIONS and len({value(r, k) for r in runs}) > 1]


def show(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def labels(runs: list[Run]) -> list[str]:
    """Each run named by the options in which it differs from the others (else its name).

    Two runs equal in every option are told apart by their file names.
    """
    keys = differing_options(runs)
    out = [" ".join(f"{k}={show(r.options.get(k, '-'))}" for k in keys) or r.name
           for r in runs]
    if len(set(out)) < len(out):
        out = [f"{r.name}: {text}" if keys else r.name for r, text in zip(runs, out, strict=True)]
    if len(set(out)) < len(out):
        out = [f"{r.log}" for r in runs]
    return out


def metric_order(runs: list[Run]) -> list[tuple[str, str]]:
    """All curves of all runs: training cost first, then rsum, the two directions' scores,
    and anything else in the order met."""
    found: list[tuple[str, str]] = []
    for r in runs:
        found.extend(k for k in r.curves if k not in found)

    def key(item):
        source, metric = item
        if source == "update":
            return (0 if metric == "cost" else 1, 0, 0)
        head = metric.split(".")[0]
        rank = {"rsum": 0, "i2t": 1, "t2i": 2}.get(head, 3)
        sub = {"r1": 0, "r5": 1, "r10": 2, "medr": 3, "meanr": 4}.get(metric.split(".")[-1], 5)
        return (2, rank, sub)

    return sorted(found, key=lambda k: (key(k), found.index(k)))
