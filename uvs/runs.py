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
- SIGINT/SIGTERM set a flag; `batches`, the loop of every trainer, stops between updates,
  writes the checkpoint and raises `Interrupted` so that the command exits 130/143;
- `diverged` stops on a NaN/Inf with one line saying what is kept.

This module knows no command line and no particular model: trainers pass their parameters,
options and dictionary, and the numbers they report.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import math
import os
import shutil
import signal
import socket
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields

from uvs.errors import UVSError, os_reason
from uvs.fileio import write_error
from uvs.modelfile import ModelFile, read_model, write_model
from uvs.optim import optimizer_state
from uvs.options import OptionTable

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
VALIDATE = "validate"  # what `Run.batches` yields when a dev score is due


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


@dataclass
class Compiled:
    """A compiled run: shared parameters, update functions, and the model as its tools use it
    (a dict holding at least 'options' and 'worddict'); opt_state: the optimizer's own
    shared variables, found in `f_update`."""

    tparams: OrderedDict
    f_grad_shared: Callable
    f_update: Callable
    model: dict
    opt_state: OrderedDict = field(init=False)

    def __post_init__(self):
        self.opt_state = optimizer_state(self.f_update, self.tparams)

    @property
    def options(self) -> dict:
        return self.model["options"]

    @property
    def worddict(self) -> dict:
        return self.model["worddict"]


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


def _open_own(path: str, flags: int, mode: int) -> int:
    """A descriptor on the run's own file `path` (created if missing): never through a
    symbolic link, and only a regular file — a FIFO planted there is refused at once instead
    of blocking the open or the write. OSError as os.open raises it."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    try:
        kind = os.fstat(fd).st_mode
        if not stat.S_ISREG(kind):
            raise UVSError(path, f"{'a FIFO' if stat.S_ISFIFO(kind) else 'not a file'}, not a "
                           "regular file: a run writes its log and lock only to regular files")
        os.set_blocking(fd, True)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _own_file_error(path: str, err: OSError, where: str) -> UVSError:
    """The one-line error of `_open_own`'s OSError."""
    if err.errno == errno.ELOOP:
        return UVSError(path, "is a symbolic link; uvs does not write through links")
    if err.errno == errno.ENXIO:  # a FIFO opened for writing, no reader
        return UVSError(path, "a FIFO, not a regular file: a run writes its log and lock only "
                        "to regular files")
    return UVSError(where, f"cannot write{' here' if where != path else ''}: {os_reason(err)}")


def _take_lock(path: str, saveto: str) -> int:
    """An flock'ed descriptor on `path`; refused while another live process holds it."""
    while True:
        try:
            fd = _open_own(path, os.O_RDWR, 0o644)
        except OSError as err:
            raise _own_file_error(path, err, saveto) from None
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
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            except OSError as err:
                os.close(fd)
                raise write_error(path, err) from None
            return fd
        os.close(fd)


class Run:
    """One training run writing `saveto`: use as `with Run(...) as run:` around the work.

    reload: resume from the last checkpoint if there is one; overwrite: replace another run's
    files; on_event: called with each log record (a dict, as written to the JSON log);
    logger: where human-readable lines go (INFO), `logging.getLogger("uvs.train")` if None;
    kind: the kind of model trained (`uvs.modelfile.KINDS`), written in its files' headers
    and required of the checkpoint (None: the trainer writes it, any kind is read);
    score: the best model's header entry holding its dev score, `lower` if lower is better.

    A trainer reads: `resume` (the options, the checkpoint or None), its data and parameters,
    `preflight`, `start` with the compiled run, then one loop `for batch in run.batches(...)`
    whose body scores the dev split on `VALIDATE` (`recall`, or `improved` and `valid`), or
    prepares the batch, reports its `cost` and applies the update.
    """

    def __init__(self, saveto: str | os.PathLike, reload: bool = False, overwrite: bool = False,
                 on_event: Callable[[dict], None] | None = None,
                 logger: logging.Logger | None = None, kind: str | None = None,
                 score: str = "dev_rsum", lower: bool = False):
        self.paths = RunPaths.beside(saveto)
        self.kind = kind
        self.score, self.lower = score, lower
        self.state = TrainState()
        self.ckpt: ModelFile | None = None
        self.compiled: Compiled | None = None
        self._epoch = (0, 0, 1)  # (batches in this epoch, max_epochs, dispFreq)
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
            raise UVSError(p.best, f"cannot write here: {os_reason(err)}") from None
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
        elif self.reload and there == [p.log]:  # stopped before its first checkpoint
            self.say(f"the run logged in {p.log} left no checkpoint (it stopped before its "
                     f"first, {p.last}): starting it afresh")
        elif there and not self.overwrite:
            what = ", ".join(there)
            if self.reload:
                raise UVSError(p.last, f"no checkpoint to resume: the run stopped before "
                               f"writing one, and left {what}; --overwrite starts it afresh "
                               "and replaces them")
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

    def resume(self, table: OptionTable, options: dict, kw: dict) -> tuple[dict, ModelFile | None]:
        """(options, the last checkpoint or None): when resuming, the checkpoint's options with
        the schedule options given again (`resume_options`), its state and the best dev score
        saved so far; otherwise `options`, checked as a fresh run's."""
        if not self.resuming:
            options["reload_"] = False
            table.check(options)
            return options, None
        self.ckpt, self.state = self.load_last()
        options = resume_options(table, self.ckpt, self.state, kw, self)
        saved = saved_score(self.paths.best, self.score, self.kind)
        if better(saved, self.state.best, self.lower):
            self.state.best = saved
        return options, self.ckpt

    def preflight(self, params: dict) -> None:
        """Before any long work: the folder is writable, space suffices for the checkpoints of
        `params` (`checkpoint_bytes`), no planted log link.

        A fresh run with `overwrite` removes the other run's files here, once it may start.
        """
        need_bytes = checkpoint_bytes(sum(p.nbytes for p in params.values()))
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
            raise UVSError(p.best, f"cannot write here: {os_reason(err)}") from None
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

    def start(self, compiled: Compiled, **fields) -> Compiled:
        """Take the compiled run (its optimizer state restored when resuming) and log the
        `start` event: resuming or not, the kind, the options (as JSON has them), `fields`."""
        self.compiled = compiled
        if self.ckpt is not None:
            self.restore(compiled.opt_state, self.ckpt)
        self.event("start", resume=self.resuming, kind=self.kind or "vse",
                   options=plain(compiled.options), **fields)
        return compiled

    def finish(self, score: str = "best_rsum") -> dict:
        """The `end` event, and the run's result: the best dev score (under `score`), its
        metrics, the updates done and the run's files."""
        state = self.state
        self.event("end", update=state.uidx, best=state.best)
        return {score: state.best, "best_metrics": state.best_metrics, "updates": state.uidx,
                "saveto": self.paths.best, "last": self.paths.last, "log": self.paths.log}

    def say(self, text: str) -> None:
        """A human-readable line (progress, notices) through `logging` at INFO."""
        self.log.info(text)

    def event(self, event: str, text: str | None = None, **fields) -> dict:
        """Append {"event": event, **fields} to the JSON-lines log; show `text` if given."""
        record = {"event": event, **fields}
        line = (json.dumps(record) + "\n").encode("utf-8")
        try:
            fd = _open_own(self.paths.log, os.O_WRONLY | os.O_APPEND, 0o666)
        except OSError as err:
            raise _own_file_error(self.paths.log, err, self.paths.log) from None
        try:
            while line:
                line = line[os.write(fd, line):]
        except OSError as err:  # a full disk: name the log
            raise write_error(self.paths.log, err) from None
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

    # -- the loop ------------------------------------------------------------------------

    def batches(self, schedule: Callable[[int], Sequence], options: dict,
                last: str = "unvalidated") -> Iterator:
        """The batches of epochs `state.epoch` to options['max_epochs'] from batch
        `state.batch`, as `schedule(epoch)` lists them (fixed by the epoch, for exact resume),
        and `VALIDATE` when a dev score is due: every options['validFreq'] updates (after each
        epoch if it is 0 or None), then once more at the end if `last` says so
        ('unvalidated': updates were made since the last one; 'unscored': there is none).
        The last checkpoint follows each dev score and each epoch; the progress line comes
        every options['dispFreq'] updates (`cost`).

        Between batches a stop point: on SIGINT/SIGTERM the checkpoint is written and
        `Interrupted` raised, completed with where the run stands.
        """
        max_epochs, disp_freq = options["max_epochs"], options["dispFreq"]
        valid_freq = options.get("validFreq")
        state = self.state
        try:
            while state.epoch < max_epochs:
                batches = schedule(state.epoch)
                self._epoch = (len(batches), max_epochs, disp_freq)
                self.restart_clock()
                while state.batch < len(batches):
                    self.stop_point()
                    state.batch += 1
                    updates = state.uidx
                    yield batches[state.batch - 1]
                    if valid_freq and state.uidx > updates and state.uidx % valid_freq == 0:
                        yield VALIDATE
                        self.checkpoint()
                        self.restart_clock()
                state.epoch += 1
                state.batch = 0
                if not valid_freq:
                    yield VALIDATE
                self.checkpoint()
        except Interrupted as stop:
            self.checkpoint()
            raise self.interrupted(stop) from None
        if (state.best < 0 if last == "unscored" else self._unvalidated(valid_freq)):
            yield VALIDATE
            self.checkpoint()

    def cost(self, cost) -> float:
        """Count an update whose cost is `cost`: stop on a NaN/Inf (before the update is
        applied), and every dispFreq updates the progress line."""
        state = self.state
        state.uidx += 1
        cost = float(cost)
        if not math.isfinite(cost):
            self.diverged(f"cost is {cost}")
        self.tick()
        n_batches, max_epochs, disp_freq = self._epoch
        if state.uidx % disp_freq == 0:
            left = n_batches - state.batch + (max_epochs - state.epoch - 1) * n_batches
            self.progress(max_epochs, left, cost=cost)
        return cost

    def every(self, n: int | None) -> bool:
        """Whether the update just counted is one of every `n` (never when n is 0 or None)."""
        return bool(n) and self.state.uidx % n == 0

    def _unvalidated(self, valid_freq: int | None) -> bool:
        """Whether updates were made since the last dev score (one every `valid_freq`, or
        after each epoch if 0 or None)."""
        return bool(valid_freq) and self.state.uidx > 0 and self.state.uidx % valid_freq != 0

    def improved(self, score: float, metrics: dict, **meta) -> bool:
        """Record dev `score` (with its `metrics`); when it beats the best so far, save the
        model at `saveto` with `meta` in its header. Whether it did."""
        state, c = self.state, self.compiled
        if not better(score, state.best, self.lower):
            return False
        state.best, state.best_metrics = score, metrics
        self.save_best(OrderedDict((k, v.get_value()) for k, v in c.tparams.items()),
                       c.options, c.worddict, **meta)
        return True

    def valid(self, improved: bool, text: str, **fields) -> dict:
        """The `valid` event of a dev score; `text` is followed by '(best, saved)' if so."""
        return self.event("valid", update=self.state.uidx, epoch=self.state.epoch,
                          best=improved, **fields,
                          text=text + ("  (best, saved)" if improved else ""))

    def recall(self, metrics: dict) -> bool:
        """Dev recall {'i2t', 't2i', 'rsum'} of a retrieval model: saved when R@1+R@5+R@10
        summed both ways is the best so far, then the `valid` event. Whether it improved."""
        improved = self.improved(metrics["rsum"], metrics, dev_rsum=metrics["rsum"],
                                 dev_metrics=metrics)
        i2t, t2i = metrics["i2t"], metrics["t2i"]
        self.valid(improved, f"  dev  i2t {i2t['r1']:.1f} {i2t['r5']:.1f} {i2t['r10']:.1f}  "
                   f"t2i {t2i['r1']:.1f} {t2i['r5']:.1f} {t2i['r10']:.1f}  "
                   f"rsum {metrics['rsum']:.1f}", **metrics)
        return improved

    def progress(self, max_epochs: int, updates_left: int, **metrics: float) -> dict:
        """The `update` event: metrics (e.g. cost), speed and ETA since the last one."""
        state = self.state
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

    def checkpoint(self) -> None:
        """The last checkpoint of the compiled run: parameters, optimizer state and where the
        run stands."""
        c = self.compiled
        self.save_last(OrderedDict((k, v.get_value()) for k, v in c.tparams.items()), c.options,
                       c.worddict, self.state,
                       OrderedDict((k, v.get_value()) for k, v in c.opt_state.items()))

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

    def interrupted(self, stop: Interrupted) -> Interrupted:
        """Log the stop (after the checkpoint was written) and complete `stop`."""
        state = self.state
        stop.last, stop.saveto = self.paths.last, self.paths.best
        stop.update, stop.epoch = state.uidx, state.epoch
        self.event("interrupted", update=state.uidx, epoch=state.epoch,
                   signal=SIGNAL_NAMES.get(stop.signum, stop.signum), checkpoint=stop.last)
        return stop

    def diverged(self, what: str) -> None:
        """Stop on a NaN/Inf: log it and raise one line saying what is kept."""
        state = self.state
        self.event("diverged", update=state.uidx, what=what)
        kept = f"best model kept at {self.paths.best}" if state.best >= 0 else "nothing saved"
        raise UVSError(self.paths.best, f"training diverged: {what} at update {state.uidx} "
                       f"(epoch {state.epoch + 1}); {kept}; try a smaller --lrate")


def resume_options(table: OptionTable, ckpt: ModelFile, state: TrainState, kw: dict,
                   run: Run) -> OrderedDict:
    """The checkpoint's options, with the schedule options given again applied (announced).

    table: the trainer's options; kw: the options given (None = not given). Options given
    that contradict the checkpoint (shapes, loss, batches) are an error.
    """
    given = table.given(kw)
    given.pop("reload_", None)
    given.setdefault("saveto", run.paths.best)
    options = OrderedDict(ckpt.options)
    check_saved_options(table, options, ckpt.path)
    changes, conflicts = table.on_resume(options, given)
    if conflicts:
        raise UVSError(ckpt.path, f"options contradict the checkpoint: {', '.join(conflicts)}; "
                       "drop them to resume, or start afresh under another --saveto")
    options.update((name, now) for name, (was, now) in changes.items())
    run.resumed(state, changes)
    return options


def check_saved_options(table: OptionTable, options: dict, where: str) -> None:
    """A checkpoint's options against the trainer's table (types, choices, checks), as if
    they had been given: a one-line error naming `where` when one does not hold."""
    try:
        table.check_all(options)
    except UVSError as err:
        raise UVSError(where, f"its options do not hold ({err.problem})") from None


def saved_score(saveto: str, key: str, kind: str | None = None) -> float:
    """The dev score `key` in the header of the best model at `saveto`, -1 if none."""
    if not os.path.exists(saveto):
        return -1.0
    return read_model(saveto, kind=kind).extra.get(key, -1.0)


def better(score: float, best: float, lower: bool = False) -> bool:
    """Whether dev `score` beats `best` (-1: none yet); higher is better unless `lower`.
    A negative `score` (none) beats nothing."""
    if score < 0:
        return False
    return best < 0 or (score < best if lower else score > best)


def plain(options: dict) -> dict:
    """Options as JSON has them (what is not JSON as its str), for the log."""
    return json.loads(json.dumps(options, default=str))


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
