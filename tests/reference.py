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
