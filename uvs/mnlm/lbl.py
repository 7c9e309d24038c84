"""What MLBL, MLBL-F and the SC-NLM share: hyper-parameter schedules with Python 2's
arithmetic, parameters held in PyTensor shared variables (read and set as NumPy attributes,
as the original's), the compiled SGD-with-momentum update and the original's `train` loop.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
from numpy.random import RandomState

from uvs import backend
from uvs.cop import available
from uvs.momentum_op import momentum_step
from uvs.rowwise import softmax_xent_rows


def py2div(a: float, b: float) -> float:
    """`a / b` as Python 2 computed it: floor division when both are integers."""
    if isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        return a // b
    return a / b


def momentum(n: float, T: float, p_i: float, p_f: float) -> float:
    """`(1 - n/T)·p_i + (n/T)·p_f` with Python 2's division: an int T gives p_i until n == T."""
    r = py2div(n, T)
    return (1 - r) * p_i + r * p_f


def to_dense(Y, V: int) -> np.ndarray:
    """Label rows (B, V): a SciPy sparse matrix (the original's) or an array, as a dense array."""
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.ndim != 2 or Y.shape[1] != V:
        raise ValueError(f"labels Y must be (batch, {V}), got {Y.shape}")
    return Y


def _shared_attr(name: str) -> property:
    def get(self):
        return self._tp[name].get_value(borrow=True)

    def put(self, value):
        value = np.array(value, dtype=self.dtype)
        if name in self._tp:
            self._tp[name].set_value(value, borrow=True)
        else:
            self._tp[name] = pytensor.shared(value, name=name)

    return property(get, put, doc=f"`{name}`, a NumPy view of the shared variable")


class LBL:
    """Base of the log-bilinear models. Subclasses name `PARAMS` (parameter -> its momentum
    buffer, in the original's order), `DECAY_R` and `DECAY_C` and build `_graph`."""

    PARAMS: dict[str, str] = {}
    DECAY_R: tuple[str, ...] = ()
    DECAY_C: tuple[str, ...] = ()
    dtype = "float32"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for p, d in cls.PARAMS.items():
            setattr(cls, p, _shared_attr(p))
            setattr(cls, d, _shared_attr(d))

    def _setup(self, dtype: str, T: float, p_i: float, p_f: float) -> None:
        self._tp: dict[str, pytensor.compile.SharedVariable] = {}
        self._fns: dict = {}
        self.dtype = dtype
        self.step = 0
        self.p_t = momentum(1, T, p_i, p_f)

    # --- schedules -----------------------------------------------------------------------
    def update_hyperparams(self) -> None:
        """Learning rate times f; momentum on its schedule (the caller increments `step`)."""
        self.eta_t *= self.f
        if self.step < self.T:
            self.p_t = momentum(self.step + 1, self.T, self.p_i, self.p_f)
        else:
            self.p_t = self.p_f

    # --- objective -----------------------------------------------------------------------
    def objective(self, Y, preds: np.ndarray) -> float:
        """Mean cross-entropy `-Σ Y·log(preds + 1e-20) / B`."""
        Y = to_dense(Y, preds.shape[1])
        return float(-np.sum(Y * np.log(preds + 1e-20)) / Y.shape[0])

    def compute_obj(self, X, Im, Y) -> float:
        """Forward pass (test mode) and the objective."""
        preds = self.forward(X, Im)[-1]
        return self.objective(Y, preds)

    # --- the compiled update -------------------------------------------------------------
    def _symbols(self) -> dict:
        """The graph's inputs other than the parameters (subclasses may add to them)."""
        f = self.dtype
        return {"X": pt.matrix("X", dtype="int64"), "Im": pt.matrix("Im", dtype=f),
                "mask": pt.matrix("mask", dtype=f)}

    def _inputs(self, X, Im, mask) -> list:
        return [np.asarray(X, dtype=np.int64), np.asarray(Im, dtype=self.dtype), mask]

    def _dropmask(self, batchsize: int, width: int) -> np.ndarray:
        """The original's training mask (`np.random`, not rescaled); ones without dropout."""
        if self.dropout > 0:
            rng = getattr(self, "mask_rng", None) or np.random
            return (rng.rand(batchsize, width) > self.dropout).astype(self.dtype)
        return np.ones((batchsize, width), dtype=self.dtype)

    def _compile_step(self):
        f = self.dtype
        sym = self._symbols()
        Y = pt.matrix("Y", dtype=f)
        lr = pt.scalar("lr", dtype=f)  # (1 - p_t) * eta_t / B
        p_t = pt.scalar("p_t", dtype=f)
        z, acts = self._graph(sym, test=False)
        B = pt.cast(z.shape[0], f)
        # d/dz of (logsumexp(z) - Y·z) / B is exactly the original's (preds - Y) / B
        if f == "float32" and available():  # one C pass per row for both (uvs.rowwise)
            cost_rows, obj_rows = softmax_xent_rows(z, Y)
            cost, obj = cost_rows.sum() / B, obj_rows.sum() / B
        else:
            zs = z - pytensor.gradient.disconnected_grad(z.max(axis=1, keepdims=True))
            lse = pt.log(pt.exp(zs).sum(axis=1))
            cost = (lse.sum() - (Y * zs).sum()) / B
            preds = pt.exp(zs - lse[:, None])
            obj = -(Y * pt.log(preds + np.asarray(1e-20, dtype=f))).sum() / B
        names = list(self.PARAMS)
        grads = pytensor.grad(cost, [self._tp[n] for n in names])
        updates = []
        for n, g in zip(names, grads, strict=True):
            param, delta = self._tp[n], self._tp[self.PARAMS[n]]
            decay = self.gamma_r if n in self.DECAY_R else \
                self.gamma_c if n in self.DECAY_C else 0.0
            fused = momentum_step(param, g, delta, lr, p_t, decay)  # the same, in one pass
            if fused is not None:
                new_param, new_delta = fused
            else:
                if decay:
                    g = g + np.asarray(decay, dtype=f) * param
                new_delta = p_t * delta - lr * g.reshape(param.shape)
                new_param = param + new_delta
            updates += [(delta, new_delta), (param, new_param)]
        nan = pt.isnan(acts).any()
        ins = list(sym.values()) + [Y, lr, p_t]
        return backend.function(ins, [obj, nan], updates=updates)

    def compile(self):
        """The compiled update (made once): inputs, labels, lr and p_t in; objective and
        NaN flag out; parameters and momentum buffers updated in place."""
        if "step" not in self._fns:
            self._fns["step"] = self._compile_step()
        return self._fns["step"]

    def train_step(self, X, Im, Y, **extra) -> tuple[float, bool]:
        """One update: the original's `forward(test=False)`, `backward`, `update_params`.

        Y: one-hot rows (B, V), SciPy sparse or dense. `extra`: the SC-NLM's `tags`.
        Returns (objective before the update, whether `acts` held a NaN).
        """
        step = self.compile()
        X = np.asarray(X)
        B = X.shape[0]
        Y = self._dense_labels(Y)
        mask = self._dropmask(B, self._mask_width())
        lr = (1 - self.p_t) * (self.eta_t / B)
        obj, nan = step(*self._inputs(X, Im, mask, **extra), Y, lr, self.p_t)
        return float(obj), bool(nan)

    def _mask_width(self) -> int:
        return self.h

    def _dense_labels(self, Y) -> np.ndarray:
        """Y (B, V) in the model's dtype, as `to_dense` gives it. A SciPy CSR matrix in
        canonical form (no repeated entries) is written straight into a (B, V) buffer kept
        between updates, its last entries zeroed: no float64 table made and cast each update
        (a twentieth of an MLBL update)."""
        if getattr(Y, "format", None) != "csr" or Y.shape[1] != self.V \
                or not Y.has_canonical_format:
            return to_dense(Y, self.V).astype(self.dtype, copy=False)
        buf, last = getattr(self, "_labels", (None, None))
        if buf is None or buf.shape != Y.shape:
            buf = np.zeros(Y.shape, dtype=self.dtype)
        else:
            buf[last] = 0
        at = (np.repeat(np.arange(Y.shape[0]), np.diff(Y.indptr)), Y.indices)
        buf[at] = Y.data.astype(self.dtype)
        self._labels = (buf, at)
        return buf

    # --- the original's training loop ----------------------------------------------------
    def train(self, X, indX, XY, V, indV, VY, IM, VIM, count_dict, word_dict, embed_map,
              prog: dict, bleu=None) -> float:
        """The original's `train`: SGD over `inds[minibatch::numbatches]` batches of a shuffled
        order (RandomState(seed + epoch + 1)), schedules every `prog['_update']` points and
        at each epoch's end. `bleu(net) -> [b1..b4]` replaces the Perl script; the model is
        saved (`lm_tools.save_model`) when BLEU-4 does not drop, patience 10."""
        from uvs.mnlm import lm_tools

        self.start = self.seed
        self.init_params(embed_map, count_dict)
        self.step = 0
        inds = np.arange(len(X))
        numbatches = len(inds) // self.batchsize
        tic = time.time()
        best, count, done, patience = 0.0, 0, False, 10
        scores = "/".join(str(b) for b in [0.0] * 4)
        for epoch in range(self.maxepoch):
            if done:
                break
            self.epoch = epoch
            RandomState(self.seed + epoch + 1).shuffle(inds)
            for minibatch in range(numbatches):
                rows = inds[minibatch::numbatches]
                batchindX = np.floor(indX[rows].astype(int).flatten() / 5).astype(int)
                _, nan = self.train_step(X[rows], IM[batchindX], XY[rows])
                if nan:
                    print("NaNs... breaking out", file=sys.stderr)
                    done = True
                    break
                pts = minibatch * self.batchsize
                if minibatch > 0 and pts % prog["_details"] == 0 and self.verbose:
                    print(f"epoch: {epoch}, pts: {pts}, time: {(time.time() - tic) / 60:.2f}",
                          file=sys.stderr)
                if minibatch > 0 and pts % prog["_samples"] == 0 and self.verbose:
                    print(f"best: {scores}", file=sys.stderr)
                    for i in range(min(5, len(VIM))):
                        cap = lm_tools.beam_search(self, word_dict, count_dict, 50, VIM[i], k=3)
                        print(" ".join(cap[0]), file=sys.stderr)
                if minibatch > 0 and pts % prog["_update"] == 0:
                    self.update_hyperparams()
                    self.step += 1
                if minibatch > 0 and pts % prog["_bleu"] == 0 and bleu is not None:
                    b = bleu(self)
                    if b[-1] >= best:
                        count, best = 0, b[-1]
                        scores = "/".join(str(x) for x in b)
                        lm_tools.save_model(self, self.loc)
                    else:
                        count += 1
                        if count == patience:
                            done = True
                            break
            self.update_hyperparams()
            self.step += 1
        return best

    # --- what a saved model holds --------------------------------------------------------
    HYPER = ("name", "loc", "seed", "dropout", "k", "V", "K", "D", "h", "context",
             "batchsize", "maxepoch", "gamma_r", "gamma_c", "f", "p_i", "p_f", "T", "verbose")
    STATE = ("eta_t", "p_t", "step")

    def arrays(self) -> dict[str, np.ndarray]:
        """Parameters and momentum buffers by their original names."""
        out = {}
        for p, d in self.PARAMS.items():
            out[p] = getattr(self, p)
            out[d] = getattr(self, d)
        return out
