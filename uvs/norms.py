"""The squared norm of many tensors as one Op: Σ over all of their elements of x², in double.

Gradient clipping needs |g|² over every parameter's gradient. PyTensor computes each
tensor's sum of squares as its own reduction, one thread, one compiled module per rank;
`squared_norm` reads each tensor once in vector lanes over OpenMP threads (C in `norms.c`,
beside this file; NumPy in `perform` where C is not used) and rounds the double sum once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Variable

from uvs.cop import OpenMPCOp, available

C_FILE = "norms.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class SquaredNorm(OpenMPCOp):
    """(*xs: float32 tensors) -> float32 scalar Σ x² over every element of every x."""

    c_file = C_FILE

    def make_node(self, *xs) -> Apply:
        xs = [pt.as_tensor_variable(x) for x in xs]
        if not xs or any(x.dtype != "float32" for x in xs):
            raise TypeError("squared_norm: float32 tensors expected")
        return Apply(self, xs, [pt.scalar(dtype="float32")])

    def infer_shape(self, fgraph, node, shapes):
        return [()]

    def perform(self, node, inputs, outputs) -> None:
        total = sum(float(np.square(x, dtype=np.float64).sum()) for x in inputs)
        outputs[0][0] = np.asarray(total, dtype=np.float32)

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        {{
            PyArrayObject* in[{len(inp)}] = {{{", ".join(inp)}}};
            if (uvs_squared_norm(in, {len(inp)}, &{out[0]}) != 0) {{
                {sub["fail"]}
            }}
        }}
        """


squared_norm_op = SquaredNorm()


def squared_norm(xs: list[Variable], mode: Any = None) -> Variable:
    """Σ x² over every element of xs (float32 tensors) as one `SquaredNorm`; PyTensor's sums
    where it cannot run (other dtypes, or compiled for JAX: `mode`, else uvs's default)."""
    if not available(mode) or any(x.dtype != "float32" for x in xs):
        return sum((x ** 2).sum() for x in xs)
    return squared_norm_op(*xs)
