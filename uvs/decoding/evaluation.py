"""Scoring generated captions as the field does: BLEU-1..4, METEOR, ROUGE-L, CIDEr
(`pycocoevalcap`, the COCO caption evaluation code, the `[captions]` extra), and the
decoder's perplexity on the split's reference captions.
"""

from __future__ import annotations

import shutil

from uvs import backend
from uvs.datasets import load_split
from uvs.decoding.model import build_model
from uvs.decoding.tools import check_context, generate
from uvs.decoding.train import contexts, dev_cost
from uvs.errors import UVSError

PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",",
               ":", "-", "--", "...", ";"}


def _tokenize(captions: dict) -> dict:
    """COCO's PTB tokenisation (Java) when there is a Java runtime, else lowercase words
    without the punctuation tokens PTBTokenizer drops (the captions are pre-tokenised)."""
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        return PTBTokenizer().tokenize({k: [{"caption": c} for c in v]
                                        for k, v in captions.items()})
    return {k: [" ".join(w for w in c.lower().split() if w not in PUNCTUATION) for c in v]
            for k, v in captions.items()}


def caption_scores(generated: list[str], references: list[list[str]]) -> tuple[dict, list]:
    """({metric: score}, notes) for one generated caption and its references per image."""
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise UVSError(None, "caption metrics need the [captions] extra: pip install "
                       "'uvs[captions]' (pycocoevalcap)") from None
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
    ctx = check_context(dec, contexts({"condition": o.get("condition", "embedding")}, sp, vse),
                        sp.ims_path)
    best = [cands[0][0] for cands in generate(dec, ctx, beam_width=beam_width, maxlen=maxlen)]
    refs = [sp.caps[5 * i:5 * i + 5] for i in range(len(best))]
    trng, inps, cost = build_model(dec["tparams"], o)
    f_log_probs = backend.function(inps, cost, name="f_log_probs")
    ppl = dev_cost(f_log_probs, sp.caps, ctx, dec["worddict"],
                   {"maxlen_w": o.get("maxlen_w", 100), "n_words": o["n_words"]})
    if not ppl["words"]:
        raise UVSError(dec["path"], f"no caption of the {split} split is shorter than its "
                       f"maxlen_w ({o.get('maxlen_w', 100)} words): no perplexity to measure")
    scores, notes = caption_scores(best, refs) if metrics else ({}, [])
    return {"metrics": scores, "cost_per_word": ppl["cost_per_word"],
            "perplexity": ppl["perplexity"], "words": ppl["words"], "captions": best,
            "references": refs, "notes": notes, "images": len(best)}
