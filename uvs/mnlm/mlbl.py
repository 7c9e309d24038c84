"""The additive multimodal log-bilinear model (`lm/mlbl.py`, class `MLBL`).

IF = max(0, Im·J + bj); acts = Σ_i R[:, x_i]ᵀ·C[i] + IF·M; preds = softmax(acts·R + bw).
R is (K, V): one column per word.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numpy.random import RandomState

from uvs.columns import take_columns
from uvs.mnlm.lbl import LBL


def gather_words(R: np.ndarray, X: np.ndarray, K: int, context: int) -> np.ndarray:
    """The original's `words` (B, K, context): words[b, :, i] = R[:, X[b, i]]."""
    return np.ascontiguousarray(R[:, np.asarray(X)].transpose(1, 0, 2))


def context_acts(words: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Σ_i words[:, :, i]·C[i] (B, K), as one product."""
    B, K, context = words.shape
    return words.transpose(0, 2, 1).reshape(B, context * K) @ C.reshape(context * K, -1)


def image_features(Im, J: np.ndarray, bj: np.ndarray) -> np.ndarray:
    """IF = max(0, Im·J + bj)."""
    IF = np.dot(np.asarray(Im, dtype=J.dtype), J) + bj
    return IF * (IF > 0)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax as the original: exp(z - max) / sum."""
    preds = np.exp(z - z.max(1).reshape(z.shape[0], 1))
    preds /= preds.sum(1).reshape(z.shape[0], 1)
    return preds


def relu(x):
    """x·(x > 0), the original's ReLU: its gradient is 0 at 0."""
    return x * (x > 0)


def init_R(prng: RandomState, K: int, V: int, embed_map, count_dict) -> np.ndarray:
    """Word representations (K, V): pre-trained vectors (`*UNKNOWN*` for missing words) or
    uniform ±sqrt(6)/sqrt(K + V + 1)."""
    if embed_map is not None:
        R = np.zeros((K, V))
        for i in range(V):
            word = count_dict[i]
            R[:, i] = embed_map[word] if word in embed_map else embed_map["*UNKNOWN*"]
        return R
    r = np.sqrt(6) / np.sqrt(K + V + 1)
    return prng.rand(K, V) * 2 * r - r


def first_draws(net, prng: RandomState, embed_map=None, count_dict=None) -> dict:
    """R, C, M, J drawn from `prng` in the original's order, with zero biases (bw, bj): what
    MLBL's and MLBL-F's init_params share."""
    R = init_R(prng, net.K, net.V, embed_map, count_dict)
    C = 0.01 * prng.randn(net.context, net.K, net.K)
    M = 0.01 * prng.randn(net.h, net.K)
    r = np.sqrt(6) / np.sqrt(net.D + net.h + 1)
    J = prng.rand(net.D, net.h) * 2 * r - r
    return {"R": R, "C": C, "bw": np.zeros((1, net.V)), "M": M, "J": J,
            "bj": np.zeros((1, net.h))}


class MLBL(LBL):
    """Multimodal Log-bilinear language model trained using SGD."""

    PARAMS = {"C": "deltaC", "R": "deltaR", "bw": "deltaB", "M": "deltaM", "J": "deltaJ",
              "bj": "deltaBj"}
    DECAY_R = ("R",)
    DECAY_C = ("C", "M", "J")

    def __init__(self, name="lbl", loc="models/mlbl.pkl", seed=1234, dropout=0.0, k=5,
                 V=10364, K=50, D=10, h=3, context=5, batchsize=20, maxepoch=10, eta_t=0.2,
                 gamma_r=0.0, gamma_c=0.0, f=0.995, p_i=0.5, p_f=0.5, T=20, verbose=1,
                 dtype="float32"):
        self.name, self.loc, self.dropout, self.seed, self.k = name, loc, dropout, seed, k
        self.V, self.K, self.D, self.h, self.context = V, K, D, h, context
        self.batchsize, self.maxepoch, self.eta_t = batchsize, maxepoch, eta_t
        self.gamma_r, self.gamma_c, self.f = gamma_r, gamma_c, f
        self.p_i, self.p_f, self.T, self.verbose = p_i, p_f, T, verbose
        self._setup(dtype, T, p_i, p_f)

    def init_params(self, embed_map=None, count_dict=None) -> None:
        """R, C (0.01·randn), M (0.01·randn), J (uniform), zero biases and momentum buffers,
        drawn from RandomState(seed) in the original's order."""
        values = first_draws(self, RandomState(self.seed), embed_map, count_dict)
        for p, d in self.PARAMS.items():
            setattr(self, p, values[p])
            setattr(self, d, np.zeros(np.shape(values[p])))

    def forward(self, X, Im, test=True):
        """(words, acts, IF, preds); test scales M by (1 - dropout), training draws the
        dropout mask from `np.random` (not rescaled)."""
        X = np.asarray(X)
        batchsize = X.shape[0]
        IF = image_features(Im, self.J, self.bj)
        if self.dropout > 0 and not test:
            IF = IF * (np.random.rand(batchsize, self.h) > self.dropout)
        words = gather_words(self.R, X, self.K, self.context)
        acts = context_acts(words, self.C)
        acts = acts + np.dot(IF, self.M * (1 - self.dropout) if test else self.M)
        preds = softmax_rows(np.dot(acts, self.R) + self.bw)
        return (words, acts, IF, preds)

    def _graph(self, s: dict, test: bool = False):
        """(logits z (B, V), acts) for the compiled update."""
        tp = self._tp
        X, Im = s["X"], s["Im"]
        IF = relu(Im @ tp["J"] + pt.specify_broadcastable(tp["bj"], 0)) * s["mask"]
        words = take_columns(tp["R"], X.flatten()).reshape((X.shape[0], -1))
        acts = words @ tp["C"].reshape((-1, self.K)) + IF @ tp["M"]
        z = acts @ tp["R"] + pt.specify_broadcastable(tp["bw"], 0)
        return z, acts
