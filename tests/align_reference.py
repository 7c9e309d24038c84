"""An independent NumPy float64 reference of the alignment model, one sentence at a time."""

from __future__ import annotations

import numpy as np


def relu(x):
    return np.maximum(x, 0.0)


def word_vectors(p: dict, ids: list[int]) -> np.ndarray:
    """s_t for one sentence (its word indices, no padding): (len(ids), dim), float64."""
    e = [relu(p["Wemb"][i] @ p["brnn_We"] + p["brnn_be"]) for i in ids]
    dim = p["brnn_Wf"].shape[0]
    hf, hb = [None] * len(ids), [None] * len(ids)
    h = np.zeros(dim)
    for t in range(len(ids)):
        h = relu(e[t] + h @ p["brnn_Wf"] + p["brnn_bf"])
        hf[t] = h
    h = np.zeros(dim)
    for t in reversed(range(len(ids))):
        h = relu(e[t] + h @ p["brnn_Wb"] + p["brnn_bb"])
        hb[t] = h
    return np.stack([relu((hf[t] + hb[t]) @ p["brnn_Wd"] + p["brnn_bd"])
                     for t in range(len(ids))])


def region_vectors(p: dict, feats: np.ndarray) -> np.ndarray:
    return feats @ p["region_W"] + p["region_b"]


def score(p: dict, ids: list[int], feats: np.ndarray) -> float:
    """S = Σ_t max_i v_i·s_t for one image's regions (R, dim_image) and one sentence."""
    s = word_vectors(p, ids)
    v = region_vectors(p, feats)
    return float(sum(max(float(vi @ st) for vi in v) for st in s))


def objective(p: dict, sentences: list[list[int]], images: list[np.ndarray],
              margin: float) -> float:
    """Σ_k Σ_{l≠k} max(0, S_kl − S_kk + m) + max(0, S_lk − S_kk + m)."""
    n = len(sentences)
    S = np.array([[score(p, sentences[l], images[k]) for l in range(n)] for k in range(n)])
    cost = 0.0
    for k in range(n):
        for l in range(n):
            if l != k:
                cost += max(0.0, S[k, l] - S[k, k] + margin)
                cost += max(0.0, S[l, k] - S[k, k] + margin)
    return cost


def reduceat_scores(v, roff, w, woff, chunk_bytes):
    """The kernel before issue 18: NumPy's `maximum.reduceat` over each block's regions."""
    n, per_region, starts, out = len(roff) - 1, 4 * max(len(w), 1), woff[:-1], []
    a = 0
    while a < n:
        b = a + 1
        while b < n and (roff[b + 1] - roff[a]) * per_region <= chunk_bytes:
            b += 1
        dots = v[roff[a]:roff[b]] @ w.T
        best = np.maximum.reduceat(dots, roff[a:b] - roff[a], axis=0)
        out.append(np.add.reduceat(best.astype(np.float64), starts, axis=1).astype(np.float32))
        a = b
    return np.concatenate(out)
