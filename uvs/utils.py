"""Helpers of the original Theano code: parameter dicts, shared variables, initialisers, l2norm."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as tensor

from uvs import backend


def _p(pp: str, name: str) -> str:
    """Parameter name `pp_name`, as the original layers prefix them."""
    return f"{pp}_{name}"


def unzip(zipped: dict) -> OrderedDict:
    """Pull the shared variables' values out as NumPy arrays."""
    return OrderedDict((kk, vv.get_value()) for kk, vv in zipped.items())


def itemlist(tparams: dict) -> list:
    """The shared variables, in parameter order."""
    return list(tparams.values())


def init_tparams(params: dict) -> OrderedDict:
    """One PyTensor shared variable per parameter, under the same name.

    The graphs of a model start here, so PyTensor is configured here (`uvs.backend.configure`).
    """
    backend.configure()
    return OrderedDict((kk, pytensor.shared(pp, name=kk)) for kk, pp in params.items())


def ortho_weight(ndim: int, rng=np.random) -> np.ndarray:
    """A random orthogonal (ndim, ndim) matrix."""
    W = rng.randn(ndim, ndim)
    u, _, _ = np.linalg.svd(W)
    return u.astype("float32")


def norm_weight(nin: int, nout: int | None = None, scale: float = 0.1, ortho: bool = True,
                rng=np.random) -> np.ndarray:
    """Uniform(-scale, scale) weights; orthogonal when square and `ortho`."""
    if nout is None:
        nout = nin
    if nout == nin and ortho:
        W = ortho_weight(nin, rng=rng)
    else:
        W = rng.uniform(low=-scale, high=scale, size=(nin, nout))
    return W.astype("float32")


def xavier_weight(nin: int, nout: int | None = None, rng=np.random) -> np.ndarray:
    """Glorot-uniform weights."""
    if nout is None:
        nout = nin
    r = np.sqrt(6.0) / np.sqrt(nin + nout)
    W = rng.rand(nin, nout) * 2 * r - r
    return W.astype("float32")


def tanh(x):
    """The feed-forward layer's default activation, as the original's."""
    return tensor.tanh(x)


def linear(x):
    """No activation: what the image map uses."""
    return x


def l2norm(X):
    """Divide each row by its L2 norm."""
    norm = tensor.sqrt(tensor.pow(X, 2).sum(1))
    return X / norm[:, None]
