"""Where data lives and what uvs writes there: explicit folders, the sample, permissions, text."""

import json
import os
import stat

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from models import write_tiny_dataset, write_tiny_model

from uvs import datasets, fileio, sample
from uvs.errors import UVSError
from uvs.vocab import build_dictionary, unknown_words


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_explicit_data_dir_that_does_not_exist_is_named(tmp_path, monkeypatch):
    model, *_ = write_tiny_model(tmp_path)
    missing = tmp_path / "nowhere"
    one_line_error(run("evalrank", model, "--data", "sample", "--data-dir", missing),
                   str(missing), "does not exist")
    monkeypatch.setenv("UVS_DATA", str(missing))
    one_line_error(run("evalrank", model, "--data", "sample"), str(missing), "$UVS_DATA")
    with pytest.raises(UVSError, match="does not exist"):
        datasets.layout("sample")
    assert not missing.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UVSError, match="not a folder"):
        datasets.load_split("sample", "dev", tmp_path / "file")


def test_looking_for_data_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("UVS_DATA", raising=False)
    with pytest.raises(UVSError, match="not found"):
        datasets.layout("sample", tmp_path)
    with pytest.raises(UVSError, match="not found"):
        datasets.split_paths("sample", "dev", tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UVSError, match="not found"):
        datasets.layout("sample")
    assert os.listdir(tmp_path) == []


def test_other_data_sets_are_never_generated(tmp_path):
    with pytest.raises(UVSError, match="data set 'f8k' not found"):
        datasets.load_split("f8k", "dev", tmp_path)
    assert os.listdir(tmp_path) == []


def test_sample_generated_in_default_folder_says_where(tmp_path, monkeypatch, capsys, umask022):
    monkeypatch.delenv("UVS_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert len(datasets.load_split("sample", "test").caps) == 5 * sample.SPLITS["test"]
    err = capsys.readouterr().err
    assert "generating the synthetic sample" in err and os.path.join("data", "sample") in err
    for folder in (tmp_path / "data", tmp_path / "data" / "sample"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755, folder
    datasets.load_split("sample", "dev")  # second use: nothing said
    assert capsys.readouterr().err == ""


def test_sample_generated_in_an_existing_folder(tmp_path, capsys):
    assert len(datasets.load_split("sample", "dev", tmp_path).caps) == 5 * sample.SPLITS["dev"]
    assert (tmp_path / "sample" / "README.txt").exists()
    assert str(tmp_path / "sample") in capsys.readouterr().err
    assert datasets.layout("sample", tmp_path) == "vse"


def test_overwritten_output_keeps_its_permissions(tmp_path, umask022):
    new = tmp_path / "new.npy"
    fileio.save_npy(new, np.zeros(2))
    assert stat.S_IMODE(os.stat(new).st_mode) == 0o644
    kept = tmp_path / "kept.npy"
    fileio.save_npy(kept, np.zeros(2))
    os.chmod(kept, 0o640)
    fileio.save_npy(kept, np.ones(2))
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o640
    assert np.load(kept).tolist() == [1, 1]
    text = tmp_path / "t.txt"
    text.write_text("old")
    os.chmod(text, 0o600)
    fileio.write_text(text, "new")
    assert stat.S_IMODE(os.stat(text).st_mode) == 0o600 and text.read_text() == "new"


def test_captions_bom_and_final_newline(tmp_path):
    loc = write_tiny_dataset(tmp_path, n_images=1)
    path = os.path.join(loc, "tiny_dev_caps.txt")
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbfthe dog\na cat\nthe car\nred\nblue\n")
    caps = datasets.load_split("tiny", "dev", tmp_path).caps
    assert caps == ["the dog", "a cat", "the car", "red", "blue"]
    assert "the" in build_dictionary(caps)[0] and "\ufeffthe" not in build_dictionary(caps)[0]
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbfthe dog\na cat\nthe car\nred\nblue")  # no final newline: same
    assert datasets.load_split("tiny", "dev", tmp_path).caps == caps


def test_sentence_files_bom_final_newline_and_empty(tmp_path):
    model, *_ = write_tiny_model(tmp_path)
    text = tmp_path / "s.txt"
    text.write_bytes(b"\xef\xbb\xbfa dog\nthe cat\n")
    assert fileio.read_lines(text) == ["a dog", "the cat"]
    out = tmp_path / "s.npy"
    ok(run("encode", "sentences", model, text, "-o", out, "-q"))
    plain = tmp_path / "plain.txt"
    plain.write_text("a dog\nthe cat")
    ok(run("encode", "sentences", model, plain, "-o", tmp_path / "plain.npy", "-q"))
    np.testing.assert_array_equal(np.load(out), np.load(tmp_path / "plain.npy"))
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    one_line_error(run("encode", "sentences", model, empty, "-o", tmp_path / "e.npy"),
                   str(empty), "empty")
    assert not (tmp_path / "e.npy").exists()
    empty.write_bytes(b"\xef\xbb\xbf")
    one_line_error(run("encode", "sentences", model, empty, "-o", tmp_path / "e.npy"),
                   str(empty), "empty")
    loc = write_tiny_dataset(tmp_path / "d", n_images=1)
    open(os.path.join(loc, "tiny_dev_caps.txt"), "wb").close()
    with pytest.raises(UVSError, match="no captions"):
        datasets.load_split("tiny", "dev", tmp_path / "d")


def test_search_names_words_the_model_does_not_know(tmp_path):
    model, _, options, worddict = write_tiny_model(tmp_path)
    feats = tmp_path / "feats.npy"
    np.save(feats, np.random.RandomState(0).rand(3, options["dim_image"]).astype("float32"))
    result = ok(run("search", model, "--text", "a zebra dog xylophone zebra", "--images", feats,
                    "-k", 2))
    assert "'zebra', 'xylophone'" in result.stderr and "UNK" in result.stderr
    report = json.loads(ok(run("search", model, "--text", "a zebra dog", "--images", feats,
                               "--json", "-q")).stdout)
    assert report["query"]["unknown_words"] == ["zebra"]
    result = ok(run("search", model, "--text", "a dog", "--images", feats))
    assert "know" not in result.stderr
    # a word whose index is at or beyond n_words is UNK too (released VSE models)
    assert unknown_words(["dog grass"], worddict, worddict["grass"]) == ["grass"]


def test_a_full_disk_while_making_the_sample_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    def short_write(path, arr, *a, **k):  # what NumPy raises when the disk fills mid-write
        raise OSError(f"{arr.nbytes} requested and 0 written")

    monkeypatch.setattr(np, "save", short_write)
    with pytest.raises(UVSError) as err:
        sample.make_sample(str(tmp_path))
    assert str(err.value) == (f"{tmp_path / 'sample'}: cannot write the sample data set: "
                              f"{1000 * 5 * 4096 * 4} requested and 0 written")
    assert os.listdir(tmp_path) == []
