"""Reading and checking data sets in both released layouts, and the synthetic sample."""

import os

import numpy as np
import pytest
from models import write_tiny_dataset

from uvs import datasets
from uvs.errors import UVSError


@pytest.mark.parametrize("layout", ["vse", "order"])
def test_both_layouts(tmp_path, layout):
    write_tiny_dataset(tmp_path, layout=layout, n_images=4)
    train, dev, test = datasets.load_dataset("tiny", data_dir=tmp_path)
    for split in (train, dev, test):
        caps, ims = split
        assert len(caps) == 20 and ims.dtype == np.float32
        assert split.image_rows().shape == (4, 10)
        assert split.per_caption == (layout == "vse")
    assert datasets.layout("tiny", tmp_path) == layout
    assert datasets.load_dataset("tiny", load_train=False, data_dir=tmp_path)[0] is None


def test_data_dir_from_environment(tmp_path, monkeypatch):
    write_tiny_dataset(tmp_path, n_images=2)
    monkeypatch.setenv("UVS_DATA", str(tmp_path))
    assert len(datasets.load_split("tiny", "dev").caps) == 10
    monkeypatch.delenv("UVS_DATA")
    monkeypatch.chdir(tmp_path)
    os.rename(tmp_path / "tiny", tmp_path / "data")
    os.makedirs(tmp_path / "data" / "x")
    with pytest.raises(UVSError, match="not found"):
        datasets.load_split("tiny", "dev")


def test_captions_keep_utf8_and_strip_ascii_whitespace(tmp_path):
    loc = write_tiny_dataset(tmp_path, n_images=1)
    with open(os.path.join(loc, "tiny_dev_caps.txt"), "wb") as f:
        f.write("a café\r\n\tnaïve dog \n日本\nx\u00a0\ny\n".encode())
    caps = datasets.load_split("tiny", "dev", tmp_path).caps
    assert caps == ["a café", "naïve dog", "日本", "x\u00a0", "y"]


@pytest.mark.parametrize("problem, match", [
    ("empty line", "line 3 is empty"),
    ("not multiple of 5", "not a multiple of 5"),
    ("rows", "feature rows"),
    ("nan", "NaN or Inf"),
    ("inf", "NaN or Inf"),
    ("1-d", "2-D"),
    ("not npy", "not a .npy array: it is text"),
    ("missing caps", "caption file not found"),
    ("missing ims", "feature file not found"),
    ("latin1", "not UTF-8"),
])
def test_bad_data_named_in_one_line(tmp_path, problem, match):
    loc = write_tiny_dataset(tmp_path, n_images=2)
    caps = os.path.join(loc, "tiny_dev_caps.txt")
    ims = os.path.join(loc, "tiny_dev_ims.npy")
    good = np.load(ims)
    if problem == "empty line":
        lines = open(caps).read().split("\n")
        lines[2] = "  "
        open(caps, "w").write("\n".join(lines))
    elif problem == "not multiple of 5":
        open(caps, "a").write("one more\n")
    elif problem == "rows":
        np.save(ims, good[:7])
    elif problem in ("nan", "inf"):
        good[4, 2] = np.nan if problem == "nan" else np.inf
        np.save(ims, good)
    elif problem == "1-d":
        np.save(ims, good[0])
    elif problem == "not npy":
        open(ims, "w").write("hello")
    elif problem == "missing caps":
        os.unlink(caps)
    elif problem == "missing ims":
        os.unlink(ims)
    elif problem == "latin1":
        open(caps, "ab").write("caf\xe9\n".encode("latin-1") * 5)
    with pytest.raises(UVSError, match=match) as err:
        datasets.load_split("tiny", "dev", tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(caps if "caps" in problem or problem in
                              ("empty line", "not multiple of 5", "latin1") else ims)


def test_sample_is_generated_deterministically(tmp_path, sample_data):
    a = datasets.load_split("sample", "dev", tmp_path)  # generated here
    b = datasets.load_split("sample", "dev", sample_data)  # by the session's fixture
    assert a.caps == b.caps and np.array_equal(a.ims, b.ims)
    assert len(a.caps) == 2500 and a.ims.shape == (2500, 4096)
    np.testing.assert_allclose(np.linalg.norm(a.ims, axis=1), 1, atol=1e-5)
    assert "SYNTHETIC" in (tmp_path / "sample" / "README.txt").read_text()
