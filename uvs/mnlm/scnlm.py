"""The structure-content neural language model (Kiros, Salakhutdinov & Zemel 2014, section 4).

P(w_n | w_{n-context:n-1}, t_{n:n+k}, u): MLBL-F with its image vector replaced by the
conditioning vector v = max(0, Σ_{i=0..k} Tt[t_{n+i}]·Ct[i] + u·Cm + bj), built from the
part-of-speech tags of the current and next k words (the structure) and a joint-space
vector u (the content). v enters both the additive term (v·M) and the factor gating (v·Wfv).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numpy.random import RandomState

from uvs.columns import take_columns
from uvs.mnlm import svd_tools
from uvs.mnlm.mlbl import context_acts, init_R, relu, softmax_rows
from uvs.mnlm.mlblf import MLBLF

END_TAG = "<end>"  # the tag of the `<end>` token and of every position after it


class SCNLM(MLBLF):
    """SC-NLM: MLBL-F conditioned on v(structure, content). `D` is the content vector's
    size, `k_structure` the number of future tags (k), `n_tags` the tag vocabulary."""

    PARAMS = {"C": "deltaC", "bw": "deltaB", "M": "deltaM", "bj": "deltaBj",
              "Whf": "deltaWhf", "Wfv": "deltaWfv", "Wfx": "deltaWfx", "Tt": "deltaTt",
              "Ct": "deltaCt", "Cm": "deltaCm"}
    DECAY_R = ("Whf", "Wfv", "Wfx", "Tt")
    DECAY_C = ("C", "M", "Ct", "Cm")
    HYPER = MLBLF.HYPER + ("n_tags", "structure_context")

    def __init__(self, name="scnlm", loc="models/scnlm.npz", seed=1234, dropout=0.0, k=5,
                 V=10364, K=50, D=10, h=3, factors=10, context=5, batchsize=20, maxepoch=10,
                 eta_t=0.2, gamma_r=0.0, gamma_c=0.0, f=0.995, p_i=0.5, p_f=0.5, T=20,
                 verbose=1, n_tags=2, structure_context=3, dtype="float32"):
        super().__init__(name=name, loc=loc, seed=seed, dropout=dropout, k=k, V=V, K=K, D=D,
                         h=h, factors=factors, context=context, batchsize=batchsize,
                         maxepoch=maxepoch, eta_t=eta_t, gamma_r=gamma_r, gamma_c=gamma_c, f=f,
                         p_i=p_i, p_f=p_f, T=T, verbose=verbose, dtype=dtype)
        self.n_tags = n_tags
        self.structure_context = structure_context
        self.tag_dict: dict[str, int] | None = None

    def init_params(self, embed_map=None, count_dict=None) -> None:
        """MLBL-F's draws (R, C, M, SVD of R, Wfv), then Tt, Ct (0.01·randn) and Cm (uniform
        ±sqrt(6)/sqrt(D + h + 1), as J) from the same RandomState(seed)."""
        prng = RandomState(self.seed)
        R = init_R(prng, self.K, self.V, embed_map, count_dict)
        C = 0.01 * prng.randn(self.context, self.K, self.K)
        M = 0.01 * prng.randn(self.h, self.K)
        Wfx, Whf = svd_tools.svd(R, n_components=self.factors, transpose="false")
        Wfv = 0.01 * prng.randn(self.h, self.factors)
        Tt = 0.01 * prng.randn(self.n_tags, self.K)
        Ct = 0.01 * prng.randn(self.structure_context + 1, self.K, self.h)
        r = np.sqrt(6) / np.sqrt(self.D + self.h + 1)
        Cm = prng.rand(self.D, self.h) * 2 * r - r
        values = {"C": C, "bw": np.zeros((1, self.V)), "M": M, "bj": np.zeros((1, self.h)),
                  "Wfx": Wfx, "Whf": Whf, "Wfv": Wfv, "Tt": Tt, "Ct": Ct, "Cm": Cm}
        for p, d in self.PARAMS.items():
            setattr(self, p, values[p])
            setattr(self, d, np.zeros(np.shape(values[p])))

    def conditioning(self, tags, U) -> np.ndarray:
        """v = max(0, Σ_i Tt[tags[:, i]]·Ct[i] + U·Cm + bj) (B, h)."""
        tags = np.asarray(tags)
        S = self.Tt[tags]  # (B, k+1, K)
        v = context_acts(S.transpose(0, 2, 1), self.Ct) + np.dot(
            np.asarray(U, dtype=self.Cm.dtype), self.Cm) + self.bj
        return v * (v > 0)

    def forward(self, X, Im, test=True, tags=None):
        """(words, acts, v, F, preds) for contexts X (B, context), content vectors Im (B, D)
        and tags (B, k + 1) of the current and next k words."""
        if tags is None:
            raise ValueError("the SC-NLM needs the tags of the current and next k words")
        X = np.asarray(X)
        batchsize = X.shape[0]
        v = self.conditioning(tags, Im)
        if self.dropout > 0 and not test:
            v = v * (np.random.rand(batchsize, self.h) > self.dropout)
        words = np.dot(self.Wfx, self.Whf[:, X.reshape(-1)]).reshape(self.K, *X.shape)
        words = np.ascontiguousarray(words.transpose(1, 0, 2))
        scale = (1 - self.dropout) if test else 1
        acts = context_acts(words, self.C) + np.dot(v, self.M * scale)
        F = np.dot(acts, self.Wfx) * np.dot(v, self.Wfv * scale)
        preds = softmax_rows(np.dot(F, self.Whf) + self.bw)
        return (words, acts, v, F, preds)

    def compute_obj(self, X, Im, Y, tags=None) -> float:
        return self.objective(Y, self.forward(X, Im, tags=tags)[-1])

    # --- compiled update ---------------------------------------------------------------
    def _symbols(self) -> dict:
        sym = super()._symbols()
        sym["tags"] = pt.matrix("tags", dtype="int64")
        return sym

    def _inputs(self, X, Im, mask, tags=None) -> list:
        if tags is None:
            raise ValueError("the SC-NLM needs the tags of the current and next k words")
        return super()._inputs(X, Im, mask) + [np.asarray(tags, dtype=np.int64)]

    def _graph(self, s: dict, test: bool = False):
        tp = self._tp
        X, U, tags = s["X"], s["Im"], s["tags"]
        S = tp["Tt"][tags.flatten()].reshape((tags.shape[0], -1))  # (B, (k+1)·K)
        v = S @ tp["Ct"].reshape((-1, self.h)) + U @ tp["Cm"]
        v = relu(v + pt.specify_broadcastable(tp["bj"], 0)) * s["mask"]
        cols = take_columns(tp["Whf"], X.flatten())
        words = (cols @ tp["Wfx"].T).reshape((X.shape[0], -1))
        acts = words @ tp["C"].reshape((-1, self.K)) + v @ tp["M"]
        return self._factored(acts, v, tp), acts


def tag_windows(tags: list[int], n_words: int, k: int, end: int) -> np.ndarray:
    """(n_words + 1, k + 1): for each target position n (the words, then `<end>`), the tags
    of positions n..n+k, `end` past the caption."""
    padded = list(tags) + [end] * (k + 1)
    return np.array([padded[n:n + k + 1] for n in range(n_words + 1)], dtype=np.int64)
