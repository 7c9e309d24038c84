"""Hostile decoder files: options of the wrong type or range, absurd weights, a checkpoint's
bad options on --reload, the joint-space model's path, and what `caption` prints."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from test_decoding_files import write_released

from uvs.decoding.files import read_decoder, write_decoder


def rewrite_meta(path, change) -> None:
    """Change the JSON header of a uvs .npz in place (as a hand-edited file would be)."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(bytes(arrays["__uvs__"]).decode("utf-8"))
    change(meta)
    arrays["__uvs__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def decoder(tmp_path):
    """A uvs-format `features` decoder (dimctx 6) and a feature file for it."""
    npz, dictionary, _ = write_released(tmp_path)
    mf = read_decoder(npz, dictionary)
    path = str(tmp_path / "dec.npz")
    write_decoder(path, mf.params, {**mf.options, "condition": "features"}, mf.worddict)
    feats = str(tmp_path / "f.npy")
    np.save(feats, np.random.RandomState(0).rand(3, 6).astype("float32"))
    return path, feats


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("model", 5, "option 'model' is int 5, not a name or path"),
    ("data", ["f8k"], "option 'data' is a list, not a name"),
    ("cnn", {"a": 1}, "option 'cnn' is a mapping, not a name"),
    ("maxlen_w", "30", "option 'maxlen_w' is '30', not a number of words"),
    ("maxlen_w", -1, "option 'maxlen_w' is -1, not a number of words"),
    ("maxlen_w", 0, "option 'maxlen_w' is 0"),
    ("maxlen_w", True, "option 'maxlen_w' is True"),
])
def test_decoder_options_of_the_wrong_kind(decoder, tmp_path, name, value, fragment):
    path, feats = decoder
    rewrite_meta(path, lambda m: m["options"].__setitem__(name, value))
    one_line_error(run("caption", path, "--image-features", feats), path, fragment)
    out = tmp_path / "caps.txt"
    one_line_error(run("evalcap", path, "--data", "sample", "-o", out), path, fragment)
    assert not out.exists()


def test_absurd_weights_are_refused(decoder):
    path, feats = decoder
    mf = read_decoder(path)
    params = dict(mf.params)
    params["ff_logit_W"] = params["ff_logit_W"] * np.float32(1e30)
    write_decoder(path, params, mf.options, mf.worddict)
    one_line_error(run("caption", path, "--image-features", feats), path,
                   "ff_logit_W holds values up to", "beyond ±100000")


def test_the_trained_on_model_is_found_from_another_folder(tmp_path, monkeypatch):
    from uvs.decoding.tools import trained_model_path

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vse.npz").write_bytes(b"x")
    dec = {"path": str(tmp_path / "models" / "d.npz"), "options": {"model": "vse.npz"}}
    monkeypatch.chdir("/")
    assert trained_model_path(dec) == str(tmp_path / "models" / "vse.npz")  # beside it
    dec["options"]["model"] = str(tmp_path / "models" / "vse.npz")
    assert trained_model_path(dec) == dec["options"]["model"]  # absolute, as uvs stores it
    dec["options"]["model"] = "models/gone.npz"
    with pytest.raises(Exception) as err:
        trained_model_path(dec)
    assert str(err.value) == (f"{dec['path']}: the uvs model it was trained on, "
                              f"{tmp_path / 'models' / 'models' / 'gone.npz'}, is not there: "
                              "give it with --model")


def test_a_missing_trained_on_model_is_named_by_caption(decoder, tmp_path):
    path, _ = decoder
    rewrite_meta(path, lambda m: m["options"].update(condition="embedding",
                                                     model="/nowhere/vse.npz"))
    one_line_error(run("caption", path, "--text", "a dog"), path, "/nowhere/vse.npz",
                   "is not there: give it with --model")


def test_caption_escapes_control_characters_in_words(decoder, tmp_path):
    path, feats = decoder
    evil = "\x1b]0;pwned\x07\x1b[2J"
    rewrite_meta(path, lambda m: m.__setitem__("worddict", {
        **{w: i for w, i in m["worddict"].items() if i != 2}, evil + "\r\n": 2}))
    for args in ([], ["--sample", "-n", "3"]):
        res = ok(run("caption", path, "--image-features", feats, "--beam", 9, "-n", 9, *args))
        assert "\x1b" not in res.stdout and "\r" not in res.stdout
        assert len(res.stdout.splitlines()) == (3 if args else 9)
    text = json.loads(ok(run("caption", path, "--image-features", feats, "--json")).stdout)
    assert text["sentences"]  # JSON escapes by itself
    assert os.path.exists(path)


@pytest.mark.slow
def test_a_decoder_finds_its_model_from_another_folder(tmp_path, monkeypatch, sample_data):
    from models import write_tiny_model

    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    write_tiny_model(work / "models", "uvs", name="vse", dim_image=4096)
    monkeypatch.chdir(work)
    ok(run("decoder", "train", "--data", "sample", "--data-dir", sample_data, "--model",
           "models/vse.npz", "--dim", 8, "--dim-word", 4, "--batch-size", 500,
           "--max-epochs", 1, "--saveto", "models/dec.npz", "-q", "--json"))
    stored = read_decoder("models/dec.npz").options["model"]
    assert stored == str(work / "models" / "vse.npz")
    monkeypatch.chdir(tmp_path)
    res = ok(run("caption", work / "models" / "dec.npz", "--text", "a dog"))
    assert res.stdout.startswith(" 1  cost")
