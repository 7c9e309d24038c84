"""Error matrices between sentence and image embeddings, lower is better.

Cosine models: −s·imᵀ, a matrix product; order models: ‖max(0, s − im)‖², which has no
matrix-product form, from a compiled loop. The PyTensor graph of the original
(`uvs.model.build_errors`) is the reference these are tested against.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, fastmath=True, cache=True)
def _order_errors(s, im, out):
    for i in numba.prange(s.shape[0]):
        for j in range(im.shape[0]):
            acc = np.float32(0.0)
            for k in range(s.shape[1]):
                x = s[i, k] - im[j, k]
                if x > 0:
                    acc += x * x
            out[i, j] = acc


def order_errors(s: np.ndarray, im: np.ndarray) -> np.ndarray:
    """E[i, j] = ‖max(0, s_i − im_j)‖²: s: (n_s, d), im: (n_im, d) -> (n_s, n_im) float32.

    The same numbers as `uvs.model.build_errors`' map over sentences, about 100× faster:
    one pass over the pairs, no (n_s, n_im, d) temporary.
    """
    s = np.ascontiguousarray(s, dtype=np.float32)
    im = np.ascontiguousarray(im, dtype=np.float32)
    if s.ndim != 2 or im.ndim != 2 or s.shape[1] != im.shape[1]:
        raise ValueError(f"order_errors: shapes {s.shape} and {im.shape} do not match")
    out = np.empty((len(s), len(im)), dtype=np.float32)
    if out.size:
        _order_errors(s, im, out)
    return out


def errors(method: str, s: np.ndarray, im: np.ndarray) -> np.ndarray:
    """Errors of sentences s: (n_s, d) against images im: (n_im, d) -> (n_s, n_im) float32.

    method 'order': `order_errors`; anything else (cosine): −s·imᵀ.
    """
    if method == "order":
        return order_errors(s, im)
    return -np.dot(np.asarray(s, dtype=np.float32), np.asarray(im, dtype=np.float32).T)
