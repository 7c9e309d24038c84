"""The alignment model as PyTensor graphs: parameters, objective, word and region encoders.

Karpathy & Fei-Fei (2015), section 3.1, with f = ReLU:

    x_t = W_w I_t                              (Wemb: word vectors)
    e_t = f(W_e x_t + b_e)                     (brnn_We, brnn_be)
    h_t^f = f(e_t + W_f h_{t-1}^f + b_f)       (brnn_Wf, brnn_bf)
    h_t^b = f(e_t + W_b h_{t+1}^b + b_b)       (brnn_Wb, brnn_bb)
    s_t = f(W_d (h_t^f + h_t^b) + b_d)         (brnn_Wd, brnn_bd)
    v_i = W_m CNN(I_b) + b_m                   (region_W, region_b)
    S_kl = Σ_t max_i v_iᵀ s_t                  (image k's regions i, sentence l's words t)
    C = Σ_k Σ_{l≠k} [max(0, S_kl − S_kk + margin) + max(0, S_lk − S_kk + margin)]

The paper sums over every l including l = k, which adds the constant 2·margin per image;
uvs leaves those terms out (as its VSE loss does), so the cost reads 0 when all is ranked.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as tensor
from pytensor.tensor.extra_ops import fill_diagonal

from uvs.gru_op import gru_impl
from uvs.modelfile import ModelKind, OptionSpec, Shape, register_kind
from uvs.relu_rnn import relu_rnn
from uvs.utils import norm_weight, xavier_weight

KIND = "align"


def relu(x):
    return tensor.maximum(x, 0.0)


def init_params(options: dict, rng=np.random) -> OrderedDict:
    """Random parameters: `Wemb`, the BRNN's `brnn_*`, the region map `region_W`, `region_b`."""
    dw, dim, di = options["dim_word"], options["dim"], options["dim_image"]
    params = OrderedDict()
    params["Wemb"] = norm_weight(options["n_words"], dw, rng=rng)
    params["brnn_We"] = xavier_weight(dw, dim, rng=rng)
    params["brnn_be"] = np.zeros((dim,), dtype="float32")
    for d in ("f", "b"):
        params[f"brnn_W{d}"] = xavier_weight(dim, dim, rng=rng)
        params[f"brnn_b{d}"] = np.zeros((dim,), dtype="float32")
    params["brnn_Wd"] = xavier_weight(dim, dim, rng=rng)
    params["brnn_bd"] = np.zeros((dim,), dtype="float32")
    params["region_W"] = xavier_weight(di, dim, rng=rng)
    params["region_b"] = np.zeros((dim,), dtype="float32")
    return params


def _recurrence(tparams, e, mask, direction, impl):
    """h_t = f(e_t + h_{t∓1}·W + b) over time; where mask is 0 the state is carried over.

    e: (T, B, dim); mask: (T, B). Padding sits at the end, so the backward pass reads it
    first and keeps its zero initial state until the sentence's last word. impl: 'scan' (the
    reference) or 'fused' (`uvs.relu_rnn`, the same math in C).
    """
    W, b = tparams[f"brnn_W{direction}"], tparams[f"brnn_b{direction}"]
    backward = direction == "b"
    if impl == "fused":
        h = relu_rnn(e[::-1] if backward else e, mask[::-1] if backward else mask, W, b)
        return h[::-1] if backward else h

    def step(m_, e_, h_, W, b):
        h = relu(e_ + tensor.dot(h_, W) + b)
        return m_[:, None] * h + (1.0 - m_)[:, None] * h_

    seq_e, seq_m = (e[::-1], mask[::-1]) if backward else (e, mask)
    h0 = tensor.zeros_like(e[0])
    h = pytensor.scan(step, sequences=[seq_m, seq_e], outputs_info=[h0], non_sequences=[W, b],
                      name=f"brnn_{direction}", n_steps=e.shape[0], strict=True,
                      return_updates=False)
    return h[::-1] if backward else h


def encode_words(tparams, x, mask, options, impl: str | None = None):
    """Word vectors s_t in the joint space: (T, B, dim) for x: (T, B) int64, mask: (T, B).

    impl: the recurrences' implementation (`uvs.gru_op.gru_impl`: 'fused' unless asked)."""
    impl = gru_impl(impl)
    T, B = x.shape[0], x.shape[1]
    emb = tparams["Wemb"][x.flatten()].reshape([T, B, options["dim_word"]])
    e = relu(tensor.dot(emb, tparams["brnn_We"]) + tparams["brnn_be"])
    hf = _recurrence(tparams, e, mask, "f", impl)
    hb = _recurrence(tparams, e, mask, "b", impl)
    return relu(tensor.dot(hf + hb, tparams["brnn_Wd"]) + tparams["brnn_bd"])


def encode_regions(tparams, r):
    """v = r·W_m + b_m for region features r: (..., dim_image) -> (..., dim)."""
    return tensor.dot(r, tparams["region_W"]) + tparams["region_b"]


def alignment_scores(s, mask, v, rmask):
    """S: (B_im, B_s), S[k, l] = Σ_t mask[t, l] · max_{i: rmask[k, i]} v[k, i]·s[t, l].

    s: (T, B_s, dim) words; mask: (T, B_s); v: (B_im, R, dim) regions; rmask: (B_im, R),
    each image with at least one region.
    """
    T, Bs, dim = s.shape[0], s.shape[1], s.shape[2]
    Bi, R = v.shape[0], v.shape[1]
    dots = tensor.dot(v.reshape((Bi * R, dim)), s.reshape((T * Bs, dim)).T)
    dots = dots.reshape((Bi, R, T, Bs))
    dots = tensor.switch(rmask[:, :, None, None] > 0, dots, np.float32(-np.inf))
    best = dots.max(axis=1)  # (B_im, T, B_s): each word's best region
    return (best * mask[None, :, :]).sum(axis=1)


def structured_loss(S, margin):
    """Σ over contrastive pairs of both directions: S: (B, B), image k with sentence k."""
    diagonal = S.diagonal()
    cost_s = tensor.maximum(0, margin + S - diagonal.reshape((-1, 1)))  # sentences for image k
    cost_im = tensor.maximum(0, margin + S - diagonal.reshape((1, -1)))  # images for sentence l
    return fill_diagonal(cost_s, 0).sum() + fill_diagonal(cost_im, 0).sum()


def build_model(tparams, options, impl: str | None = None):
    """The training objective: returns ([x, mask, regions, rmask], cost).

    x: (T, B) int64 word indices, mask: (T, B) float32 (1 on words, 0 on padding),
    regions: (B, R, dim_image) float32 CNN features, rmask: (B, R) float32.
    """
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("mask", dtype="float32")
    regions = tensor.tensor3("regions", dtype="float32")
    rmask = tensor.matrix("rmask", dtype="float32")
    s = encode_words(tparams, x, mask, options, impl)
    v = encode_regions(tparams, regions)
    S = alignment_scores(s, mask, v, rmask)
    cost = structured_loss(S, np.float32(options["margin"]))
    return [x, mask, regions, rmask], cost


def build_sentence_encoder(tparams, options, impl: str | None = None):
    """Per-word vectors: returns ([x, mask], s) with s: (T, B, dim)."""
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("x_mask", dtype="float32")
    return [x, mask], encode_words(tparams, x, mask, options, impl)


def build_region_encoder(tparams, options):
    """Region vectors: returns ([r], v) with r: (N, dim_image), v: (N, dim)."""
    r = tensor.matrix("r", dtype="float32")
    return [r], encode_regions(tparams, r)


# -- the file format's kind 'align' (`uvs.modelfile`): options and the parameter shapes ------
_DIM = 2**16


def _align_shapes(o: dict) -> dict[str, Shape]:
    """The BRNN and region map of `init_params`, by name."""
    dim, dw, di = o["dim"], o["dim_word"], o["dim_image"]
    shapes = {"Wemb": (None, dw), "brnn_We": (dw, dim), "brnn_be": (dim,)}
    for d in ("f", "b", "d"):
        shapes.update({f"brnn_W{d}": (dim, dim), f"brnn_b{d}": (dim,)})
    shapes.update({"region_W": (di, dim), "region_b": (dim,)})
    return shapes


register_kind(ModelKind(
    name=KIND,
    options={"dim": OptionSpec(int, low=1, high=_DIM),
             "dim_word": OptionSpec(int, low=1, high=_DIM),
             "dim_image": OptionSpec(int, low=1, high=2**20),
             "n_words": OptionSpec(int, required=False, low=1, high=2**26),
             "margin": OptionSpec(float, required=False, low=0.0)},
    shapes=_align_shapes))
