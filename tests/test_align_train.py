"""Training, evaluating and showing the alignment model on the synthetic sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clirun import ok, one_line_error, run

from uvs.align.evaluation import load_model, rank_scores, split_regions
from uvs.align.samplecheck import alignment_rates
from uvs.modelfile import read_model, write_model
from uvs.regions import read_regions


def _train(sample_data, saveto, *extra):
    return run("align", "train", "--data", "sample", "--data-dir", sample_data, "--dim", "32",
               "--dim-word", "16", "--batch-size", "50", "--lrate", "0.002", "--seed", "3",
               "--saveto", saveto, *extra)


@pytest.fixture(scope="module")
def trained(sample_data, tmp_path_factory):
    saveto = tmp_path_factory.mktemp("model") / "a.npz"
    res = ok(_train(sample_data, saveto, "--max-epochs", "3", "--valid-freq", "30", "--json", "-q"))
    return saveto, json.loads(res.stdout)


def test_training_logs_and_learns(sample_data, trained):
    saveto, result = trained
    log = [json.loads(line) for line in open(str(saveto)[:-4] + ".log.jsonl")]
    events = [e["event"] for e in log]
    assert events[0] == "start" and events[-1] == "end" and "update" in events
    valid = [e for e in log if e["event"] == "valid"]
    assert len(valid) == 2 and all(isinstance(e["i2t"]["r1"], float) for e in valid)
    assert result["best_rsum"] == max(e["rsum"] for e in valid)
    mf = read_model(saveto)
    assert mf.kind == "align" and mf.extra["dev_rsum"] == result["best_rsum"]
    # against the same split, ranked from scratch, and an untrained model
    m = load_model(saveto)
    dev = split_regions(None, "sample", "dev", 500, sample_data)
    caps = open(sample_data / "sample" / "sample_dev_caps.txt").read().splitlines()
    assert rank_scores(m, dev, caps)["rsum"] == pytest.approx(result["best_rsum"])
    write_model(str(saveto) + ".init.npz",
                {k: np.random.RandomState(0).uniform(-0.1, 0.1, v.shape).astype(np.float32)
                 for k, v in mf.params.items()}, mf.options, mf.worddict,
                extra_meta={"kind": "align"})
    before = rank_scores(load_model(str(saveto) + ".init.npz"), dev, caps)
    assert result["best_rsum"] > before["rsum"] + 100


def test_words_tie_to_their_regions(sample_data, trained):
    """The subject word and the place noun land on their regions far more often than chance."""
    rates = alignment_rates(load_model(trained[0]),
                            read_regions(str(sample_data / "sample" / "sample_test_regions.npz")))
    assert rates["chance"] == pytest.approx(1 / 6)
    assert rates["subject"] > 0.6 and rates["place"] > 0.5, rates


def test_evalrank_info_and_show(sample_data, trained, tmp_path):
    saveto, _ = trained
    res = ok(run("evalrank", saveto, "--data-dir", sample_data, "--split", "test", "-q"))
    assert res.stdout.splitlines()[0].split() == ["R@1", "R@5", "R@10", "medr", "meanr"]
    res = ok(run("evalrank", saveto, "--data-dir", sample_data, "--split", "test", "--fold5",
                 "--json", "-q"))
    out = json.loads(res.stdout)
    assert len(out["folds"]) == 5 and set(out) == {"i2t", "t2i", "rsum", "folds"}
    assert "(align model, uvs layout" in ok(run("info", saveto)).stdout
    regions = sample_data / "sample" / "sample_test_regions.npz"
    png = tmp_path / "a.png"
    res = ok(run("align", "show", saveto, "--regions", regions, "--row", "3", "--text",
                 "a brown dog runs on the beach .", "-o", png, "--json"))
    shown = json.loads(res.stdout)
    assert " ".join(p["text"] for p in shown["phrases"]) == "a brown dog runs on the beach ."
    assert all(len(p["box"]) == 4 for p in shown["phrases"])
    from PIL import Image

    with Image.open(png) as img:
        assert img.size == (480, 480)
    html = tmp_path / "a.html"
    ok(run("align", "show", saveto, "--regions", regions, "--text", "a dog", "-o", html))
    assert "data:image/png;base64," in html.read_text()


def test_evalrank_report_of_an_alignment_model(sample_data, trained, tmp_path):
    """--report on an alignment model: the same numbers as evalrank, every query, S_kl."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("jinja2")
    import re

    saveto, _ = trained
    for extra in ([], ["--fold5"]):
        out = tmp_path / f"align{len(extra)}.html"
        plain = json.loads(ok(run("evalrank", saveto, "--data-dir", sample_data, "--split",
                                  "test", "--json", "-q", *extra)).stdout)
        got = json.loads(ok(run("evalrank", saveto, "--data-dir", sample_data, "--split",
                                "test", "--json", "-q", "--report", out, *extra)).stdout)
        assert got.pop("report") == str(out) and got == plain
        html = out.read_text(encoding="utf-8")
        assert "S_kl, the alignment score" in html and "recall@K" in html
        data = json.loads(re.search(r'<script type="application/json" id="gallery-data">'
                                    r'(.*?)</script>', html, re.S).group(1))
        i2t, t2i = data["directions"]
        assert len(i2t["rank"]) == 500 and len(t2i["rank"]) == 2500
        if not extra:
            r1 = 100.0 * sum(r == 0 for r in t2i["rank"]) / 2500
            assert r1 == pytest.approx(plain["t2i"]["r1"])
    regions = sample_data / "sample" / "sample_test_regions.npz"
    one_line_error(run("evalrank", saveto, "--data-dir", sample_data, "--split", "test",
                       "--regions", regions, "--report", regions), "would write over an input")


def test_wrong_kinds_and_mismatched_regions(sample_data, trained, tmp_path):
    saveto, _ = trained
    vse = tmp_path / "vse.npz"
    ok(run("train", "--data", "sample", "--data-dir", sample_data, "--dim", "8", "--dim-word", "8",
           "--max-epochs", "1", "--batch-size", "500", "--saveto", vse, "-q"))
    one_line_error(run("align", "show", vse, "--regions",
                       sample_data / "sample" / "sample_test_regions.npz", "--text", "a dog",
                       "--json"), "vse model, not a align model")
    one_line_error(run("evalrank", vse, "--data-dir", sample_data, "--regions",
                       sample_data / "sample" / "sample_dev_regions.npz"),
                   "--regions is for alignment")
    texts = tmp_path / "t.txt"
    texts.write_text("a dog\n")
    one_line_error(run("encode", "sentences", saveto, texts, "-o", tmp_path / "e.npy"),
                   "align model, not a vse model")
    one_line_error(run("evalrank", saveto, "--data-dir", sample_data, "--split", "test",
                       "--regions",
                       sample_data / "sample" / "sample_dev_regions.npz"),
                   "sample_dev_regions.npz", "of the test split of sample is not in the regions")
    one_line_error(run("align", "show", saveto, "--regions",
                       sample_data / "sample" / "sample_test_regions.npz", "--row", "999",
                       "--text", "a dog", "--json"), "row 999")


def test_resume_is_exact_and_nan_stops(sample_data, tmp_path):
    straight, first = tmp_path / "s.npz", tmp_path / "r.npz"
    args = ("--valid-freq", "1000", "--batch-size", "250", "-q")
    ok(_train(sample_data, straight, "--max-epochs", "2", *args))
    ok(_train(sample_data, first, "--max-epochs", "1", *args))
    ok(_train(sample_data, first, "--max-epochs", "2", "--reload", *args))
    a, b = read_model(str(straight)[:-4] + ".last.npz"), read_model(str(first)[:-4]
                                                                  + ".last.npz")
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    one_line_error(_train(sample_data, first, "--max-epochs", "3", "--reload", "--dim", "64"),
                   "contradict the checkpoint", "dim = 64")
    one_line_error(_train(sample_data, tmp_path / "nan.npz", "--max-epochs", "1", "--lrate", "1e30",
                          "--grad-clip", "0", *args), "training diverged")
