"""What every training run shares: its files beside the model, and never losing work.

A run writing the best model `NAME.npz` keeps beside it `NAME.last.npz` (the checkpoint for
exact resume), `NAME.log.jsonl` (one JSON object per event) and `NAME.lock` while it runs.
`Run` is the context a trainer works in:

- it refuses to start afresh over another run's files unless told to resume (`reload`) or to
  `overwrite` them, and a second run on the same model while one is alive (an `flock`ed lock
  file: a crashed run's lock does not block);
- `preflight` probes the folder (a `mkstemp` file: O_CREAT|O_EXCL, no symlink followed) and
  checks free space for a checkpoint replacement before any long work;
- `event` appends to the log (opened with O_NOFOLLOW: never through a planted link), tells
  the `on_event` callback, and logs a human line through `logging` (the CLI shows it);
- SIGINT/SIGTERM set a flag; the trainer calls `stop_point()` between updates, which raises
  `Interrupted` so that it writes its checkpoint and the command exits 130/143;
- `diverged` stops on a NaN/Inf with one line saying what is kept.

This module knows no command line and no particular model: trainers pass their parameters,
options and dictionary, and the numbers they report.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from uvs.errors import UVSError
from uvs.modelfile import ModelFile, read_model, write_model

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


@dataclass(frozen=True)
class RunPaths:
    """The files of the run whose best model is `best` (a `.npz` path)."""

    best: str
    last: str
    log: str
    lock: str

    @classmethod
    def beside(cls, saveto: str | os.PathLike) -> RunPaths:
        saveto = os.fspath(saveto)
        stem = saveto[:-4] if saveto.endswith(".npz") else saveto
        return cls(saveto, stem + ".last.npz", stem + ".log.jsonl", stem + ".lock")

    def existing(self) -> list[str]:
        """The run's files already on disk (links included), best model first."""
        return [p for p in (self.best, self.last, self.log) if os.path.lexists(p)]


@dataclass
class TrainState:
    """Where a run stands; stored as `train_state` in the last checkpoint.

    epoch: epochs completed; batch: batches of the current epoch consumed; uidx: updates done;
    best: the best dev score so far (-1 before any); best_metrics: the dev metrics it came with.
    """

    epoch: int = 0
    batch: int = 0
    uidx: int = 0
    best: float = -1.0
    best_metrics: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def read(cls, stored, path: str) -> TrainState:
        """The state stored in the checkpoint at `path`, checked."""
        names = [f.name for f in fields(cls)]
        if not isinstance(stored, dict) or sorted(stored) != sorted(names):
            raise UVSError(path, f"not a training checkpoint: train_state should hold "
                           f"{', '.join(names)}")
        counters = [stored[k] for k in ("epoch", "batch", "uidx")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counters) \
                or not isinstance(stored["best"], (int, float)) \
                or not isinstance(stored["best_metrics"], (dict, type(None))):
            raise UVSError(path, "damaged checkpoint: bad train_state values")
        return cls(**stored)


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run; `last` holds its checkpoint once written."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_status = 128 + signum
        self.last: str | None = None
        self.saveto: str | None = None
        self.update = self.epoch = 0
        super().__init__(SIGNAL_NAMES.get(signum, f"signal {signum}"))

    def __str__(self) -> str:
        name = SIGNAL_NAMES.get(self.signum, f"signal {self.signum}")
        return (f"interrupted by {name} at update {self.update} (epoch {self.epoch + 1}); "
                f"checkpoint {self.last}")


def checkpoint_bytes(param_bytes: int, optimizer_copies: int = 2) -> int:
    """Free space a run needs to replace its files: about 9x the parameters under Adam.

    The best model (1x) and the last checkpoint (parameters plus the optimizer's copies, 3x
    for Adam's two moments) each exist twice while a new one is renamed over the old; one
    more 1x for the archives' overhead and the log.
    """
    return (2 * (1 + 1 + optimizer_copies) + 1) * param_bytes


def optimizer_state(f_update, tparams: dict) -> OrderedDict:
    """The optimizer's own shared variables (moments, step count) of `f_update`, by name."""
    own = {id(v) for v in tparams.values()}
    return OrderedDict((v.name, v) for v in f_update.get_shared() if id(v) not in own)


def _take_lock(path: str, saveto: str) -> int:
    """An flock'ed descriptor on `path`; refused while another live process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UVSError(path, "is a symbolic link; uvs does not write through links") \
                    from None
            raise UVSError(saveto, f"cannot write here: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").split()
            os.close(fd)
            who = f"pid {holder[0]}" if holder else "another process"
            raise UVSError(saveto, f"another training ({who}) is writing this model now "
                           f"(lock {path}); wait for it or choose another --saveto") from None
        # a previous holder may have removed the file between our open and flock: retry
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)


class Run:
    """One training run writing `saveto`: use as `with Run(...) as run:` around the work.

    reload: resume from the last checkpoint if there is one; overwrite: replace another run's
    files; on_event: called with each log record (a dict, as written to the JSON log);
    logger: where human-readable lines go (INFO), `logging.getLogger("uvs.train")` if None;
    kind: the kind of model trained (`uvs.modelfile.KINDS`), written in its files' headers
    and required of the checkpoint (None: the trainer writes it, any kind is read).
    """

    def __init__(self, saveto: str | os.PathLike, reload: bool = False, overwrite: bool = False,
                 on_event: Callable[[dict], None] | None = None,
                 logger: logging.Logger | None = None, kind: str | None = None):
        self.paths = RunPaths.beside(saveto)
        self.kind = kind
        self.reload, self.overwrite = bool(reload), bool(overwrite)
        self.on_event = on_event
        self.log = logger or logging.getLogger("uvs.train")
        self.signal: int | None = None
        self.resuming = False
        self._lock_fd: int | None = None
        self._handlers: dict = {}
        self._clock = (time.time(), 0)

    # -- opening and closing -------------------------------------------------------------

    def __enter__(self) -> Run:
        p = self.paths
        if self.reload and self.overwrite:
            raise UVSError(None, "--reload continues a run and --overwrite replaces it: "
                           "give one of them")
        folder = os.path.dirname(os.path.abspath(p.best))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise UVSError(p.best, f"cannot write here: {err.strerror}") from None
        self._lock_fd = _take_lock(p.lock, p.best)
        try:
            self._decide()
            self._install_handlers()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._restore_handlers()
        self._release()

    def _decide(self) -> None:
        """Resume, start afresh, or refuse: never replace another run's files silently."""
        p = self.paths
        there = p.existing()
        if self.reload and os.path.lexists(p.last):
            self.resuming = True
        elif there and not self.overwrite:
            what = ", ".join(there)
            if self.reload:
                raise UVSError(p.last, f"no checkpoint to resume, but another run's files are "
                               f"here ({what}); --overwrite replaces them")
            raise UVSError(p.best, f"another run's files are here ({what}); --reload "
                           "continues that run, --overwrite replaces it")
        elif self.reload:
            self.say(f"no checkpoint at {p.last}: starting afresh")

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self._lock_fd), os.lstat(self.paths.lock)):
                os.unlink(self.paths.lock)
        except OSError:
            pass
        os.close(self._lock_fd)
        self._lock_fd = None

    def preflight(self, need_bytes: int) -> None:
        """Before any long work: the folder is writable, space suffices, no planted log link.

        A fresh run with `overwrite` removes the other run's files here, once it may start.
        """
        p = self.paths
        folder = os.path.dirname(os.path.abspath(p.best))
        try:
            fd, probe = tempfile.mkstemp(prefix=".uvs-write-test-", dir=folder)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)
                os.unlink(probe)
        except OSError as err:
            raise UVSError(p.best, f"cannot write here: {err.strerror}") from None
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise UVSError(p.best, f"not enough disk space: replacing the checkpoints needs "
                           f"{size(need_bytes)}, {size(free)} free")
        if not self.resuming:
            for path in p.existing():
                os.unlink(path)
        elif os.path.islink(p.log):
            raise UVSError(p.log, "is a symbolic link; uvs does not write through links")

    # -- reporting -----------------------------------------------------------------------

    def say(self, text: str) -> None:
        """A human-readable line (progress, notices) through `logging` at INFO."""
        self.log.info(text)

    def event(self, event: str, text: str | None = None, **fields) -> dict:
        """Append {"event": event, **fields} to the JSON-lines log; show `text` if given."""
        record = {"event": event, **fields}
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            fd = os.open(self.paths.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise UVSError(self.paths.log, "is a symbolic link; uvs does not write "
                               "through links") from None
            raise UVSError(self.paths.log, f"cannot write: {err.strerror}") from None
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        if text is not None:
            self.say(text)
        if self.on_event is not None:
            self.on_event(record)
        return record

    def tick(self) -> None:
        """Count one update for the speed shown by `progress`."""
        start, n = self._clock
        self._clock = (start, n + 1)

    def restart_clock(self) -> None:
        """Forget time spent outside updates (validation, checkpoints)."""
        self._clock = (time.time(), 0)

    def progress(self, state: TrainState, max_epochs: int, updates_left: int,
                 **metrics: float) -> dict:
        """The `update` event: metrics (e.g. cost), speed and ETA since the last one."""
        start, n = self._clock
        spu = (time.time() - start) / max(n, 1)
        self.restart_clock()
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        return self.event(
            "update", update=state.uidx, epoch=state.epoch + 1, **metrics,
            seconds_per_update=spu, eta_seconds=updates_left * spu, max_epochs=max_epochs,
            text=(f"epoch {state.epoch + 1}/{max_epochs}  update {state.uidx}  {shown}  "
                  f"{1 / spu if spu > 0 else float('inf'):.2f} updates/s  "
                  f"ETA {duration(updates_left * spu)}"))

    # -- checkpoints ---------------------------------------------------------------------

    def load_last(self) -> tuple[ModelFile, TrainState]:
        """The last checkpoint and the state it was written in."""
        ckpt = read_model(self.paths.last, kind=self.kind)
        return ckpt, TrainState.read(ckpt.extra.get("train_state"), ckpt.path)

    @staticmethod
    def restore(shared: dict, ckpt: ModelFile) -> None:
        """Set the optimizer's shared variables (by name) from the checkpoint's arrays."""
        arrays = ckpt.extra.get("arrays", {})
        for name, var in shared.items():
            value = arrays.get(name)
            current = var.get_value()
            if value is None or value.shape != current.shape:
                raise UVSError(ckpt.path, f"damaged checkpoint: optimizer state {name} is "
                               f"{'missing' if value is None else f'of shape {value.shape}'}"
                               f", expected shape {current.shape}")
            var.set_value(value.astype(current.dtype, copy=False))

    def resumed(self, state: TrainState, changes: dict) -> None:
        """Announce the resume and the schedule options that change ({name: (was, now)})."""
        self.say(f"resuming {self.paths.last} at update {state.uidx} (epoch "
                 f"{state.epoch + 1}, batch {state.batch} of the epoch)")
        for name, (was, now) in changes.items():
            self.say(f"{name} = {now!r} from now on (the checkpoint had {was!r})")

    def save_best(self, params: dict, options: dict, worddict: dict, **meta) -> None:
        """The best model so far at `saveto` (atomically), with `meta` in its header."""
        write_model(self.paths.best, params, options, worddict, extra_meta=self._kind() | meta)

    def save_last(self, params: dict, options: dict, worddict: dict, state: TrainState,
                  arrays: dict, **meta) -> None:
        """The checkpoint to resume from: parameters, state, the optimizer's `arrays`, `meta`."""
        write_model(self.paths.last, params, options, worddict,
                    extra_meta=self._kind() | meta | {"train_state": state.as_dict()},
                    extra_arrays=arrays)

    def _kind(self) -> dict:
        """The header entry naming a kind other than the default 'vse'."""
        return {} if self.kind in (None, "vse") else {"kind": self.kind}

    # -- stopping ------------------------------------------------------------------------

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNAL_NAMES:
            self._handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        self._handlers = {}

    def _on_signal(self, signum: int, frame) -> None:
        if self.signal is not None:  # asked twice: stop now, as without uvs's handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signal = signum
        self.say(f"{SIGNAL_NAMES[signum]}: stopping after the current step to write the "
                 "checkpoint (again to stop at once)")

    def stop_point(self) -> None:
        """Between updates: raise `Interrupted` if SIGINT or SIGTERM arrived."""
        if self.signal is not None:
            raise Interrupted(self.signal)

    def interrupted(self, stop: Interrupted, state: TrainState) -> Interrupted:
        """Log the stop (after the checkpoint was written) and complete `stop`."""
        stop.last, stop.saveto = self.paths.last, self.paths.best
        stop.update, stop.epoch = state.uidx, state.epoch
        self.event("interrupted", update=state.uidx, epoch=state.epoch,
                   signal=SIGNAL_NAMES.get(stop.signum, stop.signum), checkpoint=stop.last)
        return stop

    def diverged(self, what: str, state: TrainState) -> None:
        """Stop on a NaN/Inf: log it and raise one line saying what is kept."""
        self.event("diverged", update=state.uidx, what=what)
        kept = f"best model kept at {self.paths.best}" if state.best >= 0 else "nothing saved"
        raise UVSError(self.paths.best, f"training diverged: {what} at update {state.uidx} "
                       f"(epoch {state.epoch + 1}); {kept}; try a smaller --lrate")


def duration(seconds: float) -> str:
    """12m05s, or 3h07m past an hour."""
    seconds = int(seconds) if seconds < 1e9 else 10**9
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def size(n: float) -> str:
    """Bytes for people: 512 B, 3.1 KiB, 12.0 MiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
