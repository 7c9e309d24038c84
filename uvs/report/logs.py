"""Training runs read from their JSON-lines logs: kind, options and curves, within bounds.

Each `NAME.log.jsonl` holds `start` (options, and the model's kind), `update` (cost), `valid`
(dev metrics), `diverged`, `interrupted` and `end` events. Every numeric field of `update` and
`valid` events is a curve, so trainers that log other scores (a decoder's, an aligner's) are
plotted without changes. What a log holds beyond the bounds below is left out and said so
(`Run.notes`): a report of any log takes seconds and bounded memory.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field

from uvs.errors import UVSError, one_line, os_reason

LOG_SUFFIX = ".log.jsonl"
NOT_METRICS = {"update", "epoch", "max_epochs", "uidx", "time", "best"}  # and `*seconds*`
MAX_LOG_BYTES = 16 << 20     # read of one log; a long real run's log is a few MB
MAX_LOG_LINES = 200_000      # events read of one log
MAX_CURVES = 100             # curves kept of one run (the first met)
MAX_NAME = 100               # characters of a metric's dotted name
MAX_DEPTH = 6                # levels of nesting a metric may sit under in an event
MAX_VALUE = 1e300            # larger magnitudes (and NaN, Inf) are not drawn
MAX_UPDATE = 2 ** 53         # update counts beyond are not counts
KINDS = ("vse", "align", "decoder")


@dataclass
class Run:
    """One training run: where its log is, its kind, options and curves.

    curves: {(source, metric): {update: value}}, source 'update' (training) or 'valid' (dev),
    metric a dotted path into the event ('cost', 'i2t.r1', 'rsum', ...).
    notes: what was left out of this log, one sentence each.
    """

    log: str
    kind: str = ""
    options: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    diverged: list = field(default_factory=list)
    interrupted: list = field(default_factory=list)
    finished: bool = False
    resumed: int = 0
    last_update: int = 0
    notes: list = field(default_factory=list)
    dropped: dict = field(default_factory=dict)  # metric names beyond MAX_CURVES, in order
    bad_values: int = 0                          # NaN, Inf or huge values not drawn

    @property
    def name(self) -> str:
        return os.path.basename(self.log)[:-len(LOG_SUFFIX)]

    @property
    def updates(self) -> int:
        return max([self.last_update, *(max(c) for c in self.curves.values() if c)])


def log_path(run: str | os.PathLike) -> str:
    """The training log of RUN: `X.log.jsonl` itself, or the log beside model `X.npz`."""
    path = os.fspath(run)
    if path.endswith(LOG_SUFFIX):
        candidate = path
    else:
        stem = path[:-4] if path.endswith(".npz") else path
        if stem.endswith(".last"):
            stem = stem[:-5]
        candidate = stem + LOG_SUFFIX
    if not os.path.lexists(candidate):
        raise UVSError(path, f"no training log found (looked for {candidate})")
    return candidate


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular(path: str, limit: int) -> tuple[bytes, int]:
    """Up to `limit` bytes of a regular file, and its size; anything else is refused at once.

    Opened without blocking (a FIFO's open would wait for a writer) and checked with fstat
    on the open file, so nothing swapped in between is read. Links are followed: what they
    lead to must be a regular file too.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise UVSError(path, f"cannot read: {os_reason(err)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UVSError(path, f"is {_file_type(st.st_mode)}: a training log is a regular "
                           "file")
        os.set_blocking(fd, True)
        chunks, left = [], limit
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks), st.st_size
    except OSError as err:
        raise UVSError(path, f"cannot read: {os_reason(err)}") from None
    finally:
        os.close(fd)


def _megabytes(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n} bytes"


def read_run(run: str | os.PathLike) -> Run:
    """A run from its log (or its model's path); a half-written last line is ignored.

    At most MAX_LOG_BYTES and MAX_LOG_LINES of a log are read, MAX_CURVES curves kept.
    """
    path = log_path(run)
    raw, size = read_regular(path, MAX_LOG_BYTES)
    out = Run(log=path)
    lines = raw.split(b"\n")
    partial = lines.pop()  # b"" when the file ends with a newline
    if size > len(raw):
        out.notes.append(f"only the first {_megabytes(len(raw))} of {_megabytes(size)} "
                         "were read; later events are left out")
        partial = b""
    if len(lines) > MAX_LOG_LINES:
        out.notes.append(f"only the first {MAX_LOG_LINES} lines were used (of {len(lines)} "
                         "read); later events are left out")
        del lines[MAX_LOG_LINES:]
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except RecursionError:
            raise UVSError(path, f"line {n} is nested too deeply to be a training log "
                           "event") from None
        except (ValueError, UnicodeDecodeError) as err:
            raise UVSError(path, f"line {n} is not a JSON object ({one_line(err, 80)})") \
                from None
        if not isinstance(event, dict):
            raise UVSError(path, f"line {n} is not a JSON object")
        _add_event(out, event, path, n)
    if not out.curves and not out.options:
        what = "only a half-written line" if partial.strip() else "no events"
        raise UVSError(path, f"{what}: not a training log, or the run has not started")
    out.kind = out.kind or guess_kind(out.options, out.curves)
    if out.dropped:
        names = list(out.dropped)
        out.notes.append(f"{len(names)} more metrics than the {MAX_CURVES} kept are left out: "
                         + ", ".join(names[:10]) + (", …" if len(names) > 10 else ""))
    if out.bad_values:
        out.notes.append(f"{out.bad_values} values that are NaN, infinite or beyond "
                         f"±{MAX_VALUE:g} are not drawn")
    return out


def guess_kind(options: dict, curves: dict) -> str:
    """The kind of model of a log whose `start` event does not name it (older logs)."""
    if "regions" in options:
        return "align"
    if "dimctx" in options or ("valid", "dev_cost_per_word") in curves:
        return "decoder"
    return "vse"


def _numbers(obj: dict, prefix: str = "", depth: int = 0):
    """(dotted path, value) of the numeric leaves of an event (booleans are not numbers)."""
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                yield from _numbers(value, name + ".", depth + 1)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


def _update_of(event: dict, path: str, n: int) -> int | None:
    """The event's update count; a value that cannot be one refuses the log."""
    value = event.get("update")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UVSError(path, f"line {n}: update is {json.dumps(value)[:40]}, not a count of "
                       "updates")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise UVSError(path, f"line {n}: update is {value}, not a count of updates")
    if not 0 <= value <= MAX_UPDATE:
        raise UVSError(path, f"line {n}: update is {str(value)[:40]}, not a count of updates")
    return int(value)


def _add_event(run: Run, event: dict, path: str, n: int) -> None:
    kind = event.get("event")
    update = _update_of(event, path, n) if kind != "start" else None
    if update is not None:
        run.last_update = max(run.last_update, update)
    if kind == "start":
        if isinstance(event.get("options"), dict):
            run.options.update(event["options"])  # a resumed run may change its schedule
        if isinstance(event.get("kind"), str):
            run.kind = event["kind"][:40]
        run.resumed += bool(event.get("resume"))
    elif kind in ("update", "valid") and update is not None:
        for metric, value in _numbers(event):
            if metric in NOT_METRICS or "seconds" in metric:
                continue
            key = (kind, metric)
            curve = run.curves.get(key)
            if curve is None:
                if len(run.curves) >= MAX_CURVES or len(metric) > MAX_NAME:
                    run.dropped[metric if len(metric) <= MAX_NAME else
                                metric[:MAX_NAME] + "…"] = None
                    continue
                curve = run.curves[key] = {}
            try:
                number = float(value)
            except OverflowError:  # an integer too large for a float
                number = math.inf
            if not abs(number) <= MAX_VALUE:
                run.bad_values += 1
                curve.pop(update, None)
                continue
            # a resumed run repeats updates after its checkpoint: the later value wins
            curve[update] = number
    elif kind == "diverged":
        run.diverged.append(event)
    elif kind == "interrupted":
        run.interrupted.append(event)
    elif kind == "end":
        run.finished = True
