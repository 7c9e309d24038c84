"""Row-wise Ops for the decoders' sampler: each row of a result depends on its own row alone.

A BLAS `sgemm` sums a row's products in an order that depends on how many rows come with it
and where the row sits (tail blocks, thread splits), so the same hypothesis could get a
different float32 score alone than among 5 000. The sampler (`f_init`, `f_next`) multiplies
with `invariant_dot` instead: every element summed in ascending k by fused multiply-adds (one
rounding each), so the batched beam search scores exactly as the one-context-at-a-time
original (`uvs.decoding.search`). `softmax_rows` and `draw_rows` are the sampler's softmax
and inverse-CDF draw, in C (PyTensor's Softmax has no C code). C in `rowwise.c` (beside this
file), rows spread over OpenMP threads; NumPy in `perform` (bit-identical for the product).
`rowwise_graph` puts them in a graph, with vectorized sigmoid and tanh (`fastmath.h`).
`softmax_nll_rows` is the decoders' training loss in one pass per row (`softmax_nll_bias_rows`
with the output layer's bias added in it), `softmax_xent_rows` the log-bilinear models' (dense
label rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.graph.traversal import ancestors, toposort
from pytensor.link.c.op import ExternalCOp
from pytensor.scalar.basic import Tanh
from pytensor.scalar.math import Sigmoid
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.math import Dot

from uvs.cop import OMP_SUPPORT, available, fastmath_header, openmp, support_header

C_FILE = "rowwise.c"  # beside this module; PyTensor keys its compile cache by its hash


def fma32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a·b + c for float32 arrays, rounded once to float32 (IEEE fusedMultiplyAdd).

    a·b is exact in float64 and so is the error of the float64 sum (Knuth's TwoSum); the one
    case where rounding that sum to float32 errs is a sum exactly halfway between two floats
    with a non-zero error, which then decides the side.
    """
    p = a.astype(np.float64) * b
    s = p + c
    v = s - p
    err = (p - (s - v)) + (c - v)
    r = s.astype(np.float32)
    toward = np.nextafter(r, np.where(s > r, np.float32(np.inf), np.float32(-np.inf)))
    half = (r.astype(np.float64) + toward) / 2 == s
    fix = half & (err != 0) & ((err > 0) == (s > r))
    return np.where(fix, toward, r).astype(np.float32)


class _RowwiseOp(ExternalCOp):
    """An Op of `rowwise.c`: `apply` names its C function, called with inputs then &outputs."""

    __props__ = ()
    apply = ""

    def __init__(self) -> None:
        super().__init__(C_FILE)

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<math.h>", "<stdlib.h>", "<string.h>"]

    def c_support_code(self, **kwargs: Any) -> str:
        return (fastmath_header()[0] + support_header(OMP_SUPPORT)[0]
                + super().c_support_code(**kwargs))

    def c_code_cache_version(self) -> tuple:
        return (*super().c_code_cache_version(), fastmath_header()[1],
                support_header(OMP_SUPPORT)[1])

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        # no multiply-add fused but the explicit ones (`perform` is bit for bit); threads where
        # OpenMP builds; -fno-trapping-math lets the branch-free exp loop vectorize
        return ["-ffp-contract=off", "-fno-trapping-math",
                *(["-fopenmp"] if openmp() else [])]

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if ({self.apply}({", ".join([*inp, *(f"&{o}" for o in out)])}) != 0) {{
            {sub["fail"]}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, v, "the sampler's Ops")
                for i, v in enumerate(inputs)]


def _float32_matrix(op: str, *variables) -> list[Variable]:
    variables = [pt.as_tensor_variable(v) for v in variables]
    for v in variables:
        if v.ndim != 2 or v.dtype != "float32":
            raise TypeError(f"{op}: float32 matrices expected, got {v.type}")
    return variables


def _float32_vectors(op: str, *variables, what: str = "a float32 vector") -> list[Variable]:
    variables = [pt.as_tensor_variable(v) for v in variables]
    for v in variables:
        if v.ndim != 1 or v.dtype != "float32":
            raise TypeError(f"{op}: {what} expected, got {v.type}")
    return variables


def _word_vector(op: str, y) -> Variable:
    y = pt.as_tensor_variable(y)
    if y.ndim != 1 or y.dtype != "int64":
        raise TypeError(f"{op}: an int64 vector of words expected, got {y.type}")
    return y


def _checked_words(y: np.ndarray, m: int) -> np.ndarray:
    if len(y) and (y.min() < 0 or y.max() >= m):
        raise IndexError(f"softmax nll: a word outside the {m} columns")
    return y


def _softmax_perform(x: np.ndarray) -> np.ndarray:
    """NumPy's softmax of each row, summed in double as the C does."""
    e = np.exp(x - x.max(axis=1, keepdims=True)) if x.size else x.copy()
    return e / e.sum(axis=1, keepdims=True, dtype=np.float64).astype(np.float32)


class InvariantDot(_RowwiseOp):
    """(x, w) -> x·w for float32 matrices x: (n, k), w: (k, m), summed row-independently."""

    apply = "uvs_invariant_dot_apply"

    def make_node(self, x, w) -> Apply:
        x, w = _float32_matrix("invariant_dot", x, w)
        out = pt.tensor(dtype="float32", shape=(x.type.shape[0], w.type.shape[1]))
        return Apply(self, [x, w], [out])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], shapes[1][1])]

    def perform(self, node, inputs, outputs) -> None:
        x, w = inputs
        if x.shape[1] != w.shape[0]:
            raise ValueError(f"invariant dot: shapes {x.shape} and {w.shape} do not multiply")
        acc = np.zeros((x.shape[0], w.shape[1]), dtype=np.float32)
        for kk in range(x.shape[1]):
            acc = fma32(x[:, kk, None], w[kk], acc)  # as the C does
        outputs[0][0] = acc


class SoftmaxRows(_RowwiseOp):
    """x: (n, m) float32 -> the softmax of each row (exp(x - max), summed in double).

    Differentiable (`SoftmaxRowsGrad`), so that the decoders' training loss uses it too:
    PyTensor's softmax is a graph of separate max, exp, sum and divide passes (its gradient
    three more), slow over a 10 000-word vocabulary.
    """

    apply = "uvs_softmax_apply"

    def pullback(self, inputs, outputs, output_grads):
        return [softmax_rows_grad(outputs[0], output_grads[0])]

    def make_node(self, x) -> Apply:
        (x,) = _float32_matrix("softmax_rows", x)
        return Apply(self, [x], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        outputs[0][0] = _softmax_perform(inputs[0])


class SoftmaxRowsGrad(_RowwiseOp):
    """(p, g): (n, m) float32 -> p ⊙ (g − Σ_row g ⊙ p), the softmax's gradient (sum in double)."""

    apply = "uvs_softmax_grad_apply"

    def make_node(self, p, g) -> Apply:
        p, g = _float32_matrix("softmax_rows_grad", p, g)
        return Apply(self, [p, g], [p.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        p, g = inputs
        dot = (g.astype(np.float64) * p).sum(axis=1, keepdims=True).astype(np.float32)
        outputs[0][0] = p * (g - dot)


class SoftmaxNLLRows(_RowwiseOp):
    """(x: (n, m) float32, y: (n,) int64) -> (n,) float32: −log(softmax(x)[i, y[i]] + 1e-8),
    the decoders' loss, without writing the (n, m) probabilities.

    Each p as `SoftmaxRows` computes it; the gradient (`SoftmaxNLLRowsGrad`) is the one
    `SoftmaxRowsGrad` gives for it, in one pass per row instead of softmax, a dense zero
    gradient of p with one entry per row, and the softmax's gradient over it.
    """

    apply = "uvs_softmax_nll_apply"

    def make_node(self, x, y) -> Apply:
        (x,) = _float32_matrix("softmax_nll_rows", x)
        y = _word_vector("softmax_nll_rows", y)
        return Apply(self, [x, y], [pt.tensor(dtype="float32", shape=(x.type.shape[0],))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],)]

    def connection_pattern(self, node):
        return [[True], [False]]

    def pullback(self, inputs, outputs, output_grads):
        x, y = inputs
        return [softmax_nll_rows_grad(x, y, output_grads[0]), disconnected_type()]

    def perform(self, node, inputs, outputs) -> None:
        x, y = inputs
        p = _softmax_perform(x)[np.arange(len(y)), _checked_words(y, x.shape[1])]
        outputs[0][0] = (-np.log(p + np.float32(1e-8))).astype(np.float32)


class SoftmaxNLLRowsGrad(_RowwiseOp):
    """(x, y, g: (n,) float32) -> (n, m): the gradient of Σ_i g[i] · nll[i] by x."""

    apply = "uvs_softmax_nll_grad_apply"

    def make_node(self, x, y, g) -> Apply:
        (x,) = _float32_matrix("softmax_nll_rows_grad", x)
        y = _word_vector("softmax_nll_rows_grad", y)
        (g,) = _float32_vectors("softmax_nll_rows_grad", g)
        return Apply(self, [x, y, g], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        x, y, g = inputs
        rows = np.arange(len(y))
        p = _softmax_perform(x)
        py = p[rows, _checked_words(y, x.shape[1])]
        gy = -g / (py + np.float32(1e-8))
        dot = (gy.astype(np.float64) * py).astype(np.float32)
        out = p * (np.float32(0) - dot[:, None])
        out[rows, y] = py * (gy - dot)
        outputs[0][0] = out


class SoftmaxNLLBiasRows(_RowwiseOp):
    """(x: (n, m) float32, b: (m,) float32, y: (n,) int64) -> (nll (n,), e (n, m), sum (n,)):
    `SoftmaxNLLRows` of x + b (the output layer's bias added in the pass, as the graph's
    float32 add), keeping e = exp(x + b − max) and each row's sum for the gradient
    (`SoftmaxNLLBiasRowsGrad`), which then needs no exp and also gives the bias's gradient."""

    apply = "uvs_softmax_nll_bias_apply"

    def make_node(self, x, b, y) -> Apply:
        (x,) = _float32_matrix("softmax_nll_bias_rows", x)
        (b,) = _float32_vectors("softmax_nll_bias_rows", b, what="a float32 bias vector")
        y = _word_vector("softmax_nll_bias_rows", y)
        n = x.type.shape[0]
        return Apply(self, [x, b, y], [pt.tensor(dtype="float32", shape=(n,)), x.type(),
                                       pt.tensor(dtype="float32", shape=(n,))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), shapes[0], (shapes[0][0],)]

    def connection_pattern(self, node):
        return [[True, False, False], [True, False, False], [False, False, False]]

    def pullback(self, inputs, outputs, output_grads):
        _, e, total = outputs
        dx, db = softmax_nll_bias_rows_grad(e, total, inputs[2], output_grads[0])
        return [dx, db, disconnected_type()]

    def perform(self, node, inputs, outputs) -> None:
        for o, v in zip(outputs, _nll_bias_perform(*inputs), strict=True):
            o[0] = v


class SoftmaxNLLBiasRowsGrad(_RowwiseOp):
    """(e, sum, y, g: (n,) float32) -> (dx (n, m), db (m,)): the gradient of Σ_i g[i] · nll[i]
    by x, as `SoftmaxNLLRowsGrad` from the kept e and sums, and by the bias, its column sums
    in double (blocks of rows summed, then the blocks: the same for any thread count)."""

    apply = "uvs_softmax_nll_bias_grad_apply"

    def make_node(self, e, total, y, g) -> Apply:
        (e,) = _float32_matrix("softmax_nll_bias_rows_grad", e)
        y = _word_vector("softmax_nll_bias_rows_grad", y)
        total, g = _float32_vectors("softmax_nll_bias_rows_grad", total, g)
        return Apply(self, [e, total, y, g],
                     [e.type(), pt.tensor(dtype="float32", shape=(e.type.shape[1],))])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], (shapes[0][1],)]

    def perform(self, node, inputs, outputs) -> None:
        outputs[0][0], outputs[1][0] = _nll_bias_grad_perform(*inputs)


class SoftmaxNLLBiasRowsFused(_RowwiseOp):
    """(x, b, y, g) -> (nll, dx, db): `SoftmaxNLLBiasRows` and its gradient for row weights g
    known before the loss (the trainer's mask) in one pass per row: each row's e made in its
    row of dx and turned into the gradient while in cache, the same floats as the two Ops.
    Put in by the `uvs_softmax_nll_bias_fused` rewrite, never by a model."""

    apply = "uvs_softmax_nll_bias_fused_apply"

    def make_node(self, x, b, y, g) -> Apply:
        (x,) = _float32_matrix("softmax_nll_bias_fused", x)
        (b,) = _float32_vectors("softmax_nll_bias_fused", b, what="a float32 bias vector")
        y = _word_vector("softmax_nll_bias_fused", y)
        (g,) = _float32_vectors("softmax_nll_bias_fused", g)
        n, m = x.type.shape
        return Apply(self, [x, b, y, g], [pt.tensor(dtype="float32", shape=(n,)), x.type(),
                                          pt.tensor(dtype="float32", shape=(m,))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), shapes[0], (shapes[0][1],)]

    def perform(self, node, inputs, outputs) -> None:
        x, b, y, g = inputs
        if g.shape != x.shape[:1]:
            raise ValueError(f"softmax nll: {x.shape} scores, {g.shape} weights")
        nll, e, total = _nll_bias_perform(x, b, y)
        outputs[0][0] = nll
        outputs[1][0], outputs[2][0] = _nll_bias_grad_perform(e, total, y, g)


def _nll_bias_perform(x: np.ndarray, b: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """`SoftmaxNLLBiasRows` in NumPy: (nll, e, sums)."""
    if b.shape != x.shape[1:] or y.shape != x.shape[:1]:
        raise ValueError(f"softmax nll: {x.shape} scores, {y.shape} words, {b.shape} biases")
    z = x + b
    top = z.max(axis=1, keepdims=True) if z.shape[1] else np.zeros((len(z), 1), np.float32)
    e = np.exp(z - top)
    total = e.sum(axis=1, dtype=np.float64).astype(np.float32)
    p = e[np.arange(len(y)), _checked_words(y, x.shape[1])] / total
    return (-np.log(p + np.float32(1e-8))).astype(np.float32), e, total


def _nll_bias_grad_perform(e: np.ndarray, total: np.ndarray, y: np.ndarray,
                           g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`SoftmaxNLLBiasRowsGrad` in NumPy: (dx, db)."""
    rows = np.arange(len(y))
    p = e / total[:, None]
    py = p[rows, _checked_words(y, e.shape[1])]
    gy = -g / (py + np.float32(1e-8))
    dot = (gy.astype(np.float64) * py).astype(np.float32)
    dx = p * (np.float32(0) - dot[:, None])
    dx[rows, y] = py * (gy - dot)
    return dx, dx.sum(axis=0, dtype=np.float64).astype(np.float32)


def _weights_before(loss: Apply, g: Variable) -> bool:
    """Whether a gradient's row weights g can be computed before the node `loss`: none of
    its outputs is among g's ancestors."""
    return not any(v.owner is loss for v in ancestors([g], blockers=loss.inputs))


@node_rewriter([SoftmaxNLLBiasRowsGrad])
def local_softmax_nll_bias_fused(fgraph, node):
    """The loss and its gradient in one Op when the gradient's row weights do not depend on
    the loss (they are the mask in every trainer) and nothing else reads the kept e."""
    e, total, y, g = node.inputs
    loss = e.owner
    if (loss is None or not isinstance(loss.op, SoftmaxNLLBiasRows) or total.owner is not loss
            or y is not loss.inputs[2]
            or any(client is not node for v in (e, total) for client, _ in fgraph.clients[v])
            or not _weights_before(loss, g)):
        return None
    nll, dx, db = SoftmaxNLLBiasRowsFused()(*loss.inputs, g)
    return {loss.outputs[0]: nll, node.outputs[0]: dx, node.outputs[1]: db}


optdb.register("uvs_softmax_nll_bias_fused", in2out(local_softmax_nll_bias_fused), "fast_run",
               "cxx_only", position=48.2)


def _softmax_xent_perform(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.shape != y.shape:
        raise ValueError(f"softmax cross-entropy: scores {x.shape}, labels {y.shape}")
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, dtype=np.float64).astype(np.float32)
    logp = np.log(e / s[:, None] + np.float32(1e-20))
    y64 = y.astype(np.float64)
    cost = np.log(s) - (y64 * z).sum(axis=1).astype(np.float32)
    obj = -(y64 * np.where(y != 0, logp, 0)).sum(axis=1).astype(np.float32)
    return cost.astype(np.float32), obj


class SoftmaxXentRows(_RowwiseOp):
    """(x, y: (n, m) float32) -> (cost, obj): (n,) float32 each, p = softmax(x) per row,
    z = x − max: cost = log Σ exp(z) − Σ y·z (its gradient by x is p − y) and the original's
    objective obj = −Σ y·log(p + 1e-20), both summed over the labelled columns, in one pass
    per row without writing p. The log-bilinear models' loss (`uvs.mnlm.lbl`)."""

    apply = "uvs_softmax_xent_apply"

    def make_node(self, x, y) -> Apply:
        x, y = _float32_matrix("softmax_xent_rows", x, y)
        n = x.type.shape[0]
        return Apply(self, [x, y], [pt.tensor(dtype="float32", shape=(n,)),
                                    pt.tensor(dtype="float32", shape=(n,))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), (shapes[0][0],)]

    def connection_pattern(self, node):
        return [[True, False], [False, False]]

    def pullback(self, inputs, outputs, output_grads):
        x, y = inputs
        return [softmax_xent_rows_grad(x, y, output_grads[0]), disconnected_type()]

    def perform(self, node, inputs, outputs) -> None:
        cost, obj = _softmax_xent_perform(*inputs)
        outputs[0][0], outputs[1][0] = cost, obj


class SoftmaxXentRowsGrad(_RowwiseOp):
    """(x, y, g: (n,) float32) -> (n, m): the gradient of Σ_i g[i] · cost[i] by x, g·(p − y)."""

    apply = "uvs_softmax_xent_grad_apply"

    def make_node(self, x, y, g) -> Apply:
        x, y = _float32_matrix("softmax_xent_rows_grad", x, y)
        (g,) = _float32_vectors("softmax_xent_rows_grad", g)
        return Apply(self, [x, y, g], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        outputs[0][0] = _softmax_xent_grad_perform(*inputs)


def _softmax_xent_grad_perform(x: np.ndarray, y: np.ndarray, g: np.ndarray) -> np.ndarray:
    if x.shape != y.shape or g.shape != x.shape[:1]:
        raise ValueError(f"softmax cross-entropy gradient: scores {x.shape}, labels "
                         f"{y.shape}, weights {g.shape}")
    e = np.exp(x - x.max(axis=1, keepdims=True))
    s = e.sum(axis=1, dtype=np.float64).astype(np.float32)
    return g[:, None] * (e / s[:, None] - y)


class SoftmaxXentRowsFused(_RowwiseOp):
    """(x, y, g) -> (cost, obj, dx): `SoftmaxXentRows` and its gradient for row weights g
    known before the loss, in one pass per row (the exponentials made once, in dx's row): the
    same floats as the two Ops. Put in by the `uvs_softmax_xent_fused` rewrite."""

    apply = "uvs_softmax_xent_fused_apply"

    def make_node(self, x, y, g) -> Apply:
        x, y = _float32_matrix("softmax_xent_rows_fused", x, y)
        (g,) = _float32_vectors("softmax_xent_rows_fused", g)
        n = x.type.shape[0]
        return Apply(self, [x, y, g], [pt.tensor(dtype="float32", shape=(n,)),
                                       pt.tensor(dtype="float32", shape=(n,)), x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), (shapes[0][0],), shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        x, y, g = inputs
        outputs[0][0], outputs[1][0] = _softmax_xent_perform(x, y)
        outputs[2][0] = _softmax_xent_grad_perform(x, y, g)


@node_rewriter([SoftmaxXentRowsGrad])
def local_softmax_xent_fused(fgraph, node):
    """The log-bilinear loss and its gradient in one Op when the gradient's row weights do
    not depend on the loss and the loss of the same scores and labels is in the graph."""
    x, y, g = node.inputs
    loss = next((c for c, _ in fgraph.clients[x] if isinstance(c.op, SoftmaxXentRows)
                 and c.inputs[1] is y), None)
    if loss is None or not _weights_before(loss, g):
        return None
    cost, obj, dx = SoftmaxXentRowsFused()(x, y, g)
    return {loss.outputs[0]: cost, loss.outputs[1]: obj, node.outputs[0]: dx}


optdb.register("uvs_softmax_xent_fused", in2out(local_softmax_xent_fused), "fast_run",
               "cxx_only", position=48.2)


class DrawRows(_RowwiseOp):
    """(p: (n, m) float32, u: (n,) float32) -> (n,) int64: per row the first j whose running
    float32 sum of p reaches u (m − 1 if none), i.e. how many running sums are below u."""

    apply = "uvs_draw_apply"

    def make_node(self, p, u) -> Apply:
        (p,) = _float32_matrix("draw_rows", p)
        u = pt.as_tensor_variable(u)
        if u.ndim != 1 or u.dtype != "float32":
            raise TypeError(f"draw_rows: a float32 vector of uniforms expected, got {u.type}")
        return Apply(self, [p, u], [pt.tensor(dtype="int64", shape=(p.type.shape[0],))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],)]

    def perform(self, node, inputs, outputs) -> None:
        p, u = inputs
        if len(u) != len(p):
            raise ValueError(f"row draw: {len(p)} rows of probabilities, {len(u)} uniforms")
        below = (np.cumsum(p, axis=1, dtype=np.float32) < u[:, None]).sum(axis=1)
        outputs[0][0] = np.minimum(below, max(p.shape[1] - 1, 0)).astype(np.int64)


class FastUnary(_RowwiseOp):
    """x (any shape) float32 -> sigmoid(x) or tanh(x) by fastmath.h's vectorized float math
    (Cephes' exp polynomial, ~1 ulp; tanh near 0 a polynomial, absolute error < 1e-7)."""

    __props__ = ("fn",)

    def __init__(self, fn: str) -> None:
        if fn not in ("sigmoid", "tanh"):
            raise ValueError(f"FastUnary: sigmoid or tanh, not {fn!r}")
        self.fn = fn
        self.apply = f"uvs_{fn}_apply"
        super().__init__()

    def make_node(self, x) -> Apply:
        x = pt.as_tensor_variable(x)
        if x.dtype != "float32":
            raise TypeError(f"fast {self.fn}: float32 expected, got {x.type}")
        return Apply(self, [x], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        (x,) = inputs
        one = np.float32(1)
        outputs[0][0] = (one / (one + np.exp(-x)) if self.fn == "sigmoid" else np.tanh(x)
                         ).astype(np.float32)


class BeamCandidates(_RowwiseOp):
    """(p: (n, m) float32, keep: (n,) int64, skip, margin, width) -> (idx: (n, width) int64,
    count: (n,) int64): per row the columns other than `skip` whose p is at least (1 − margin)
    times the row's keep-th largest, unused slots −1; count = −1 where the row has fewer
    than keep positive values besides `skip`, or keep > width."""

    apply = "uvs_top_apply"

    def make_node(self, p, keep, skip, margin, width) -> Apply:
        (p,) = _float32_matrix("beam_candidates", p)
        keep = pt.as_tensor_variable(keep)
        skip, width = (pt.as_tensor_variable(v).astype("int64") for v in (skip, width))
        margin = pt.as_tensor_variable(margin).astype("float32")
        if keep.ndim != 1 or keep.dtype != "int64" or skip.ndim or margin.ndim or width.ndim:
            raise TypeError("beam_candidates: keep an int64 vector; skip, margin, width scalars")
        outs = [pt.tensor(dtype="int64", shape=(p.type.shape[0], None)),
                pt.tensor(dtype="int64", shape=(p.type.shape[0],))]
        return Apply(self, [p, keep, skip, margin, width], outs)

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], node.inputs[4]), (shapes[0][0],)]

    def perform(self, node, inputs, outputs) -> None:
        p, keep, skip, margin, width = inputs
        n, m = p.shape
        if len(keep) != n or not 1 <= width <= 64:
            raise ValueError("beam candidates: one keep per row, width 1..64")
        idx = np.full((n, int(width)), -1, dtype=np.int64)
        count = np.full(n, -1, dtype=np.int64)
        for i in range(n):
            q = int(keep[i])
            valid = (p[i] > 0) & (np.arange(m) != skip)
            if not 1 <= q <= width or valid.sum() < q:
                continue
            top = np.sort(p[i][valid])[-q]
            cols = np.flatnonzero(valid & (p[i] >= top * (np.float32(1) - margin)))
            idx[i, :min(len(cols), width)] = cols[:width]
            count[i] = len(cols)
        outputs[0][0], outputs[1][0] = idx, count


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    _RowwiseOp.L_op = _RowwiseOp.pullback

invariant_dot = InvariantDot()
softmax_rows = SoftmaxRows()
softmax_rows_grad = SoftmaxRowsGrad()
softmax_nll_rows = SoftmaxNLLRows()
softmax_nll_rows_grad = SoftmaxNLLRowsGrad()
softmax_xent_rows = SoftmaxXentRows()
softmax_nll_bias_rows = SoftmaxNLLBiasRows()
softmax_nll_bias_rows_grad = SoftmaxNLLBiasRowsGrad()
softmax_xent_rows_grad = SoftmaxXentRowsGrad()
draw_rows = DrawRows()
beam_candidates = BeamCandidates()
fast_sigmoid = FastUnary("sigmoid")
fast_tanh = FastUnary("tanh")
_FAST = {Sigmoid: fast_sigmoid, Tanh: fast_tanh}


def softmax(x: Variable, mode: str | None = None) -> Variable:
    """The softmax of each row of x: (n, m) float32, `softmax_rows` where `available(mode)`."""
    return softmax_rows(x) if available(mode) else pt.special.softmax(x, axis=-1)


def softmax_nll(x: Variable, y: Variable, mode: str | None = None) -> Variable:
    """−log(softmax(x)[i, y[i]] + 1e-8) per row, x: (n, m) float32, y: (n,) int64:
    `softmax_nll_rows` where `available(mode)`."""
    if available(mode):
        return softmax_nll_rows(x, y)
    p = pt.special.softmax(x, axis=-1).flatten()
    return -pt.log(p[pt.arange(y.shape[0]) * x.shape[1] + y] + 1e-8)


def softmax_nll_bias(x: Variable, b: Variable, y: Variable, mode: str | None = None) -> Variable:
    """`softmax_nll` of x + b, x: (n, m) float32, b: (m,): `softmax_nll_bias_rows` (the bias
    added in the loss's pass, its gradient in the gradient's) where `available(mode)`."""
    if available(mode) and x.dtype == b.dtype == "float32":
        return softmax_nll_bias_rows(x, b, y)[0]
    return softmax_nll(x + b, y, mode)


def rowwise_graph(outputs: list[Variable]) -> list[Variable]:
    """outputs, rebuilt with this module's Ops: every float32 matrix·matrix `Dot` of their
    graph batch-invariant, every float32 sigmoid and tanh vectorized."""
    new: dict[Variable, Variable] = {}
    for node in toposort(outputs):
        inputs = [new.get(v, v) for v in node.inputs]
        float32 = all(v.dtype == "float32" for v in inputs)
        fast = _FAST.get(type(getattr(node.op, "scalar_op", None))) if float32 else None
        if isinstance(node.op, Dot) and float32 and all(v.ndim == 2 for v in inputs):
            new[node.outputs[0]] = invariant_dot(*inputs)
        elif isinstance(node.op, Elemwise) and fast is not None:
            new[node.outputs[0]] = fast(*inputs)
        elif any(a is not b for a, b in zip(inputs, node.inputs, strict=True)):
            new.update(zip(node.outputs, node.clone_with_new_inputs(inputs).outputs, strict=True))
    return [new.get(v, v) for v in outputs]
