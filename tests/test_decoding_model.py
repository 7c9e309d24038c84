"""The decoder's graphs against a NumPy float64 reference: likelihood, gradients, sampler."""

import numpy as np
import pytensor.tensor as tensor
import pytest
from decoderref import cost as ref_cost
from decoderref import step_probs

from uvs import backend
from uvs.decoding.model import build_model, build_sampler, init_params
from uvs.utils import init_tparams, itemlist

CASES = [(False, "init"), (True, "init"), (False, "bias"), (True, "bias")]


def options(doutput=False, inject="init"):
    return {"n_words": 9, "dim_word": 3, "dim": 4, "dimctx": 5, "decoder": "gru",
            "doutput": doutput, "inject": inject}


def batch(rng, T=5, B=3, n_words=9):
    x = rng.randint(2, n_words, size=(T, B)).astype("int64")
    mask = np.zeros((T, B), dtype="float32")
    for b, n in enumerate([T - 1, 2, 3][:B]):  # lengths n words + <eos>
        x[n:, b] = 0
        mask[:n + 1, b] = 1.0
    ctx = rng.randn(B, 5).astype("float32")
    return x, mask, ctx


@pytest.fixture(scope="module", params=CASES, ids=[f"{d and 'doutput-' or ''}{i}"
                                                    for d, i in CASES])
def compiled(request):
    doutput, inject = request.param
    o = options(doutput, inject)
    params = init_params(o, rng=np.random.RandomState(3))
    for k in params:  # non-zero biases so that every term is exercised
        if k.endswith("_b") or k.endswith("_bx"):
            params[k] = np.random.RandomState(4).randn(*params[k].shape).astype("float32") * .3
    tparams = init_tparams(params)
    trng, inps, cost = build_model(tparams, o)
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    f = backend.function(inps, [cost, *grads])
    f_init, f_next = build_sampler(tparams, o, trng)
    return o, params, f, f_init, f_next


def test_parameter_names_and_shapes():
    o = options(doutput=True)
    p = init_params(o)
    assert list(p) == ["Wemb", "ff_state_W", "ff_state_b", "decoder_W", "decoder_b",
                       "decoder_U", "decoder_Wx", "decoder_Ux", "decoder_bx",
                       "ff_hid_W", "ff_hid_b", "ff_logit_W", "ff_logit_b"]
    assert p["ff_state_W"].shape == (5, 4) and p["ff_logit_W"].shape == (3, 9)
    assert init_params(options(inject="bias"))["ff_state_W"].shape == (5, 3)
    assert init_params(options())["ff_logit_W"].shape == (4, 9)


def test_cost_matches_reference(compiled):
    o, params, f, _, _ = compiled
    x, mask, ctx = batch(np.random.RandomState(0))
    got = float(f(x, mask, ctx)[0])
    want = ref_cost(params, x, mask, ctx, o["doutput"], o["inject"])
    assert got == pytest.approx(want, rel=1e-5)


def test_gradients_match_finite_differences(compiled):
    o, params, f, _, _ = compiled
    x, mask, ctx = batch(np.random.RandomState(1))
    grads = f(x, mask, ctx)[1:]
    rng = np.random.RandomState(2)
    eps = 1e-6
    for (name, value), g in zip(params.items(), grads, strict=True):
        p64 = {k: v.astype(np.float64) for k, v in params.items()}
        # a few random entries of each parameter, by central differences of the reference
        flat = rng.choice(value.size, size=min(4, value.size), replace=False)
        if name == "Wemb":  # rows that the batch uses (x[:-1] is fed), else the gradient is 0
            flat = np.ravel_multi_index((x[:-1].ravel()[:4], [0, 1, 2, 0]), value.shape)
        for i in flat:
            idx = np.unravel_index(i, value.shape)
            p64[name][idx] += eps
            up = ref_cost(p64, x, mask, ctx, o["doutput"], o["inject"])
            p64[name][idx] -= 2 * eps
            down = ref_cost(p64, x, mask, ctx, o["doutput"], o["inject"])
            p64[name][idx] += eps
            fd = (up - down) / (2 * eps)
            assert g[idx] == pytest.approx(fd, rel=2e-3, abs=2e-4), (name, idx)


def test_sampler_steps_follow_the_training_graph(compiled):
    """f_init/f_next fed the true words give the reference's per-step distributions."""
    o, params, _, f_init, f_next = compiled
    x, mask, ctx = batch(np.random.RandomState(5), B=3)
    want = step_probs(params, x, np.ones_like(mask), ctx, o["doutput"], o["inject"])
    state = f_init(ctx)
    y = -np.ones(3, dtype="int64")
    for t in range(x.shape[0]):
        probs, sample, state = f_next(y, state)
        np.testing.assert_allclose(probs, want[t], rtol=1e-5, atol=1e-7)
        assert sample.shape == (3,) and ((0 <= sample) & (sample < 9)).all()
        y = x[t]


def test_sampler_draws_from_probs(compiled):
    o, params, _, f_init, f_next = compiled
    ctx = np.random.RandomState(6).randn(1, 5).astype("float32")
    state = np.repeat(f_init(ctx), 4000, axis=0)
    probs, sample, _ = f_next(-np.ones(4000, dtype="int64"), state)
    freq = np.bincount(sample, minlength=9) / 4000.0
    np.testing.assert_allclose(freq, probs[0], atol=0.03)


def test_rowwise_sampler_is_the_original_graph(compiled):
    """The sampler's row-wise Ops against the original's graph (BLAS products, PyTensor's
    softmax and cumulative-sum draw): the same states and probabilities to float32 rounding."""
    from pytensor.tensor.random import shared_rng

    o, params, _, f_init, f_next = compiled
    plain_init, plain_next = build_sampler(init_tparams(params), o, shared_rng(seed=7),
                                           rowwise_ops=False)
    names = {type(n.op).__name__ for n in plain_next.maker.fgraph.apply_nodes}
    assert not names & {"InvariantDot", "SoftmaxRows", "DrawRows", "FastUnary"}
    x, mask, ctx = batch(np.random.RandomState(7), B=3)
    a, b = f_init(ctx), plain_init(ctx)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    y = -np.ones(3, dtype="int64")
    for t in range(x.shape[0]):
        (pa, _, a), (pb, _, b) = f_next(y, a), plain_next(y, b)
        np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        y = x[t]
