"""The bag-of-words sentence encoder as two C Ops: the masked sum of word vectors, and its
gradient added into the embedding table.

The original's graph gathers every word's vector into a (T, B, d) array, multiplies it by
the mask, sums over time; its gradient multiplies the broadcast sentence gradient by the mask
again and adds the (T·B, d) products into the table: four passes over (T, B, d) arrays and a
gather (4.7 ms of a 30 ms bag-of-words update at paper sizes). `BagOfWords` reads each word's
row once (C in `bag_of_words.c`, beside this file; sentences over OpenMP threads), with the
same float32 products summed in double as PyTensor's `Sum` does; `BagOfWordsGrad` adds the
same float32 products in the same order as `uvs.inc_rows.IncRows`, so both are bit for bit
the graph's. NumPy in `perform` where C is not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter

from uvs.cop import OpenMPCOp, available

C_FILE = "bag_of_words.c"  # beside this module; PyTensor keys its compile cache by its hash


class _BowOp(OpenMPCOp):
    c_file = C_FILE

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        # no multiply-add fused: the products round to float as the graph's Mul node does
        return [*super().c_compile_args(**kwargs), "-ffp-contract=off"]


def _check(x, mask) -> tuple[Variable, Variable]:
    x, mask = pt.as_tensor_variable(x), pt.as_tensor_variable(mask)
    if (x.ndim, x.dtype, mask.ndim, mask.dtype) != (2, "int64", 2, "float32"):
        raise TypeError("bag of words: (T, B) int64 words and a (T, B) float32 mask")
    return x, mask


def _rows(x: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    if x.shape != mask.shape:
        raise ValueError(f"bag of words: words {x.shape}, mask {mask.shape}")
    if x.size and (x.min() < -n or x.max() >= n):
        raise IndexError(f"a word index is out of bounds for axis 0 with size {n}")
    return np.where(x < 0, x + n, x)


class BagOfWords(_BowOp):
    """(W (V, d) float32, x (T, B) int64, mask (T, B) float32) -> (B, d): Σ_t W[x[t, b]] ·
    mask[t, b], each product in float32, summed over t in double, rounded once."""

    __props__ = ()

    def make_node(self, W, x, mask) -> Apply:
        W = pt.as_tensor_variable(W)
        if W.ndim != 2 or W.dtype != "float32":
            raise TypeError("bag of words: a float32 (words, dim) table")
        x, mask = _check(x, mask)
        return Apply(self, [W, x, mask], [pt.tensor(dtype="float32",
                                                    shape=(x.type.shape[1], W.type.shape[1]))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[1][1], shapes[0][1])]

    def connection_pattern(self, node):
        return [[True], [False], [True]]

    def pullback(self, inputs, outputs, output_grads):
        W, x, mask = inputs
        return [BagOfWordsGrad()(pt.zeros_like(W), output_grads[0], x, mask),
                disconnected_type(),
                grad_not_implemented(self, 2, mask, "the mask's gradient")]

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_bow_apply({", ".join(inp)}, &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        W, x, mask = inputs
        rows = _rows(x, mask, len(W))
        products = W[rows] * mask[:, :, None]
        outputs[0][0] = products.sum(axis=0, dtype=np.float64).astype(np.float32)


class BagOfWordsGrad(_BowOp):
    """(table (V, d), g (B, d), x (T, B), mask (T, B)) -> table with table[x[t, b]] +=
    g[b] · mask[t, b] for each (t, b) in t-major order (np.add.at's order); float32. Adds into
    its first input (`adds_into_first_input`: `uvs.inc_rows.ZeroIntoUpdate` gives it the last
    gradient to add into), where it lies once inplace."""

    __props__ = ("inplace",)
    adds_into_first_input = True
    index_input = 2  # the int64 rows it adds at (`uvs.row_grads`: positions in a compact table)

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = bool(inplace)
        if inplace:
            self.destroy_map = {0: [0]}
        super().__init__()

    def make_node(self, table, g, x, mask) -> Apply:
        table, g = pt.as_tensor_variable(table), pt.as_tensor_variable(g)
        if (table.ndim, table.dtype, g.ndim, g.dtype) != (2, "float32", 2, "float32"):
            raise TypeError("bag of words gradient: a float32 table and float32 rows")
        x, mask = _check(x, mask)
        return Apply(self, [table, g, x, mask], [table.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    @staticmethod
    def touched_rows(node: Apply) -> Variable:
        """The indices of the rows the node adds into: every word (`SparseTableRows`)."""
        return node.inputs[2].flatten()

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_bow_grad_apply({", ".join(inp)}, &{out[0]}, {int(self.inplace)}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        table, g, x, mask = inputs
        rows = _rows(x, mask, len(table))
        if g.shape != (x.shape[1], table.shape[1]):
            raise ValueError(f"bag of words gradient: rows {g.shape} for words {x.shape} and a "
                             f"table {table.shape}")
        out = table if self.inplace else table.copy()
        np.add.at(out, rows.ravel(), (g[None, :, :] * mask[:, :, None]).reshape(-1, g.shape[1]))
        outputs[0][0] = out


@node_rewriter([BagOfWordsGrad], inplace=True)
def local_bow_grad_inplace(fgraph, node):
    """The gradient added into the table where it lies."""
    if node.op.inplace:
        return False
    return [BagOfWordsGrad(inplace=True)(*node.inputs)]


optdb.register("uvs_bow_grad_inplace",
               WalkingGraphRewriter(local_bow_grad_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", position=60)


def bag_of_words(W: Variable, x: Variable, mask: Variable, mode: Any = None) -> Variable | None:
    """Σ_t W[x[t]] · mask[t]: (B, d), as `BagOfWords`; None where it cannot run (not float32,
    or compiled for JAX: `mode`, else uvs's default)."""
    if not available(mode) or W.dtype != "float32" or mask.dtype != "float32":
        return None
    return BagOfWords()(W, x, mask)
