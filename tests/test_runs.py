"""A training run never loses work: refusals, lock, probe, disk check, links, options table."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from hang import no_hang
from models import write_tiny_dataset

from uvs import runs
from uvs.errors import UVSError
from uvs.modelfile import ModelFile
from uvs.optim import OPTIMIZERS
from uvs.options import SCHEDULE, SHAPE, Option, OptionTable
from uvs.train import OPTIONS, resolve_options


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    write_tiny_dataset(root, n_images=12)
    return root


def _args(data, saveto, *extra):
    return ["train", "--data", "tiny", "--data-dir", data, "--dim", "8", "--dim-word", "6",
            "--dim-image", "10", "--batch-size", "4", "--max-epochs", "1", "--valid-freq", "3",
            "--saveto", saveto, "-q", *extra]


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_refuses_another_runs_model_unless_told(tiny_data, tmp_path):
    saveto = tmp_path / "m.npz"
    ok(run(*_args(tiny_data, saveto)))
    before = _files(tmp_path)
    assert set(before) == {"m.npz", "m.last.npz", "m.log.jsonl"}  # no lock left behind
    one_line_error(run(*_args(tiny_data, saveto, "--seed", "3")),
                   str(saveto), "another run's files", "--reload", "--overwrite")
    assert _files(tmp_path) == before
    # only a log (a run killed before its first checkpoint) is another run's too
    (tmp_path / "m.npz").unlink()
    (tmp_path / "m.last.npz").unlink()
    one_line_error(run(*_args(tiny_data, saveto)), "m.log.jsonl", "--overwrite")
    one_line_error(run(*_args(tiny_data, saveto, "--reload", "--overwrite")), "one of them")
    # a best model but no checkpoint: --reload says exactly that and keeps the files
    (tmp_path / "m.npz").write_bytes(b"best")
    kept = _files(tmp_path)
    one_line_error(run(*_args(tiny_data, saveto, "--reload")), "no checkpoint to resume",
                   "stopped before writing one", "m.npz", "--overwrite")
    assert _files(tmp_path) == kept
    (tmp_path / "m.npz").unlink()

    ok(run(*_args(tiny_data, saveto, "--overwrite", "--seed", "3")))
    log = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    assert [e["event"] for e in log].count("start") == 1   # the old log was replaced
    assert log[0]["options"]["seed"] == 3


def test_reload_after_a_kill_before_the_first_checkpoint_starts_afresh(tiny_data, tmp_path):
    saveto = tmp_path / "m.npz"
    (tmp_path / "m.log.jsonl").write_text('{"event": "start", "resume": false}\n')
    argv = [a for a in _args(tiny_data, saveto, "--reload") if a != "-q"]
    result = ok(run(*argv))
    assert "left no checkpoint (it stopped before its first" in result.stderr
    assert "starting it afresh" in result.stderr
    log = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    assert [e["event"] for e in log].count("start") == 1 and not log[0]["resume"]
    assert {"m.npz", "m.last.npz"} <= set(_files(tmp_path))


def test_reload_announces_and_refuses_contradictions(tiny_data, tmp_path):
    saveto = tmp_path / "m.npz"
    ok(run(*_args(tiny_data, saveto)))
    updates = json.loads(open(tmp_path / "m.log.jsonl").readlines()[-1])["update"]
    before = _files(tmp_path)
    one_line_error(run(*_args(tiny_data, saveto, "--reload", "--dim", "16", "--encoder", "bow",
                              "--dim-word", "16", "--margin", "0.5")),
                   "contradict the checkpoint", "dim = 16 (trained with 8)",
                   "encoder = 'bow'", "dim_word = 16", "margin = 0.5")
    assert _files(tmp_path) == before
    argv = [a for a in _args(tiny_data, saveto, "--reload", "--max-epochs", "2",
                             "--lrate", "0.001") if a != "-q"]
    result = ok(run(*argv))
    assert f"resuming {tmp_path / 'm.last.npz'} at update {updates} (epoch 2, batch 0" \
        in result.stderr
    assert "max_epochs = 2 from now on (the checkpoint had 1)" in result.stderr
    assert "lrate = 0.001 from now on (the checkpoint had 0.0002)" in result.stderr
    log = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    start = [e for e in log if e["event"] == "start"][-1]
    assert start["resume"] and start["options"]["max_epochs"] == 2
    assert log[-1]["event"] == "end" and log[-1]["update"] > updates


def _hold_lock(path):
    """A live process holding `path` as a training run does; stopped by closing its stdin."""
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()} host\\n'.encode()); "
            "print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_live_lock_refuses_stale_lock_does_not(tiny_data, tmp_path):
    saveto = tmp_path / "m.npz"
    holder = _hold_lock(tmp_path / "m.lock")
    try:
        one_line_error(run(*_args(tiny_data, saveto)), "another training",
                       f"pid {holder.pid}", "m.lock")
    finally:
        holder.communicate("")
    assert not saveto.exists()
    # the lock file of a crashed run (its pid is gone) is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "m.lock").write_text(f"{dead.stdout.strip()} host\n")
    ok(run(*_args(tiny_data, saveto)))
    assert saveto.exists() and not (tmp_path / "m.lock").exists()


def test_planted_links_are_not_followed(tiny_data, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    saveto = out / "m.npz"
    # the old fixed probe names, for this process (CliRunner runs in it)
    for pid in (os.getpid(), os.getpid() + 1):
        os.symlink(victim, out / f".uvs-write-test-{pid}")
    ok(run(*_args(tiny_data, saveto)))
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".uvs-write-test-")) == \
        sorted(f".uvs-write-test-{pid}" for pid in (os.getpid(), os.getpid() + 1))

    # a link planted at the log of a run being resumed: refused, not appended through
    (out / "m.log.jsonl").unlink()
    os.symlink(victim, out / "m.log.jsonl")
    one_line_error(run(*_args(tiny_data, saveto, "--reload", "--max-epochs", "2")),
                   "m.log.jsonl", "symbolic link")
    assert victim.read_text() == "precious\n"
    # ... and at the lock
    (out / "m.log.jsonl").unlink()
    os.symlink(victim, out / "m.lock")
    one_line_error(run(*_args(tiny_data, saveto, "--reload")), "m.lock", "symbolic link")
    assert victim.read_text() == "precious\n"
    (out / "m.lock").unlink()

    # a FIFO planted at the log or the lock: refused at once, not blocked on
    for name in ("m.log.jsonl", "m.lock"):
        moved = out / (name + ".kept")
        if (out / name).exists():
            (out / name).rename(moved)
        os.mkfifo(out / name)
        with no_hang(what=f"a run with a FIFO at {name}"):
            one_line_error(run(*_args(tiny_data, saveto, "--reload", "--max-epochs", "2")),
                           name, "FIFO")
        (out / name).unlink()
        if moved.exists():
            moved.rename(out / name)

    # a fresh run over planted links replaces the links, never their target
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("m.npz", "m.last.npz"):
        os.symlink(victim, fresh / name)
    ok(run(*_args(tiny_data, fresh / "m.npz", "--overwrite")))
    assert victim.read_text() == "precious\n"
    assert not (fresh / "m.npz").is_symlink() and not (fresh / "m.last.npz").is_symlink()


def test_disk_check_asks_for_a_checkpoint_replacement(tiny_data, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from uvs.modelfile import read_model

    usage = namedtuple("usage", "total used free")
    seen = []

    def with_free(free):
        def disk_usage(path):
            seen.append(path)
            return usage(10**12, 10**12 - free, free)
        monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    with_free(10**12)
    ok(run(*_args(tiny_data, tmp_path / "a.npz")))
    assert seen and all(os.path.samefile(p, tmp_path) for p in seen)
    param_bytes = sum(p.nbytes for p in read_model(tmp_path / "a.npz").params.values())
    assert runs.checkpoint_bytes(param_bytes) == 9 * param_bytes
    with_free(9 * param_bytes - 1)
    one_line_error(run(*_args(tiny_data, tmp_path / "b.npz")), "not enough disk space",
                   runs.size(9 * param_bytes))
    assert not (tmp_path / "b.npz").exists()
    with_free(9 * param_bytes)
    ok(run(*_args(tiny_data, tmp_path / "c.npz")))


def test_option_table_is_the_one_declaration():
    names = [o.name for o in OPTIONS]
    assert len(names) == len(set(names)) and all(o.help for o in OPTIONS)
    o = resolve_options()
    assert list(o)[:len(names)] == names
    assert OPTIONS["dispFreq"].flag == "--disp-freq" and OPTIONS["reload_"].flag == "--reload"
    assert OPTIONS["dim"].kind == SHAPE and OPTIONS["max_epochs"].kind == SCHEDULE
    assert OPTIONS.recipes_changing("margin") == {"order": 0.05}
    assert set(OPTIONS["optimizer"].choices) == set(OPTIMIZERS)
    with pytest.raises(UVSError, match="dim must be of type int"):
        resolve_options(dim=2.5)
    with pytest.raises(UVSError, match="unknown option"):
        resolve_options(dimm=3)
    assert resolve_options(margin=1)["margin"] == 1.0


def test_help_shows_every_option_with_its_default():
    text = " ".join(ok(run("train", "--help")).stdout.split())  # unwrapped
    for o in OPTIONS:
        if o.cli:
            assert o.flag in text, o.name
    assert "[default: 0.2; order: 0.05]" in text and "[default: 1024]" in text
    assert "--overwrite" in text


def test_option_table_generic():
    table = OptionTable([Option("steps", int, 3, "Steps.", SCHEDULE),
                         Option("width", int, 4, "Width.", SHAPE)],
                        {"wide": {"width": 8}}, check=None)
    assert table.resolve({"steps": None}) == {"steps": 3, "width": 4}
    assert table.describe_default("width") == "4; wide: 8"
    changes, conflicts = table.on_resume({"steps": 3, "width": 4}, {"steps": 5, "width": 6})
    assert changes == {"steps": (3, 5)} and conflicts == ["width = 6 (trained with 4)"]


def test_import_uvs_imports_no_click():
    code = ("import pkgutil, importlib, sys, uvs\n"
            "for m in pkgutil.iter_modules(uvs.__path__):\n"
            "    try:\n"
            "        importlib.import_module('uvs.' + m.name)\n"
            "    except ImportError as err:\n"
            "        if 'click' in str(err): raise\n"
            "print(sorted(k for k in sys.modules if k == 'click' or k.startswith('click.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("state, message", [
    (None, "not a training checkpoint"),
    ({"epoch": 0, "batch": -5, "uidx": 3, "best": 1.0, "best_metrics": None}, "bad train_state"),
    ({"epoch": 0, "batch": 1, "uidx": 3, "best": 1.0, "best_metrics": None, "x": 1},
     "not a training checkpoint"),
])
def test_damaged_checkpoint_is_one_line(tiny_data, tmp_path, state, message):
    from uvs.modelfile import read_model, write_model

    saveto = tmp_path / "m.npz"
    ok(run(*_args(tiny_data, saveto)))
    last = read_model(tmp_path / "m.last.npz")
    write_model(tmp_path / "m.last.npz", last.params, last.options, last.worddict,
                extra_meta=None if state is None else {"train_state": state},
                extra_arrays=last.extra["arrays"])
    one_line_error(run(*_args(tiny_data, saveto, "--reload")), "m.last.npz", message)


def test_a_checkpoint_holding_gradients_resumes_the_same(tiny_data, tmp_path):
    """Checkpoints before 2026-12-07 also held the stored gradients (`P_grad`): resuming reads
    the moments and step count, ignores those, and gives the run it gave without them."""
    from uvs.modelfile import read_model, write_model

    plain, old = tmp_path / "plain" / "m.npz", tmp_path / "old" / "m.npz"
    for saveto in (plain, old):
        saveto.parent.mkdir()
        ok(run(*_args(tiny_data, saveto)))
    last = read_model(old.parent / "m.last.npz")
    arrays = last.extra["arrays"]
    assert arrays and not any(k.endswith("_grad") for k in arrays)  # moments and step only
    stale = {f"{k}_grad": np.full_like(v, 7.0) for k, v in last.params.items()}
    write_model(old.parent / "m.last.npz", last.params, last.options, last.worddict,
                extra_meta={"train_state": last.extra["train_state"]},
                extra_arrays={**arrays, **stale})
    for saveto in (plain, old):
        ok(run(*_args(tiny_data, saveto, "--reload", "--max-epochs", "2")))
    a, b = (read_model(p.parent / "m.last.npz") for p in (plain, old))
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert sorted(b.extra["arrays"]) == sorted(arrays)  # the stale gradients are not kept


def test_mode_is_passed_not_written_to_the_environment(tiny_data, tmp_path, monkeypatch):
    from uvs import backend

    monkeypatch.delenv("UVS_MODE", raising=False)
    seen = []
    compile_ = backend.function

    def function(*args, mode=None, **kwargs):
        seen.append(mode)
        return compile_(*args, mode=mode, **kwargs)

    monkeypatch.setattr(backend, "function", function)
    result = ok(run(*[a for a in _args(tiny_data, tmp_path / "m.npz") if a != "-q"],
                    "--mode", "cvm"))
    assert "(CVM mode;" in result.stderr
    assert seen and set(seen) == {"CVM"} and "UVS_MODE" not in os.environ


def test_batches_count_validate_checkpoint_and_stop_on_a_signal(tmp_path, monkeypatch):
    """The loop every trainer shares: batches from where the state stands, a dev score due
    every valid_freq updates (never after a batch without an update) or after each epoch, and
    at the end; a checkpoint after each dev score and epoch, one more when a signal stops an
    epoch, then `Interrupted` completed with where the run stands."""
    import signal

    calls = []
    with runs.Run(tmp_path / "m.npz") as run:
        monkeypatch.setattr(run, "checkpoint", lambda: calls.append(("ckpt", run.state.epoch)))
        state = run.state

        def loop(valid_freq, epochs=2, last="unvalidated"):
            schedule = {"max_epochs": epochs, "dispFreq": 2, "validFreq": valid_freq}
            for batch in run.batches(lambda epoch: [(epoch, b) for b in range(3)], schedule,
                                     last):
                if batch is runs.VALIDATE:
                    calls.append(("valid", state.uidx))
                    continue
                calls.append(("batch", *batch, state.batch))
                if batch[1] == 1:
                    continue  # a batch without an update
                assert run.cost(np.float32(0.5)) == 0.5
                assert run.every(2) == (state.uidx % 2 == 0) and not run.every(0)

        loop(3)
        assert calls == [("batch", 0, 0, 1), ("batch", 0, 1, 2), ("batch", 0, 2, 3), ("ckpt", 1),
                         ("batch", 1, 0, 1), ("valid", 3), ("ckpt", 1), ("batch", 1, 1, 2),
                         ("batch", 1, 2, 3), ("ckpt", 2), ("valid", 4), ("ckpt", 2)]
        updates = [e for e in map(json.loads, open(tmp_path / "m.log.jsonl"))
                   if e["event"] == "update"]
        assert [e["update"] for e in updates] == [2, 4] and updates[0]["cost"] == 0.5

        calls.clear()
        loop(None, epochs=3)  # after each epoch; nothing left at the end
        assert calls == [("batch", 2, 0, 1), ("batch", 2, 1, 2), ("batch", 2, 2, 3),
                         ("valid", 6), ("ckpt", 3)]
        calls.clear()
        state.best = 1.0
        loop(4, epochs=4, last="unscored")  # a score exists: none more at the end
        assert calls == [("batch", 3, 0, 1), ("batch", 3, 1, 2), ("batch", 3, 2, 3),
                         ("valid", 8), ("ckpt", 3), ("ckpt", 4)]
        calls.clear()
        state.best = -1.0
        loop(4, epochs=4, last="unscored")  # none yet: one at the end
        assert calls == [("valid", 8), ("ckpt", 4)]

        calls.clear()
        state.epoch = state.uidx = 0
        with pytest.raises(runs.Interrupted) as stop:
            for _ in run.batches(lambda epoch: list(range(5)),
                                 {"max_epochs": 4, "dispFreq": 1, "validFreq": 10}):
                run.cost(1.0)
                run.signal = signal.SIGTERM
        assert calls == [("ckpt", 0)] and state.batch == 1
        assert (stop.value.update, stop.value.epoch, stop.value.exit_status) == (1, 0, 143)
        assert stop.value.last == run.paths.last

        with pytest.raises(UVSError, match="diverged: cost is nan at update 2"):
            run.cost(float("nan"))
    log = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    assert [e["event"] for e in log[-2:]] == ["interrupted", "diverged"]
    assert log[-2]["update"] == 1


def test_saved_score_and_resume_options(tmp_path):
    assert runs.saved_score(str(tmp_path / "none.npz"), "dev_rsum") == -1.0
    table = OptionTable([Option("dim", int, 4, "d", SHAPE),
                         Option("lrate", float, 0.1, "l", SCHEDULE),
                         Option("saveto", str, None, "s", SCHEDULE),
                         Option("reload_", bool, False, "r", SCHEDULE)])
    ckpt = ModelFile(str(tmp_path / "m.last.npz"), "uvs", {},
                          {"dim": 4, "lrate": 0.1, "saveto": str(tmp_path / "m.npz")}, {}, {},
                          "vse")
    with runs.Run(tmp_path / "m.npz") as run:
        state = runs.TrainState()
        options = runs.resume_options(table, ckpt, state, {"lrate": 0.5, "reload_": True}, run)
        assert options == {"dim": 4, "lrate": 0.5, "saveto": str(tmp_path / "m.npz")}
        with pytest.raises(UVSError, match="dim = 8 \\(trained with 4\\)"):
            runs.resume_options(table, ckpt, state, {"dim": 8}, run)


def test_better_compares_either_way_and_none_beats_nothing():
    """Dev scores: recall higher is better, a decoder's cost lower; -1 means none yet."""
    assert runs.better(10.0, -1.0) and runs.better(0.5, -1.0, lower=True)
    assert runs.better(12.0, 10.0) and not runs.better(8.0, 10.0)
    assert runs.better(1.5, 2.0, lower=True) and not runs.better(2.5, 2.0, lower=True)
    assert not runs.better(2.0, 2.0) and not runs.better(2.0, 2.0, lower=True)
    assert not runs.better(-1.0, 2.0, lower=True) and not runs.better(-1.0, -1.0)
