"""`uvs mnlm train`, and `uvs caption` / `uvs evalcap` given a log-bilinear model."""

import json

import numpy as np
import pytest
from clirun import ok, one_line_error, run

from uvs.mnlm import lm_tools
from uvs.mnlm.mlbl import MLBL
from uvs.mnlm.scnlm import SCNLM

WORDS = ["<start>", "<end>", "unk", "a", "the", "dog", "cat", "runs", "sits", "."]
TAGS = ["<end>", "DT", "NN", "VBZ", "."]


def small(cls, path, D=8, **kw):
    net = cls(V=len(WORDS), K=6, D=D, h=4, context=2, **kw)
    net.init_params()
    net.word_dict = {w: i for i, w in enumerate(WORDS)}
    if cls is SCNLM:
        net.tag_dict = {t: i for i, t in enumerate(TAGS)}
    lm_tools.save_model(net, path)
    return path


@pytest.fixture
def feats(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.random.RandomState(0).rand(3, 8).astype("float32"))
    return path


def test_caption_with_a_template(tmp_path, feats):
    model = small(SCNLM, tmp_path / "s.npz", factors=3, n_tags=5, structure_context=1)
    res = json.loads(ok(run("caption", model, "--image-features", feats, "--template",
                            "DT NN VBZ .", "--beam", "2", "-n", "2", "--json")).stdout)
    assert len(res["sentences"]) == 2
    assert all(s["template"] == "DT NN VBZ ." for s in res["sentences"])
    out = ok(run("caption", model, "--image-features", feats, "--row", "1", "--template",
                 "DT NN VBZ .")).stdout
    assert "[DT NN VBZ .]" in out


def test_caption_template_errors(tmp_path, feats):
    model = small(SCNLM, tmp_path / "s.npz", factors=3, n_tags=5, structure_context=1)
    one_line_error(run("caption", model, "--image-features", feats, "--template", "DT XX ."),
                   "unknown tag 'XX'")
    one_line_error(run("caption", model, "--image-features", feats, "--maxlen", "4",
                       "--template", "DT NN VBZ DT NN VBZ ."), "more than --maxlen 4")
    mlbl = small(MLBL, tmp_path / "m.npz")
    r = run("caption", mlbl, "--image-features", feats, "--template", "DT NN .")
    assert r.exit_code == 2 and "--template is for SC-NLM models" in r.output


def test_caption_mlbl_and_text_needs_vse(tmp_path, feats):
    mlbl = small(MLBL, tmp_path / "m.npz")
    res = json.loads(ok(run("caption", mlbl, "--image-features", feats, "--beam", "3", "-n",
                            "3", "--json")).stdout)
    assert len(res["sentences"]) == 3
    assert all(set(s["text"].split()) <= set(WORDS) for s in res["sentences"])
    one_line_error(run("caption", mlbl, "--text", "a dog runs ."), "need one trained on")


def test_gru_decoder_is_not_an_mnlm_and_the_reverse(tmp_path):
    from uvs.decoding.files import write_decoder
    from uvs.errors import UVSError

    o = {"dimctx": 4, "dim_word": 3, "dim": 2, "n_words": 5}
    from uvs.decoding.files import expected_shapes

    params = {k: np.zeros(s, "float32") for k, s in expected_shapes(o).items()}
    write_decoder(tmp_path / "d.npz", params, o, {"a": 2, "b": 3})
    with pytest.raises(UVSError, match="not a multimodal log-bilinear model"):
        lm_tools.load_model(tmp_path / "d.npz")
    from uvs.decoding import tools

    mlbl = small(MLBL, tmp_path / "m.npz")
    with pytest.raises(UVSError, match="not a decoder model"):
        tools.load_model(mlbl)


@pytest.mark.slow
def test_evalcap_mlbl_on_the_sample(tmp_path, sample_data):
    model = small(MLBL, tmp_path / "m.npz", D=4096)
    net = lm_tools.load_model(model)
    assert net.D == 4096
    res = json.loads(ok(run("evalcap", model, "--data", "sample", "--data-dir", sample_data,
                            "--split", "dev", "--beam", "2", "--json")).stdout)
    assert res["images"] == 500 and res["perplexity"] > 1
    assert 0 <= res["metrics"]["bleu1"] <= 1
