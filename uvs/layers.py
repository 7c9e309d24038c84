"""Layers of the original models: feed-forward, GRU (a `scan` over time) and bag of words."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as tensor

from uvs.gru_op import gru_fused, gru_impl
from uvs.utils import _p, norm_weight, ortho_weight, tanh, xavier_weight

# layer name -> (parameter initialiser, forward function)
layers = {
    "ff": ("param_init_fflayer", "fflayer"),
    "gru": ("param_init_gru", "gru_layer"),
    "bow": ("param_init_bow", "bow_layer"),
}


def get_layer(name: str):
    """(param_init, forward) for a layer name."""
    init, forward = layers[name]
    return globals()[init], globals()[forward]


def param_init_fflayer(options, params, prefix="ff", nin=None, nout=None, rng=np.random):
    """`prefix_W` (nin, nout) Glorot-uniform and `prefix_b` zeros."""
    params[_p(prefix, "W")] = xavier_weight(nin, nout, rng=rng)
    params[_p(prefix, "b")] = np.zeros((nout,), dtype="float32")
    return params


def fflayer(tparams, state_below, options, prefix="rconv", activ=tanh, **kwargs):
    """activ(state_below · W + b); `tanh` unless told, as the original (callers pass `linear`)."""
    return activ(tensor.dot(state_below, tparams[_p(prefix, "W")]) + tparams[_p(prefix, "b")])


def param_init_gru(options, params, prefix="gru", nin=None, dim=None, rng=np.random):
    """GRU weights: W, U (gates r|u side by side), b; Wx, Ux, bx for the candidate state."""
    W = np.concatenate([norm_weight(nin, dim, rng=rng), norm_weight(nin, dim, rng=rng)], axis=1)
    params[_p(prefix, "W")] = W
    params[_p(prefix, "b")] = np.zeros((2 * dim,), dtype="float32")
    U = np.concatenate([ortho_weight(dim, rng=rng), ortho_weight(dim, rng=rng)], axis=1)
    params[_p(prefix, "U")] = U
    params[_p(prefix, "Wx")] = norm_weight(nin, dim, rng=rng)
    params[_p(prefix, "Ux")] = ortho_weight(dim, rng=rng)
    params[_p(prefix, "bx")] = np.zeros((dim,), dtype="float32")
    return params


def gru_layer(tparams, state_below, init_state, options, prefix="gru", mask=None,
              one_step=False, impl=None, **kwargs):
    """Run the GRU over time; returns `[h]` with h: (T, B, dim), the state after every step.

    state_below: (T, B, nin) float32; mask: (T, B) float32 — where 0 the state is carried over.
    impl: 'scan' (the original's graph) or 'fused' (`uvs.gru_op`); default `gru_impl()`.
    With `one_step` (the decoders' sampler) it is one step: state_below (n, nin), init_state
    (n, dim) -> `[h]` with h: (n, dim).
    """
    nsteps = state_below.shape[0]
    n_samples = state_below.shape[1] if state_below.ndim == 3 else 1
    dim = tparams[_p(prefix, "Ux")].shape[1]

    if init_state is None:
        init_state = tensor.alloc(np.float32(0.0), n_samples, dim)
    if mask is None:
        mask = tensor.alloc(np.float32(1.0), state_below.shape[0], 1)

    def _slice(_x, n, dim):
        if _x.ndim == 3:
            return _x[:, :, n * dim:(n + 1) * dim]
        return _x[:, n * dim:(n + 1) * dim]

    # fused: one Op for the layer and one for its gradient (uvs/gru_op.py)
    if not one_step and gru_impl(impl) == "fused":
        return [gru_fused(state_below, mask, init_state,
                          *(tparams[_p(prefix, k)] for k in ("W", "b", "U", "Wx", "bx", "Ux")))]

    state_below_ = tensor.dot(state_below, tparams[_p(prefix, "W")]) + tparams[_p(prefix, "b")]
    state_belowx = tensor.dot(state_below, tparams[_p(prefix, "Wx")]) + tparams[_p(prefix, "bx")]

    def _step_slice(m_, x_, xx_, h_, U, Ux):
        preact = tensor.dot(h_, U)
        preact += x_
        r = tensor.sigmoid(_slice(preact, 0, dim))
        u = tensor.sigmoid(_slice(preact, 1, dim))
        preactx = tensor.dot(h_, Ux)
        preactx = preactx * r
        preactx = preactx + xx_
        h = tensor.tanh(preactx)
        h = u * h_ + (1.0 - u) * h
        if m_.ndim == 1:
            m_ = m_[:, None]
        # one step: the mask is alloc(1., n, 1); Theano kept `m_[:, None]` (n, 1), and
        # NumPy-style broadcasting would make it (n, 1, 1), so it is used as it is
        h = m_ * h + (1.0 - m_) * h_
        return h

    if one_step:
        return [_step_slice(mask, state_below_, state_belowx, init_state,
                            tparams[_p(prefix, "U")], tparams[_p(prefix, "Ux")])]

    rval = pytensor.scan(
        _step_slice,
        sequences=[mask, state_below_, state_belowx],
        outputs_info=[init_state],
        non_sequences=[tparams[_p(prefix, "U")], tparams[_p(prefix, "Ux")]],
        name=_p(prefix, "_layers"),
        n_steps=nsteps,
        strict=True,
        return_updates=False,
    )
    return [rval]


def param_init_bow(options, params, prefix="bow", nin=None, dim=None, rng=np.random):
    """The bag of words has no parameters of its own: it sums word vectors."""
    return params


def bow_layer(tparams, state_below, init_state, options, prefix="bow", mask=None, **kwargs):
    """Masked sum of the word vectors over time: returns `[s]` with s: (B, dim_word)."""
    return [(state_below * mask[:, :, None]).sum(0)]
