"""The gradient of an embedding lookup as one C Op: rows added into a matrix in index order.

PyTensor's gradient of `Wemb[x.flatten()]` is `AdvancedIncSubtensor1`, which has C code for
vectors only; for a (words, dim) table it runs NumPy's `np.add.at` (10.8 ms of a 50 ms
bag-of-words update). `IncRows` (C in `inc_rows.c`, beside this file) does the same additions
in the same order over OpenMP threads, so its results are bit-identical; a rewrite puts it in
place of every float32 matrix `AdvancedIncSubtensor1` increment in PyTensor's C backend, and
PyTensor's inplace phase lets it add into its input where nothing else reads it.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import WalkingGraphRewriter, in2out, node_rewriter
from pytensor.tensor.subtensor import AdvancedIncSubtensor1

from uvs.cop import OpenMPCOp

C_FILE = "inc_rows.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class IncRows(OpenMPCOp):
    """(x (n, d), y (k or 1, d), idx (k,) int64) -> x with x[idx[i]] += y[i] for each i in
    order (np.add.at); float32; negative indices count from the end."""

    __props__ = ("inplace",)
    c_file = C_FILE

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = bool(inplace)
        if inplace:
            self.destroy_map = {0: [0]}
        super().__init__()

    def make_node(self, x, y, idx) -> Apply:
        x, y, idx = (pt.as_tensor_variable(v) for v in (x, y, idx))
        if (x.dtype, y.dtype, idx.dtype, x.ndim, y.ndim, idx.ndim) != (
                "float32", "float32", "int64", 2, 2, 1):
            raise TypeError("inc rows: a float32 matrix, float32 rows and int64 indices")
        return Apply(self, [x, y, idx], [x.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def c_code(self, node, name, inp, out, sub) -> str:
        x, y, idx = inp
        return f"""
        if (uvs_inc_rows_apply({x}, {y}, {idx}, &{out[0]}, {int(self.inplace)}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        x, y, idx = inputs
        if not self.inplace:
            x = x.copy()
        np.add.at(x, idx, y)
        outputs[0][0] = x


@node_rewriter([AdvancedIncSubtensor1])
def local_inc_rows(fgraph, node):
    """A float32 matrix's rows incremented at int64 indices: `IncRows`."""
    op = node.op
    x, y, idx = node.inputs
    if op.set_instead_of_inc or op.inplace:
        return False
    if y.ndim == 2 and y.type.broadcastable[1] and not x.type.broadcastable[1]:
        return False  # one value per row spread over the columns: np.add.at's, not IncRows'
    try:
        return [IncRows()(x, y, idx)]
    except TypeError:  # another dtype or rank: PyTensor's own
        return False


@node_rewriter([IncRows], inplace=True)
def local_inc_rows_inplace(fgraph, node):
    """The rows added into the matrix where it lies."""
    if node.op.inplace:
        return False
    return [IncRows(inplace=True)(*node.inputs)]


# after PyTensor's canonical and specialising rewrites (which know AdvancedIncSubtensor1),
# before its inplace phase; C backend only ("cxx_only": Numba and JAX modes skip both)
optdb.register("uvs_inc_rows", in2out(local_inc_rows), "fast_run", "cxx_only", position=48)
optdb.register("uvs_inc_rows_inplace",
               WalkingGraphRewriter(local_inc_rows_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", "cxx_only", position=60)
