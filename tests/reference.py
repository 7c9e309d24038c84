"""An independent NumPy float64 reference of the original models' math, for checking uvs."""

from __future__ import annotations

import numpy as np

ASCII_WS = " \t\n\r\x0b\x0c"


def py2_split(s: str) -> list[str]:
    """What Python 2's str.split() gave on the UTF-8 bytes of s."""
    return [w.decode("utf-8") for w in s.encode("utf-8").split()]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def l2norm(x):
    return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def word_indices(sentence: str, worddict: dict, n_words: int) -> list[int]:
    """k tokens -> k indices (UNK = 1 for unknown or >= n_words) then 0 for <eos>."""
    ids = [worddict[w] if w in worddict and worddict[w] < n_words else 1
           for w in py2_split(sentence)]
    return ids + [0]


def gru_last(params: dict, ids: list[int]) -> np.ndarray:
    """The GRU state after the last index, one sentence at a time, float64."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    dim = p["encoder_Ux"].shape[1]
    h = np.zeros(dim)
    for i in ids:
        x = p["Wemb"][i]
        pre = h @ p["encoder_U"] + x @ p["encoder_W"] + p["encoder_b"]
        r, u = sigmoid(pre[:dim]), sigmoid(pre[dim:])
        htil = np.tanh(r * (h @ p["encoder_Ux"]) + x @ p["encoder_Wx"] + p["encoder_bx"])
        h = u * h + (1 - u) * htil
    return h


def encode_sentences(params: dict, options: dict, worddict: dict, X: list[str]) -> np.ndarray:
    rows = []
    for s in X:
        ids = word_indices(s, worddict, options["n_words"])
        if options["encoder"] == "bow":
            v = np.asarray(params["Wemb"], dtype=np.float64)[ids].sum(axis=0)
        else:
            v = gru_last(params, ids)
        rows.append(v)
    out = l2norm(np.array(rows))
    return np.abs(out) if options.get("abs") else out


def encode_images(params: dict, options: dict, im: np.ndarray) -> np.ndarray:
    W = np.asarray(params["ff_image_W"], dtype=np.float64)
    out = l2norm(np.asarray(im, dtype=np.float64) @ W + params["ff_image_b"])
    return np.abs(out) if options.get("abs") else out


def order_errors(s: np.ndarray, im: np.ndarray) -> np.ndarray:
    """E[i, j] = ||max(0, s_i - im_j)||^2."""
    return (np.maximum(0, s[:, None, :] - im[None, :, :]) ** 2).sum(axis=2)


def contrastive_loss(params: dict, options: dict, sentences: list[list[int]], im: np.ndarray,
                     order_lineage: bool) -> float:
    """The training loss in float64: sentences as index lists ending in 0 (<eos>)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if options["encoder"] == "bow":
        s = np.array([p["Wemb"][ids].sum(axis=0) for ids in sentences])
    else:
        s = np.array([gru_last(p, ids) for ids in sentences])
    s = l2norm(s)
    images = np.asarray(im, dtype=np.float64) @ p["ff_image_W"] + p["ff_image_b"]
    if order_lineage:
        images = l2norm(images)
    if options.get("abs"):
        images, s = np.abs(images), np.abs(s)
    if options.get("method", "cosine") == "order":
        errors = order_errors(s, images)          # [sentence, image]
    else:
        errors = -images @ s.T                    # [image, sentence]
    d = np.diag(errors)
    margin = options["margin"]
    cost_s = np.maximum(0, margin - errors + d[None, :])
    cost_im = np.maximum(0, margin - errors + d[:, None])
    np.fill_diagonal(cost_s, 0)
    np.fill_diagonal(cost_im, 0)
    if options.get("max_violation"):
        cost = cost_s.max(axis=0).sum() + cost_im.max(axis=1).sum()
    else:
        cost = cost_s.sum() + cost_im.sum()
    if options.get("decay_c", 0) > 0:
        cost += options["decay_c"] * sum((v ** 2).sum() for v in p.values())
    return float(cost)


def numeric_grads(f, params: dict, eps: float = 1e-6) -> dict:
    """Central finite differences of f(params) for every entry of every parameter."""
    p = {k: np.asarray(v, dtype=np.float64).copy() for k, v in params.items()}
    grads = {}
    for k, v in p.items():
        g = np.zeros_like(v)
        flat, gflat = v.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = f(p)
            flat[i] = old - eps
            down = f(p)
            flat[i] = old
            gflat[i] = (up - down) / (2 * eps)
        grads[k] = g
    return grads


def clip(grads: dict, grad_clip: float, per_tensor: bool) -> dict:
    if grad_clip <= 0:
        return grads
    if per_tensor:
        out = {}
        for k, g in grads.items():
            n2 = (g ** 2).sum()
            out[k] = g / np.sqrt(n2) * grad_clip if n2 > grad_clip ** 2 else g
        return out
    n2 = sum((g ** 2).sum() for g in grads.values())
    if n2 > grad_clip ** 2:
        return {k: g / np.sqrt(n2) * grad_clip for k, g in grads.items()}
    return grads


def adam_released(param, grad, m, v, t, lr, b1=0.1, b2=0.001, e=1e-8):
    """One step of the released Adam; t counts from 1. Returns (param, m, v)."""
    m = b1 * grad + (1 - b1) * m
    v = b2 * grad ** 2 + (1 - b2) * v
    lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    return param - lr_t * m / (np.sqrt(v) + e), m, v
