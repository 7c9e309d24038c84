"""The alignment model's ReLU recurrence as one Op, and its gradient as another.

    a_t = e_t + h_{t-1}·W + b,   h_t = m_t · max(a_t, 0) + (1 − m_t) · h_{t-1},   h_{-1} = 0

`uvs.align.model` builds it as a `scan` (the reference); this runs the same loops in C
(`relu_rnn.c`, beside this file; NumPy in `perform` where C is not used), with no `scan`
machinery between steps, and sums the weight gradient of all steps as one product
(dW = H_prevᵀ·dA) instead of one small product per step. `uvs.gru_op.gru_impl` chooses
between the two, as for the GRU.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast

from uvs.cop import BlasCOp

C_FILE = "relu_rnn.c"  # beside this module; PyTensor keys its compile cache by the file's hash


class _RNNCOp(BlasCOp):
    c_file = C_FILE


class ReluRNNForward(_RNNCOp):
    """(e, mask, W, b) -> (a, h): pre-activations and states, both (T, B, d).

    e: (T, B, d) the inputs (already projected); mask: (T, B); W: (d, d); b: (d,).
    """

    def make_node(self, e, mask, W, b) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (e, mask, W, b)]
        for v, nd in zip(inputs, (3, 2, 2, 1), strict=True):
            if v.ndim != nd:
                raise TypeError(f"ReluRNNForward: {v} has {v.ndim} dimensions, expected {nd}")
        dtype = upcast(*(v.dtype for v in inputs))
        if dtype not in ("float32", "float64"):
            raise TypeError(f"ReluRNNForward: float inputs expected, got {dtype}")
        inputs = [pt.cast(v, dtype) for v in inputs]
        outputs = [pt.tensor(dtype=dtype, shape=(None, None, None)) for _ in range(2)]
        return Apply(self, inputs, outputs)

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[0]]

    def perform(self, node, inputs, outputs) -> None:
        e, mask, W, b = inputs
        _check_shapes(e, mask, W, b)
        one = e.dtype.type(1)
        a = np.empty_like(e)
        h = np.empty_like(e)
        for t in range(e.shape[0]):
            a[t] = (e[t] + h[t - 1] @ W + b) if t else e[t] + b
            m = mask[t][:, None]
            h[t] = m * np.maximum(a[t], 0) + ((one - m) * h[t - 1] if t else 0)
        outputs[0][0], outputs[1][0] = a, h

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        return f"""
        {{
            PyArrayObject* in[4] = {{{", ".join(inp)}}};
            if (uvs_relu_rnn_forward(in, &{out[0]}, &{out[1]}) != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def connection_pattern(self, node):
        return [[False, True], [False, True], [False, True], [False, True]]

    def pullback(self, inputs, outputs, output_grads):
        e, mask, W, b = inputs
        a, h = outputs
        dh = output_grads[1]
        if isinstance(dh.type, DisconnectedType):
            dh = pt.zeros_like(h)
        de, dW, db = relu_rnn_backward(mask, W, a, h, pt.cast(dh, h.dtype))
        return [de, grad_not_implemented(self, 1, mask, "the mask's gradient"), dW, db]


class ReluRNNBackward(_RNNCOp):
    """(mask, W, a, h, dh) -> (de, dW, db): the gradients of `ReluRNNForward`'s e, W and b.

    dh: (T, B, d), the cost's gradient w.r.t. every state (zeros where a state is unused).
    """

    def make_node(self, mask, W, a, h, dh) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (mask, W, a, h, dh)]
        dtype = inputs[2].dtype
        inputs = [pt.cast(v, dtype) for v in inputs]
        out = [pt.tensor(dtype=dtype, shape=(None,) * nd) for nd in (3, 2, 1)]
        return Apply(self, inputs, out)

    def infer_shape(self, fgraph, node, shapes):
        W = shapes[1]
        return [shapes[2], W, (W[0],)]

    def perform(self, node, inputs, outputs) -> None:
        mask, W, a, h, dh = inputs
        one = a.dtype.type(1)
        T, B, d = a.shape
        de = np.empty_like(a)
        carry = np.zeros((B, d), dtype=a.dtype)
        for t in range(T - 1, -1, -1):
            g = dh[t] + carry
            m = mask[t][:, None]
            de[t] = np.where(a[t] >= 0, m * g, 0)
            carry = (one - m) * g + de[t] @ W.T
        hprev = h[:-1].reshape(-1, d)
        dW = hprev.T @ de[1:].reshape(-1, d) if T > 1 else np.zeros_like(W)
        db = de.reshape(-1, d).sum(axis=0, dtype=np.float64)
        for o, v in zip(outputs, (de, dW, db), strict=True):
            o[0] = np.asarray(v, dtype=a.dtype)

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        return f"""
        {{
            PyArrayObject* in[5] = {{{", ".join(inp)}}};
            PyArrayObject** out[3] = {{{", ".join(f"&{o}" for o in out)}}};
            if (uvs_relu_rnn_backward(in, out) != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, v, "second derivative of the fused recurrence")
                for i, v in enumerate(inputs)]


def _check_shapes(e, mask, W, b) -> None:
    T, B, d = e.shape
    for name, v, shape in (("mask", mask, (T, B)), ("W", W, (d, d)), ("b", b, (d,))):
        if v.shape != shape:
            raise ValueError(f"fused ReLU recurrence: {name} has shape {v.shape}, "
                             f"expected {shape}")


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    ReluRNNForward.L_op = ReluRNNForward.pullback
    ReluRNNBackward.L_op = ReluRNNBackward.pullback

relu_rnn_forward = ReluRNNForward()
relu_rnn_backward = ReluRNNBackward()


def relu_rnn(e, mask, W, b):
    """Every state h: (T, B, d) of the recurrence over e: (T, B, d), as the `scan` computes."""
    return relu_rnn_forward(e, mask, W, b)[1]
