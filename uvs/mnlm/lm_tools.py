"""Language model tools (`utils/lm_tools.py`): n-grams, model inputs, log-likelihood,
perplexity, beam search (the original's loop, and the same search batched across images),
saving and loading models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from uvs.mnlm.files import read_mnlm, write_mnlm


def compute_ngrams(sequence: Sequence, n: int) -> list[tuple]:
    """The n-grams of a sequence, in order."""
    sequence = list(sequence)
    count = max(0, len(sequence) - n + 1)
    return [tuple(sequence[i:i + n]) for i in range(count)]


def get_ngrams(X: Sequence[Sequence[str]], context: int = 5) -> list[list[tuple]]:
    """The (context + 1)-grams of each caption (already padded with `<start>`s and `<end>`)."""
    return [compute_ngrams(x, context + 1) for x in X]


def model_inputs(ngrams, word_dict: dict, context: int = 5, include_last: bool = True,
                 include_index: bool = False):
    """n-grams as an int array (N, context + 1), or (N, context) without the last word;
    unknown words map to `word_dict['unk']`. With `include_index`, also each row's caption
    number (N, 1) as floats, as the original."""
    total = sum(len(x) for x in ngrams)
    width = context + 1 if include_last else context
    instances = np.zeros((total, width), dtype=int)
    index = np.zeros((total, 1))
    count = 0
    for i, caption in enumerate(ngrams):
        for gram in caption:
            values = [word_dict[w] if w in word_dict else word_dict["unk"] for w in gram]
            instances[count] = values if include_last else values[:-1]
            index[count] = i
            count += 1
    return (instances, index) if include_index else instances


def compute_ll(net, instances: np.ndarray, Im=None, tags=None) -> float:
    """Σ log2(p(last word | context) + 1e-20) over the rows of `instances` (test mode);
    `tags`: the SC-NLM's tag windows, one row per instance."""
    if tags is not None:
        preds = net.forward(instances[:, :-1], Im, tags=tags)[-1]
    elif Im is not None:
        preds = net.forward(instances[:, :-1], Im)[-1]
    else:
        preds = net.forward(instances[:, :-1])[-1]
    p = preds[np.arange(preds.shape[0]), instances[:, -1]].astype(np.float64)
    return float(np.sum(np.log2(p + 1e-20)))


def perplexity(net, ngrams, word_dict: dict, Im=None, context: int = 5,
               chunk: int = 4096, tags=None) -> float:
    """2 ** (-mean log2 p) over all n-grams of all captions (pooled, not per caption);
    caption i uses image row i. Computed in batches of `chunk` n-grams. tags: the SC-NLM's
    tag windows, one row per n-gram in order."""
    instances, index = model_inputs(ngrams, word_dict, context=context, include_index=True)
    N = len(instances)
    if N == 0:
        raise ValueError("perplexity of no n-grams (every caption is shorter than the "
                         "context + 1)")
    rows = index[:, 0].astype(int)
    ll = 0.0
    for s in range(0, N, chunk):
        part = instances[s:s + chunk]
        im = None if Im is None else np.asarray(Im)[rows[s:s + chunk]]
        ll += compute_ll(net, part, im, None if tags is None else tags[s:s + chunk])
    return pow(2, (-1.0 / N) * ll)


# --- beam search -----------------------------------------------------------------------

def _top(logp: np.ndarray, k: int) -> np.ndarray:
    """`np.argsort(logp)[::-1][:k]` for one row, without sorting the row when the k best
    values are distinct from each other and from the rest (else it sorts, for the same ties)."""
    if k >= logp.shape[0]:
        return np.argsort(logp)[::-1][:k]
    part = np.argpartition(logp, logp.shape[0] - k)[logp.shape[0] - k:]
    vals = logp[part]
    if np.count_nonzero(logp >= vals.min()) == k and len(np.unique(vals)) == k:
        return part[np.argsort(vals)[::-1]]
    return np.argsort(logp)[::-1][:k]


def beam_search(net, word_dict: dict, index_dict: dict, num: int, Im, initial=None, k: int = 2,
                N: int = 1, template=None) -> list[list[str]]:
    """The original's beam search for one image: k beams (best first), each the words after
    the `<start>` padding without its last token; at most num - 1 words.

    The first step takes the top k words of one prediction; a finished beam (last token
    `<end>`) stays a candidate once; scores are the sum of log(p + 1e-20) over the generated
    tokens divided by their number. `N` is accepted and unused, as in the original.
    template: the SC-NLM's tag indices to follow (see `beam_search_batch`).
    """
    return beam_search_batch(net, word_dict, index_dict, num, np.asarray(Im)[None, :],
                             initial=initial, k=k, chunk=1,
                             templates=None if template is None else [template])[0]


def _check_num(num: int) -> None:
    if num < 3:
        raise ValueError(f"num must be at least 3 (got {num}): the original's loop stops at "
                         "step num, which it has already passed below 3")


def beam_search_batch(net, word_dict: dict, index_dict: dict, num: int, IM,
                      initial=None, k: int = 2, chunk: int = 256,
                      templates=None) -> list[list[list[str]]]:
    """`beam_search` for every row of IM (n, D) at once, `chunk` images per forward pass:
    the same beams, scores and captions as the original's loop over images.

    templates (SC-NLM): one sequence of tag indices per row; the word at position n is
    predicted with the tags of positions n..n+k (`net.tag_dict['<end>']` past the end).
    """
    _check_num(num)
    IM = np.asarray(IM)
    out: list = []
    for s in range(0, len(IM), chunk):
        part = None if templates is None else templates[s:s + chunk]
        out.extend(_search_chunk(net, word_dict, index_dict, num, IM[s:s + chunk], initial, k,
                                 part))
    return out


def _predict(net, X, IM, windows=None) -> np.ndarray:
    """log(preds + 1e-20) of a forward pass (with the SC-NLM's tag windows when given)."""
    if windows is None:
        preds = net.forward(X, IM)[-1]
    else:
        preds = net.forward(X, IM, tags=windows)[-1]
    return np.log(preds + 1e-20)


def _window(template, position: int, width: int, end: int) -> list[int]:
    padded = list(template[position:position + width])
    return padded + [end] * (width - len(padded))


def _search_chunk(net, word_dict, index_dict, num, IM, initial, k, templates=None):
    ctx = net.context
    n = len(IM)
    if initial is None:
        initial = ["<start>"] * ctx
    start = np.array([word_dict[w] for w in initial]).reshape(1, ctx)
    end = word_dict.get("<end>", -1)
    width = end_tag = None
    tagw = None
    if templates is not None:
        width, end_tag = net.structure_context + 1, net.tag_dict["<end>"]
        tagw = np.array([_window(t, 0, width, end_tag) for t in templates], dtype=np.int64)
    # first step: one prediction per image
    logp = _predict(net, np.repeat(start[:, -ctx:], n, 0), IM, tagw)
    seqs = np.zeros((n, k, num + 1), dtype=int)  # generated indices per beam
    lens = np.ones((n, k), dtype=int)
    sums = np.zeros((n, k), dtype=logp.dtype)
    for i in range(n):
        top = _top(logp[i], k)
        seqs[i, :, 0] = top
        sums[i] = 0 + logp[i][top]  # a sum of one score
    windows = np.repeat(np.repeat(start, k, 0)[None], n, 0)  # (n, k, ctx) last inputs
    windows = np.concatenate([windows, seqs[:, :, :1]], axis=2)[:, :, -ctx:]
    active = np.ones(n, dtype=bool)
    count = 2
    while active.any():
        act = np.flatnonzero(active)
        ends = seqs[act[:, None], np.arange(k)[None, :], lens[act] - 1] == end  # (a, k)
        need = ~ends
        rows_img, rows_beam = np.nonzero(need)
        if len(rows_img):
            tagw = None
            if templates is not None:
                tagw = np.array([_window(templates[act[a]], lens[act[a], b], width, end_tag)
                                 for a, b in zip(rows_img, rows_beam, strict=True)],
                                dtype=np.int64)
            logp = _predict(net, windows[act[rows_img], rows_beam], IM[act[rows_img]], tagw)
        row_of = {(a, b): r for r, (a, b) in enumerate(zip(rows_img, rows_beam, strict=True))}
        for a, i in enumerate(act):
            cand_beam, cand_word, cand_sum, cand_norm = [], [], [], []
            for b in range(k):
                if ends[a, b]:
                    cand_beam.append(b)
                    cand_word.append(-1)
                    cand_sum.append(sums[i, b])
                    cand_norm.append(int(lens[i, b]))
                    continue
                lp = logp[row_of[a, b]]
                for w in _top(lp, k):
                    cand_beam.append(b)
                    cand_word.append(w)
                    cand_sum.append(sums[i, b] + lp[w])
                    cand_norm.append(int(lens[i, b]) + 1)
            # numpy scalars over Python ints, as the original: float32 stays float32
            scores = [cand_sum[c] / cand_norm[c] for c in range(len(cand_sum))]
            best = np.argsort(scores)[::-1][:k]
            old_seqs, old_lens = seqs[i].copy(), lens[i].copy()
            old_windows = windows[i].copy()
            for b, c in enumerate(best):
                src = cand_beam[c]
                seqs[i, b] = old_seqs[src]
                sums[i, b] = cand_sum[c]
                if cand_word[c] >= 0:
                    seqs[i, b, old_lens[src]] = cand_word[c]
                    lens[i, b] = old_lens[src] + 1
                    windows[i, b] = np.r_[old_windows[src][1:], cand_word[c]]
                else:
                    lens[i, b] = old_lens[src]
                    windows[i, b] = old_windows[src]
            if np.all(seqs[i, np.arange(k), lens[i] - 1] == end) or count + 1 == num:
                active[i] = False
        count += 1
    return [[[index_dict[w] for w in seqs[i, b, :lens[i, b]]][:-1] for b in range(k)]
            for i in range(n)]


# --- saving and loading ----------------------------------------------------------------

def save_model(net, loc: str | os.PathLike) -> None:
    """Save the whole model (parameters, momentum buffers, schedule state) in uvs's format."""

    write_mnlm(loc, net)


def load_model(loc: str | os.PathLike):
    """A model saved by uvs, or the original's `pickle.dump(net)` of an `lm.mlbl.MLBL` or
    `lm.mlblf.MLBLF` (Python 2; read without running any of its code). It carries on from
    its momentum buffers, `eta_t`, `p_t` and `step`."""

    return read_mnlm(loc)
