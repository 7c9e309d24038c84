"""The order-embedding loss's error matrix as one Op, and its gradient as another.

E[i, j] = ‖max(0, s_i − im_j)‖² over a batch's sentences s: (n, d) and images im: (m, d).
The original graph broadcasts to an (n, m, d) tensor for the difference, the violation, its
square and their gradients — 67 MB each at batch 128, dim 1024; `order_errors_op` passes over
the pairs once (C in `order_op.c`, beside this file, threads and vector lanes; NumPy in
`perform` where C is not used), summing in double as PyTensor's `Sum` does.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.op import Op

from uvs.cop import OpenMPCOp

C_FILE = "order_op.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class _OrderCOp(OpenMPCOp):
    c_file = C_FILE


def _matrices(op: str, *xs) -> list[Variable]:
    xs = [pt.as_tensor_variable(x) for x in xs]
    if any(x.ndim != 2 or x.dtype != "float32" for x in xs):
        raise TypeError(f"{op}: float32 matrices expected")
    return xs


def _violations(s: np.ndarray, im: np.ndarray) -> np.ndarray:
    return np.maximum(s[:, None, :] - im[None, :, :], np.float32(0))


class OrderErrors(_OrderCOp):
    """(s: (n, d), im: (m, d)) -> E: (n, m) float32, E[i, j] = Σ_k max(0, s[i, k] − im[j, k])²."""

    def make_node(self, s, im) -> Apply:
        s, im = _matrices("order_errors", s, im)
        return Apply(self, [s, im], [pt.matrix(dtype="float32")])

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0], shapes[1][0])]

    def perform(self, node, inputs, outputs) -> None:
        s, im = inputs
        if s.shape[1] != im.shape[1]:
            raise ValueError(f"order errors: sentences of dimension {s.shape[1]}, images of "
                             f"{im.shape[1]}")
        v = _violations(s, im)
        outputs[0][0] = np.square(v, dtype=np.float32).sum(axis=2, dtype=np.float64).astype(
            np.float32)

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_order_errors_apply({inp[0]}, {inp[1]}, &{out[0]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return list(order_errors_grad(*inputs, output_grads[0]))


class OrderErrorsGrad(_OrderCOp):
    """(s, im, G: (n, m)) -> (ds, dim): the gradient of Σ G ⊙ E by s and by im."""

    def make_node(self, s, im, G) -> Apply:
        s, im, G = _matrices("order_errors_grad", s, im, G)
        return Apply(self, [s, im, G], [s.type(), im.type()])

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[1]]

    def perform(self, node, inputs, outputs) -> None:
        s, im, G = inputs
        w = (np.float32(2) * G)[:, :, None] * _violations(s, im)
        outputs[0][0] = w.sum(axis=1, dtype=np.float64).astype(np.float32)
        outputs[1][0] = (-w.sum(axis=0, dtype=np.float64)).astype(np.float32)

    def c_code(self, node, name, inp, out, sub) -> str:
        return f"""
        if (uvs_order_grad_apply({", ".join(inp)}, &{out[0]}, &{out[1]}) != 0) {{
            {sub["fail"]}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        from pytensor.gradient import grad_not_implemented

        return [grad_not_implemented(self, i, v, "second derivative of the order errors")
                for i, v in enumerate(inputs)]


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    OrderErrors.L_op = OrderErrors.pullback
    OrderErrorsGrad.L_op = OrderErrorsGrad.pullback

order_errors_op = OrderErrors()
order_errors_grad = OrderErrorsGrad()
