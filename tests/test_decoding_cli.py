"""`uvs decoder train`, `uvs caption`, `uvs evalcap`, `uvs info/convert` on decoders: real runs."""

import json

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from test_decoding_files import write_released


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sample_data):
    root = tmp_path_factory.mktemp("cli")
    data = sample_data
    saveto = root / "dec.npz"
    res = ok(run("decoder", "train", "--data", "sample", "--data-dir", data, "--condition",
                 "features", "--dim", 8, "--dim-word", 4, "--batch-size", 500,
                 "--max-epochs", 1, "--saveto", saveto, "--json", "-q"))
    return root, data, saveto, json.loads(res.stdout)


def test_train_json(trained):
    root, data, saveto, result = trained
    assert result["saveto"] == str(saveto) and result["updates"] > 0
    assert result["best_dev_cost_per_word"] > 0


def test_caption_features_row(trained):
    root, data, saveto, _ = trained
    feats = data / "sample" / "sample_test_photos.npy"
    res = ok(run("caption", saveto, "--image-features", feats, "--row", 2, "--beam", 3,
                 "-n", 2, "--json"))
    out = json.loads(res.stdout)
    assert out["mode"] == "beam" and len(out["sentences"]) == 2
    assert out["sentences"][0]["score"] <= out["sentences"][1]["score"]
    res = ok(run("caption", saveto, "--image-features", feats, "--sample", "-n", 3))
    assert len(res.stdout.strip().splitlines()) == 3


def test_caption_bad_inputs(trained, tmp_path):
    root, data, saveto, _ = trained
    one_line_error(run("caption", saveto, "--text", "a dog ."), "conditioned on CNN features")
    wrong = tmp_path / "w.npy"
    np.save(wrong, np.ones((2, 7), dtype="float32"))
    one_line_error(run("caption", saveto, "--image-features", wrong), str(wrong), "4096")


def test_decoder_given_to_evalrank(trained):
    root, data, saveto, _ = trained
    one_line_error(run("evalrank", saveto, "--data", "sample", "--data-dir", data),
                   str(saveto), "this is a decoder model, not a vse model")


def test_vse_model_given_as_decoder(tmp_path):
    from uvs.model import init_params
    from uvs.modelfile import write_model

    o = {"dim": 4, "dim_word": 3, "dim_image": 6, "encoder": "gru", "n_words": 5}
    write_model(tmp_path / "vse.npz", init_params(o), o, {"a": 2})
    one_line_error(run("caption", tmp_path / "vse.npz", "--text", "a"),
                   "this is a vse model, not a decoder model")


def test_released_decoder_info_convert(tmp_path):
    npz, dictionary, _ = write_released(tmp_path)
    one_line_error(run("caption", npz, "--dictionary", tmp_path / "missing.pkl",
                       "--text", "a"), "missing.pkl")
    out = tmp_path / "conv.npz"
    ok(run("convert", npz, "--dictionary", dictionary, "-o", out))
    info = json.loads(ok(run("info", out, "--json")).stdout)
    assert info["kind"] == "decoder" and info["options"]["dimctx"] == 6
    assert info["parameters"]["ff_logit_W"] == [5, 9]


def test_one_pickle_dictionary(tmp_path):
    npz, dictionary, _ = write_released(tmp_path, dictionary_pickles=1)
    one_line_error(run("convert", npz, "--dictionary", dictionary, "-o", tmp_path / "x.npz"),
                   str(dictionary), "expected 2")


def test_evalcap(trained):
    pytest.importorskip("pycocoevalcap")
    root, data, saveto, _ = trained
    lines = root / "gen.jsonl"
    res = ok(run("evalcap", saveto, "--data-dir", data, "--beam", 1, "--json", "-q",
                 "-o", lines))
    out = json.loads(res.stdout)
    assert out["images"] == 500 and out["perplexity"] > 1
    assert {"bleu1", "bleu4", "rouge_l", "cider"} <= set(out["metrics"])
    assert res.stderr == ""  # -q: no PTBTokenizer line either
    rows = [json.loads(ln) for ln in lines.read_text(encoding="utf-8").splitlines()]
    assert [r["image"] for r in rows] == list(range(500))


def test_released_decoder_info_with_its_dictionary_elsewhere(tmp_path):
    npz, dictionary, _ = write_released(tmp_path)  # not beside it as toydec.npz.dictionary.pkl
    one_line_error(run("info", npz), "toydec.npz.dictionary.pkl", "with --dictionary")
    info = json.loads(ok(run("info", npz, "--dictionary", dictionary, "--json")).stdout)
    assert info["kind"] == "decoder" and info["layout"] == "skip-thoughts"
    assert info["vocabulary"] == 8 and info["parameters"]["Wemb"] == [9, 4]
    text = ok(run("info", npz, "--dictionary", dictionary)).stdout
    assert "decoder" in text and "skip-thoughts layout, 8 words)" in text


def test_caption_a_photo(tmp_path):
    """`uvs caption --image` on a features decoder: the photo's VGG row, narrow VGG fixture."""
    pytest.importorskip("torchvision")
    pytest.importorskip("PIL")
    from vggfixtures import DENSE, awkward_images, write_lasagne_vgg

    from uvs import vgg
    from uvs.decoding import tools
    from uvs.decoding.files import write_decoder
    from uvs.decoding.model import init_params

    photo = awkward_images(tmp_path)["rgb"]
    weights = tmp_path / "vgg19.pkl"
    write_lasagne_vgg(weights)
    words = ["a", "dog", "runs", "on", "the", "beach", "."]
    o = {"dimctx": DENSE[1], "dim_word": 4, "dim": 5, "n_words": 9, "decoder": "gru",
         "doutput": False, "condition": "features", "inject": "init"}
    write_decoder(tmp_path / "dec.npz", init_params(o, rng=np.random.RandomState(0)), o,
                  {w: i + 2 for i, w in enumerate(words)})
    res = ok(run("caption", tmp_path / "dec.npz", "--image", photo, "--weights", weights,
                 "--device", "cpu", "--beam", 3, "-n", 2, "--maxlen", 6, "--json"))
    out = json.loads(res.stdout)
    feats = vgg.compute_features(vgg.build_convnet(weights, device="cpu"), [photo])
    expected = tools.generate(tools.load_model(tmp_path / "dec.npz"), feats, beam_width=3,
                              maxlen=6, n=2)[0]
    assert [(s["text"], s["score"]) for s in out["sentences"]] == expected
    one_line_error(run("caption", tmp_path / "dec.npz", "--image", tmp_path / "missing.jpg",
                       "--weights", weights), "missing.jpg")
