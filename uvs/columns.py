"""A table's columns read as rows, and their gradient, as two C Ops.

The log-bilinear models keep a word's representation as a column of R (K, V) (of Whf (F, V)
in the factored ones) and read the context words as `R.T[X.flatten()]`. PyTensor gathers
those strided columns one element at a time (0.7 ms of a 9.7 ms MLBL update), and the
gradient it builds, a (V, K) table of rows transposed, reaches the momentum step Fortran
ordered, which then copies it (1.1 ms). `take_columns` reads the columns by rows of R over
OpenMP threads (`TakeColumns`); its gradient, `ScatterColumns`, adds the rows back into a
C-ordered (K, V) table of zeros in index order (np.add.at's sums, bit for bit), into which
PyTensor's Gemm then adds the output layer's gradient. C in `columns.c`, beside this file.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply, Variable

from uvs.cop import OpenMPCOp, available

C_FILE = "columns.c"  # beside this module; PyTensor keys its compile cache by its hash


def _indices(op: str, idx) -> Variable:
    idx = pt.as_tensor_variable(idx)
    if idx.ndim != 1 or idx.dtype != "int64":
        raise TypeError(f"{op}: int64 indices")
    return idx


class TakeColumns(OpenMPCOp):
    """(w (d, V) float32, idx (n,) int64) -> (n, d): w[:, idx].T, that is w.T[idx];
    negative indices count from the end."""

    __props__ = ()
    c_file = C_FILE

    def make_node(self, w, idx) -> Apply:
        w = pt.as_tensor_variable(w)
        if w.ndim != 2 or w.dtype != "float32":
            raise TypeError("take columns: a float32 matrix")
        idx = _indices("take columns", idx)
        return Apply(self, [w, idx], [pt.tensor(dtype="float32",
                                                shape=(idx.type.shape[0], w.type.shape[0]))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[1][0], shapes[0][0])]

    def c_code(self, node, name, inp, out, sub) -> str:
        w, idx = inp
        return f"""
        if (uvs_take_columns_apply({w}, {idx}, &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        w, idx = inputs
        outputs[0][0] = np.ascontiguousarray(w.T[idx])

    def pullback(self, inputs, outputs, output_grads):
        w, idx = inputs
        return [ScatterColumns()(output_grads[0], idx, w.shape[1]), disconnected_type()]

    def connection_pattern(self, node):
        return [[True], [False]]


class ScatterColumns(OpenMPCOp):
    """(y (n, d) float32, idx (n,) int64, V) -> x (d, V): zeros with x[:, idx[i]] += y[i]
    for each i in order (np.add.at), C-ordered: `TakeColumns`' gradient."""

    __props__ = ()
    c_file = C_FILE

    def make_node(self, y, idx, V) -> Apply:
        y = pt.as_tensor_variable(y)
        if y.ndim != 2 or y.dtype != "float32":
            raise TypeError("scatter columns: float32 rows")
        idx = _indices("scatter columns", idx)
        V = pt.as_tensor_variable(V)
        if V.ndim or V.dtype not in ("int64", "int32"):
            raise TypeError("scatter columns: an integer count of columns")
        return Apply(self, [y, idx, V], [pt.tensor(dtype="float32",
                                                   shape=(y.type.shape[1], None))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][1], node.inputs[2])]

    def c_code(self, node, name, inp, out, sub) -> str:
        y, idx, V = inp
        return f"""
        if (uvs_scatter_columns_apply({y}, {idx},
                (npy_intp)((dtype_{V}*)PyArray_DATA({V}))[0], &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        y, idx, V = inputs
        if len(idx) != len(y):
            raise ValueError(f"scatter columns: {len(y)} rows for {len(idx)} indices into "
                             f"{int(V)} columns")
        x = np.zeros((y.shape[1], int(V)), np.float32)
        np.add.at(x.T, idx, y)
        outputs[0][0] = x


def take_columns(w: Variable, idx: Variable, mode: str | None = None) -> Variable:
    """w.T[idx] for w (d, V), idx (n,) int64: `TakeColumns` where uvs's C Ops run and w is
    float32, else PyTensor's own gather."""
    if available(mode) and w.dtype == "float32" and idx.dtype == "int64":
        return TakeColumns()(w, idx)
    return w.T[idx]
