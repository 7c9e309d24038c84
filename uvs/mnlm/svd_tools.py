"""The randomized truncated SVD of the original's `utils/svd_tools.py` (scikit-learn's, 2013)."""

from __future__ import annotations

import numpy as np
from scipy import linalg


def randomized_range_finder(A: np.ndarray, size: int, n_iter: int,
                            random_state: np.random.RandomState) -> np.ndarray:
    """An orthonormal (rows of A, size) matrix whose range approximates the range of A."""
    R = random_state.normal(size=(A.shape[1], size))
    Y = np.dot(A, R)
    for _ in range(n_iter):
        Y = np.dot(A, np.dot(A.T, Y))
    Q, _ = linalg.qr(Y, mode="economic")
    return Q


def svd_flip(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signs fixed so that each column of u has its largest absolute entry positive."""
    max_abs_cols = np.argmax(np.abs(u), axis=0)
    signs = np.sign(u[max_abs_cols, range(u.shape[1])])
    u *= signs
    v *= signs[:, np.newaxis]
    return u, v


def svd(M: np.ndarray, n_components: int, n_oversamples: int = 10, n_iter: int = 5,
        transpose: object = "auto", flip_sign: bool = True, random_state: int = 0
        ) -> tuple[np.ndarray, np.ndarray]:
    """(U·Σ, Vᵀ) of rank `n_components`: M (n, m) ≈ first (n, c) · second (c, m).

    As the original: a truthy `transpose` transposes, so the strings 'auto' and 'false' (which
    MLBL-F passes) always do; the random state `random_state` is its own.
    """
    if n_components >= M.shape[1]:
        raise ValueError(f"n_components must be < n_features; got {n_components} >= "
                         f"{M.shape[1]}")
    random_state = np.random.RandomState(random_state)
    n_random = n_components + n_oversamples
    n_samples, n_features = M.shape
    if transpose == "auto" and n_samples > n_features:
        transpose = True
    if transpose:
        M = M.T
    Q = randomized_range_finder(M, n_random, n_iter, random_state)
    B = np.dot(Q.T, M)
    Uhat, s, V = linalg.svd(B, full_matrices=False)
    U = np.dot(Q, Uhat)
    if flip_sign:
        U, V = svd_flip(U, V)
    if transpose:
        U, Sigma, VT = V[:n_components, :].T, s[:n_components], U[:, :n_components].T
    else:
        U, Sigma, VT = U[:, :n_components], s[:n_components], V[:n_components, :]
    return np.dot(U, np.diag(Sigma).T), VT
