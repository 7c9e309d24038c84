"""An independent NumPy float64 reference of the decoder's equations (docs/generation.md)."""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def gru_step(p, x, h):
    """One GRU step in float64: x: (B, nin), h: (B, dim) -> (B, dim)."""
    d = h.shape[1]
    pre = h @ p["decoder_U"] + x @ p["decoder_W"] + p["decoder_b"]
    r, u = _sigmoid(pre[:, :d]), _sigmoid(pre[:, d:])
    cand = np.tanh(r * (h @ p["decoder_Ux"]) + x @ p["decoder_Wx"] + p["decoder_bx"])
    return u * h + (1.0 - u) * cand


def word_probs(p, h, doutput):
    """Softmax over the vocabulary from states h: (B, dim)."""
    if doutput:
        h = np.tanh(h @ p["ff_hid_W"] + p["ff_hid_b"])
    z = h @ p["ff_logit_W"] + p["ff_logit_b"]
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def first_step(p, ctx, inject):
    """(h₀, x₀): the initial state and the first step's input for ctx: (B, dimctx)."""
    B, dim_word = len(ctx), p["Wemb"].shape[1]
    dim = p["decoder_Ux"].shape[0]
    v = ctx @ p["ff_state_W"] + p["ff_state_b"]
    if inject == "init":
        return np.tanh(v), np.zeros((B, dim_word))
    return np.zeros((B, dim)), v


def step_probs(params, x, mask, ctx, doutput=False, inject="init"):
    """Per-step word distributions (T, B, n_words) under teacher forcing."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    ctx = np.asarray(ctx, dtype=np.float64)
    h, inp = first_step(p, ctx, inject)
    out = []
    for t in range(x.shape[0]):
        if t > 0:
            inp = p["Wemb"][x[t - 1]]
        h_new = gru_step(p, inp, h)
        m = mask[t][:, None]
        h = m * h_new + (1.0 - m) * h
        out.append(word_probs(p, h, doutput))
    return np.stack(out)


def cost(params, x, mask, ctx, doutput=False, inject="init"):
    """Σ_t Σ_b mask·(−log(p(x_t) + 1e-8)), in float64."""
    probs = step_probs(params, x, mask, ctx, doutput, inject)
    T, B = x.shape
    picked = probs[np.arange(T)[:, None], np.arange(B)[None, :], x]
    return float((-np.log(picked + 1e-8) * mask).sum())
