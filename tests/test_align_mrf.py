"""The phrase MRF: exact dynamic programming against brute force over every assignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from uvs.align.mrf import energy, mrf_align, phrases
from uvs.errors import UVSError


def brute_force(unary, beta):
    n, r = unary.shape
    return max(energy(unary, np.array(a), beta) for a in itertools.product(range(r), repeat=n))


@pytest.mark.parametrize("n,r", [(1, 1), (1, 4), (2, 3), (4, 3), (5, 2), (6, 4)])
@pytest.mark.parametrize("beta", [-3.0, -0.7, -0.1, 0.0, 0.1, 0.7, 3.0])
def test_dp_matches_brute_force(n, r, beta):
    rng = np.random.RandomState(n * 100 + r)
    for _ in range(5):
        unary = rng.randn(n, r)
        a, e = mrf_align(unary, beta)
        assert a.shape == (n,) and a.dtype == np.int64
        assert e == pytest.approx(energy(unary, a, beta), abs=1e-12)
        assert e == pytest.approx(brute_force(unary, beta), abs=1e-12)


def test_many_random_cases_negative_and_positive_beta():
    rng = np.random.RandomState(7)
    for _ in range(400):
        n, r = rng.randint(1, 6), rng.randint(1, 5)
        unary = rng.randn(n, r)
        beta = float(rng.uniform(-2.0, 2.0))
        a, e = mrf_align(unary, beta)
        assert e == pytest.approx(energy(unary, a, beta), abs=1e-12)
        assert e == pytest.approx(brute_force(unary, beta), abs=1e-12)


def test_negative_beta_switches_regions_and_one_region_must_stay():
    unary = np.array([[1.0, 0.0], [1.0, 0.5], [1.0, 0.0]])
    a, e = mrf_align(unary, -1.0)  # staying costs 1: alternating wins (1 + 0.5 + 1)
    assert list(a) == [0, 1, 0] and e == pytest.approx(2.5)
    a, e = mrf_align(np.ones((3, 1)), -1.0)  # a single region: every word stays, pays twice
    assert list(a) == [0, 0, 0] and e == pytest.approx(1.0)


def test_beta_zero_is_each_words_best_region_and_large_beta_one_phrase():
    unary = np.array([[1.0, 0.0, 0.2], [0.0, 2.0, 0.1], [0.3, 0.0, 1.0], [0.0, 0.9, 0.0]])
    a, _ = mrf_align(unary, 0.0)
    assert list(a) == [0, 1, 2, 1]
    a, _ = mrf_align(unary, 10.0)
    assert len(set(a)) == 1 and a[0] == 1  # region 1 has the largest total
    assert phrases(np.array([2, 2, 0, 1, 1, 1])) == [(0, 2, 2), (2, 3, 0), (3, 6, 1)]


def test_bad_scores():
    with pytest.raises(UVSError, match="finite"):
        mrf_align(np.array([[np.nan, 1.0]]), 0.1)
    with pytest.raises(UVSError, match="words, regions"):
        mrf_align(np.zeros((0, 3)), 0.1)
