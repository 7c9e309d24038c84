"""The alignment scoring kernel (`score_matrix`, `region_max`) against the one it replaced."""

from __future__ import annotations

import numpy as np
import pytest
from align_reference import reduceat_scores

from uvs.align.evaluation import region_max, score_matrix


def data(counts, lengths, dim=16, seed=0):
    rng = np.random.RandomState(seed)
    v = rng.randn(sum(counts), dim).astype(np.float32)
    w = rng.randn(sum(lengths), dim).astype(np.float32)
    return (v, np.concatenate([[0], np.cumsum(counts)]), w,
            np.concatenate([[0], np.cumsum(lengths)]))


def new_scores(v, roff, w, woff, chunk_bytes):
    blocks = list(score_matrix(v, roff, w, woff, chunk_bytes))
    assert [a for a, _ in blocks] == sorted({a for a, _ in blocks})
    return np.concatenate([S for _, S in blocks])


@pytest.mark.parametrize("counts", [[20] * 9, [1, 5, 20, 3, 3, 7, 1, 2, 11]])
@pytest.mark.parametrize("chunk_bytes", [1, 4000, 64 * 2**20])
def test_scores_equal_the_reduceat_kernel(counts, chunk_bytes):
    """Whatever the chunk, the scores of the old kernel's one whole block (a product of one
    image's single region alone would be a matrix-vector product, which sums otherwise)."""
    v, roff, w, woff = data(counts, [3, 12, 1, 7, 5, 9, 2, 12, 4, 6, 8])
    old = reduceat_scores(v, roff, w, woff, 64 * 2**20)
    new = new_scores(v, roff, w, woff, chunk_bytes)
    assert new.shape == (len(counts), 11)
    np.testing.assert_array_equal(new, old)
    # and both are S_kl, computed directly in float64
    ref = np.array([[(v[roff[k]:roff[k + 1]].astype(np.float64)
                      @ w[woff[j]:woff[j + 1]].T.astype(np.float64)).max(axis=0).sum()
                     for j in range(11)] for k in range(len(counts))])
    np.testing.assert_allclose(new, ref, rtol=1e-5, atol=1e-5)


def test_identical_sentences_tie_exactly():
    v, roff, w, woff = data([4, 6, 2], [5, 5])
    w = np.concatenate([w, w[:5], w])  # sentences 0, 2 and 3 identical, 1 and 4 too
    woff = np.arange(6) * 5
    S = new_scores(v, roff, w, woff, 1000)
    assert (S[:, 0] == S[:, 2]).all() and (S[:, 0] == S[:, 3]).all()
    assert (S[:, 1] == S[:, 4]).all()


def test_region_max_irregular_and_nan():
    rng = np.random.RandomState(3)
    dots = rng.randn(10, 7).astype(np.float32)
    starts = np.array([0, 1, 4, 10])
    np.testing.assert_array_equal(region_max(dots, starts),
                                  np.maximum.reduceat(dots, starts[:-1], axis=0))
    dots[5, 2] = np.nan
    assert np.isnan(region_max(dots, starts)[2, 2])
    assert not np.isnan(region_max(dots, starts)[[0, 1]]).any()


@pytest.mark.parametrize("ties", ["last", "first"])
def test_ranks_equal_ranking_the_old_scores(ties):
    from uvs.align.evaluation import rank_alignment
    from uvs.metrics import ranks

    rng = np.random.RandomState(5)
    n = 12
    v, roff, w, woff = data(list(rng.randint(1, 9, size=n)), list(rng.randint(1, 13, size=50)))
    col = np.concatenate([np.arange(50), rng.randint(0, 50, size=10)])  # 10 repeated sentences
    rng.shuffle(col)
    S = reduceat_scores(v, roff, w, woff, 64 * 2**20)[:, col]
    ims, caps = np.arange(n, dtype=np.float64)[:, None], np.arange(5 * n, dtype=np.float64)[:, None]
    want = ranks(ims, caps, ties=ties,
                 score=lambda i, c: S[i[:, 0].astype(int)][:, c[:, 0].astype(int)])
    for chunk_bytes in (1, 3000, 64 * 2**20):
        got = rank_alignment(v, roff, w, woff, col, ties, chunk_bytes)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_tiles_over_sentences_change_no_score():
    """Blocks of images meet the sentences a tile at a time when all words would not fit:
    every score is the one the whole-width product gives, bit for bit."""
    rng = np.random.RandomState(8)
    lengths = rng.randint(1, 15, size=400)
    v, roff, w, woff = data([20] * 60, lengths, dim=24, seed=2)
    whole = new_scores(v, roff, w, woff, 2**40)
    tiled = new_scores(v, roff, w, woff, 1200 * 4 * 520)  # 1200 regions, ~520-word tiles
    np.testing.assert_array_equal(tiled, whole)
    old = reduceat_scores(v, roff, w, woff, 2**40)
    np.testing.assert_array_equal(whole, old)


def test_memory_stays_within_the_chunk():
    """6 000 regions x 6 000 words: all products at once would be 144 MB; the kernel holds one
    tile's (≤ chunk_bytes) and the block's scores."""
    import tracemalloc

    v, roff, w, woff = data([20] * 300, [4] * 1500, dim=8, seed=4)
    chunk = 4 * 2**20
    tracemalloc.start()
    try:
        for _ in score_matrix(v, roff, w, woff, chunk):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * chunk
