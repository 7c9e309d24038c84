"""Minibatches: the original length-homogeneous batches, and order-embedding's random ones.

Each epoch's batches come from a RandomState seeded by (seed, epoch), so a run resumed at
batch k of an epoch sees exactly the batches an uninterrupted run would have.
"""

from __future__ import annotations

import numpy as np

from uvs.vocab import tokenize, word_ids


def epoch_rng(seed: int, epoch: int) -> np.random.RandomState:
    """The random state that orders epoch `epoch`."""
    return np.random.RandomState(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def homogeneous_batches(caps: list[str], batch_size: int, maxlen: int | None,
                        rng: np.random.RandomState) -> list[np.ndarray]:
    """Caption indices in batches of one length, as the original `HomogeneousData` served them.

    Lengths are visited round-robin in a random order, each taking up to `batch_size` of its
    randomly permuted captions per visit; captions of `maxlen` tokens or more are dropped.
    """
    lengths = np.array([len(tokenize(c)) for c in caps])
    len_unique = [ll for ll in np.unique(lengths) if maxlen is None or ll < maxlen]
    len_unique = rng.permutation(len_unique)
    indices = {ll: rng.permutation(np.where(lengths == ll)[0]) for ll in len_unique}
    pos = dict.fromkeys(len_unique, 0)
    batches = []
    while True:
        served = False
        for ll in len_unique:
            if pos[ll] < len(indices[ll]):
                batches.append(indices[ll][pos[ll]:pos[ll] + batch_size])
                pos[ll] += batch_size
                served = True
        if not served:
            return batches


def random_batches(n_images: int, batch_size: int,
                   rng: np.random.RandomState) -> list[tuple[np.ndarray, np.ndarray]]:
    """Order-embedding's batches: images in random order, one random caption of five each.

    Returns [(image indices, caption indices)]; a last partial batch is dropped, as there.
    """
    order = rng.permutation(n_images)
    choice = rng.randint(5, size=n_images)
    n = n_images // batch_size
    return [(order[b * batch_size:(b + 1) * batch_size],
             5 * order[b * batch_size:(b + 1) * batch_size]
             + choice[b * batch_size:(b + 1) * batch_size]) for b in range(n)]


def prepare_data(caps: list[str], features: np.ndarray, worddict: dict, maxlen=None,
                 n_words: int = 10000):
    """(x: (T, B) int64, mask: (T, B) float32, im: (B, dim_image) float32) for a batch.

    k tokens fill k steps, then `<eos>` (0); the mask covers the k + 1 steps; shorter captions
    are padded with mask 0. Captions of `maxlen` tokens or more are dropped; when none is
    left, returns (None, None, None).
    """
    seqs = [word_ids(tokenize(cc), worddict, n_words) for cc in caps]
    keep = [i for i, s in enumerate(seqs) if maxlen is None or len(s) < maxlen]
    if not keep:
        return None, None, None
    seqs = [seqs[i] for i in keep]
    im = np.asarray(features, dtype="float32")[keep]
    lengths = [len(s) for s in seqs]
    x = np.zeros((max(lengths) + 1, len(seqs)), dtype="int64")
    x_mask = np.zeros((max(lengths) + 1, len(seqs)), dtype="float32")
    for idx, s in enumerate(seqs):
        x[:lengths[idx], idx] = s
        x_mask[:lengths[idx] + 1, idx] = 1.0
    return x, x_mask, im
