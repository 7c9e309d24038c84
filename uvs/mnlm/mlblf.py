"""The factored three-way multiplicative model (`lm/mlblf.py`, class `MLBLF`).

IF = max(0, Im·J + bj); acts = Σ_i R[:, x_i]ᵀ·C[i] + IF·M with R = Wfx·Whf;
F = (acts·Wfx) ⊙ (IF·Wfv); preds = softmax(F·Whf + bw).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numpy.random import RandomState

from uvs.columns import take_columns
from uvs.mnlm import svd_tools
from uvs.mnlm.lbl import LBL
from uvs.mnlm.mlbl import context_acts, first_draws, image_features, relu, softmax_rows


class MLBLF(LBL):
    """Factored 3-way Multimodal Log-bilinear language model trained using SGD."""

    PARAMS = {"C": "deltaC", "bw": "deltaB", "M": "deltaM", "J": "deltaJ", "bj": "deltaBj",
              "Whf": "deltaWhf", "Wfv": "deltaWfv", "Wfx": "deltaWfx"}
    DECAY_R = ("Whf", "Wfv", "Wfx")
    DECAY_C = ("C", "M", "J")

    def __init__(self, name="lbl", loc="models/mlblf.pkl", seed=1234, dropout=0.0, k=5,
                 V=10364, K=50, D=10, h=3, factors=10, context=5, batchsize=20, maxepoch=10,
                 eta_t=0.2, gamma_r=0.0, gamma_c=0.0, f=0.995, p_i=0.5, p_f=0.5, T=20,
                 verbose=1, dtype="float32"):
        self.name, self.loc, self.dropout, self.seed, self.k = name, loc, dropout, seed, k
        self.V, self.K, self.D, self.h, self.context = V, K, D, h, context
        self.factors = factors
        self.batchsize, self.maxepoch, self.eta_t = batchsize, maxepoch, eta_t
        self.gamma_r, self.gamma_c, self.f = gamma_r, gamma_c, f
        self.p_i, self.p_f, self.T, self.verbose = p_i, p_f, T, verbose
        self._setup(dtype, T, p_i, p_f)

    HYPER = LBL.HYPER + ("factors",)

    def init_params(self, embed_map=None, count_dict=None) -> None:
        """As MLBL, then Wfx, Whf from the randomized SVD of R (run on Rᵀ: the original passes
        transpose='false', a true string) and Wfv = 0.01·randn, in the original's order."""
        prng = RandomState(self.seed)
        values = first_draws(self, prng, embed_map, count_dict)
        values["Wfx"], values["Whf"] = svd_tools.svd(values.pop("R"), n_components=self.factors,
                                                     transpose="false")
        values["Wfv"] = 0.01 * prng.randn(self.h, self.factors)
        for p, d in self.PARAMS.items():
            setattr(self, p, values[p])
            setattr(self, d, np.zeros(np.shape(values[p])))

    @property
    def R(self) -> np.ndarray:
        """The folded word representations Wfx·Whf (K, V)."""
        return np.dot(self.Wfx, self.Whf)

    def forward(self, X, Im, test=True):
        """(words, acts, IF, F, preds); test scales M and Wfv by (1 - dropout)."""
        X = np.asarray(X)
        batchsize = X.shape[0]
        IF = image_features(Im, self.J, self.bj)
        if self.dropout > 0 and not test:
            IF = IF * (np.random.rand(batchsize, self.h) > self.dropout)
        # only the columns of R that X names: Wfx·Whf[:, X]
        words = np.dot(self.Wfx, self.Whf[:, X.reshape(-1)]).reshape(self.K, *X.shape)
        words = np.ascontiguousarray(words.transpose(1, 0, 2))
        acts = context_acts(words, self.C)
        scale = (1 - self.dropout) if test else 1
        acts = acts + np.dot(IF, self.M * scale)
        F = np.dot(acts, self.Wfx) * np.dot(IF, self.Wfv * scale)
        preds = softmax_rows(np.dot(F, self.Whf) + self.bw)
        return (words, acts, IF, F, preds)

    def _factored(self, acts, IF, tp):
        """F = (acts·Wfx) ⊙ (IF·Wfv) and the logits F·Whf + bw."""
        F = (acts @ tp["Wfx"]) * (IF @ tp["Wfv"])
        return F @ tp["Whf"] + pt.specify_broadcastable(tp["bw"], 0)

    def _graph(self, s: dict, test: bool = False):
        """(logits z (B, V), acts) for the compiled update."""
        tp = self._tp
        X, Im = s["X"], s["Im"]
        IF = relu(Im @ tp["J"] + pt.specify_broadcastable(tp["bj"], 0)) * s["mask"]
        cols = take_columns(tp["Whf"], X.flatten())  # (B·context, factors)
        words = (cols @ tp["Wfx"].T).reshape((X.shape[0], -1))
        acts = words @ tp["C"].reshape((-1, self.K)) + IF @ tp["M"]
        return self._factored(acts, IF, tp), acts
