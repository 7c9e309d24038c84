"""Sequence generation: the original's beam search and sampling, and a batched beam search.

`gen_sample` is skip-thoughts/decoding's, candidates, order and scores included:

- beam search (`stochastic=False`): a candidate's cost is its hypothesis' cost minus the log
  of the word's probability, summed in float32; UNK's cost is 1e20 unless `use_unk`; the
  `k − dead_k` cheapest candidates (NumPy's default `argsort`) survive; the hypothesis index
  is Python 2's integer division; a hypothesis ends when it emits 0 (`<eos>`), and those
  still unfinished at `maxlen` are returned too. Samples come in the order they finished.
- sampling (`stochastic=True`): quirks kept: the score sums *probabilities*, not
  log-probabilities, and with `argmax=True` the argmax is recorded but the random draw is
  what is fed back at the next step.

`gen_sample_batch` runs the beams of many contexts together, one `f_next` call per step for
all of them, and returns for each context exactly what `gen_sample` returns: the sampler's
rows do not see each other (`uvs.rowwise`), and a beam's `k − dead_k` cheapest candidates are
found among the few words per row whose probability is within 1 % of the row's
(k − dead_k + 1)-th largest (`beam_candidates`, in C): a word below that has a larger cost
than each of them, as −log is decreasing and float32 rounding cannot close a 1 % gap for costs
under 8192. Costs are then computed as the original computes them, and wherever a tie could
make the order differ, or the shortcut does not apply, the beam's whole candidate array is
sorted as in `gen_sample`.
"""

from __future__ import annotations

import copy
import functools

import numpy as np

from uvs import backend
from uvs.rowwise import beam_candidates


def gen_sample(tparams, f_init, f_next, ctx, options, trng=None, k=1, maxlen=30,
               stochastic=True, argmax=False, use_unk=False):
    """(sample, score) for ctx: (1, dimctx).

    Beam search: sample is a list of k word-index lists, score their float32 costs.
    Sampling: sample is one list of word indices, score a float32 sum of probabilities.
    """
    if k > 1 and stochastic:
        raise ValueError("Beam search does not support stochastic sampling")

    sample = []
    sample_score = []
    if stochastic:
        sample_score = np.float32(0)

    live_k = 1
    dead_k = 0

    hyp_samples = [[]] * live_k
    hyp_scores = np.zeros(live_k).astype("float32")
    hyp_states = []

    next_state = f_init(ctx)
    next_w = -1 * np.ones((1,)).astype("int64")

    for _ii in range(maxlen):
        ret = f_next(next_w, next_state)
        next_p, next_w, next_state = ret[0], ret[1], ret[2]

        if stochastic:
            if argmax:
                nw = next_p[0].argmax()  # recorded; next_w (the draw) is what is fed back
            else:
                nw = next_w[0]
            sample.append(int(nw))
            sample_score += next_p[0, nw]
            if nw == 0:
                break
        else:
            cand_scores = hyp_scores[:, None] - np.log(next_p)
            cand_flat = cand_scores.flatten()

            if not use_unk:
                voc_size = next_p.shape[1]
                for xx in range(len(cand_flat) // voc_size):
                    cand_flat[voc_size * xx + 1] = 1e20

            ranks_flat = cand_flat.argsort()[:(k - dead_k)]

            voc_size = next_p.shape[1]
            trans_indices = ranks_flat // voc_size  # Python 2's `/` on integers
            word_indices = ranks_flat % voc_size
            costs = cand_flat[ranks_flat]

            new_hyp_samples = []
            new_hyp_scores = np.zeros(k - dead_k).astype("float32")
            new_hyp_states = []

            for idx, (ti, wi) in enumerate(zip(trans_indices, word_indices, strict=True)):
                new_hyp_samples.append(hyp_samples[ti] + [int(wi)])
                new_hyp_scores[idx] = copy.copy(costs[idx])
                new_hyp_states.append(copy.copy(next_state[ti]))

            # check the finished samples
            new_live_k = 0
            hyp_samples = []
            hyp_scores = []
            hyp_states = []

            for idx in range(len(new_hyp_samples)):
                if new_hyp_samples[idx][-1] == 0:
                    sample.append(new_hyp_samples[idx])
                    sample_score.append(new_hyp_scores[idx])
                    dead_k += 1
                else:
                    new_live_k += 1
                    hyp_samples.append(new_hyp_samples[idx])
                    hyp_scores.append(new_hyp_scores[idx])
                    hyp_states.append(new_hyp_states[idx])
            hyp_scores = np.array(hyp_scores)
            live_k = new_live_k

            if new_live_k < 1:
                break
            if dead_k >= k:
                break

            next_w = np.array([w[-1] for w in hyp_samples])
            next_state = np.array(hyp_states)

    if not stochastic:
        # dump every remaining one
        if live_k > 0:
            for idx in range(live_k):
                sample.append(hyp_samples[idx])
                sample_score.append(hyp_scores[idx])

    return sample, sample_score


def _cheapest(cand_flat: np.ndarray, n: int) -> np.ndarray:
    """`cand_flat.argsort()[:n]`, by a partial sort when no tie can make the order differ."""
    if n >= len(cand_flat) or n > 64:
        return cand_flat.argsort()[:n]
    part = np.argpartition(cand_flat, n)[:n + 1]
    top = part[np.argsort(cand_flat[part], kind="stable")]
    values = cand_flat[top]
    # ties among the n cheapest or at the boundary: the full sort decides, as the original's
    if (values[1:] == values[:-1]).any():
        return cand_flat.argsort()[:n]
    return top[:n]


MARGIN = np.float32(0.01)  # candidates: within 1 % of the (k - dead_k + 1)-th probability
WIDTH = 32  # at most this many candidates per row; more, and the row is sorted whole
MAX_COST = 8192.0  # below it a float32 cost's rounding (≤ 2⁻¹¹) is far under the 1 % gap


@functools.cache
def _candidates():
    """The compiled `beam_candidates`, shared by every search of the process."""
    import pytensor.tensor as tensor


    p = tensor.matrix("p", dtype="float32")
    keep = tensor.vector("keep", dtype="int64")
    skip = tensor.scalar("skip", dtype="int64")
    return backend.function([p, keep, skip], beam_candidates(p, keep, skip, MARGIN, WIDTH),
                            name="beam_candidates")


class _Beam:
    """One context's beam in `gen_sample_batch`: the original's bookkeeping, step by step."""

    def __init__(self, k: int):
        self.k = k
        self.sample: list = []
        self.sample_score: list = []
        self.live_k = 1
        self.dead_k = 0
        self.hyp_samples: list = [[]]
        self.hyp_scores = np.zeros(1).astype("float32")
        self.done = False

    def choose(self, next_p, use_unk):
        """(ranks_flat, costs) of the k − dead_k cheapest candidates, from the whole candidate
        array as `gen_sample` builds it."""
        cand_scores = self.hyp_scores[:, None] - np.log(next_p)
        cand_flat = cand_scores.flatten()
        if not use_unk:
            cand_flat[1::next_p.shape[1]] = 1e20
        ranks_flat = _cheapest(cand_flat, self.k - self.dead_k)
        return ranks_flat, cand_flat[ranks_flat]

    def advance(self, ranks_flat, costs, voc_size, next_state):
        """Extend the hypotheses by the chosen candidates; returns the surviving states."""
        trans_indices = ranks_flat // voc_size
        word_indices = ranks_flat % voc_size
        hyp_samples, hyp_scores, keep = [], [], []
        for idx, (ti, wi) in enumerate(zip(trans_indices, word_indices, strict=True)):
            words = self.hyp_samples[ti] + [int(wi)]
            if wi == 0:
                self.sample.append(words)
                self.sample_score.append(np.float32(costs[idx]))
                self.dead_k += 1
            else:
                hyp_samples.append(words)
                hyp_scores.append(np.float32(costs[idx]))
                keep.append(ti)
        self.hyp_samples = hyp_samples
        self.hyp_scores = np.array(hyp_scores)
        self.live_k = len(hyp_samples)
        if self.live_k < 1 or self.dead_k >= self.k:
            self.done = True
        return next_state[keep]

    def finish(self):
        for idx in range(self.live_k):
            self.sample.append(self.hyp_samples[idx])
            self.sample_score.append(self.hyp_scores[idx])
        return self.sample, self.sample_score


def _shortcuts(beams, need, next_p, sizes, idx, count):
    """Per beam (its rows of next_p are consecutive, `sizes` of them) the (ranks_flat, costs)
    of its need[j] = k − dead_k cheapest candidates found among `beam_candidates`' (idx,
    count), or None where the whole candidate array must decide: a row with too few or too
    many candidates, costs too large, or a possible tie among the need[j] + 1 cheapest."""
    starts = np.cumsum([0, *sizes])[:-1]
    beam_of_row = np.repeat(np.arange(len(beams)), sizes)
    hyp = np.concatenate([b.hyp_scores for b in beams])
    row_ok = (count >= need[beam_of_row] + 1) & (count <= WIDTH)
    ok = np.logical_and.reduceat(row_ok, starts) & (need + 1 <= WIDTH) \
        & (np.maximum.reduceat(np.abs(hyp), starts) < MAX_COST)
    rows, slots = np.nonzero((idx >= 0) & ok[beam_of_row][:, None])
    cols = idx[rows, slots]
    costs = hyp[rows] - np.log(next_p[rows, cols])  # as the original computes them
    beam_of = beam_of_row[rows]
    order = np.lexsort((costs, beam_of))
    first = np.searchsorted(beam_of[order], np.arange(len(beams)))
    out = []
    for j, n in enumerate(need):
        if not ok[j]:
            out.append(None)
            continue
        pick = order[first[j]:first[j] + n + 1]
        values = costs[pick]
        if (values[1:] == values[:-1]).any():
            out.append(None)
            continue
        top = pick[:n]
        out.append(((rows[top] - starts[j]) * next_p.shape[1] + cols[top], costs[top]))
    return out


def gen_sample_batch(tparams, f_init, f_next, ctx, options, trng=None, k=1, maxlen=30,
                     use_unk=False, chunk=128):
    """Beam search for every row of ctx: (n, dimctx) -> [(sample, score)] as `gen_sample`'s.

    The live hypotheses of up to `chunk` contexts go through one `f_next` call per step.
    """
    out = []
    for start in range(0, len(ctx), chunk):
        block = np.asarray(ctx[start:start + chunk], dtype="float32")
        beams = [_Beam(k) for _ in block]
        init = f_init(block)
        states = [init[i:i + 1] for i in range(len(block))]
        words = [-1 * np.ones((1,)).astype("int64") for _ in block]
        for _ii in range(maxlen):
            active = [i for i, b in enumerate(beams) if not b.done]
            if not active:
                break
            sizes = [len(words[i]) for i in active]
            next_p, _, next_state = f_next(np.concatenate([words[i] for i in active]),
                                           np.concatenate([states[i] for i in active]))
            live = [beams[i] for i in active]
            need = np.array([b.k - b.dead_k for b in live])
            idx, count = _candidates()(next_p, np.repeat(need + 1, sizes),
                                       np.int64(-1 if use_unk else 1))
            found = _shortcuts(live, need, next_p, sizes, idx, count)
            offset = 0
            for i, n, pick in zip(active, sizes, found, strict=True):
                b = beams[i]
                rows = slice(offset, offset + n)
                ranks_flat, costs = pick if pick is not None else b.choose(next_p[rows], use_unk)
                states[i] = b.advance(ranks_flat, costs, next_p.shape[1], next_state[rows])
                words[i] = np.array([w[-1] for w in b.hyp_samples], dtype="int64")
                offset += n
        out.extend(b.finish() for b in beams)
    return out
