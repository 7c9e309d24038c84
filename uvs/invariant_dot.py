"""A batch-invariant matrix product, for graphs whose rows must not see each other.

A BLAS `sgemm` sums a row's products in an order that depends on how many rows come with it
and where the row sits (tail blocks, thread splits), so the same hypothesis can get a
different float32 score alone than among 5 000. The decoders' sampler (`f_init`, `f_next`)
multiplies with `invariant_dot` instead: every element is summed in ascending k, one rounding
per product and one per sum, so each row of the result depends on that row alone, and the
batched beam search scores exactly as the one-context-at-a-time original
(`uvs.decoding.search`). C in `invariant_dot.c` (beside this file); NumPy, bit-identical, in
`perform`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import grad_not_implemented
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op
from pytensor.graph.traversal import toposort
from pytensor.link.c.op import ExternalCOp
from pytensor.tensor.math import Dot

C_FILE = "invariant_dot.c"  # beside this module; PyTensor keys its compile cache by its hash


@functools.cache
def _openmp() -> bool:
    """Whether PyTensor's C compiler builds with OpenMP."""
    from pytensor.link.c.cmodule import GCC_compiler

    return bool(GCC_compiler.try_flags(["-fopenmp"]))


class InvariantDot(ExternalCOp):
    """(x, w) -> x·w for float32 matrices x: (n, k), w: (k, m), summed row-independently."""

    __props__ = ()

    def __init__(self) -> None:
        super().__init__(C_FILE)

    def make_node(self, x, w) -> Apply:
        x, w = pt.as_tensor_variable(x), pt.as_tensor_variable(w)
        if x.ndim != 2 or w.ndim != 2 or x.dtype != "float32" or w.dtype != "float32":
            raise TypeError(f"invariant_dot: float32 matrices expected, got {x.type} and {w.type}")
        return Apply(self, [x, w], [pt.tensor(dtype="float32", shape=(x.type.shape[0],
                                                                      w.type.shape[1]))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], shapes[1][1])]

    def perform(self, node, inputs, outputs) -> None:
        x, w = inputs
        if x.shape[1] != w.shape[0]:
            raise ValueError(f"invariant dot: shapes {x.shape} and {w.shape} do not multiply")
        acc = np.zeros((x.shape[0], w.shape[1]), dtype=np.float32)
        for kk in range(x.shape[1]):
            acc += x[:, kk, None] * w[kk]  # the product rounds, then the sum: as the C does
        outputs[0][0] = acc

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<string.h>"]

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        # no fused multiply-add (NumPy's rounding, bit for bit); threads where OpenMP builds
        return ["-ffp-contract=off", *(["-fopenmp"] if _openmp() else [])]

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_invariant_dot_apply({inp[0]}, {inp[1]}, &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, v, "the sampler's product")
                for i, v in enumerate(inputs)]


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    InvariantDot.L_op = InvariantDot.pullback

invariant_dot = InvariantDot()


def batch_invariant(outputs: list[Variable]) -> list[Variable]:
    """outputs, rebuilt with every float32 matrix·matrix `Dot` of their graph batch-invariant."""
    new: dict[Variable, Variable] = {}
    for node in toposort(outputs):
        inputs = [new.get(v, v) for v in node.inputs]
        if isinstance(node.op, Dot) and all(v.ndim == 2 and v.dtype == "float32" for v in inputs):
            new[node.outputs[0]] = invariant_dot(*inputs)
        elif any(a is not b for a, b in zip(inputs, node.inputs, strict=True)):
            new.update(zip(node.outputs, node.clone_with_new_inputs(inputs).outputs, strict=True))
    return [new.get(v, v) for v in outputs]
