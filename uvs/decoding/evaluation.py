"""Scoring generated captions as the field does: BLEU-1..4, METEOR, ROUGE-L, CIDEr
(`pycocoevalcap`, the COCO caption evaluation code, the `[captions]` extra), and the
decoder's perplexity on the split's reference captions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import unicodedata

import numpy as np

from uvs import backend
from uvs.datasets import Split, load_split
from uvs.decoding.model import build_model
from uvs.decoding.tools import check_context, generate
from uvs.errors import UVSError
from uvs.extras import install_advice
from uvs.homogeneous_data import prepare_data
from uvs.modelfile import shown
from uvs.tools import check_features, encode_images
from uvs.vocab import tokenize

PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",",
               ":", "-", "--", "...", ";"}


LINE_LIKE = ("Cc", "Zl", "Zp")  # unicodedata categories that a line splitter may split on


def one_line(caption: str) -> str:
    """A caption as one line of words: every control, format or separator character (CR,
    FF, U+2028, ...) a space, runs of spaces one."""
    return " ".join("".join(" " if unicodedata.category(ch)[0] in "CZ" else ch
                            for ch in caption).split())


def _ptb_lines(lines: list[str]) -> list[str]:
    """COCO's PTBTokenizer (Java, the jar pycocoevalcap ships) on lines holding no line
    break, one output line per input line, or a UVSError: never a shifted pairing."""
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = os.path.join(os.path.dirname(os.path.abspath(ptb.__file__)),
                       ptb.STANFORD_CORENLP_3_4_1_JAR)
    with tempfile.TemporaryDirectory(prefix="uvs-ptb.") as folder:
        path = os.path.join(folder, "captions.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        proc = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer",
                               "-preserveLines", "-lowerCase", path],
                              capture_output=True, check=False)
    out = proc.stdout.decode("utf-8", "replace").split("\n")
    if proc.returncode != 0 or len(out) < len(lines) or any(out[len(lines):]):
        raise UVSError(jar, f"PTBTokenizer gave {len(out)} lines for {len(lines)} captions "
                       f"(exit status {proc.returncode}): metrics refused")
    return [" ".join(w for w in ln.rstrip().split(" ") if w not in PUNCTUATION)
            for ln in out[:len(lines)]]


def _tokenize(captions: dict) -> dict:
    """{id: [tokenised caption]}, paired by id: COCO's PTB tokenisation (Java) when there is
    a Java runtime, else lowercase words without the punctuation tokens PTBTokenizer drops
    (the captions are pre-tokenised). Each caption is first made one line (`one_line`)."""
    keys = [k for k, v in captions.items() for _ in v]
    lines = [one_line(c) for v in captions.values() for c in v]
    if shutil.which("java"):
        tokens = _ptb_lines(lines)
    else:
        tokens = [" ".join(w for w in c.lower().split() if w not in PUNCTUATION) for c in lines]
    out: dict = {k: [] for k in captions}
    for k, t in zip(keys, tokens, strict=True):
        out[k].append(t)
    return out


def caption_scores(generated: list[str], references: list[list[str]]) -> tuple[dict, list]:
    """({metric: score}, notes) for one generated caption and its references per image."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise UVSError(None, "caption metrics need pycocoevalcap, which is not installed: "
                       f"{install_advice('captions')}") from None
    java = shutil.which("java") is not None
    res = _tokenize({i: [g] for i, g in enumerate(generated)})
    gts = _tokenize(dict(enumerate(references)))
    scores, notes = {}, []
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, b in enumerate(bleu, 1):
        scores[f"bleu{n}"] = float(b)
    if java:
        from pycocoevalcap.meteor.meteor import Meteor

        meteor = Meteor()
        scores["meteor"] = float(meteor.compute_score(gts, res)[0])
        if hasattr(meteor, "close"):
            meteor.close()
    else:
        notes.append("METEOR skipped: it needs a Java runtime (Debian: default-jre-headless); "
                     "tokenised without PTBTokenizer (also Java)")
    scores["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = float(Cider().compute_score(gts, res)[0])
    return scores, notes


def captions_text(captions: list[str], path: str = "") -> str:
    """Generated captions as a file's text: JSON lines {image, caption} for a `.jsonl` path,
    else one a line, a caption holding control characters spelled out (`\\r`, `\\x0c`)."""
    import json


    if path.lower().endswith(".jsonl"):  # and no raw U+2028, NEL, ... for a line splitter
        return "".join("".join(f"\\u{ord(ch):04x}" if unicodedata.category(ch) in LINE_LIKE
                               else ch for ch in json.dumps({"image": i, "caption": c},
                                                            ensure_ascii=False)) + "\n"
                       for i, c in enumerate(captions))
    return "".join(shown(c) + "\n" for c in captions)


def evalcap(dec: dict, vse: dict | None = None, data: str = "f8k", split: str = "test",
            data_dir=None, beam_width: int = 3, maxlen: int = 30, cnn: str | None = None,
            metrics: bool = True) -> dict:
    """Generate one caption per image of a split (best of the beam) and score it.

    Returns {'metrics', 'cost_per_word', 'perplexity', 'captions', 'references', 'notes'}.
    """
    o = dec["options"]
    if o.get("condition", "embedding") == "embedding" and vse is None:
        raise UVSError(dec["path"], "this decoder decodes a joint space: give the uvs model "
                       "with --model")
    sp = load_split(data, split, data_dir, cnn)
    embedding = o.get("condition", "embedding") == "embedding"
    ctx = check_context(dec, contexts(sp, vse if embedding else None), sp.ims_path)
    best = [cands[0][0] for cands in generate(dec, ctx, beam_width=beam_width, maxlen=maxlen)]
    refs = [sp.caps[5 * i:5 * i + 5] for i in range(len(best))]
    trng, inps, cost = build_model(dec["tparams"], o)
    f_log_probs = backend.function(inps, cost, name="f_log_probs")
    ppl = dev_cost(f_log_probs, sp.caps, ctx, dec["worddict"], o.get("maxlen_w", 100),
                   o["n_words"])
    if not ppl["words"]:
        raise UVSError(dec["path"], f"no caption of the {split} split is shorter than its "
                       f"maxlen_w ({o.get('maxlen_w', 100)} words): no perplexity to measure")
    scores, notes = caption_scores(best, refs) if metrics else ({}, [])
    return {"metrics": scores, "cost_per_word": ppl["cost_per_word"],
            "perplexity": ppl["perplexity"], "words": ppl["words"], "captions": best,
            "references": refs, "notes": notes, "images": len(best)}


def contexts(split: Split, vse: dict | None) -> np.ndarray:
    """ctx of every image of a split: (len(caps) // 5, dimctx) float32; caption i has row i // 5.

    The image's vector in the joint space of the uvs model `vse` (an `embedding` decoder), or
    with vse None its CNN feature row (a `features` decoder).
    """
    images = split.image_rows()
    if vse is None:
        return np.asarray(images, dtype="float32")
    return encode_images(vse, check_features(vse, images, split.ims_path))


def dev_cost(f_log_probs, caps: list[str], ctx: np.ndarray, worddict: dict, maxlen_w: int,
             n_words: int, batch_size: int = 256) -> dict:
    """Summed −log p over a split's words (each caption's `<eos>` included), per word.

    Returns {'cost_per_word', 'perplexity', 'words'}; captions of maxlen_w words or more are
    left out as in training.
    """
    order = np.argsort([len(tokenize(c)) for c in caps], kind="stable")
    ctx = ctx[np.arange(len(caps)) // 5]
    total, words = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x, mask, cx = prepare_data([caps[i] for i in idx], ctx[idx], worddict,
                                   maxlen=maxlen_w, n_words=n_words)
        if x is None:
            continue
        total += float(f_log_probs(x, mask, cx))
        words += int(mask.sum())
    per_word = total / max(words, 1)
    return {"cost_per_word": per_word, "perplexity": float(np.exp(per_word)), "words": words}
