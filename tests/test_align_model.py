"""The alignment model's graphs against an independent NumPy float64 reference."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as tensor
import pytest
from align_reference import objective, score, word_vectors

from uvs import backend
from uvs.align.model import (
    alignment_scores,
    build_model,
    build_region_encoder,
    build_sentence_encoder,
    encode_regions,
    encode_words,
    init_params,
)
from uvs.utils import init_tparams

OPTIONS = {"n_words": 9, "dim_word": 4, "dim": 5, "dim_image": 6, "margin": 1.0}
SENTENCES = [[3, 5, 2, 7], [4, 8], [1, 6, 6]]
N_REGIONS = [3, 2, 3]


def _case(seed=0):
    rng = np.random.RandomState(seed)
    params = init_params(OPTIONS, rng=rng)
    # non-zero biases so that every parameter matters
    params = {k: (v + (0.1 * rng.randn(*v.shape) if k.endswith(("be", "bf", "bb", "bd", "_b"))
                       else 0)).astype(np.float64) for k, v in params.items()}
    T, B, R = max(map(len, SENTENCES)), len(SENTENCES), max(N_REGIONS)
    x = np.zeros((T, B), np.int64)
    mask = np.zeros((T, B), np.float32)
    for j, s in enumerate(SENTENCES):
        x[:len(s), j] = s
        mask[:len(s), j] = 1
    regions = np.zeros((B, R, OPTIONS["dim_image"]), np.float32)
    rmask = np.zeros((B, R), np.float32)
    feats = []
    for k, n in enumerate(N_REGIONS):
        f = np.abs(rng.randn(n, OPTIONS["dim_image"])).astype(np.float32)
        regions[k, :n] = f
        regions[k, n:] = 100.0  # padding that must never win the max
        rmask[k, :n] = 1
        feats.append(f.astype(np.float64))
    return params, (x, mask, regions, rmask), feats


def test_word_vectors_and_scores_match_reference():
    params, (x, mask, regions, rmask), feats = _case()
    tparams = init_tparams(params)
    [xv, mv], s = build_sentence_encoder(tparams, OPTIONS)
    [rv], v = build_region_encoder(tparams, OPTIONS)
    f_s = backend.function([xv, mv], s)
    f_v = backend.function([rv], v)
    got = f_s(x, mask)
    for j, ids in enumerate(SENTENCES):
        np.testing.assert_allclose(got[:len(ids), j], word_vectors(params, ids), rtol=1e-12,
                                   atol=1e-12)
    np.testing.assert_allclose(f_v(feats[0].astype(np.float32)),
                               feats[0] @ params["region_W"] + params["region_b"], rtol=1e-12)
    r3 = tensor.tensor3("r", dtype="float32")
    rm = tensor.matrix("rm", dtype="float32")
    S = alignment_scores(encode_words(tparams, xv, mv, OPTIONS), mv,
                         encode_regions(tparams, r3), rm)
    got_S = backend.function([xv, mv, r3, rm], S)(x, mask, regions, rmask)
    want = [[score(params, SENTENCES[l], feats[k]) for l in range(3)] for k in range(3)]
    np.testing.assert_allclose(got_S, want, rtol=1e-12)


def test_objective_and_gradients_match_reference():
    params, inputs, feats = _case(1)
    tparams = init_tparams(params)
    inps, cost = build_model(tparams, OPTIONS)
    grads = tensor.grad(cost, wrt=list(tparams.values()))
    f = backend.function(inps, [cost, *grads])
    out = f(*inputs)
    want = objective(params, SENTENCES, feats, OPTIONS["margin"])
    assert want > 0
    np.testing.assert_allclose(out[0], want, rtol=1e-12)
    eps = 1e-6
    for (name, value), g in zip(params.items(), out[1:], strict=True):
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            old = value[idx]
            value[idx] = old + eps
            up = objective(params, SENTENCES, feats, OPTIONS["margin"])
            value[idx] = old - eps
            down = objective(params, SENTENCES, feats, OPTIONS["margin"])
            value[idx] = old
            numeric[idx] = (up - down) / (2 * eps)
        assert np.abs(numeric).max() > 0 or name == "Wemb", name
        np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_ranked_batch_costs_nothing():
    """A margin of 0 and identical sentence-image pairs give a cost of exactly 0."""
    params, (x, mask, regions, rmask), _ = _case(2)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    tparams = init_tparams(params)
    inps, cost = build_model(tparams, {**OPTIONS, "margin": 0.0})
    f = backend.function(inps, cost)
    same = np.repeat(x[:, :1], 3, axis=1), np.repeat(mask[:, :1], 3, axis=1)
    assert f(*same, np.repeat(regions[:1], 3, axis=0), np.repeat(rmask[:1], 3, axis=0)) == 0
    assert f(x, mask, regions, rmask) > 0


@pytest.mark.parametrize("dtype", ["float32"])
def test_float32_graph_agrees(dtype):
    params, inputs, feats = _case(3)
    tparams = init_tparams({k: v.astype(dtype) for k, v in params.items()})
    inps, cost = build_model(tparams, OPTIONS)
    got = backend.function(inps, cost)(*inputs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, objective(params, SENTENCES, feats, 1.0), rtol=1e-4)
