"""Gradient clipping as two Ops: the squared norm of many tensors, and the rescaling.

Gradient clipping needs |g|² over every parameter's gradient. PyTensor computes each
tensor's sum of squares as its own reduction, one thread, one compiled module per rank;
`squared_norm` reads each tensor once in vector lanes over OpenMP threads (C in `norms.c`,
beside this file; NumPy in `perform` where C is not used) and rounds the double sum once.
`clip_scale` rescales a gradient over the limit in place, over threads (PyTensor's `switch`
wrote a fresh copy on one thread: 4 ms of a 49 ms bag-of-words update).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter

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


class ClipScale(OpenMPCOp):
    """(g float32, g2 float32 scalar) -> g rescaled to norm `limit` when g2 > limit², as
    (limit·g) / √g2 in float32 element by element (how PyTensor's rewrites write `switch(g2 >
    limit², g / √g2 · limit, g)`; its own loop may multiply by 1/√g2, an ulp apart); else g.
    Inplace (PyTensor's inplace phase): g rescaled where it lies."""

    __props__ = ("limit", "inplace")
    c_file = C_FILE

    def __init__(self, limit: float, inplace: bool = False) -> None:
        self.limit, self.inplace = float(np.float32(limit)), bool(inplace)
        if inplace:
            self.destroy_map = {0: [0]}
        super().__init__()

    def make_node(self, g, g2) -> Apply:
        g, g2 = pt.as_tensor_variable(g), pt.as_tensor_variable(g2)
        if g.dtype != "float32" or g2.dtype != "float32" or g2.ndim:
            raise TypeError("clip scale: a float32 tensor and its float32 squared norm")
        return Apply(self, [g, g2], [g.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        g, g2 = inputs
        limit = np.float32(self.limit)
        out = g if self.inplace else g.copy()
        if g2 > limit * limit:
            np.divide(limit * out, np.sqrt(g2), out=out)
        outputs[0][0] = out

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_clip_scale({inp[0]}, {inp[1]}, &{out[0]}, {int(self.inplace)},
                           {np.float32(self.limit).item()!r}f) != 0) {{
            {sub["fail"]}
        }}
        """


@node_rewriter([ClipScale], inplace=True)
def local_clip_scale_inplace(fgraph, node):
    """The gradient rescaled where it lies."""
    if node.op.inplace:
        return False
    return [ClipScale(node.op.limit, inplace=True)(*node.inputs)]


optdb.register("uvs_clip_scale_inplace",
               WalkingGraphRewriter(local_clip_scale_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", position=60)


def clip_scale(g: Variable, g2: Variable, limit: np.float32, mode: Any = None) -> Variable:
    """g rescaled to norm `limit` when its squared norm g2 (a float32 scalar) exceeds limit²:
    a `ClipScale`, or PyTensor's `switch` where it cannot run (other dtypes, or JAX)."""
    if not available(mode) or g.dtype != "float32" or g2.dtype != "float32":
        return pt.switch(g2 > limit ** 2, g / pt.sqrt(g2) * limit, g)
    return ClipScale(limit)(g, g2)
