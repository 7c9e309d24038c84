"""The gradient of an embedding lookup as one C Op: rows added into a matrix in index order.

PyTensor's gradient of `Wemb[x.flatten()]` is `AdvancedIncSubtensor1`, which has C code for
vectors only; for a (words, dim) table it runs NumPy's `np.add.at` (10.8 ms of a 50 ms
bag-of-words update). `IncRows` (C in `inc_rows.c`, beside this file) does the same additions
in the same order over OpenMP threads, so its results are bit-identical; a rewrite puts it in
place of every float32 matrix `AdvancedIncSubtensor1` increment in PyTensor's C backend, and
PyTensor's inplace phase lets it add into its input where nothing else reads it.

That input is a fresh table of zeros (`Alloc`), 40 MB for a bag of words: allocated on every
update, its pages faulted in and zeroed by the kernel on one thread (11 ms of a 50 ms update).
Where the table becomes a shared gradient's next value (`f_grad_shared`), `ZeroFill` zeroes
the previous value where it lies instead, over threads. Such a table is zeros but the rows the
words name, so the clipping's norm and rescaling read those rows alone (`SparseTableRows`,
with `UniqueRows`): 6 MB of a bag of words' 40 MB table. The trainers go further and store a
lookup's gradient as those rows alone (`uvs.row_grads`).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.features import ReplaceValidate
from pytensor.graph.rewriting.basic import (
    GraphRewriter,
    WalkingGraphRewriter,
    in2out,
    node_rewriter,
)
from pytensor.graph.utils import InconsistencyError
from pytensor.tensor.basic import Alloc, get_underlying_scalar_constant_value
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.subtensor import AdvancedIncSubtensor1
from pytensor.tensor.type import integer_dtypes

from uvs.cop import OpenMPCOp
from uvs.norms import ClipScale, SquaredNorm

C_FILE = "inc_rows.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class IncRows(OpenMPCOp):
    """(x (n, d), y (k or 1, d), idx (k,) int64) -> x with x[idx[i]] += y[i] for each i in
    order (np.add.at); float32; negative indices count from the end."""

    __props__ = ("inplace",)
    c_file = C_FILE
    adds_into_first_input = True  # `ZeroIntoUpdate` may give it the last gradient to add into
    index_input = 2  # the int64 rows it adds at (`uvs.row_grads`: positions in a compact table)

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

    @staticmethod
    def touched_rows(node: Apply) -> Variable:
        """The indices of the rows the node adds into (`SparseTableRows`)."""
        return node.inputs[2]

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


class ZeroFill(OpenMPCOp):
    """(x float32, *shape) -> zeros of `shape`: x itself, zeroed over threads, when it is a
    writeable contiguous array of that shape (x is destroyed), else a new array."""

    __props__ = ()
    c_file = C_FILE
    destroy_map = {0: [0]}

    def make_node(self, x, *shape) -> Apply:
        x = pt.as_tensor_variable(x)
        shape = [pt.as_tensor_variable(d) for d in shape]
        if x.dtype != "float32" or len(shape) != x.ndim or any(
                d.ndim or d.dtype not in integer_dtypes for d in shape):
            raise TypeError("zero fill: a float32 tensor and one integer per dimension")
        return Apply(self, [x, *shape], [pt.tensor(dtype="float32", shape=(None,) * x.ndim)])

    def infer_shape(self, fgraph, node, shapes):
        return [tuple(node.inputs[1:])]

    def c_code(self, node, name, inp, out, sub) -> str:
        x, *shape = inp
        dims = ", ".join(f"(npy_intp)((dtype_{d}*)PyArray_DATA({d}))[0]" for d in shape)
        return f"""
        {{
            npy_intp shape[{max(len(shape), 1)}] = {{{dims or "0"}}};
            if (uvs_zero_fill({x}, shape, {len(shape)}, &{out[0]}) != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        x, *shape = inputs
        shape = tuple(int(d) for d in shape)
        if x.shape == shape and x.flags.c_contiguous and x.flags.writeable:
            x[...] = 0
            outputs[0][0] = x
        else:
            outputs[0][0] = np.zeros(shape, np.float32)


def _zeros_shape(var, zero_fill: bool = False) -> list | None:
    """The shape of `var` when it is `Alloc` of the constant 0 (or, with `zero_fill`, a
    `ZeroFill`), else None."""
    if zero_fill and var.owner is not None and isinstance(var.owner.op, ZeroFill):
        return var.owner.inputs[1:]
    if var.owner is None or not isinstance(var.owner.op, Alloc):
        return None
    try:
        if get_underlying_scalar_constant_value(var.owner.inputs[0]) != 0:
            return None
    except NotScalarConstantError:
        return None
    return var.owner.inputs[1:]


class ZeroIntoUpdate(GraphRewriter):
    """`IncRows(zeros, y, idx)` (or another Op that `adds_into_first_input`, as
    `uvs.bag_of_words.BagOfWordsGrad`) that is a shared variable's update (perhaps clipped:
    `ClipScale`) adds into that variable's last value, zeroed by `ZeroFill`, not into a new
    table of zeros."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph):
        for out_idx, in_idx in (getattr(fgraph, "update_mapping", None) or {}).items():
            out, shared = fgraph.outputs[out_idx], fgraph.inputs[in_idx]
            while out.owner is not None and isinstance(out.owner.op, ClipScale):
                out = out.owner.inputs[0]  # the clipped gradient: the rows' table, rescaled
            node = out.owner
            if node is None or not getattr(node.op, "adds_into_first_input", False) \
                    or node.op.inplace:
                continue
            x, *rest = node.inputs
            shape = _zeros_shape(x)
            if shape is None or shared.type.dtype != "float32" or shared.ndim != x.ndim:
                continue
            try:
                new = out.type.filter_variable(
                    node.op.make_node(ZeroFill()(shared, *shape), *rest).outputs[0])
                fgraph.replace_validate(out, new, reason="uvs_zero_into_update")
            except TypeError:  # a type the rebuilt node cannot take the place of
                continue
            except InconsistencyError:  # the shared value is read elsewhere: fresh zeros
                continue


class UniqueRows(OpenMPCOp):
    """(idx int64 (any shape), n) -> rows (k,), where (idx.size,) int64: the rows of a table of
    n that idx names, negative indices from the end, each once, increasing; and the position
    among them of each index's row, in idx's flat order (np.unique's values and inverse)."""

    __props__ = ()
    c_file = C_FILE

    def make_node(self, idx, n) -> Apply:
        idx, n = pt.as_tensor_variable(idx), pt.as_tensor_variable(n)
        if idx.dtype != "int64" or n.ndim or n.dtype not in integer_dtypes:
            raise TypeError("unique rows: int64 indices and an integer count of rows")
        return Apply(self, [idx, n], [pt.lvector(), pt.lvector()])

    def c_code(self, node, name, inp, out, sub) -> str:
        idx, n = inp
        return f"""
        if (uvs_unique_rows_apply({idx}, (npy_intp)((dtype_{n}*)PyArray_DATA({n}))[0],
                                  &{out[0]}, &{out[1]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def perform(self, node, inputs, outputs) -> None:
        idx, n = inputs
        n = int(n)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)].flat[0]
            raise IndexError(f"index {bad} is out of bounds for axis 0 with size {n}")
        rows, where = np.unique(np.where(idx < 0, idx + n, idx).ravel(), return_inverse=True)
        outputs[0][0] = rows.astype(np.int64)
        outputs[1][0] = where.astype(np.int64).ravel()


class SparseTableRows(GraphRewriter):
    """A lookup's gradient, a table of zeros into which an Op that `adds_into_first_input`
    added some rows, is squared (`SquaredNorm`) and rescaled (`ClipScale`) over those rows
    alone (`UniqueRows` of the Op's `touched_rows`): the other rows are zeros, whose squares
    add nothing and whose rescaling is zero. A 40 MB bag-of-words table read twice less."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph):
        rows = {}
        for node in fgraph.toposort():
            shape = _zeros_shape(node.inputs[0], zero_fill=True) if node.inputs else None
            if (getattr(node.op, "adds_into_first_input", False) and not node.op.inplace
                    and shape is not None and node.outputs[0].ndim == 2):
                rows[node.outputs[0]] = UniqueRows()(node.op.touched_rows(node), shape[0])[0]
        if not rows:
            return
        for node in fgraph.toposort():
            if isinstance(node.op, SquaredNorm):
                listed = node.op.rows_of
                xs = node.inputs[:len(node.inputs) - len(listed)]
                new = [i for i, x in enumerate(xs) if x in rows and i not in listed]
                if new:
                    out = SquaredNorm(listed + tuple(new))(
                        *node.inputs, *(rows[xs[i]] for i in new))
                    fgraph.replace_validate(node.outputs[0], out, reason="uvs_sparse_rows")
            elif isinstance(node.op, ClipScale) and not node.op.rows \
                    and node.inputs[0] in rows:
                out = ClipScale(node.op.limit, node.op.inplace, rows=True)(
                    *node.inputs, rows[node.inputs[0]])
                fgraph.replace_validate(node.outputs[0], out, reason="uvs_sparse_rows")


# after PyTensor's canonical and specialising rewrites (which know AdvancedIncSubtensor1),
# before its inplace phase; C backend only ("cxx_only": Numba and JAX modes skip both)
optdb.register("uvs_inc_rows", in2out(local_inc_rows), "fast_run", "cxx_only", position=48)
optdb.register("uvs_zero_into_update", ZeroIntoUpdate(), "fast_run", "inplace", "cxx_only",
               position=59.5)
optdb.register("uvs_sparse_rows", SparseTableRows(), "fast_run", "cxx_only", position=59.6)
optdb.register("uvs_inc_rows_inplace",
               WalkingGraphRewriter(local_inc_rows_inplace,
                                    failure_callback=WalkingGraphRewriter.warn_inplace),
               "fast_run", "inplace", "cxx_only", position=60)
