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


@pytest.mark.slow
def test_train_resumes_exactly_and_refuses_to_overwrite(tmp_path, sample_data):
    """One epoch, then --reload to two, equals two epochs at once (parameters, momentum
    buffers, schedule); a second run on the same files is refused without --overwrite."""
    common = ["mnlm", "train", "--type", "mul", "--data", "sample", "--data-dir", sample_data,
              "--hidden-size", "8", "--k", "8", "--factors", "4", "--context", "3",
              "--learning-rate", "2", "--bleu", "10000000", "--neval", "20", "-q"]
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    ok(run(*common, "--saveto", a, "--maxepoch", "1"))
    one_line_error(run(*common, "--saveto", a, "--maxepoch", "1"), "--reload", "--overwrite")
    ok(run(*common, "--saveto", a, "--maxepoch", "2", "--reload"))
    ok(run(*common, "--saveto", b, "--maxepoch", "2"))
    from uvs.modelfile import read_model

    la, lb = read_model(tmp_path / "a.last.npz"), read_model(tmp_path / "b.last.npz")
    assert la.extra["train_state"]["uidx"] == lb.extra["train_state"]["uidx"] > 0
    for k in la.params:
        np.testing.assert_array_equal(la.params[k], lb.params[k])
    for k in la.extra["arrays"]:
        np.testing.assert_array_equal(la.extra["arrays"][k], lb.extra["arrays"][k])
    for k in ("eta_t", "p_t", "step"):
        assert la.options[k] == lb.options[k]
    assert la.options["step"] == 2 and la.kind == "mlblf"


def test_scnlm_default_templates_reranked_in_the_joint_space(tmp_path):
    """No --template: the structures of the training captions nearest to the query in the
    VSE joint space, one beam each, reranked by the VSE score; --json shows each template."""
    from models import write_tiny_dataset, write_tiny_model

    vse, _, _, _ = write_tiny_model(tmp_path)  # dim 8, dim_image 10
    loc = write_tiny_dataset(tmp_path / "data")
    caps = (tmp_path / "data" / "tiny" / "tiny_train_caps.txt").read_text().splitlines()
    tagged = [" ".join(["DT", "NN", "VBZ", "."][i % 4] for i in range(len(c.split())))
              for c in caps]
    (tmp_path / "data" / "tiny" / "tiny_train_tags.txt").write_text("\n".join(tagged) + "\n")
    net = SCNLM(V=len(WORDS), K=6, D=8, h=4, context=2, factors=3, n_tags=5,
                structure_context=1)
    net.init_params()
    net.word_dict = {w: i for i, w in enumerate(WORDS)}
    net.tag_dict = {t: i for i, t in enumerate(TAGS)}
    lm_tools.save_model(net, tmp_path / "s.npz")
    res = json.loads(ok(run("caption", tmp_path / "s.npz", "--model", vse, "--text",
                            "a dog runs", "--data", "tiny", "--data-dir", tmp_path / "data",
                            "--beam", "2", "-n", "3", "--json")).stdout)
    sents = res["sentences"]
    assert 1 <= len(sents) <= 3 and all(s["template"] in tagged for s in sents)
    scores = [s["score"] for s in sents]
    assert scores == sorted(scores, reverse=True)
    assert loc


@pytest.mark.slow
def test_train_stops_on_nan(tmp_path, sample_data):
    r = run("mnlm", "train", "--type", "mul", "--data", "sample", "--data-dir", sample_data,
            "--hidden-size", "8", "--k", "8", "--factors", "4", "--learning-rate", "1e30",
            "--saveto", tmp_path / "n.npz", "-q")
    one_line_error(r, "training diverged", "--learning-rate")
