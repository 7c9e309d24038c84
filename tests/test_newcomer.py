"""What a newcomer hit: install advice for this project, typos before missing extras, extras
before slow work, no allow_pickle advice, --row alone, duplicates collapsed, sensible defaults."""

import configparser
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from clirun import ok, one_line_error, run

from uvs import extras
from uvs.errors import UVSError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def vse(tmp_path):
    from uvs.model import init_params
    from uvs.modelfile import write_model

    o = {"dim": 4, "dim_word": 3, "dim_image": 6, "encoder": "gru", "n_words": 6,
         "data": "sample"}
    path = tmp_path / "m.npz"
    write_model(path, init_params(o), o, {"a": 2, "dog": 3, "cat": 4, "runs": 5})
    return path


def _mask(monkeypatch, *modules):
    """Simulate a missing extra: these modules (and their submodules) cannot be imported."""
    for name in modules:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.setitem(sys.modules, loaded, None)
        monkeypatch.setitem(sys.modules, name, None)


# --- the distribution and its install advice --------------------------------------------

def test_distribution_name_and_extras_match_setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["metadata"]["name"] == extras.DISTRIBUTION == "uvs-embeddings"
    assert "uvs = uvs.cli.main:main" in cfg["options.entry_points"]["console_scripts"]
    declared = {name: {line.strip() for line in value.strip().splitlines()}
                for name, value in cfg["options.extras_require"].items()}
    for extra, modules in extras.EXTRAS.items():
        assert {package for _, package in modules} == declared[extra], extra


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_install_advice_installs_this_project(extra):
    advice = extras.install_advice(extra)
    assert f"pip install -e '.[{extra}]'" in advice and "uvs-embeddings" in advice
    assert "'uvs[" not in advice  # that would be another project on the package index
    assert ("--index-url https://download.pytorch.org/whl/cpu" in advice) == (extra == "images")


def test_require_names_the_missing_package(monkeypatch):
    extras.require("captions")  # installed here
    _mask(monkeypatch, "faiss")
    assert extras.missing("index") == ["faiss-cpu"]
    with pytest.raises(UVSError, match=r"faiss-cpu is not installed \(x needs it\): in the uvs "
                       r"checkout run pip install -e '\.\[index\]'"):
        extras.require("index", "x")


# --- a typo is not a missing extra; a missing extra is found before the slow work ---------

@pytest.mark.parametrize("argv", [
    ["caption", "DEC", "--image", "PHOTO"],
    ["search", "MODEL", "--image", "PHOTO", "--captions", "CAPS"],
    ["align", "show", "MODEL", "--text", "a dog", "--image", "PHOTO", "--json"],
])
def test_missing_photo_is_named_before_a_missing_extra(argv, tmp_path, monkeypatch):
    _mask(monkeypatch, "torch", "torchvision", "PIL")
    photo = tmp_path / "nope.jpg"
    args = [str(photo) if a == "PHOTO" else str(tmp_path / a) if a.isupper() else a
            for a in argv]
    one_line_error(run(*args), str(photo), "photo not found")
    photo.write_bytes(b"\xff\xd8")  # now there: the missing extra is what is reported,
    one_line_error(run(*args), "torch, torchvision and Pillow are not installed (--image "
                   "needs them)", "pip install -e '.[images]'",
                   "download.pytorch.org/whl/cpu")  # before the (missing) model is read


def test_align_show_checks_pillow_before_aligning(tmp_path, monkeypatch):
    _mask(monkeypatch, "PIL")
    regions = tmp_path / "r.npz"
    regions.write_bytes(b"not read yet")
    one_line_error(run("align", "show", tmp_path / "missing.npz", "--text", "a dog",
                       "--regions", regions, "-o", tmp_path / "a.png"),
                   "Pillow is not installed (-o needs it to draw)", "pip install -e '.[images]'")


def test_index_build_checks_faiss_before_embedding(vse, tmp_path, monkeypatch):
    _mask(monkeypatch, "faiss")
    caps = tmp_path / "c.txt"
    caps.write_text("a dog\n")
    one_line_error(run("index", "build", tmp_path / "missing-model.npz", "--captions", caps,
                       "-o", tmp_path / "i.idx"), "faiss-cpu is not installed",
                   "uvs index build needs it", "pip install -e '.[index]'")
    assert not (tmp_path / "i.idx").exists()


def test_evalcap_checks_pycocoevalcap_before_generating(tmp_path, monkeypatch):
    _mask(monkeypatch, "pycocoevalcap")
    one_line_error(run("evalcap", tmp_path / "missing-decoder.npz"),
                   "pycocoevalcap is not installed", "pip install -e '.[captions]'")


# --- a text file given as .npy -------------------------------------------------------------

def test_text_or_pickle_as_npy_never_advises_allow_pickle(vse, tmp_path):
    from uvs.fileio import load_npy

    text = tmp_path / "captions.txt"
    text.write_text("a dog runs\n")
    res = run("encode", "images", vse, text, "-o", tmp_path / "o.npy")
    one_line_error(res, str(text), "not a .npy array: it is text")
    assert "allow_pickle" not in res.output
    pickled = tmp_path / "p.npy"
    pickled.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UVSError, match="not a .npy array: it is some other file"):
        load_npy(pickled)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(UVSError, match="holds Python objects, not numbers") as err:
        load_npy(tmp_path / "obj.npy")
    assert "allow_pickle" not in str(err.value)
    one_line_error(run("search", vse, "--text", "a dog", "--images", text), str(text),
                   "not a .npy array")


# --- --row needs --image-features; identical results collapse --------------------------

def test_row_without_image_features_is_refused(vse, tmp_path):
    caps = tmp_path / "c.txt"
    caps.write_text("a dog\n")
    np.save(tmp_path / "f.npy", np.ones((3, 6), np.float32))
    for argv in (["search", vse, "--text", "a dog", "--images", tmp_path / "f.npy",
                  "--row", "2"],
                 ["caption", tmp_path / "dec.npz", "--text", "a dog", "--row", "1"]):
        res = run(*argv)
        assert res.exit_code == 2 and "--row picks a row of --image-features" in res.stderr


def test_collapse_keeps_the_first_of_each():
    from uvs.search import collapse

    pos, dups = collapse(np.arange(7), ["x", "y", "x", "x", "z", "y", "w"], 3)
    assert pos.tolist() == [0, 1, 4] and dups.tolist() == [2, 1, 0]
    pos, dups = collapse(np.arange(2), ["x", "x"], 3)
    assert pos.tolist() == [0] and dups.tolist() == [1]


def test_search_collapses_identical_captions_and_rows(vse, tmp_path):
    caps = tmp_path / "c.txt"
    caps.write_text("a dog\n" * 4 + "a cat\n" + "a dog\n" * 3 + "dog runs\n" + "cat runs\n")
    feats = tmp_path / "f.npy"
    np.save(feats, np.random.RandomState(0).rand(2, 6).astype(np.float32))
    out = json.loads(ok(run("search", vse, "--image-features", feats, "--captions", caps,
                            "-k", "4", "--json", "-q")).stdout)
    shown = [r["caption"] for r in out["results"]]
    assert sorted(shown) == ["a cat", "a dog", "cat runs", "dog runs"]
    assert out["duplicates"] == "collapsed"
    dog = next(r for r in out["results"] if r["caption"] == "a dog")
    assert out["collapsed"] == sum(r["duplicates"] for r in out["results"])
    assert dog["duplicates"] == 6 and out["collapsed"] == 6
    text = ok(run("search", vse, "--image-features", feats, "--captions", caps, "-k", "4",
                  "-q")).stdout
    assert "(+6 identical)" in text
    kept = json.loads(ok(run("search", vse, "--image-features", feats, "--captions", caps,
                             "-k", "3", "--all-duplicates", "--json", "-q")).stdout)
    assert kept["duplicates"] == "kept" and kept["collapsed"] == 0
    # the first shown is the best-scoring row of its caption, as without collapsing
    assert kept["results"][0]["row"] == out["results"][0]["row"]
    # a per-caption feature file: each photo's row five times
    per_caption = tmp_path / "ims.npy"
    np.save(per_caption, np.repeat(np.random.RandomState(1).rand(3, 6).astype(np.float32), 5, 0))
    res = ok(run("search", vse, "--text", "a dog", "--images", per_caption, "-k", "3",
                 "--json"))
    out = json.loads(res.stdout)
    assert len({r["row"] // 5 for r in out["results"]}) == 3 and out["collapsed"] == 12
    assert "holds identical rows" in res.stderr and "one row per caption" in res.stderr


# --- defaults that fit what the user has -------------------------------------------------

def test_decoder_takes_its_models_data_set(vse):
    from uvs.decoding.options import resolve_options

    o = resolve_options(model=str(vse))
    assert o["data"] == "sample" and o["dim"] == 128  # the sample's preset came with it
    assert resolve_options(model=str(vse), data="f8k")["data"] == "f8k"
    assert resolve_options(model=str(vse), condition="features")["data"] == "f8k"


def test_missing_data_set_suggests_the_sample(tmp_path):
    res = run("train", "--data-dir", tmp_path, "-q")
    one_line_error(res, "data set 'f8k' not found", "--data sample")


@pytest.mark.parametrize("argv", [["caption"], ["align", "show"], ["report"], ["evalcap"]])
def test_long_commands_take_quiet(argv):
    assert "-q, --quiet" in ok(run(*argv, "--help")).stdout


def test_ptb_tokenizer_prints_nothing(capfd):
    import shutil

    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    from uvs.decoding.evaluation import _tokenize

    assert _tokenize({0: ["A dog ."]}) == {0: ["a dog"]}
    captured = capfd.readouterr()
    assert "PTBTokenizer" not in captured.err + captured.out


def test_sample_readme_says_which_features_to_search(sample_data):
    readme = (sample_data / "sample" / "README.txt").read_text()
    assert "sample_SPLIT_photos.npy        one feature row PER IMAGE" in readme
    assert "uvs search --images" in readme and "PER CAPTION" in readme


def test_align_show_negative_beta_is_the_exact_optimum(tmp_path):
    import itertools

    from uvs.align import show as align_show
    from uvs.align.evaluation import load_model
    from uvs.align.model import KIND, init_params
    from uvs.align.mrf import energy
    from uvs.modelfile import write_model
    from uvs.regions import read_regions, write_regions

    o = {"dim_word": 3, "dim": 4, "dim_image": 6, "n_words": 6}
    model = tmp_path / "a.npz"
    write_model(model, init_params(o, rng=np.random.RandomState(2)), o,
                {"a": 2, "dog": 3, "runs": 4, "fast": 5}, extra_meta={"kind": KIND})
    regions = tmp_path / "r.npz"
    write_regions(str(regions), np.random.RandomState(3).rand(4, 6).astype(np.float32),
                  np.zeros(4, np.int64), np.tile(np.array([0, 0, 8, 8], np.float32), (4, 1)),
                  ["p.png"])
    text = "a dog runs fast a dog"
    out = json.loads(ok(run("align", "show", model, "--regions", regions, "--text", text,
                            "--beta", "-1", "--json")).stdout)
    feats, boxes = read_regions(str(regions)).of(0)
    unary = np.array(align_show.align_sentence(load_model(model), feats, boxes, text,
                                               -1.0)["unary"])
    best = max(energy(unary, np.array(a), -1.0)
               for a in itertools.product(range(unary.shape[1]), repeat=unary.shape[0]))
    assert out["energy"] == pytest.approx(best, abs=1e-6)
    assert energy(unary, np.array(out["region"]), -1.0) == pytest.approx(best, abs=1e-6)
