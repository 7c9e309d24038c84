"""Captions and scores from a log-bilinear model: `uvs caption` and `uvs evalcap` for MLBL,
MLBL-F and the SC-NLM.

Content: the joint-space vector under the VSE model the model was trained with (its
`model` option, or `--model`), else CNN feature rows. The SC-NLM needs a structure: a
`--template` of tags, or by default the tag sequences of the training captions nearest to
the query (in the joint space when there is a VSE model, else the nearest training images),
one beam per template, the candidates reranked by the VSE score against the query (without a
VSE model, by the beam's own score).
"""

from __future__ import annotations

import os

import numpy as np

from uvs import retrieval, tools
from uvs.datasets import load_split
from uvs.decoding.evaluation import caption_scores
from uvs.decoding.tools import query_features
from uvs.errors import UVSError
from uvs.mnlm import lm_tools
from uvs.mnlm.files import read_mnlm
from uvs.mnlm.scnlm import tag_windows
from uvs.mnlm.tags import load_tags
from uvs.mnlm.train import image_content, tokens_of
from uvs.tools import check_features, encode_images

NEIGHBOURS = 5  # training captions whose structures are tried by default


def load(path: str | os.PathLike, vse_path: str | None = None) -> tuple[object, dict | None]:
    """(model, VSE model or None), checked: a word dictionary, and the VSE's size."""

    net = read_mnlm(path)
    if not net.word_dict:
        raise UVSError(path, "has no word dictionary (the original's pickles carry none): "
                       "train with uvs, or convert with a vocabulary")
    vse_path = vse_path or getattr(net, "options", {}).get("model")
    vse = None
    if vse_path:

        vse = tools.load_model(vse_path)
        if vse["options"]["dim"] != net.D:
            raise UVSError(vse_path, f"gives {vse['options']['dim']}-d vectors; the model "
                           f"was trained on {net.D}-d content")
    return net, vse


def query_vector(net, vse: dict | None, path: str, image: str | None = None,
                 image_features: str | None = None, row: int = 0, text: str | None = None,
                 minus=(), plus=(), weights: str = "torchvision", crops: int = 1,
                 device: str | None = None) -> np.ndarray:
    """The content vector (D,) of a query: a photo, a feature row or a sentence, moved by
    words; in the VSE joint space when there is a VSE model, else the CNN feature row."""

    if vse is None and (text is not None or minus or plus):
        raise UVSError(path, "this model is conditioned on CNN features: --text, --minus and "
                       "--plus need one trained on a VSE model's joint space (--model)")
    feats, where = query_features({"options": {"dimctx": net.D}, "path": path}, vse, image,
                                  image_features, row, weights, crops, device)
    if feats is None:
        vec = retrieval.embed_text(vse, text)
    elif vse is not None:
        vec = encode_images(vse, check_features(vse, feats, where))[0]
    else:
        vec = feats[0]
    if minus or plus:
        vec = retrieval.arithmetic(vse, vec, minus, plus)
    return vec


def parse_template(net, template: str, maxlen: int) -> list[int]:
    """Tag indices of a template such as 'DT NN VBZ .'; one-line errors for unknown tags and
    templates longer than maxlen."""
    tags = template.split()
    if not tags:
        raise UVSError(None, "the template is empty")
    unknown = [t for t in tags if t not in net.tag_dict]
    if unknown:
        known = " ".join(sorted(t for t in net.tag_dict if t != "<end>"))
        raise UVSError(None, f"unknown tag {unknown[0]!r} in the template (this model knows: "
                       f"{known})")
    if len(tags) > maxlen - 1:
        raise UVSError(None, f"the template has {len(tags)} tags, more than --maxlen {maxlen} "
                       f"allows ({maxlen - 1} words)")
    return [net.tag_dict[t] for t in tags]


def nearest_templates(net, vse, queries: np.ndarray, train, n: int = NEIGHBOURS
                      ) -> list[list[list[int]]]:
    """For each query: the distinct tag sequences of the n training captions nearest to it
    (joint space: captions encoded by the VSE model; else the nearest images' captions)."""

    tags = load_tags(train.caps_path, train.caps)
    ids = [[net.tag_dict.get(t, 0) for t in ts] for ts in tags]
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    if vse is not None:

        keys = tools.encode_sentences(vse, train.caps)
        rows = np.argsort(-(q @ keys.T), axis=1)[:, :n]
    else:
        ims = train.image_rows()
        keys = ims / np.maximum(np.linalg.norm(ims, axis=1, keepdims=True), 1e-12)
        rows = 5 * np.argsort(-(q @ keys.T), axis=1)[:, :n]
    out = []
    for r in rows:
        seen: list = []
        for i in r:
            if ids[i] not in seen:
                seen.append(ids[i])
        out.append(seen)
    return out


def captions_for(net, vse, queries: np.ndarray, k: int = 3, maxlen: int = 50,
                 templates=None, train=None) -> list[list[dict]]:
    """Per query, candidates {'text', 'score', 'template'} best first. templates: one list of
    tag-index templates per query (SC-NLM); None takes `nearest_templates` from `train`."""
    index_dict = {i: w for w, i in net.word_dict.items()}
    if not hasattr(net, "tag_dict") or net.tag_dict is None:
        beams = lm_tools.beam_search_batch(net, net.word_dict, index_dict, maxlen, queries, k=k)
        return [[{"text": " ".join(b), "template": None} for b in bs] for bs in beams]
    if templates is None:
        if train is None:
            raise UVSError(None, "the SC-NLM needs a --template or its training data")
        templates = nearest_templates(net, vse, queries, train)
    names = {i: t for t, i in net.tag_dict.items()}
    flat_q, flat_t, owner = [], [], []
    for qi, ts in enumerate(templates):
        for t in ts:
            flat_q.append(queries[qi])
            flat_t.append(t)
            owner.append(qi)
    beams = lm_tools.beam_search_batch(net, net.word_dict, index_dict, maxlen,
                                       np.asarray(flat_q), k=k, templates=flat_t)
    out: list[list[dict]] = [[] for _ in templates]
    for qi, t, bs in zip(owner, flat_t, beams, strict=True):
        for b in bs:
            out[qi].append({"text": " ".join(b), "template": " ".join(names[i] for i in t)})
    if vse is not None:

        for qi, cands in enumerate(out):
            vecs = tools.encode_sentences(vse, [c["text"] for c in cands])
            q = queries[qi] / max(np.linalg.norm(queries[qi]), 1e-12)
            for c, s in zip(cands, vecs @ q, strict=True):
                c["score"] = float(s)
            cands.sort(key=lambda c: -c["score"])
    return out


def content_of(split, vse) -> np.ndarray:
    """Per image of a split: the model's content vector."""

    return image_content(split, vse)


def evalcap(net, vse, data: str, split: str = "test", data_dir=None, k: int = 3,
            maxlen: int = 50, metrics: bool = True, cnn: str | None = None) -> dict:
    """One caption per image of a split (best candidate) scored by pycocoevalcap, and the
    original's perplexity (log2, pooled over every n-gram) of the split's captions."""

    sp = load_split(data, split, data_dir, cnn)
    content = content_of(sp, vse)
    if content.shape[1] != net.D:
        raise UVSError(sp.ims_path, f"gives {content.shape[1]}-d content; the model takes "
                       f"{net.D}-d")
    train = load_split(data, "train", data_dir, cnn) if getattr(net, "tag_dict", None) else None
    cands = captions_for(net, vse, content, k=k, maxlen=maxlen, train=train)
    best = [c[0]["text"] for c in cands]
    refs = [sp.caps[5 * i:5 * i + 5] for i in range(len(best))]
    topwords = set(net.word_dict)
    ngrams = lm_tools.get_ngrams(tokens_of(sp.caps, net.context, topwords), net.context)
    per_caption = content[np.repeat(np.arange(len(content)), 5)[:len(sp.caps)]]
    tags = None
    if getattr(net, "tag_dict", None):

        end = net.tag_dict["<end>"]
        tags = np.concatenate([tag_windows([net.tag_dict.get(t, end) for t in ts], len(ts),
                                           net.structure_context, end)
                               for ts in load_tags(sp.caps_path, sp.caps)])
    ppl = lm_tools.perplexity(net, ngrams, net.word_dict, Im=per_caption, context=net.context,
                              tags=tags)
    scores, notes = caption_scores(best, refs) if metrics else ({}, [])
    return {"metrics": scores, "perplexity": ppl, "captions": best, "references": refs,
            "templates": [c[0]["template"] for c in cands], "notes": notes,
            "images": len(best)}
