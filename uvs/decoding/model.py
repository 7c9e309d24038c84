"""The decoder as PyTensor graphs: parameters, training loss and the one-step sampler.

A GRU language model conditioned on a vector ctx: (B, dimctx). Two ways in
(`options['inject']`):

- `init` (Kiros, skip-thoughts/decoding): the initial state is h₀ = tanh(ctx·W + b);
- `bias` (Karpathy & Fei-Fei's multimodal RNN): h₀ = 0 and the image enters once, at the
  first step, as v = ctx·W + b in the place of the first step's (zero) word vector, so that
  the first step's pre-activations gain the bias v·[W_gru | Wx_gru].

Word vectors are shifted one step forward in time (step 0 sees a zero vector), so step t
predicts word t from the words before it.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor.tensor as tensor
from pytensor.tensor.random import shared_rng

from uvs import backend, rowwise
from uvs.layers import fflayer, get_layer
from uvs.utils import _p, linear, norm_weight


def param_init_fflayer(options, params, prefix="ff", nin=None, nout=None, ortho=True,
                       rng=np.random):
    """`prefix_W` (nin, nout) uniform ±0.1 (orthogonal when square) and `prefix_b` zeros.

    The decoder's feed-forward layers use `norm_weight`, not the encoder's Glorot init.
    """
    params[_p(prefix, "W")] = norm_weight(nin, nout, ortho=ortho, rng=rng)
    params[_p(prefix, "b")] = np.zeros((nout,), dtype="float32")
    return params


def inject(options: dict) -> str:
    """How ctx enters: 'init' (released decoders carry no such option) or 'bias'."""
    return options.get("inject", "init")


def init_params(options: dict, preemb: np.ndarray | None = None, rng=np.random) -> OrderedDict:
    """`Wemb`, `ff_state_*`, `decoder_*` (GRU), `ff_hid_*` when `doutput`, `ff_logit_*`.

    ff_state maps ctx to the state (dimctx, dim) for `init`, to a word vector
    (dimctx, dim_word) for `bias`.
    """
    params = OrderedDict()
    if preemb is None:
        params["Wemb"] = norm_weight(options["n_words"], options["dim_word"], rng=rng)
    else:
        params["Wemb"] = np.asarray(preemb, dtype="float32")
    nout = options["dim"] if inject(options) == "init" else options["dim_word"]
    params = param_init_fflayer(options, params, prefix="ff_state", nin=options["dimctx"],
                                nout=nout, rng=rng)
    params = get_layer(options["decoder"])[0](options, params, prefix="decoder",
                                              nin=options["dim_word"], dim=options["dim"],
                                              rng=rng)
    if options["doutput"]:
        params = param_init_fflayer(options, params, prefix="ff_hid", nin=options["dim"],
                                    nout=options["dim_word"], rng=rng)
        params = param_init_fflayer(options, params, prefix="ff_logit",
                                    nin=options["dim_word"], nout=options["n_words"], rng=rng)
    else:
        params = param_init_fflayer(options, params, prefix="ff_logit", nin=options["dim"],
                                    nout=options["n_words"], rng=rng)
    return params


def _output_input(tparams, state, options):
    """What the output layer reads: the states, through the deep output (tanh layer) when
    `doutput`."""
    if options["doutput"]:
        return fflayer(tparams, state, options, prefix="ff_hid", activ=tensor.tanh)
    return state


def _logit(tparams, state, options):
    """Word scores from the states (`_output_input`, then the output layer)."""
    return fflayer(tparams, _output_input(tparams, state, options), options, prefix="ff_logit",
                   activ=linear)


def build_model(tparams, options, impl: str | None = None, mode: str | None = None):
    """The training loss: returns (trng, [x, mask, ctx], cost).

    x: (T, B) int64, mask: (T, B) float32, ctx: (B, dimctx) float32. cost is the summed
    masked negative log-likelihood Σ −log(p(x_t | x_<t, ctx) + 1e-8), as the original.
    impl: the GRU implementation, 'scan' or 'fused' (default `uvs.gru_op.gru_impl()`).
    mode: the PyTensor mode it will compile in: softmax and loss are `uvs.rowwise`'s C, but
    under JAX (`uvs.rowwise.softmax_nll_bias`).
    """
    trng = shared_rng(seed=1234, name="trng")
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("mask", dtype="float32")
    ctx = tensor.matrix("ctx", dtype="float32")
    n_timesteps, n_samples = x.shape[0], x.shape[1]

    emb = tparams["Wemb"][x.flatten()].reshape([n_timesteps, n_samples, options["dim_word"]])
    emb_shifted = tensor.zeros_like(emb)
    emb_shifted = tensor.set_subtensor(emb_shifted[1:], emb[:-1])
    emb = emb_shifted

    if inject(options) == "init":
        init_state = fflayer(tparams, ctx, options, prefix="ff_state", activ=tensor.tanh)
    else:
        init_state = None
        emb = tensor.set_subtensor(emb[0], fflayer(tparams, ctx, options, prefix="ff_state",
                                                   activ=linear))

    proj = get_layer(options["decoder"])[1](tparams, emb, init_state, options,
                                            prefix="decoder", mask=mask, impl=impl)
    # `_logit`, its output layer's bias added inside the loss's one pass (and its gradient there)
    logit = tensor.dot(_output_input(tparams, proj[0], options), tparams["ff_logit_W"])
    logit_shp = logit.shape
    cost = rowwise.softmax_nll_bias(logit.reshape([logit_shp[0] * logit_shp[1], logit_shp[2]]),
                                    tparams["ff_logit_b"], x.flatten(), mode)
    cost = cost.reshape([x.shape[0], x.shape[1]])
    cost = (cost * mask).sum(0)
    cost = cost.sum()
    return trng, [x, mask, ctx], cost


def build_sampler(tparams, options, trng, mode: str | None = None,
                  rowwise_ops: bool | None = None):
    """(f_init(ctx) -> state, f_next(y, state) -> (probs, sample, state)).

    y: (n,) int64, a negative entry meaning "first word"; state: (n, dim) for `init`.
    For `bias` the state is (n, dim + dim_word): the GRU state, then v = ctx·W + b carried
    along, which a negative y feeds in place of the zero word vector.
    sample is a draw from probs (trng is a shared NumPy Generator, advanced by each call).
    rowwise_ops: products, sigmoid/tanh, softmax and draw are `uvs.rowwise`'s: a row's results
    do not depend on the other rows of the call, so searches that batch many contexts score
    as one at a time (`gen_sample_batch`). False: the original's graph as it was, BLAS
    products and PyTensor's softmax (the same values to float32 rounding). Default: True but
    under JAX, which cannot run them.
    mode: the PyTensor mode to compile in (default `uvs.backend.mode()`).
    """
    if rowwise_ops is None:
        rowwise_ops = rowwise.available(mode)
    swap = rowwise.rowwise_graph if rowwise_ops else list
    dim, dim_word = options["dim"], options["dim_word"]
    ctx = tensor.matrix("ctx", dtype="float32")
    if inject(options) == "init":
        init_state = fflayer(tparams, ctx, options, prefix="ff_state", activ=tensor.tanh)
    else:
        v = fflayer(tparams, ctx, options, prefix="ff_state", activ=linear)
        init_state = tensor.concatenate([tensor.zeros((ctx.shape[0], dim), dtype="float32"), v],
                                        axis=1)
    (init_state,) = swap([init_state])
    f_init = backend.function([ctx], init_state, mode=mode, name="f_init")

    y = tensor.vector("y_sampler", dtype="int64")
    state = tensor.matrix("init_state", dtype="float32")
    if inject(options) == "init":
        h, first = state, tensor.alloc(np.float32(0.0), 1, tparams["Wemb"].shape[1])
    else:
        h, first = state[:, :dim], state[:, dim:dim + dim_word]
    # the first word sees a zero vector (init) or the image's v (bias)
    emb = tensor.switch(y[:, None] < 0, first, tparams["Wemb"][y])
    proj = get_layer(options["decoder"])[1](tparams, emb, h, options, prefix="decoder",
                                            mask=None, one_step=True)
    next_state = proj[0]
    logit = _logit(tparams, next_state, options)
    # every product row by row, so that a row's results do not depend on the rows beside it
    logit, next_state = swap([logit, next_state])
    next_probs = rowwise.softmax_rows(logit) if rowwise_ops else tensor.special.softmax(logit,
                                                                                         axis=-1)
    # a draw by inverse CDF, as Theano's MRG multinomial did (float32 probabilities whose sum
    # rounds above 1 are fine): the first word whose cumulative probability reaches u
    next_rng, u = trng.uniform(0.0, 1.0, size=(next_probs.shape[0],))
    u = u.astype("float32")
    if rowwise_ops:
        next_sample = rowwise.draw_rows(next_probs, u)
    else:
        below = tensor.lt(tensor.cumsum(next_probs, axis=1), u[:, None])
        next_sample = tensor.minimum(below.sum(axis=1), next_probs.shape[1] - 1).astype("int64")
    if inject(options) == "bias":
        next_state = tensor.concatenate([next_state, state[:, dim:]], axis=1)
    f_next = backend.function([y, state], [next_probs, next_sample, next_state],
                              updates={trng: next_rng}, mode=mode, name="f_next")
    return f_init, f_next
