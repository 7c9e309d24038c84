"""Caption metrics pair each image with its own references whatever characters they hold,
and `evalcap -o` keeps one caption a line."""

import json
import shutil

import numpy as np
import pytest

from uvs.decoding import evaluation
from uvs.decoding.evaluation import caption_scores, captions_text, one_line

pytest.importorskip("pycocoevalcap")

BREAKERS = ["\r", "\x0c", "\u2028", "\u2029", "\x0b", "\x85", "\r\n", "\x1c", "\t", "\x00"]


def _case(n: int = 8):
    rng = np.random.RandomState(0)
    words = "a the dog cat runs sits on in grass beach red small man woman rides".split()
    refs = [[" ".join(rng.choice(words, 6)) for _ in range(5)] for _ in range(n)]
    generated = [" ".join(rng.choice(words, 5)) for _ in range(n)]
    return generated, refs


def _with_breakers(refs):
    """The same references, a line-breaking or control character in place of some spaces."""
    out, k = [], 0
    for five in refs:
        row = []
        for r in five:
            w = r.split(" ")
            row.append(w[0] + BREAKERS[k % len(BREAKERS)] + " ".join(w[1:]))
            k += 1
        out.append(row)
    return out


def test_one_line():
    assert one_line("a dog\rruns\u2028on\x0cthe  grass\x00.") == "a dog runs on the grass ."


@pytest.mark.parametrize("java", [pytest.param(True, marks=pytest.mark.slow), False])
def test_metrics_identical_with_control_characters(java, monkeypatch):
    if java and shutil.which("java") is None:
        pytest.skip("no Java runtime: PTBTokenizer and METEOR need one")
    if not java:
        monkeypatch.setattr(evaluation.shutil, "which", lambda name: None)
    generated, refs = _case()
    clean, _ = caption_scores(generated, refs)
    dirty, _ = caption_scores(generated, _with_breakers(refs))
    assert dirty == clean
    # generated captions holding them too
    odd = [g.replace(" ", "\r", 1) for g in generated]
    assert caption_scores(odd, refs)[0] == clean
    # and the pairing matters: shifting references by one image changes the numbers
    assert caption_scores(generated, refs[1:] + refs[:1])[0] != clean


def test_tokenizer_output_is_paired_by_id():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime")
    toks = evaluation._tokenize({7: ["A dog\u2028runs .", "x"], 3: ["The\rcat ."], 5: [""]})
    assert toks == {7: ["a dog runs", "x"], 3: ["the cat"], 5: [""]}
    generated, refs = _case()
    assert evaluation._tokenize(dict(enumerate(_with_breakers(refs)))) == \
        evaluation._tokenize(dict(enumerate(refs)))


def test_output_lines_escape_or_json():
    caps = ["a dog", "a\rcat\nsits", "naïve\u2028x"]
    text = captions_text(caps, "out.txt")
    assert text.split("\n")[:-1] == ["a dog", "a\\rcat\\nsits", "na\\xefve\\u2028x"]
    assert text.count("\n") == 3 and "\r" not in text and "\u2028" not in text
    lines = captions_text(caps, "out.jsonl").splitlines()
    assert [json.loads(ln) for ln in lines] == [{"image": i, "caption": c}
                                                for i, c in enumerate(caps)]
