"""Real `uvs` invocations: every model command, and every bad input as one line on stderr."""

import json
import os

import numpy as np
import pytest
from clirun import one_line_error, run
from models import write_tiny_dataset, write_tiny_model
from py2pickle import py2_reduce_payload

from uvs import tools


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A data set and a uvs-format model trained on nothing, sharing one folder."""
    root = tmp_path_factory.mktemp("cli")
    write_tiny_dataset(root / "data", n_images=10)
    path, *_ = write_tiny_model(root, "uvs")
    return root, path


@pytest.mark.parametrize("fold5", [False, True])
def test_evalrank_json(tiny, fold5):
    root, model = tiny
    args = ["evalrank", model, "--data-dir", root / "data", "--split", "test", "--json", "-q"]
    result = run(*args, *(["--fold5"] if fold5 else []))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    for direction in ("i2t", "t2i"):
        assert set(out[direction]) == {"r1", "r5", "r10", "medr", "meanr"}
        assert 0 <= out[direction]["r1"] <= out[direction]["r5"] <= out[direction]["r10"] <= 100
    assert out["rsum"] == pytest.approx(sum(out[d][k] for d in ("i2t", "t2i")
                                            for k in ("r1", "r5", "r10")))
    assert ("folds" in out) == fold5
    if fold5:
        assert len(out["folds"]) == 5
        assert out["i2t"]["r10"] == pytest.approx(np.mean([f["i2t"]["r10"] for f in out["folds"]]))


def test_evalrank_table(tiny):
    root, model = tiny
    result = run("evalrank", model, "--data", "tiny", "--data-dir", root / "data", "-q")
    assert result.exit_code == 0, result.output
    assert "R@1" in result.stdout and "i2t" in result.stdout and "rsum" in result.stdout


def test_encode_sentences_and_images(tiny, tmp_path):
    root, model = tiny
    text = tmp_path / "s.txt"
    text.write_text("a dog runs\n  café\t日本 \nthe cat\n", encoding="utf-8")
    out = tmp_path / "s.npy"
    result = run("encode", "sentences", model, text, "-o", out, "-q")
    assert result.exit_code == 0, result.output
    m = tools.load_model(model)
    want = tools.encode_sentences(m, ["a dog runs", "  café\t日本 ", "the cat"])
    np.testing.assert_array_equal(np.load(out), want)

    feats = tmp_path / "f.npy"
    im = np.random.RandomState(0).rand(3, 10).astype("float32")
    np.save(feats, im)
    result = run("encode", "images", model, feats, "-o", tmp_path / "i.npy", "-q")
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), tools.encode_images(m, im))


@pytest.mark.parametrize("layout", ["vse", "order", "uvs"])
def test_info_and_convert(tmp_path, layout):
    path, params, options, worddict = write_tiny_model(tmp_path, layout, method=(
        "order" if layout == "order" else None))
    result = run("info", path, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["layout"] == layout and info["vocabulary"] == len(worddict)
    assert info["parameters"]["Wemb"] == list(params["Wemb"].shape)
    assert run("info", path).exit_code == 0

    new = tmp_path / "new.npz"
    result = run("convert", path, "-o", new)
    assert result.exit_code == 0, result.output
    a, b = tools.load_model(path), tools.load_model(new)
    assert b["layout"] == "uvs" and b["worddict"] == a["worddict"]
    sentences = ["a dog runs on the beach", "car grass", "日本 café", ""]
    np.testing.assert_array_equal(tools.encode_sentences(a, sentences),
                                  tools.encode_sentences(b, sentences))


def _break(kind, tmp_path):
    """Make one kind of bad input; returns (argv, fragments the error must name)."""
    data = tmp_path / "data"
    loc = write_tiny_dataset(data, n_images=10)
    vse, *_ = write_tiny_model(tmp_path, "vse", name="vse")
    uvs_model, *_ = write_tiny_model(tmp_path, "uvs", name="m")
    evalrank = ["evalrank", uvs_model, "--data", "tiny", "--data-dir", data, "--split", "dev"]
    if kind == "missing companion":
        os.unlink(vse + ".dictionary.pkl")
        return ["info", vse], [vse + ".dictionary.pkl", "not found"]
    if kind == "refused pickle":
        with open(vse + ".pkl", "wb") as f:
            f.write(py2_reduce_payload(str(tmp_path / "pwned")))
        return ["evalrank", vse, "--data-dir", data], [vse + ".pkl", "refus"]
    if kind == "truncated npz":
        blob = open(uvs_model, "rb").read()
        open(uvs_model, "wb").write(blob[: len(blob) // 2])
        return evalrank, [uvs_model]
    if kind == "something else":
        open(uvs_model, "w").write("this is not a model\n")
        return evalrank, [uvs_model, "not"]
    if kind == "missing model":
        return ["info", tmp_path / "nothing.npz"], ["nothing.npz", "not found"]
    ims = os.path.join(loc, "tiny_dev_ims.npy")
    caps = os.path.join(loc, "tiny_dev_caps.txt")
    if kind == "feature width":
        np.save(ims, np.ones((50, 12), dtype="float32"))
        return evalrank, [ims, "12", "10"]
    if kind == "image rows":
        np.save(ims, np.ones((7, 10), dtype="float32"))
        return evalrank, [ims, "7"]
    if kind == "empty caption":
        open(caps, "a").write("\n")
        return evalrank, [caps, "empty"]
    if kind == "nan features":
        bad = np.load(ims)
        bad[3, 1] = np.nan
        np.save(ims, bad)
        return evalrank, [ims, "NaN"]
    if kind == "encode width":
        np.save(tmp_path / "f.npy", np.ones((2, 9), dtype="float32"))
        return ["encode", "images", uvs_model, tmp_path / "f.npy", "-o", tmp_path / "out.npy"], [
            "f.npy", "(n, 10)"]
    if kind == "encode inf":
        np.save(tmp_path / "f.npy", np.full((2, 10), np.inf, dtype="float32"))
        return ["encode", "images", uvs_model, tmp_path / "f.npy", "-o", tmp_path / "out.npy"], [
            "f.npy", "Inf"]
    if kind == "encode empty line":
        (tmp_path / "s.txt").write_text("a dog\n\nthe cat\n")
        return ["encode", "sentences", uvs_model, tmp_path / "s.txt", "-o",
                tmp_path / "out.npy"], ["s.txt", "line 2 is empty"]
    if kind == "output folder":
        (tmp_path / "s.txt").write_text("a dog\n")
        return ["encode", "sentences", uvs_model, tmp_path / "s.txt", "-o",
                tmp_path / "no" / "out.npy"], ["out.npy", "does not exist"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "missing companion", "refused pickle", "truncated npz", "something else", "missing model",
    "feature width", "image rows", "empty caption", "nan features", "encode width",
    "encode inf", "encode empty line", "output folder"])
def test_bad_input(tmp_path, kind):
    argv, fragments = _break(kind, tmp_path)
    before = set(os.listdir(tmp_path))
    result = run(*argv, "-q") if argv[0] in ("evalrank", "encode") else run(*argv)
    one_line_error(result, *fragments)
    assert not (tmp_path / "pwned").exists()
    assert set(os.listdir(tmp_path)) == before  # no partial output


def test_info_backend():
    result = run("info", "--backend", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["floatX"] == "float32" and found["mode"] and found["blas"]
    assert run("info").exit_code != 0
