"""Phrases from word-region scores: the paper's chain Markov random field, solved exactly.

Section 3.1.4: each word j takes a region a_j; the energy to maximise is

    E(a) = Σ_j ψ_j(a_j) + Σ_{j<N} β·[a_j = a_{j+1}],    ψ_j(i) = v_iᵀ s_j,

so a large β favours long runs of words on one region. Viterbi over the chain gives the
exact maximum in O(N·R): word j stays on region i (paying β, which may be negative) or
switches from the best *other* region (the best and second-best previous regions suffice).
"""

from __future__ import annotations

import numpy as np

from uvs.errors import UVSError


def mrf_align(unary: np.ndarray, beta: float) -> tuple[np.ndarray, float]:
    """The best assignment a: (N,) int64 of words to regions, and its energy.

    unary: (N, R) word-region scores v_iᵀ s_j. Ties go to the lowest region index.
    """
    unary = np.asarray(unary, dtype=np.float64)
    if unary.ndim != 2 or unary.shape[0] < 1 or unary.shape[1] < 1:
        raise UVSError(None, f"unary scores must be (words, regions), not {unary.shape}")
    if not np.isfinite(unary).all() or not np.isfinite(beta):
        raise UVSError(None, "word-region scores and beta must be finite")
    n, r = unary.shape
    best = unary[0].copy()  # best energy of words 0..j with word j on region i
    back = np.zeros((n, r), np.int64)
    regions = np.arange(r)
    for j in range(1, n):
        k = int(np.argmax(best))  # the best previous region to switch from ...
        src = np.full(r, k)
        if r > 1:  # ... except for region k itself, which switches from the runner-up
            src[k] = int(np.argmax(np.where(regions == k, -np.inf, best)))
        switch = np.where(src == regions, -np.inf, best[src])
        stay = best + beta
        take_stay = stay >= switch
        back[j] = np.where(take_stay, regions, src)
        best = np.where(take_stay, stay, switch) + unary[j]
    a = np.zeros(n, np.int64)
    a[-1] = int(np.argmax(best))
    for j in range(n - 1, 0, -1):
        a[j - 1] = back[j, a[j]]
    return a, float(best[a[-1]])


def energy(unary: np.ndarray, a: np.ndarray, beta: float) -> float:
    """E(a) for an assignment a: (N,) of words to regions."""
    a = np.asarray(a)
    return float(np.asarray(unary, np.float64)[np.arange(len(a)), a].sum()
                 + beta * np.count_nonzero(a[1:] == a[:-1]))


def phrases(a: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal regions: [(first word, last word + 1, region)]."""
    out, start = [], 0
    for j in range(1, len(a) + 1):
        if j == len(a) or a[j] != a[start]:
            out.append((start, j, int(a[start])))
            start = j
    return out
