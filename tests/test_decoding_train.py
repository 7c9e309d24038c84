"""The decoder trainer on the synthetic sample, on `uvs.runs`: log, best + last checkpoints,
exact resume (after an epoch and after a signal), refusals, NaN stop, the option table."""

import json
import os
import signal

import numpy as np
import pytest
from clirun import ok, run

from uvs import runs
from uvs.decoding.files import read_decoder
from uvs.decoding.options import OPTIONS
from uvs.decoding.train import trainer
from uvs.errors import UVSError

TINY = {"data": "sample", "condition": "features", "dim": 8, "dim_word": 4,
        "batch_size": 500, "dispFreq": 5, "sampleFreq": 1000, "lrate": 0.002}


@pytest.fixture(scope="module")
def data_dir(sample_data):
    return str(sample_data)


@pytest.fixture(scope="module")
def whole(data_dir, tmp_path_factory):
    """Two uninterrupted epochs."""
    saveto = tmp_path_factory.mktemp("whole") / "a.npz"
    return trainer(data_dir=data_dir, max_epochs=2, saveto=str(saveto), **TINY)


def events(result):
    return [json.loads(line) for line in open(result["log"], encoding="utf-8")]


def assert_same_parameters(a_path, b_path):
    a, b = read_decoder(a_path), read_decoder(b_path)
    assert list(a.params) == list(b.params)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_resume_is_exact(data_dir, whole, tmp_path):
    trainer(data_dir=data_dir, max_epochs=1, saveto=str(tmp_path / "b.npz"), **TINY)
    resumed = trainer(data_dir=data_dir, max_epochs=2, reload_=True,
                      saveto=str(tmp_path / "b.npz"), **TINY)
    assert resumed["updates"] == whole["updates"] > 0
    assert_same_parameters(whole["last"], resumed["last"])
    logged = events(whole)
    kinds = [e["event"] for e in logged]
    assert kinds[0] == "start" and kinds[-1] == "end" and "update" in kinds
    valid = [e for e in logged if e["event"] == "valid"]
    assert len(valid) == 2 and all(e["dev_perplexity"] > 1 for e in valid)
    best = read_decoder(whole["saveto"])
    assert best.extra["kind"] == read_decoder(whole["last"]).extra["kind"] == "decoder"
    assert best.extra["dev_cost_per_word"] == min(e["dev_cost_per_word"] for e in valid)
    assert whole["best_dev_cost_per_word"] == best.extra["dev_cost_per_word"]


def test_signal_checkpoints_and_resumes_exactly(data_dir, whole, tmp_path):
    saveto = str(tmp_path / "s.npz")

    def interrupt_once(event):
        if event["event"] == "update" and event["update"] == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(runs.Interrupted) as stop:
        trainer(progress=interrupt_once, data_dir=data_dir, max_epochs=2, saveto=saveto, **TINY)
    assert stop.value.exit_status == 130 and stop.value.update == 5
    assert stop.value.last == str(tmp_path / "s.last.npz") and os.path.exists(stop.value.last)
    assert read_decoder(stop.value.last).extra["train_state"]["uidx"] == 5
    resumed = trainer(data_dir=data_dir, reload_=True, saveto=saveto)
    assert resumed["updates"] == whole["updates"]
    assert_same_parameters(whole["last"], resumed["last"])
    kinds = [e["event"] for e in events(resumed)]
    assert kinds.count("interrupted") == 1 and kinds.count("start") == 2


def test_refuses_to_overwrite_another_run(data_dir, tmp_path):
    saveto = tmp_path / "c.npz"
    saveto.write_bytes(b"someone's model")
    with pytest.raises(UVSError, match="another run's files are here"):
        trainer(data_dir=data_dir, max_epochs=1, saveto=str(saveto), **TINY)
    assert saveto.read_bytes() == b"someone's model"


def test_reload_refuses_other_shapes(data_dir, tmp_path):
    saveto = str(tmp_path / "d.npz")
    trainer(data_dir=data_dir, max_epochs=1, saveto=saveto, **TINY)
    with pytest.raises(UVSError, match=r"contradict the checkpoint: dim = 16 \(trained with 8\)"):
        trainer(data_dir=data_dir, max_epochs=2, reload_=True, saveto=saveto,
                **{**TINY, "dim": 16})


def test_nan_stops_the_run(data_dir, tmp_path):
    saveto = tmp_path / "n.npz"
    with pytest.raises(UVSError, match=r"training diverged: cost is nan at update \d+ "
                                       r"\(epoch 1\); nothing saved") as err:
        trainer(data_dir=data_dir, max_epochs=1, saveto=str(saveto),
                **{**TINY, "lrate": 1e38, "dispFreq": 1})
    assert str(err.value).startswith(str(saveto)) and "\n" not in str(err.value)
    logged = [json.loads(line) for line in open(tmp_path / "n.log.jsonl", encoding="utf-8")]
    assert logged[-1]["event"] == "diverged" and logged[-1]["update"] > 1
    assert all(np.isfinite(e["cost"]) for e in logged if e["event"] == "update")
    assert not saveto.exists()


def test_embedding_condition_needs_a_model():
    with pytest.raises(UVSError, match="needs --model"):
        trainer(data="sample")


def test_cli_flags_come_from_the_table():
    text = ok(run("decoder", "train", "--help")).stdout
    for o in OPTIONS:
        assert (o.flag in text) == o.cli, o.name
    assert "[default: 1600; sample: 128]" in text and "--overwrite" in text


@pytest.mark.parametrize(("change", "fragment"), [
    ({"lrate": "x"}, "lrate must be of type float (got 'x')"),
    ({"batch_size": 0}, "batch_size must be a positive integer (got 0)"),
    ({"optimizer": "sgd"}, "optimizer 'sgd'"),
])
def test_reload_refuses_a_checkpoint_with_bad_options(data_dir, whole, tmp_path, change,
                                                      fragment):
    import shutil

    from test_hostile_decoder import rewrite_meta

    saveto = tmp_path / "w.npz"
    for src, dst in ((whole["saveto"], saveto), (whole["last"], tmp_path / "w.last.npz"),
                     (whole["log"], tmp_path / "w.log.jsonl")):
        shutil.copy(src, dst)
    rewrite_meta(tmp_path / "w.last.npz", lambda m: m["options"].update(change))
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(UVSError) as err:
        trainer(data_dir=data_dir, reload_=True, saveto=str(saveto))
    assert str(err.value).startswith(str(tmp_path / "w.last.npz") + ": its options do not hold")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()
            if not p.name.endswith(".lock")} == before
