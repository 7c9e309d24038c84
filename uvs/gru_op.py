"""A fused GRU layer for PyTensor: the layer, and its gradient, as one Op each.

The `scan` GRU in `uvs.layers` (`gru_layer`, the original's graph) is the reference; this
computes the same thing without a `scan`: the input projections of all steps at once, the
loop over time and the backward loop run in C (`gru_op.c`, beside this file; NumPy in
`perform` where C is not used), calling the BLAS the rest of the graph links. The backward
pass accumulates the weight gradients as one large product over all T·B rows
(dU = H_prevᵀ·dPre) instead of T small ones.

`gru_impl` chooses the implementation (an argument, `$UVS_GRU` its default); `fused` is the
default (see `benchmarks/train_bench.py`), except under the JAX backend, which cannot run it.
"""

from __future__ import annotations

import os

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.scalar import upcast

from uvs import backend
from uvs.cop import BlasCOp

IMPLEMENTATIONS = ("fused", "scan")
DEFAULT = "fused"
C_FILE = "gru_op.c"  # beside this module; PyTensor keys its compile cache by the file's hash


def gru_impl(name: str | None = None, mode: str | None = None) -> str:
    """The GRU implementation to build: `name` if given, else `$UVS_GRU`, else `fused`
    (`scan` when compiling for JAX: `mode`, else uvs's default mode)."""
    source = "gru"
    if name is None:
        name, source = os.environ.get("UVS_GRU", ""), "UVS_GRU"
    name = name.strip().lower()
    if name and name not in IMPLEMENTATIONS:
        raise ValueError(f"{source}={name!r}: expected one of {', '.join(IMPLEMENTATIONS)}")
    if name:
        return name
    return "scan" if backend.mode(mode) == "JAX" else DEFAULT


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class _GRUCOp(BlasCOp):
    c_file = C_FILE


class GRUForward(_GRUCOp):
    """(x, mask, h0, W, b, U, Wx, bx, Ux) -> (h, gates): every state h (T, B, d) and the gates.

    x: (T, B, nin); mask: (T, B); h0: (B, d); W: (nin, 2d), b: (2d,), U: (d, 2d) for the r|u
    gates; Wx: (nin, d), bx: (d,), Ux: (d, d) for the candidate. gates (T, B, 4d) hold
    r | u | h̃ | h·Ux for the gradient.
    """

    def make_node(self, x, mask, h0, W, b, U, Wx, bx, Ux) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (x, mask, h0, W, b, U, Wx, bx, Ux)]
        for v, nd in zip(inputs, (3, 2, 2, 2, 1, 2, 2, 1, 2), strict=True):
            if v.ndim != nd:
                raise TypeError(f"GRUForward: {v} has {v.ndim} dimensions, expected {nd}")
        dtype = upcast(*(v.dtype for i, v in enumerate(inputs) if i != 1))
        if dtype not in ("float32", "float64"):
            raise TypeError(f"GRUForward: float inputs expected, got {dtype}")
        inputs = [pt.cast(v, dtype) for v in inputs]
        x = inputs[0]
        inputs[1] = pt.broadcast_to(inputs[1], (x.shape[0], x.shape[1]))
        outputs = [pt.tensor(dtype=dtype, shape=(None, None, None)) for _ in range(2)]
        return Apply(self, inputs, outputs)

    def infer_shape(self, fgraph, node, shapes):
        (T, B, _), d = shapes[0], shapes[8][0]
        return [(T, B, d), (T, B, 4 * d)]

    def perform(self, node, inputs, outputs) -> None:
        x, mask, h0, W, b, U, Wx, bx, Ux = inputs
        _check_shapes(inputs)
        (T, B, nin), d = x.shape, Ux.shape[0]
        one = x.dtype.type(1)
        xw = (x.reshape(T * B, nin) @ W).reshape(T, B, 2 * d) + b
        xwx = (x.reshape(T * B, nin) @ Wx).reshape(T, B, d) + bx
        h = np.empty((T, B, d), dtype=x.dtype)
        gates = np.empty((T, B, 4 * d), dtype=x.dtype)
        hp = h0
        for t in range(T):
            g = gates[t]
            zero = not hp.any()
            g[:, :2 * d] = _sigmoid(xw[t] if zero else xw[t] + hp @ U)
            g[:, 3 * d:] = 0 if zero else hp @ Ux
            r, u, hux = g[:, :d], g[:, d:2 * d], g[:, 3 * d:]
            ht = np.tanh(r * hux + xwx[t])
            g[:, 2 * d:3 * d] = ht
            hn = u * hp + (one - u) * ht
            m = mask[t][:, None]
            h[t] = m * hn + (one - m) * hp
            hp = h[t]
        outputs[0][0] = h
        outputs[1][0] = gates

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        return f"""
        {{
            PyArrayObject* in[9] = {{{", ".join(inp)}}};
            if (uvs_gru_forward(in, &{out[0]}, &{out[1]}) != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        x, mask, h0, W, b, U, Wx, bx, Ux = inputs
        h, gates = outputs
        dh, dgates = output_grads
        if not isinstance(dgates.type, DisconnectedType):
            raise TypeError("GRUForward: the gates output is not differentiable")
        if isinstance(dh.type, DisconnectedType):
            dh = pt.zeros_like(h)
        return GRUBackward()(x, mask, h0, W, U, Wx, Ux, h, gates, pt.cast(dh, h.dtype))


class GRUBackward(_GRUCOp):
    """(x, mask, h0, W, U, Wx, Ux, h, gates, dh) -> gradients of GRUForward's nine inputs.

    dh: (T, B, d), the cost's gradient w.r.t. every state h (zeros where h is unused). The
    weight gradients are products over all T·B rows at once, e.g. dU = H_prevᵀ·dPre.
    """

    def make_node(self, x, mask, h0, W, U, Wx, Ux, h, gates, dh) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (x, mask, h0, W, U, Wx, Ux, h, gates, dh)]
        dtype = inputs[7].dtype
        inputs = [pt.cast(v, dtype) for v in inputs]
        out = [pt.tensor(dtype=dtype, shape=(None,) * nd) for nd in (3, 2, 2, 2, 1, 2, 2, 1, 2)]
        return Apply(self, inputs, out)

    def infer_shape(self, fgraph, node, shapes):
        x, mask, h0, W, U, Wx, Ux = shapes[:7]
        return [x, mask, h0, W, (W[1],), U, Wx, (Wx[1],), Ux]

    def perform(self, node, inputs, outputs) -> None:
        x, mask, h0, W, U, Wx, Ux, h, gates, dh = inputs
        (T, B, nin), d = x.shape, Ux.shape[0]
        dtype = h.dtype
        one = dtype.type(1)
        dpre = np.empty((T, B, 2 * d), dtype=dtype)
        dxx = np.empty((T, B, d), dtype=dtype)
        dhux = np.empty((T, B, d), dtype=dtype)
        dmask = np.empty((T, B), dtype=dtype)
        carry = np.zeros((B, d), dtype=dtype)
        for t in range(T - 1, -1, -1):
            hp = h[t - 1] if t > 0 else h0
            g = dh[t] + carry
            r, u = gates[t, :, :d], gates[t, :, d:2 * d]
            ht, hux = gates[t, :, 2 * d:3 * d], gates[t, :, 3 * d:]
            m = mask[t][:, None]
            hn = u * hp + (one - u) * ht
            dmask[t] = (g * (hn - hp)).sum(axis=1)
            gn = m * g
            dpx = gn * (one - u) * (one - ht * ht)
            dxx[t] = dpx
            dhux[t] = dpx * r
            dpre[t, :, :d] = dpx * hux * r * (one - r)
            dpre[t, :, d:] = gn * (hp - ht) * u * (one - u)
            carry = (one - m) * g + gn * u + dpre[t] @ U.T + dhux[t] @ Ux.T
        n = T * B
        hprev = np.concatenate([h0[None], h[:-1]]).reshape(n, d)
        x2, dpre2, dxx2 = x.reshape(n, nin), dpre.reshape(n, 2 * d), dxx.reshape(n, d)
        grads = [(dpre2 @ W.T + dxx2 @ Wx.T).reshape(T, B, nin), dmask, carry,
                 x2.T @ dpre2, dpre2.sum(axis=0), hprev.T @ dpre2,
                 x2.T @ dxx2, dxx2.sum(axis=0), hprev.T @ dhux.reshape(n, d)]
        for o, g in zip(outputs, grads, strict=True):
            o[0] = np.asarray(g, dtype=dtype)

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        return f"""
        {{
            PyArrayObject* in[10] = {{{", ".join(inp)}}};
            PyArrayObject** out[9] = {{{", ".join(f"&{o}" for o in out)}}};
            if (uvs_gru_backward(in, out) != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, v, "second derivative of the fused GRU")
                for i, v in enumerate(inputs)]


def _check_shapes(inputs) -> None:
    x, mask, h0, W, b, U, Wx, bx, Ux = inputs
    (T, B, nin), d = x.shape, Ux.shape[0]
    want = {"mask": (T, B), "h0": (B, d), "W": (nin, 2 * d), "b": (2 * d,), "U": (d, 2 * d),
            "Wx": (nin, d), "bx": (d,), "Ux": (d, d)}
    for (k, shape), v in zip(want.items(), inputs[1:], strict=True):
        if v.shape != shape:
            raise ValueError(f"fused GRU: {k} has shape {v.shape}, expected {shape}")


if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    GRUForward.L_op = GRUForward.pullback
    GRUBackward.L_op = GRUBackward.pullback

gru_forward = GRUForward()


def gru_fused(state_below, mask, init_state, W, b, U, Wx, bx, Ux):
    """All states h: (T, B, d) of the GRU over state_below (T, B, nin), as the scan computes them.

    The input projections x·W + b and x·Wx + bx are part of the Op (and of its gradient).
    """
    return gru_forward(state_below, mask, init_state, W, b, U, Wx, bx, Ux)[0]
