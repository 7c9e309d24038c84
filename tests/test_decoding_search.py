"""gen_sample against brute-force enumeration on a tiny vocabulary; the batched search too."""

import itertools

import numpy as np
import pytest
from decoderref import step_probs

from uvs.decoding.model import build_sampler, init_params
from uvs.decoding.search import gen_sample, gen_sample_batch
from uvs.utils import init_tparams

V, MAXLEN = 4, 3


@pytest.fixture(scope="module")
def decoder():
    o = {"n_words": V, "dim_word": 3, "dim": 4, "dimctx": 5, "decoder": "gru",
         "doutput": False, "inject": "init"}
    params = init_params(o, rng=np.random.RandomState(0))
    params["ff_logit_W"] *= 20  # peaked distributions, so that the best path is not trivial
    tparams = init_tparams(params)
    from pytensor.tensor.random import shared_rng

    trng = shared_rng(seed=1234)
    f_init, f_next = build_sampler(tparams, o, trng)
    return o, params, tparams, trng, f_init, f_next


def ref_score(params, ctx, words):
    """−Σ log p of a word sequence under the float64 reference."""
    x = np.array(words, dtype="int64")[:, None]
    probs = step_probs(params, x, np.ones(x.shape, dtype="float32"), ctx)
    return float(-np.log(probs[np.arange(len(words)), 0, x[:, 0]]).sum())


def every_sequence(vocab):
    """All hypotheses a complete search can return: ending in 0 early, or MAXLEN long."""
    seqs = []
    for n in range(1, MAXLEN + 1):
        for body in itertools.product([w for w in vocab if w != 0], repeat=n - 1):
            seqs.append((*body, 0))
    seqs += list(itertools.product([w for w in vocab if w != 0], repeat=MAXLEN))
    return seqs


def test_complete_beam_is_brute_force_enumeration(decoder):
    o, params, tparams, trng, f_init, f_next = decoder
    ctx = np.random.RandomState(1).randn(1, 5).astype("float32")
    seqs = every_sequence(range(V))
    sample, score = gen_sample(tparams, f_init, f_next, ctx, o, k=len(seqs), maxlen=MAXLEN,
                               stochastic=False, use_unk=True)
    assert sorted(map(tuple, sample)) == sorted(seqs)
    assert all(isinstance(s, np.float32) for s in score)
    for words, s in zip(sample, score, strict=True):
        assert s == pytest.approx(ref_score(params, ctx, words), rel=1e-5)
    best = min(seqs, key=lambda w: ref_score(params, ctx, w))
    assert tuple(sample[int(np.argmin(score))]) == best


def test_greedy_and_unk(decoder):
    """k=1 follows the argmax without UNK (index 1) unless use_unk."""
    o, params, tparams, trng, f_init, f_next = decoder
    for seed in range(4):
        ctx = np.random.RandomState(10 + seed).randn(1, 5).astype("float32")
        for use_unk in (False, True):
            words = []
            while len(words) < MAXLEN and (not words or words[-1] != 0):
                x = np.array(words + [0], dtype="int64")[:, None]
                p = step_probs(params, x, np.ones(x.shape, "float32"), ctx)[len(words), 0]
                if not use_unk:
                    p[1] = 0
                words.append(int(p.argmax()))
            sample, score = gen_sample(tparams, f_init, f_next, ctx, o, k=1, maxlen=MAXLEN,
                                       stochastic=False, use_unk=use_unk)
            assert sample == [words]
            if not use_unk:
                assert 1 not in sample[0]


def test_beam_without_unk_never_emits_it(decoder):
    o, params, tparams, trng, f_init, f_next = decoder
    ctx = np.random.RandomState(2).randn(1, 5).astype("float32")
    sample, score = gen_sample(tparams, f_init, f_next, ctx, o, k=3, maxlen=MAXLEN,
                               stochastic=False, use_unk=False)
    assert len(sample) == 3 and all(1 not in s for s in sample)
    allowed = [s for s in every_sequence([0, 2, 3])]
    ranked = sorted(allowed, key=lambda w: ref_score(params, ctx, w))
    assert tuple(sample[int(np.argmin(score))]) in ranked[:3]


def test_sampling_quirks(decoder):
    """Stochastic scores sum probabilities; greedy records the argmax, feeds the draw."""
    o, params, tparams, trng, f_init, f_next = decoder
    ctx = np.random.RandomState(3).randn(1, 5).astype("float32")
    sample, score = gen_sample(tparams, f_init, f_next, ctx, o, k=1, maxlen=20,
                               stochastic=True)
    assert sample[-1] == 0 or len(sample) == 20
    x = np.array(sample, dtype="int64")[:, None]
    p = step_probs(params, x, np.ones(x.shape, "float32"), ctx)[np.arange(len(sample)), 0]
    assert score == pytest.approx(p[np.arange(len(sample)), sample].sum(), rel=1e-5)

    # greedy: word t is the argmax given the *drawn* words before it, recorded separately
    trng.set_value(np.random.default_rng(7))
    draws = []
    real_next = f_next

    def spy(y, state):
        ret = real_next(y, state)
        draws.append(int(ret[1][0]))
        return ret

    sample, score = gen_sample(tparams, f_init, spy, ctx, o, k=1, maxlen=6, stochastic=True,
                               argmax=True)
    fed = draws[:len(sample) - 1]
    x = np.array(fed + [0], dtype="int64")[:, None]
    p = step_probs(params, x, np.ones(x.shape, "float32"), ctx)[:, 0]
    assert sample == [int(row.argmax()) for row in p]


@pytest.mark.parametrize("k,use_unk", [(1, False), (3, False), (5, True), (40, True)])
def test_batched_search_equals_gen_sample(decoder, k, use_unk):
    o, params, tparams, trng, f_init, f_next = decoder
    ctx = np.random.RandomState(4).randn(7, 5).astype("float32")
    batched = gen_sample_batch(tparams, f_init, f_next, ctx, o, k=k, maxlen=MAXLEN,
                               use_unk=use_unk, chunk=3)
    for i in range(len(ctx)):
        sample, score = gen_sample(tparams, f_init, f_next, ctx[i:i + 1], o, k=k,
                                   maxlen=MAXLEN, stochastic=False, use_unk=use_unk)
        assert batched[i][0] == sample
        assert [s.tobytes() for s in batched[i][1]] == [np.float32(s).tobytes() for s in score]


def test_partial_sort_is_argsort_prefix():
    from uvs.decoding.search import _cheapest

    rng = np.random.RandomState(5)
    for _ in range(200):
        a = rng.randint(0, 6, size=30).astype("float32") if rng.rand() < 0.5 else \
            rng.randn(30).astype("float32")
        a[rng.randint(30)] = 1e20
        n = rng.randint(1, 31)
        assert _cheapest(a, n).tolist() == a.argsort()[:n].tolist()


def test_batched_search_equals_gen_sample_where_blas_rows_differ():
    """At sizes where a BLAS sums a row differently alone and among many (tail blocks,
    threads), the sampler's batch-invariant products keep the two searches identical."""
    from pytensor.tensor.random import shared_rng

    o = {"n_words": 3000, "dim_word": 40, "dim": 72, "dimctx": 48, "decoder": "gru",
         "doutput": False, "inject": "init"}
    tparams = init_tparams(init_params(o, rng=np.random.RandomState(2)))
    f_init, f_next = build_sampler(tparams, o, shared_rng(seed=1))
    for f in (f_init, f_next):
        names = {type(n.op).__name__ for n in f.maker.fgraph.apply_nodes}
        assert not names & {"Dot", "Dot22", "Dot22Scalar", "Gemm", "Gemv"}, names
    ctx = np.random.RandomState(3).randn(40, 48).astype("float32")
    batched = gen_sample_batch(tparams, f_init, f_next, ctx, o, k=5, maxlen=8, chunk=40)
    for i in range(len(ctx)):
        sample, score = gen_sample(tparams, f_init, f_next, ctx[i:i + 1], o, k=5, maxlen=8,
                                   stochastic=False)
        assert batched[i][0] == sample
        assert [s.tobytes() for s in batched[i][1]] == [np.float32(s).tobytes() for s in score]


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
def test_candidate_shortcut_is_the_full_sort():
    """A beam step through `beam_candidates` picks what sorting the whole array picks,
    on near-ties, exact ties, zeros and UNK, or declines (and the whole array decides)."""
    from uvs.decoding.search import MARGIN, WIDTH, _Beam, _shortcuts
    from uvs.rowwise import beam_candidates

    rng = np.random.RandomState(8)
    used = declined = 0
    for trial in range(100):
        beams, ps, fulls = [], [], []
        for _ in range(4):  # four beams in one step, each with its own rows
            k, rows, m = rng.randint(1, 7), rng.randint(1, 6), 400
            logits = rng.randn(rows, m) * rng.choice([0.01, 1, 5])
            if rng.rand() < 0.3:  # duplicated values: exact ties
                logits[:, : m // 2] = logits[:, m // 2: 2 * (m // 2)]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = (p / p.sum(axis=1, keepdims=True)).astype("float32")
            if rng.rand() < 0.2:
                p[:, rng.randint(m, size=3)] = 0
            hyp = (rng.rand(rows) * rng.choice([1, 100, 9000])).astype("float32")
            fast, full = _Beam(k), _Beam(k)
            fast.dead_k = full.dead_k = rng.randint(0, k)
            for b in (fast, full):
                b.hyp_samples = [[int(w)] for w in range(2, 2 + rows)]
                b.hyp_scores, b.live_k = hyp.copy(), rows
            beams.append(fast), fulls.append(full), ps.append(p)
        use_unk = bool(trial % 2)
        sizes = [len(p) for p in ps]
        p = np.concatenate(ps)
        need = np.array([b.k - b.dead_k for b in beams])
        idx, count = [None], [None]
        beam_candidates.perform(None, [p, np.repeat(need + 1, sizes),
                                       np.int64(-1 if use_unk else 1), MARGIN, WIDTH],
                                [idx, count])
        found = _shortcuts(beams, need, p, sizes, idx[0], count[0])
        for fast, full, pj, pick in zip(beams, fulls, ps, found, strict=True):
            used, declined = used + (pick is not None), declined + (pick is None)
            state = np.arange(len(pj), dtype="float32")[:, None]
            a = fast.advance(*(pick or fast.choose(pj, use_unk)), pj.shape[1], state)
            b = full.advance(*full.choose(pj, use_unk), pj.shape[1], state)
            assert a.tolist() == b.tolist()
            assert fast.hyp_samples == full.hyp_samples and fast.sample == full.sample
            assert [s.tobytes() for s in fast.hyp_scores] == \
                [s.tobytes() for s in full.hyp_scores]
            assert [s.tobytes() for s in fast.sample_score] == \
                [s.tobytes() for s in full.sample_score]
    assert used > 100 and declined > 20  # both paths ran
