"""Sums along one axis of a float32 matrix, in double, as PyTensor's loop adds them.

A norm per row (`l2norm`'s Σ x² over a sentence or image) or a bias's gradient (Σ over the
batch) is PyTensor's `CAReduce` in a double accumulator: one chain of dependent additions per
sum, one thread, 0.3 ms for 128 rows of 1 024 (a fortieth of a bag-of-words update). `AxisSum`
(C in `axis_sums.c`, beside this file) makes the same additions in the same order, from 0, of
the same float terms (x, or x·x rounded to float), so its results are bit-identical; but many
sums at once (eight rows interleaved, or columns in vector lanes) over OpenMP threads. A
rewrite puts it in place of such reductions of float32 matrices in PyTensor's C backend.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.link.c.params_type import ParamsType
from pytensor.scalar import basic as ps
from pytensor.scalar.basic import Composite
from pytensor.tensor.elemwise import CAReduce

from uvs.cop import OpenMPCOp

C_FILE = "axis_sums.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class AxisSum(OpenMPCOp):
    """x (n, m) float32 -> (m,) or (n,) float32: Σ along `axis` (0 or 1) of x, or of x·x in
    float when `squared`, each sum in double from 0 in increasing order, rounded once. Both
    are the C's parameters, not its text: every AxisSum is one compiled module."""

    __props__ = ("axis", "squared")
    params_type = ParamsType(axis=ps.int32, squared=ps.int32)
    c_file = C_FILE

    def __init__(self, axis: int, squared: bool = False) -> None:
        if axis not in (0, 1):
            raise ValueError(f"axis sum: axis 0 or 1, not {axis}")
        self.axis, self.squared = int(axis), int(bool(squared))
        super().__init__()

    def make_node(self, x) -> Apply:
        x = pt.as_tensor_variable(x)
        if x.dtype != "float32" or x.ndim != 2:
            raise TypeError("axis sum: a float32 matrix")
        return Apply(self, [x], [pt.vector(dtype="float32",
                                           shape=(x.type.shape[1 - self.axis],))])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][1 - self.axis],)]

    def perform(self, node, inputs, outputs, params=None) -> None:
        x = inputs[0]
        terms = np.moveaxis(x, self.axis, 0)  # the summed axis first: added row by row
        acc = np.zeros(terms.shape[1], dtype=np.float64)
        with np.errstate(over="ignore"):  # a float square overflows to inf, as in C
            for t in terms:
                acc += (t * t if self.squared else t).astype(np.float64)
        outputs[0][0] = acc.astype(np.float32)

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_axis_sum({inp[0]}, {sub["params"]}->axis, {sub["params"]}->squared,
                         &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """


def _is_add_of_square(op) -> bool:
    """Whether a scalar op is `i0 + sqr(i1)` (the fused Σ x² of PyTensor's rewrites)."""
    if not isinstance(op, Composite) or len(op.fgraph.outputs) != 1:
        return False
    i0, i1 = op.fgraph.inputs if len(op.fgraph.inputs) == 2 else (None, None)
    add = op.fgraph.outputs[0].owner
    if add is None or not isinstance(add.op, ps.Add) or len(add.inputs) != 2 \
            or add.inputs[0] is not i0:
        return False
    sq = add.inputs[1].owner
    return (sq is not None and isinstance(sq.op, ps.Sqr) and sq.inputs[0] is i1
            and i1.type.dtype == "float32" and add.inputs[1].type.dtype == "float32")


@node_rewriter([CAReduce])
def local_axis_sum(fgraph, node):
    """A float32 matrix summed (or its squares) along one axis in a double accumulator."""
    op, (x,) = node.op, node.inputs
    if x.ndim != 2 or x.dtype != "float32" or node.outputs[0].dtype != "float32" \
            or getattr(op, "acc_dtype", None) != "float64" or op.axis not in ((0,), (1,)):
        return None
    if isinstance(op.scalar_op, ps.Add):
        squared = False
    elif _is_add_of_square(op.scalar_op):
        squared = True
    else:
        return None
    return [AxisSum(op.axis[0], squared)(x)]


# after PyTensor fuses Σ with x² (elemwise_fusion, 49), before the inplace phase; C backend
optdb.register("uvs_axis_sums", in2out(local_axis_sum), "fast_run", "cxx_only", position=49.2)
