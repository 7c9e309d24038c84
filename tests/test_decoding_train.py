"""The decoder trainer on the synthetic sample: log, best + last checkpoints, exact resume."""

import json

import numpy as np
import pytest

from uvs.decoding.files import read_decoder
from uvs.decoding.train import trainer
from uvs.errors import UVSError

TINY = {"data": "sample", "condition": "features", "dim": 8, "dim_word": 4,
        "batch_size": 500, "dispFreq": 5, "sampleFreq": 1000, "lrate": 0.002}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("data"))


def test_resume_is_exact(data_dir, tmp_path):
    whole = trainer(quiet=True, data_dir=data_dir, max_epochs=2,
                    saveto=str(tmp_path / "a.npz"), **TINY)
    trainer(quiet=True, data_dir=data_dir, max_epochs=1, saveto=str(tmp_path / "b.npz"), **TINY)
    resumed = trainer(quiet=True, data_dir=data_dir, max_epochs=2, reload_=True,
                      saveto=str(tmp_path / "b.npz"), **TINY)
    assert resumed["updates"] == whole["updates"] > 0
    a, b = read_decoder(whole["last"]), read_decoder(resumed["last"])
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    events = [json.loads(line) for line in open(whole["log"], encoding="utf-8")]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "update" in kinds
    valid = [e for e in events if e["event"] == "valid"]
    assert len(valid) == 2 and all(e["dev_perplexity"] > 1 for e in valid)
    best = read_decoder(whole["saveto"])
    assert best.extra["kind"] == "decoder"
    assert best.extra["dev_cost_per_word"] == min(e["dev_cost_per_word"] for e in valid)


def test_refuses_to_overwrite_another_run(data_dir, tmp_path):
    saveto = tmp_path / "c.npz"
    saveto.write_bytes(b"someone's model")
    with pytest.raises(UVSError, match="exists: another run's decoder"):
        trainer(quiet=True, data_dir=data_dir, max_epochs=1, saveto=str(saveto), **TINY)
    assert saveto.read_bytes() == b"someone's model"


def test_reload_refuses_other_shapes(data_dir, tmp_path):
    saveto = str(tmp_path / "d.npz")
    trainer(quiet=True, data_dir=data_dir, max_epochs=1, saveto=saveto, **TINY)
    with pytest.raises(UVSError, match="--reload with dim = 16"):
        trainer(quiet=True, data_dir=data_dir, max_epochs=2, reload_=True, saveto=saveto,
                **{**TINY, "dim": 16})


def test_embedding_condition_needs_a_model():
    with pytest.raises(UVSError, match="needs --model"):
        trainer(quiet=True, data="sample")
