"""Gradient clipping as two Ops: the squared norm of many tensors, and the rescaling.

Gradient clipping needs |g|² over every parameter's gradient. PyTensor computes each
tensor's sum of squares as its own reduction, one thread, one compiled module per rank;
`squared_norm` reads each tensor once in vector lanes over OpenMP threads (C in `norms.c`,
beside this file; NumPy in `perform` where C is not used) and rounds the double sum once.
`clip_scale` rescales a gradient over the limit in place, over threads (PyTensor's `switch`
wrote a fresh copy on one thread: 4 ms of a 49 ms bag-of-words update). Both take, for a
lookup's gradient, the rows that are not zeros (`uvs.inc_rows.SparseTableRows`) and read only
those.
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
    """(*xs: float32 tensors[, *rows]) -> float32 scalar Σ x² over every element of every x.

    rows_of: positions of xs that are tables of zeros but some rows (a lookup's gradient,
    `uvs.inc_rows.SparseTableRows`), each followed, after xs, by its rows (increasing int64):
    only those rows are read."""

    __props__ = ("rows_of",)
    c_file = C_FILE

    def __init__(self, rows_of: tuple[int, ...] = ()) -> None:
        self.rows_of = tuple(int(i) for i in rows_of)
        super().__init__()

    def make_node(self, *inputs) -> Apply:
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        xs = inputs[:len(inputs) - len(self.rows_of)]
        rows = inputs[len(xs):]
        if not xs or any(x.dtype != "float32" for x in xs):
            raise TypeError("squared_norm: float32 tensors expected")
        if any(r.dtype != "int64" or r.ndim != 1 for r in rows) or any(
                not 0 <= i < len(xs) or xs[i].ndim != 2 for i in self.rows_of):
            raise TypeError("squared_norm: int64 rows of float32 matrices")
        return Apply(self, inputs, [pt.scalar(dtype="float32")])

    def infer_shape(self, fgraph, node, shapes):
        return [()]

    def perform(self, node, inputs, outputs) -> None:
        xs = inputs[:len(inputs) - len(self.rows_of)]
        rows = dict(zip(self.rows_of, inputs[len(xs):], strict=True))
        total = sum(float(np.square(x if i not in rows else x[listed_rows(rows[i], len(x))],
                                    dtype=np.float64).sum()) for i, x in enumerate(xs))
        outputs[0][0] = np.asarray(total, dtype=np.float32)

    def c_code(self, node, name, inp, out, sub) -> str:
        rows_of = ", ".join(map(str, self.rows_of)) or "0"
        return f"""
        {{
            PyArrayObject* in[{len(inp)}] = {{{", ".join(inp)}}};
            const int rows_of[{max(len(self.rows_of), 1)}] = {{{rows_of}}};
            if (uvs_squared_norm(in, {len(inp) - len(self.rows_of)}, rows_of,
                                 {len(self.rows_of)}, &{out[0]}) != 0) {{
                {sub["fail"]}
            }}
        }}
        """


def listed_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """rows as the C Ops take them (`uvs_listed_rows`): increasing, each in [0, n); else
    their ValueError, naming the first bad row and the one before it."""
    bad = (rows < 0) | (rows >= n)
    bad[1:] |= rows[1:] <= rows[:-1]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"rows of a table of {n}: {rows[i]} after {rows[i - 1] if i else -1}, "
                         "not increasing rows of the table")
    return rows


squared_norm_op = SquaredNorm()


def squared_norm(xs: list[Variable], mode: Any = None) -> Variable:
    """Σ x² over every element of xs (float32 tensors) as one `SquaredNorm`; PyTensor's sums
    where it cannot run (other dtypes, or compiled for JAX: `mode`, else uvs's default)."""
    if not available(mode) or any(x.dtype != "float32" for x in xs):
        return sum((x ** 2).sum() for x in xs)
    return squared_norm_op(*xs)


class ClipScale(OpenMPCOp):
    """(g float32, g2 float32 scalar[, rows]) -> g rescaled to norm `limit` when g2 > limit²,
    as (limit·g) / √g2 in float32 element by element (how PyTensor's rewrites write
    `switch(g2 > limit², g / √g2 · limit, g)`; its own loop may multiply by 1/√g2, an ulp
    apart); else g. Inplace (PyTensor's inplace phase): g rescaled where it lies. rows: g is a
    table of zeros but those rows (increasing int64; `uvs.inc_rows.SparseTableRows`), and only
    they are rescaled — the same result, as (limit·0) / √g2 is 0."""

    __props__ = ("limit", "inplace", "rows")
    c_file = C_FILE

    def __init__(self, limit: float, inplace: bool = False, rows: bool = False) -> None:
        self.limit, self.inplace = float(np.float32(limit)), bool(inplace)
        self.rows = bool(rows)
        if inplace:
            self.destroy_map = {0: [0]}
        super().__init__()

    def make_node(self, g, g2, *rows) -> Apply:
        g, g2 = pt.as_tensor_variable(g), pt.as_tensor_variable(g2)
        if g.dtype != "float32" or g2.dtype != "float32" or g2.ndim:
            raise TypeError("clip scale: a float32 tensor and its float32 squared norm")
        rows = [pt.as_tensor_variable(r) for r in rows]
        if len(rows) != self.rows or any(r.dtype != "int64" or r.ndim != 1 or g.ndim != 2
                                         for r in rows):
            raise TypeError("clip scale: int64 rows of a float32 matrix" if self.rows else
                            "clip scale: a float32 tensor and its float32 squared norm")
        return Apply(self, [g, g2, *rows], [g.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        g, g2, *rows = inputs
        out = g if self.inplace else g.copy()
        if rows:
            r = listed_rows(rows[0], len(out))
            out[r] = clipped(out[r], g2, self.limit)
        else:
            out[...] = clipped(out, g2, self.limit)
        outputs[0][0] = out

    def c_code(self, node, name, inp, out, sub) -> str:
        rows = inp[2] if self.rows else "NULL"
        return f"""
        if (uvs_clip_scale({inp[0]}, {inp[1]}, {rows}, &{out[0]}, {int(self.inplace)},
                           {np.float32(self.limit).item()!r}f) != 0) {{
            {sub["fail"]}
        }}
        """


def clipped(g: np.ndarray, g2: Any, limit: float) -> np.ndarray:
    """g as `ClipScale` rescales it (`uvs_clip_scale`): (limit·g) / √g2 in float32 when the
    squared norm g2 exceeds limit², else g itself."""
    limit = np.float32(limit)
    return np.divide(limit * g, np.sqrt(np.float32(g2))) if g2 > limit * limit else g


@node_rewriter([ClipScale], inplace=True)
def local_clip_scale_inplace(fgraph, node):
    """The gradient rescaled where it lies."""
    if node.op.inplace:
        return False
    return [ClipScale(node.op.limit, inplace=True, rows=node.op.rows)(*node.inputs)]


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
