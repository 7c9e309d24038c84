"""No command writes over one of its own inputs (or their companion files), nor replaces a
file of another kind: one check, `uvs.fileio.check_not_input`, on every `-o`."""

import os

import numpy as np
import pytest
from clirun import one_line_error, run

from uvs.errors import UVSError
from uvs.fileio import check_not_input, check_replaceable, is_npy


@pytest.fixture
def vse(tmp_path):
    from uvs.model import init_params
    from uvs.modelfile import write_model

    o = {"dim": 4, "dim_word": 3, "dim_image": 6, "encoder": "gru", "n_words": 5,
         "data": "sample"}
    path = tmp_path / "m.npz"
    write_model(path, init_params(o), o, {"a": 2, "dog": 3})
    return path


@pytest.fixture
def decoder(tmp_path):
    from uvs.decoding.files import write_decoder
    from uvs.decoding.model import init_params

    o = {"dimctx": 4096, "dim_word": 4, "dim": 5, "n_words": 9, "decoder": "gru",
         "doutput": False, "condition": "features", "inject": "init", "data": "sample"}
    path = tmp_path / "dec.npz"
    write_decoder(path, init_params(o, rng=np.random.RandomState(0)), o,
                  {w: i + 2 for i, w in enumerate("a dog runs on the beach .".split())})
    return path


def _unchanged(*paths):
    return {p: open(p, "rb").read() for p in paths}


def test_check_not_input_sees_links_companions_and_caches(tmp_path):
    model = tmp_path / "m.npz"
    model.write_bytes(b"model")
    for companion in ("m.npz.pkl", "m.npz.dictionary.pkl", "m.last.npz", "m.log.jsonl",
                      "m.npz.uvs-0123456789abcdef.npz"):
        (tmp_path / companion).write_bytes(b"beside")
    (tmp_path / "pkl-link").symlink_to(tmp_path / "m.npz.pkl")
    (tmp_path / "link.npz").symlink_to(model)
    os.link(model, tmp_path / "hard.npz")
    for out in (model, tmp_path / "link.npz", tmp_path / "hard.npz",
                tmp_path / "sub" / ".." / "m.npz", tmp_path / "m.npz.pkl",
                tmp_path / "m.npz.dictionary.pkl", tmp_path / "m.last.npz",
                tmp_path / "m.log.jsonl", tmp_path / "m.npz.uvs-0123456789abcdef.npz",
                tmp_path / "pkl-link"):
        with pytest.raises(UVSError, match="would write over an input of this command"):
            check_not_input(out, [None, model])
    feats = tmp_path / "f.npy"
    (tmp_path / "f.paths.txt").write_text("x\n")
    with pytest.raises(UVSError, match=r"f\.paths\.txt, beside"):
        check_not_input(tmp_path / "f.paths.txt", [feats])
    (tmp_path / "list.txt").write_text("x\n")
    with pytest.raises(UVSError, match="o.npy"):  # a file the output brings along
        check_not_input(tmp_path / "o.npy", [tmp_path / "list.txt"],
                        writes=[tmp_path / "list.txt"])
    with pytest.raises(UVSError, match="list.txt"):  # a photo: itself only
        check_not_input(tmp_path / "list.txt", [], plain=[tmp_path / "list.txt"])
    check_not_input(tmp_path / "list.txt.pkl", [], plain=[tmp_path / "list.txt"])
    check_not_input(tmp_path / "other.npz", [model, None])  # a new name is fine
    check_not_input(tmp_path / "m.npz.dictionary.pkl", [tmp_path / "n.npz"])
    with pytest.raises(UVSError, match="n.npz.pkl, beside"):  # not there yet, still refused
        check_not_input(tmp_path / "n.npz.pkl", [tmp_path / "n.npz"])


def test_check_replaceable(tmp_path):
    check_replaceable(tmp_path / "new.npy", is_npy, "a .npy array")
    np.save(tmp_path / "old.npy", np.zeros(2))
    check_replaceable(tmp_path / "old.npy", is_npy, "a .npy array")
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04...")
    with pytest.raises(UVSError, match="exists and is not a .npy array: refusing"):
        check_replaceable(tmp_path / "model.npz", is_npy, "a .npy array")
    with pytest.raises(UVSError, match="not a regular file"):
        check_replaceable(tmp_path, is_npy, "a .npy array")


def test_encode_and_convert_never_over_their_inputs(vse, tmp_path):
    text = tmp_path / "s.txt"
    text.write_text("a dog\n")
    np.save(tmp_path / "f.npy", np.ones((2, 6), np.float32))
    before = _unchanged(vse, text, tmp_path / "f.npy")
    for out in (vse, text):
        one_line_error(run("encode", "sentences", vse, text, "-o", out), str(out),
                       "would write over an input")
    one_line_error(run("encode", "images", vse, tmp_path / "f.npy", "-o", tmp_path / "f.npy"),
                   "would write over an input")
    one_line_error(run("convert", vse, "-o", vse), "would write over an input")
    one_line_error(run("convert", vse, "-o", f"{vse}.pkl"), "m.npz.pkl, beside")
    assert _unchanged(vse, text, tmp_path / "f.npy") == before
    # nor over a file of another kind: a model is no .npy of vectors
    other = tmp_path / "other.npz"
    other.write_bytes(vse.read_bytes())
    one_line_error(run("encode", "sentences", vse, text, "-o", other),
                   "exists and is not a .npy array")
    assert other.read_bytes() == vse.read_bytes()


def test_index_build_never_over_its_inputs(vse, tmp_path):
    caps = tmp_path / "c.txt"
    caps.write_text("a dog\n")
    one_line_error(run("index", "build", vse, "--captions", caps, "-o", caps),
                   "would write over an input")
    one_line_error(run("index", "build", vse, "--captions", caps, "-o", vse),
                   "would write over an input")
    one_line_error(run("index", "build", vse, "--captions", caps, "-o",
                       f"{caps}.uvs-0123456789abcdef.npz"), "would write over an input")
    (tmp_path / "x.idx").write_text("not an index\n")
    one_line_error(run("index", "build", vse, "--captions", caps, "-o", tmp_path / "x.idx"),
                   "exists and is not an index")
    assert caps.read_text() == "a dog\n"


def test_features_never_over_a_photo_list_or_model(vse, tmp_path):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"\x89PNG not really")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{photo}\n")
    before = _unchanged(photo, listing, vse)
    one_line_error(run("features", photo, "-o", photo), "would write over an input")
    named = tmp_path / "o.paths.txt"  # what `-o o.npy` writes beside it
    named.write_text(f"{photo}\n")
    one_line_error(run("features", "--list", named, "-o", tmp_path / "o.npy"),
                   "would write over an input", "o.paths.txt")
    one_line_error(run("features", "--list", listing, "-o", listing),
                   "would write over an input")
    one_line_error(run("features", photo, "-o", vse), "exists and is not a .npy array")
    one_line_error(run("features", photo, "--regions", "grid", "-o", vse),
                   "exists and is not a regions file")
    boxes = tmp_path / "b.npz"
    boxes.write_text('{"path": "p.png", "boxes": [[0, 0, 1, 1]]}\n')
    one_line_error(run("features", "--regions", boxes, "-o", boxes), "would write over an input")
    assert _unchanged(photo, listing, vse, named, boxes) == {**before, **_unchanged(named, boxes)}


def test_align_show_never_over_its_photo_or_regions(tmp_path):
    photo = tmp_path / "p.png"
    photo.write_bytes(b"photo")
    model = tmp_path / "a.npz"
    model.write_bytes(b"model")
    one_line_error(run("align", "show", model, "--text", "a dog", "--image", photo,
                       "-o", photo), "would write over an input")
    one_line_error(run("align", "show", model, "--text", "a", "--image", photo, "-o",
                       tmp_path / "x.gif"), "x.gif", ".png, .jpg, .jpeg, .html, .htm")
    res = run("align", "show", model, "--text", "a", "--image", photo)
    assert res.exit_code == 2 and "nothing to show: give -o PICTURE" in res.stderr
    assert photo.read_bytes() == b"photo"


def test_align_show_never_over_the_regions_photo(tmp_path):
    from uvs.align.model import KIND, init_params
    from uvs.modelfile import write_model
    from uvs.regions import write_regions

    o = {"dim_word": 3, "dim": 4, "dim_image": 6, "n_words": 5}
    model = tmp_path / "a.npz"
    write_model(model, init_params(o), o, {"a": 2, "dog": 3}, extra_meta={"kind": KIND})
    photo, regions = tmp_path / "p.png", tmp_path / "regions.html"  # any name
    photo.write_bytes(b"photo")
    write_regions(str(regions), np.ones((2, 6), np.float32), np.zeros(2, np.int64),
                  np.array([[0, 0, 8, 8], [0, 0, 4, 4]], np.float32), [str(photo)])
    before = _unchanged(photo, regions)
    one_line_error(run("align", "show", model, "--text", "a dog", "--regions", regions,
                       "-o", regions), "would write over an input")
    one_line_error(run("align", "show", model, "--text", "a dog", "--regions", regions,
                       "-o", photo), "would write over an input")
    assert _unchanged(photo, regions) == before


def test_evalcap_never_over_the_decoder_or_the_split(decoder, sample_data):
    pytest.importorskip("pycocoevalcap")
    from uvs.datasets import split_files

    data = sample_data
    before = _unchanged(decoder)
    one_line_error(run("evalcap", decoder, "--data-dir", data, "-o", decoder),
                   "would write over an input")
    assert _unchanged(decoder) == before
    caps, ims = split_files("sample", "test", data)
    before = _unchanged(caps, ims)
    one_line_error(run("evalcap", decoder, "--data-dir", data, "-o", caps),
                   "would write over an input")
    one_line_error(run("evalcap", decoder, "--data-dir", data, "-o",
                       data / "sample" / "sample_test_ims.npy"), "would write over an input")
    assert _unchanged(caps, ims) == before


def test_reports_use_the_same_check(vse, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("jinja2")
    feats = tmp_path / "f.npy"
    np.save(feats, np.ones((2, 6), np.float32))
    one_line_error(run("search", vse, "--text", "a dog", "--images", feats, "--report",
                       f"{vse}.dictionary.pkl"), "would write over an input")
    one_line_error(run("search", vse, "--text", "a dog", "--images", feats, "--report",
                       tmp_path / "f.paths.txt"), "would write over an input")
