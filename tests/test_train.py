"""Training: one update against a float64 reference, learning, exact resume, failures."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import reference
from click.testing import CliRunner
from clirun import one_line_error, run
from models import tiny_options, tiny_worddict

from uvs.cli.main import main
from uvs.gru_op import GRUBackward
from uvs.homogeneous_data import prepare_data
from uvs.model import init_params, order_lineage
from uvs.modelfile import read_model
from uvs.optim import optimizer_state, stored_gradients
from uvs.train import compile_update, resolve_options
from uvs.utils import init_tparams

BATCH = ["a dog runs", "the cat sits on", "red car", "blue grass beach"]


CASES = [
    ("vse", dict()),                                            # released VSE options, as stored
    ("decay-clip", dict(decay_c=0.01, grad_clip=0.05)),         # decay + global clipping
    ("order", dict(method="order", abs=True, margin=0.05, grad_clip=0.05)),  # per-tensor clip
    ("max-violation", dict(method="cosine", abs=False, max_violation=True)),
]


# every GRU case with both implementations (the fused Op, the original's `scan` graph)
@pytest.mark.parametrize("case, gru", [
    *[pytest.param(case, gru, id=f"{name}-{gru}",
                   marks=[pytest.mark.slow] if gru == "scan" else [])
      for name, case in CASES for gru in ("scan", "fused")],
    pytest.param(dict(encoder="bow"), None, id="bow"),
])
def test_two_updates_match_reference(case, gru):
    options = tiny_options(encoder=case.get("encoder", "gru"))
    options.update({k: v for k, v in case.items() if k != "encoder"})
    worddict = tiny_worddict()
    options["n_words"] = len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(5))
    rng = np.random.RandomState(6)
    for k in params:
        params[k] = params[k] + rng.uniform(-0.05, 0.05, params[k].shape).astype("float32")
    im = rng.rand(len(BATCH), options["dim_image"]).astype("float32")
    x, mask, im = prepare_data(BATCH, im, worddict, n_words=options["n_words"])

    tparams = init_tparams(params)
    f_grad_shared, f_update = compile_update(tparams, options, gru=gru)
    ids = [reference.word_indices(s, worddict, options["n_words"]) for s in BATCH]
    lin = order_lineage(options)
    lr, ref = 0.01, {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: 0.0 for k in ref}
    v = {k: 0.0 for k in ref}
    for t in (1, 2):
        cost = f_grad_shared(x, mask, im)
        want = reference.contrastive_loss(ref, options, ids, im, lin)
        assert float(cost) == pytest.approx(want, rel=1e-5, abs=1e-5)
        grads = reference.numeric_grads(
            lambda p: reference.contrastive_loss(p, options, ids, im, lin), ref)
        grads = reference.clip(grads, options["grad_clip"], per_tensor=lin)
        got = stored_gradients(f_grad_shared)
        for k in ref:
            np.testing.assert_allclose(got[k], grads[k], atol=2e-5, rtol=1e-3, err_msg=k)
        # the released Adam, applied to uvs's own gradients: checks the update exactly
        for k in ref:
            ref[k], m[k], v[k] = reference.adam_released(
                tparams[k].get_value().astype(np.float64), got[k].astype(np.float64),
                m[k], v[k], t, lr)
        f_update(np.float64(lr) if t == 1 else lr)   # NumPy scalar or Python float
        for k in ref:
            np.testing.assert_allclose(tparams[k].get_value(), ref[k], atol=1e-6, err_msg=k)
    state = optimizer_state(f_update, tparams)
    assert float(state["adam_t"].get_value()) == 2.0
    if gru is not None:
        ops = {type(n.op) for n in f_grad_shared.maker.fgraph.apply_nodes}
        assert (GRUBackward in ops) == (gru == "fused")


def test_textbook_adam_differs_from_released():
    options = tiny_options()
    options["n_words"] = 18
    params = init_params(options, rng=np.random.RandomState(0))
    x, mask, im = prepare_data(BATCH, np.random.RandomState(1).rand(4, 10), tiny_worddict(),
                               n_words=18)
    out = {}
    for name in ("adam", "adam_textbook"):
        tp = init_tparams({k: v.copy() for k, v in params.items()})
        f_grad_shared, f_update = compile_update(tp, {**options, "optimizer": name})
        f_grad_shared(x, mask, im)
        f_update(0.01)
        out[name] = tp["ff_image_W"].get_value()
    # first textbook step moves each weight by ~lr; the released one by lr·sqrt(.999)/.9·3.16
    step_t = np.abs(out["adam_textbook"] - params["ff_image_W"])
    step_r = np.abs(out["adam"] - params["ff_image_W"])
    assert np.median(step_t[step_t > 0]) == pytest.approx(0.01, rel=0.05)
    assert np.median(step_r[step_r > 0]) == pytest.approx(
        0.01 * np.sqrt(0.999) / 0.9 * np.sqrt(0.1 ** 2 / 0.001), rel=0.05)


def _train_args(data_dir, saveto, *extra):
    return ["train", "--data", "sample", "--data-dir", data_dir, "--dim", "16",
            "--dim-word", "12", "--dim-image", "4096", "--batch-size", "32",
            "--saveto", saveto, "--seed", "7", *extra]


@pytest.mark.slow
def test_training_improves_dev_recall(sample_data, tmp_path):
    from uvs import evaluation, tools

    saveto = tmp_path / "m.npz"
    result = CliRunner().invoke(main, [str(a) for a in _train_args(
        sample_data, saveto, "--max-epochs", "2", "--valid-freq", "50", "--lrate", "0.002",
        "--json", "-q")])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    trained = evaluation.evalrank(tools.load_model(saveto), "sample", "dev", sample_data)
    assert trained["rsum"] == pytest.approx(out["best_rsum"])
    # the same model before any update
    options = read_model(saveto).options
    untrained = str(tmp_path / "untrained.npz")
    from uvs.modelfile import write_model
    write_model(untrained, init_params(options, rng=np.random.RandomState(7)), options,
                read_model(saveto).worddict)
    before = evaluation.evalrank(tools.load_model(untrained), "sample", "dev", sample_data)
    assert trained["rsum"] > before["rsum"] + 100
    log = [json.loads(line) for line in open(tmp_path / "m.log.jsonl")]
    assert {"start", "update", "valid", "end"} <= {e["event"] for e in log}
    assert os.path.exists(tmp_path / "m.last.npz")


def _cli(*args):
    return [sys.executable, "-c", "from uvs.cli.main import main; main()", *map(str, args)]


RUN = ["--max-epochs", "3", "--valid-freq", "10", "--disp-freq", "5", "-q"]


@pytest.fixture(scope="module")
def full_run(sample_data, tmp_path_factory):
    """An uninterrupted run: what every interrupted and resumed run must end as, bit for bit."""
    full = tmp_path_factory.mktemp("full") / "full.npz"
    subprocess.run(_cli(*_train_args(sample_data, full, *RUN)), check=True, timeout=600)
    return full


def _wait_for(proc, log, event, count):
    """Until `log` holds `count` events of kind `event`, while `proc` trains."""
    deadline = time.time() + 300
    while time.time() < deadline:
        if log.exists() and sum(f'"event": "{event}"' in x for x in open(log)) >= count:
            return
        assert proc.poll() is None, "training ended before it could be stopped"
        time.sleep(0.02)
    raise AssertionError(f"no {count} {event} events in {log}")


def _assert_same_run(a, b):
    """Same best model, same last checkpoint (state, parameters, optimizer), bit for bit."""
    last_a, last_b = (read_model(str(p)[:-4] + ".last.npz") for p in (a, b))
    assert last_a.extra["train_state"] == last_b.extra["train_state"]
    for k in last_a.params:
        np.testing.assert_array_equal(last_a.params[k], last_b.params[k], err_msg=k)
    for k in last_a.extra["arrays"]:
        np.testing.assert_array_equal(last_a.extra["arrays"][k], last_b.extra["arrays"][k],
                                      err_msg=k)
    for k, v in read_model(a).params.items():
        np.testing.assert_array_equal(v, read_model(b).params[k], err_msg=k)


@pytest.mark.slow
def test_kill_and_resume_is_exact(sample_data, full_run, tmp_path):
    killed = tmp_path / "killed.npz"
    proc = subprocess.Popen(_cli(*_train_args(sample_data, killed, *RUN)))
    log = tmp_path / "killed.log.jsonl"
    _wait_for(proc, log, "valid", 3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = [json.loads(x) for x in open(log)]
    assert not any(e["event"] == "end" for e in done)
    # the dead run's lock does not block its resume
    subprocess.run(_cli(*_train_args(sample_data, killed, *RUN, "--reload")), check=True,
                   timeout=600)
    _assert_same_run(full_run, killed)


def _stop(proc, signum, status, checkpoint):
    """Send `signum`; the run exits `status` with one line: checkpoint and resume command."""
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == status, err
    assert out == "" and len(err.strip().splitlines()) == 1, err
    name = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}[signum]
    update = read_model(checkpoint).extra["train_state"]["uidx"]
    assert err.startswith(f"interrupted by {name} at update {update} "), err
    assert f"checkpoint {checkpoint};" in err
    command = shlex.split(err.split("resume with: ")[1])
    assert command[:2] == ["uvs", "train"] and "--reload" in command
    return update, _cli(*command[1:])


@pytest.mark.slow
def test_sigint_and_sigterm_checkpoint_and_say_how_to_resume(sample_data, full_run, tmp_path):
    saveto = tmp_path / "m.npz"
    log = tmp_path / "m.log.jsonl"
    popen = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(_cli(*_train_args(sample_data, saveto, *RUN)), **popen)
    _wait_for(proc, log, "update", 2)
    # a second training on the same model while this one runs is refused
    one_line_error(run(*_train_args(sample_data, saveto, *RUN, "--reload")),
                   "another training", f"pid {proc.pid}")
    first, resume = _stop(proc, signal.SIGINT, 130, tmp_path / "m.last.npz")
    assert first >= 10

    proc = subprocess.Popen(resume + ["-q"], **popen)   # the printed command, as printed
    _wait_for(proc, log, "start", 2)
    _wait_for(proc, log, "update", sum('"update"' in x for x in open(log)) + 2)
    second, resume = _stop(proc, signal.SIGTERM, 143, tmp_path / "m.last.npz")
    assert second > first
    events = [json.loads(x) for x in open(log)]
    stops = [e for e in events if e["event"] == "interrupted"]
    assert [(e["signal"], e["update"]) for e in stops] == [("SIGINT", first), ("SIGTERM", second)]
    assert not (tmp_path / "m.lock").exists()

    subprocess.run(resume, check=True, timeout=600, capture_output=True)
    _assert_same_run(full_run, saveto)


@pytest.mark.slow
def test_divergence_stops_and_keeps_best(sample_data, tmp_path):
    saveto = tmp_path / "m.npz"
    first = CliRunner().invoke(main, [str(a) for a in _train_args(
        sample_data, saveto, "--max-epochs", "1", "--valid-freq", "20", "-q")])
    assert first.exit_code == 0, first.output
    best = open(saveto, "rb").read()
    result = CliRunner().invoke(main, [str(a) for a in _train_args(
        sample_data, saveto, "--max-epochs", "2", "--lrate", "1e38", "--reload", "-q")])
    assert result.exit_code != 0
    assert "diverged" in result.stderr and "best model kept" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert open(saveto, "rb").read() == best


@pytest.mark.parametrize("args, message", [
    (["--encoder", "bow", "--dim", "16", "--dim-word", "12"], "dim == dim_word"),
    (["--batch-size", "1"], "batch_size"),
    (["--lrate", "0"], "lrate"),
    (["--margin", "-1"], "margin"),
    (["--max-epochs", "0"], "max_epochs"),
    (["--dim-image", "64"], "dim_image = 64"),
])
def test_bad_options(sample_data, tmp_path, args, message):
    argv = _train_args(sample_data, tmp_path / "m.npz")
    for i in range(0, len(args), 2):   # later options win in click: append
        argv += args[i:i + 2]
    result = CliRunner().invoke(main, [str(a) for a in argv])
    assert result.exit_code != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()


def test_unwritable_saveto_is_reported_first(sample_data, tmp_path):
    (tmp_path / "file").write_text("x")
    result = CliRunner().invoke(main, [str(a) for a in _train_args(
        sample_data, tmp_path / "file" / "m.npz")])
    assert result.exit_code != 0 and "cannot write" in result.stderr
    assert "compiling" not in result.stderr


def test_recipes_and_released_options():
    o = resolve_options(recipe="order")
    assert (o["method"], o["abs"], o["margin"], o["lrate"]) == ("order", True, 0.05, 0.001)
    o = resolve_options(recipe="order", margin=0.1)
    assert o["margin"] == 0.1
    o = resolve_options(data="f8k", margin=0.2)
    assert (o["method"], o["lrate"], o["dim"], o["batch_size"]) == ("cosine", 0.0002, 1024, 128)
    assert o["saveto"].endswith("f8k.npz")
    # released VSE options have no method/abs/max_violation: the VSE lineage
    assert not order_lineage(tiny_options())
    assert order_lineage(tiny_options(method="cosine"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe, layout", [("order", "order"), ("symmetric", "vse"),
                                            ("vse", "order")])
def test_recipes_train_on_either_layout(tmp_path, recipe, layout):
    from models import write_tiny_dataset

    from uvs import tools

    write_tiny_dataset(tmp_path / "data", layout=layout, n_images=12)
    saveto = tmp_path / "m.npz"
    result = CliRunner().invoke(main, [str(a) for a in [
        "train", "--recipe", recipe, "--data", "tiny", "--data-dir", tmp_path / "data",
        "--dim", "8", "--dim-word", "6", "--dim-image", "10", "--batch-size", "4",
        "--max-epochs", "2", "--valid-freq", "3", "--saveto", saveto, "-q", "--json"]])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    model = tools.load_model(saveto)
    assert model["options"]["recipe"] == recipe
    assert model["options"]["method"] == ("order" if recipe == "order" else "cosine")
    assert order_lineage(model["options"]) == (recipe != "vse")
    # order-embedding batches: 12 images // 4 = 3 full batches an epoch; vse: by length
    if recipe != "vse":
        assert out["updates"] == 6
    # the model saved is the one whose dev score was reported as the best
    from uvs import evaluation
    dev = evaluation.evalrank(model, "tiny", "dev", tmp_path / "data")
    assert dev["rsum"] == pytest.approx(out["best_rsum"])


def test_full_disk_is_reported_first(sample_data, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    result = CliRunner().invoke(main, [str(a) for a in _train_args(sample_data,
                                                                   tmp_path / "m.npz")])
    assert result.exit_code != 0 and "not enough disk space" in result.stderr
    assert "compiling" not in result.stderr and not (tmp_path / "m.npz").exists()
