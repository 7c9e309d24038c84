"""Adam's step over one parameter as one in-place Op: a single threaded, vectorized pass.

PyTensor compiles `uvs.optim`'s Adam as one elementwise loop per parameter on one thread;
this Op (C in `adam_op.c`, beside this file) does the same arithmetic over the parameter and
its two moments in place, spread over OpenMP threads. NumPy in `perform` where C is not used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, node_rewriter
from pytensor.tensor.variable import TensorConstant

from uvs.cop import OpenMPCOp, available
from uvs.norms import clipped, listed_rows

C_FILE = "adam_op.c"  # beside this module; PyTensor keys its compile cache by the file's hash
ROWS = pt.TensorType("int64", shape=(None,))  # the rows input's type, empty or not


class AdamStep(OpenMPCOp):
    """(p, g, m, v, lr, rows, g2) -> (p, m, v) after one step: m = b1·g + (1 − b1)·m,
    v = b2·g² + (1 − b2)·v, p = p − lr·m / (√v + e); float32, lr a scalar.

    limit > 0: g is a gradient before its clipping, g2 the squared norm it was clipped by; the
    step reads each value as `uvs.norms.ClipScale` rescales it, (limit·g) / √g2 when
    g2 > limit² — the same floats, without that Op's pass over every value.

    rows (int64): empty (the default) for a whole gradient g of p's shape; else p, m, v are
    (n, d) tables whose gradient is zeros but these rows (increasing), and g (k, d) holds them
    (`uvs.row_grads`): every row steps. One Op either way, so one compiled module per rank.
    Built copying; PyTensor's inplace phase (`local_adam_inplace`) makes it update p, m and v
    where they lie, as it does for its own elementwise Ops, when nothing else reads them.
    """

    __props__ = ("b1", "b2", "e", "inplace", "limit")
    c_file = C_FILE

    def __init__(self, b1: float, b2: float, e: float, inplace: bool = False,
                 limit: float = 0.0) -> None:
        self.b1, self.b2, self.e, self.inplace = float(b1), float(b2), float(e), bool(inplace)
        self.limit = float(np.float32(limit))
        if inplace:
            self.destroy_map = {0: [0], 1: [2], 2: [3]}
        super().__init__()

    def make_node(self, p, g, m, v, lr, rows=None, g2=None) -> Apply:
        if g2 is None:
            g2 = np.float32(0.0)  # no clipping
        p, g, m, v, lr, g2 = (pt.as_tensor_variable(x) for x in (p, g, m, v, lr, g2))
        if any(x.dtype != "float32" for x in (p, g, m, v, lr, g2)) or lr.ndim or g2.ndim:
            raise TypeError("adam step: float32 parameter, gradient, moments, a scalar rate "
                            "and a scalar squared norm")
        if rows is None:
            rows = TensorConstant(ROWS, np.zeros(0, np.int64))  # a whole gradient
        rows = pt.as_tensor_variable(rows)
        if (rows.dtype, rows.ndim) != ("int64", 1):
            raise TypeError("adam step: the gradient's rows as an int64 vector")
        return Apply(self, [p, g, m, v, lr, rows, g2], [p.type(), m.type(), v.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[2], shapes[3]]

    def _constants(self) -> tuple[str, ...]:
        """b1, 1 − b1, b2, 1 − b2, e as float32 literals, each rounded as the graph's are."""
        values = (self.b1, 1.0 - self.b1, self.b2, 1.0 - self.b2, self.e)
        return tuple(f"{np.float32(x).item()!r}f" for x in values)

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_adam_apply({", ".join(inp)}, {", ".join(f"&{o}" for o in out)},
                           {int(self.inplace)}, {", ".join(self._constants())},
                           {np.float32(self.limit).item()!r}f) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        p, g, m, v, lr, rows, g2 = inputs
        if self.limit > 0:
            g = clipped(g, g2, self.limit)
        if rows.size or g.size != p.size:  # the whole gradient: zeros but the listed rows
            if p.ndim != 2 or g.ndim != 2 or g.shape[1] != p.shape[1]:
                raise ValueError("adam step over rows: (n, d) parameter and moments, (k, d) "
                                 "gradient rows")
            if len(listed_rows(rows, len(p))) != len(g):
                raise ValueError(f"adam step over rows: {len(g)} gradient rows for {len(rows)} "
                                 "listed rows")
            dense = np.zeros_like(p)
            dense[rows] = g
            g = dense
        if not self.inplace:
            p, m, v = p.copy(), m.copy(), v.copy()
        f = np.float32
        b1, c1, b2, c2, e = (f(x) for x in (self.b1, 1.0 - self.b1, self.b2, 1.0 - self.b2,
                                             self.e))
        m[...] = b1 * g + c1 * m
        v[...] = b2 * (g * g) + c2 * v
        p[...] = p - lr * (m / (np.sqrt(v) + e))
        for o, x in zip(outputs, (p, m, v), strict=True):
            o[0] = x


@node_rewriter([AdamStep], inplace=True)
def local_adam_inplace(fgraph, node):
    """The step updating its parameter and moments in place."""
    op = node.op
    if op.inplace:
        return False
    return AdamStep(op.b1, op.b2, op.e, inplace=True, limit=op.limit).make_node(
        *node.inputs).outputs


optdb.register("uvs_adam_inplace",
               WalkingGraphRewriter(local_adam_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", position=60)


def adam_step(p: Variable, g: Variable, m: Variable, v: Variable, lr: Variable, b1: float,
              b2: float, e: float, mode: Any = None, rows: Variable | None = None,
              clip: tuple[Variable, float] | None = None
              ) -> tuple[Variable, Variable, Variable] | None:
    """(p_t, m_t, v_t) of one Adam step as `AdamStep`, or None where it cannot run (not float32,
    or compiled for JAX: `mode`, else uvs's default). rows: g holds only these rows of p's
    gradient, zeros elsewhere (`uvs.row_grads`). clip: (g2, limit), g before its clipping by
    the squared norm g2."""
    if not available(mode) or any(x.dtype != "float32" for x in (p, g, m, v, lr)):
        return None
    g2, limit = clip if clip is not None else (None, 0.0)
    return tuple(AdamStep(b1, b2, e, limit=limit)(p, g, m, v, lr, rows, g2))
