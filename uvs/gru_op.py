"""A fused GRU for PyTensor: the whole recurrence, and its gradient, as one Op each.

The `scan` GRU in `uvs.layers` is the reference; this computes the same thing
(DESIGN.md, "GRU") without a `scan`: the forward loop over time and the backward
loop run in C (NumPy in `perform` where C is not used), calling the BLAS the rest of
the graph links. The backward pass accumulates the weight gradients as one large
product over all T·B rows (dU = H_prevᵀ·dPre) instead of T small ones.

`UVS_GRU=scan|fused` chooses the implementation; `fused` is the default (see
`benchmarks/train_bench.py`), except under the JAX backend, which cannot run it.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.c.op import COp
from pytensor.scalar import upcast
from pytensor.tensor.rewriting.basic import register_specialize

# Under the Numba backend the Ops run their NumPy `perform` (still faster than Numba's scan).
warnings.filterwarnings("ignore", message="Numba will use object mode to run GRU(Forward|Backward)")

IMPLEMENTATIONS = ("fused", "scan")
DEFAULT = "fused"
_CACHE_VERSION = 7


def gru_impl() -> str:
    """The GRU implementation to build: `$UVS_GRU`, else `fused` (`scan` under JAX)."""
    name = os.environ.get("UVS_GRU", "").strip().lower()
    if name and name not in IMPLEMENTATIONS:
        raise ValueError(f"UVS_GRU={name!r}: expected one of {', '.join(IMPLEMENTATIONS)}")
    if name:
        return name
    from uvs import backend

    return "scan" if backend.mode() == "JAX" else DEFAULT


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _blas_ldflags() -> str:
    import pytensor

    return pytensor.config.blas__ldflags


class _BlasCOp(COp):
    """Links the BLAS PyTensor's own Gemm links (same flags, so uvs's `scipy_` renames apply)."""

    __props__ = ()

    def c_support_code(self, **kwargs: Any) -> str:
        from pytensor.tensor.blas_headers import blas_header_text

        return blas_header_text() + _SUPPORT_CODE

    def c_headers(self, **kwargs: Any) -> list[str]:
        return ["<math.h>", "<string.h>"]

    def c_libraries(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags()

    def c_compile_args(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        # -fno-trapping-math and -fopenmp-simd let the elementwise loops vectorize
        return [*ldflags(libs=False, flags=True), "-fno-trapping-math", "-fopenmp-simd"]

    def c_lib_dirs(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags(libs=False, libs_dir=True)

    def c_header_dirs(self, **kwargs: Any) -> list[str]:
        from pytensor.tensor.blas import ldflags

        return ldflags(libs=False, include_dir=True)

    def c_code_cache_version(self) -> tuple:
        from pytensor.tensor.blas_headers import blas_header_version

        return (_CACHE_VERSION, blas_header_version())

    def _check_c(self, node: Apply) -> None:
        if not _blas_ldflags():
            raise NotImplementedError("no BLAS linked: the NumPy implementation runs instead")
        if node.outputs[0].dtype not in ("float32", "float64"):
            raise NotImplementedError(node.outputs[0].dtype)


class GRUForward(_BlasCOp):
    """(x_, xx_, mask, h0, U, Ux) -> (h, gates): every state h (T, B, d) and the gates.

    x_ = x·W + b: (T, B, 2d); xx_ = x·Wx + bx: (T, B, d); mask: (T, B); h0: (B, d);
    U: (d, 2d); Ux: (d, d). gates (T, B, 4d) hold r | u | h̃ | h·Ux for the gradient; with
    `gates=False` (put in by a rewrite where nothing uses them, e.g. when encoding) only h.
    """

    __props__ = ("gates",)

    def __init__(self, gates: bool = True):
        self.gates = gates

    def make_node(self, x_, xx_, mask, h0, U, Ux) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (x_, xx_, mask, h0, U, Ux)]
        for v, nd in zip(inputs, (3, 3, 2, 2, 2, 2), strict=True):
            if v.ndim != nd:
                raise TypeError(f"GRUForward: {v} has {v.ndim} dimensions, expected {nd}")
        dtype = upcast(*(v.dtype for v in inputs if v is not inputs[2]))
        if dtype not in ("float32", "float64"):
            raise TypeError(f"GRUForward: float inputs expected, got {dtype}")
        inputs = [pt.cast(v, dtype) for v in inputs]
        x_, mask = inputs[0], inputs[2]
        inputs[2] = pt.broadcast_to(mask, (x_.shape[0], x_.shape[1]))
        outputs = [pt.tensor(dtype=dtype, shape=(None, None, None)) for _ in range(1 + self.gates)]
        return Apply(self, inputs, outputs)

    def infer_shape(self, fgraph, node, shapes):
        (T, B, _), d = shapes[0], shapes[5][0]
        return [(T, B, d), (T, B, 4 * d)][:1 + self.gates]

    def perform(self, node, inputs, outputs) -> None:
        x_, xx_, mask, h0, U, Ux = inputs
        _check_shapes(x_, xx_, mask, h0, U, Ux)
        T, B, d = x_.shape[0], x_.shape[1], Ux.shape[0]
        h = np.empty((T, B, d), dtype=x_.dtype)
        gates = np.empty((T if self.gates else 1, B, 4 * d), dtype=x_.dtype)
        one = x_.dtype.type(1)
        hp = h0
        for t in range(T):
            g = gates[t if self.gates else 0]
            if hp.any():
                g[:, :2 * d] = hp @ U
                g[:, 3 * d:] = hp @ Ux
            else:
                g[:, :2 * d] = 0
                g[:, 3 * d:] = 0
            g[:, :2 * d] = _sigmoid(g[:, :2 * d] + x_[t])
            r, u, hux = g[:, :d], g[:, d:2 * d], g[:, 3 * d:]
            ht = np.tanh(r * hux + xx_[t])
            g[:, 2 * d:3 * d] = ht
            hn = u * hp + (one - u) * ht
            m = mask[t][:, None]
            h[t] = m * hn + (one - m) * hp
            hp = h[t]
        outputs[0][0] = h
        if self.gates:
            outputs[1][0] = gates

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        args = ", ".join(inp)
        h = out[0]
        if self.gates:
            return f"""
            if (uvs_gru_forward({args}, &{h}, &{out[1]}, 1) != 0) {{
                {sub["fail"]}
            }}
            """
        return f"""
        {{
            PyArrayObject* scratch = NULL;
            int rc = uvs_gru_forward({args}, &{h}, &scratch, 0);
            Py_XDECREF(scratch);
            if (rc != 0) {{
                {sub["fail"]}
            }}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        if not self.gates:
            return [grad_not_implemented(self, i, v, "GRUForward(gates=False)")
                    for i, v in enumerate(inputs)]
        x_, xx_, mask, h0, U, Ux = inputs
        h, gates = outputs
        dh, dgates = output_grads
        if not isinstance(dgates.type, DisconnectedType):
            raise NotImplementedError("GRUForward: the gates output is not differentiable")
        if isinstance(dh.type, DisconnectedType):
            dh = pt.zeros_like(h)
        grads = GRUBackward()(mask, h0, U, Ux, h, gates, pt.cast(dh, h.dtype))
        dx_, dxx, dmask, dh0, dU, dUx = grads
        return [dx_, dxx, dmask, dh0, dU, dUx]


class GRUBackward(_BlasCOp):
    """(mask, h0, U, Ux, h, gates, dh) -> gradients of (x_, xx_, mask, h0, U, Ux).

    dh: (T, B, d), the cost's gradient w.r.t. every state h (zeros where h is unused).
    """

    def make_node(self, mask, h0, U, Ux, h, gates, dh) -> Apply:
        inputs = [pt.as_tensor_variable(v) for v in (mask, h0, U, Ux, h, gates, dh)]
        dtype = h.dtype
        inputs = [pt.cast(v, dtype) for v in inputs]
        out = [pt.tensor(dtype=dtype, shape=(None,) * nd) for nd in (3, 3, 2, 2, 2, 2)]
        return Apply(self, inputs, out)

    def infer_shape(self, fgraph, node, shapes):
        mask, h0, U, Ux, h, _, _ = shapes
        T, B = mask
        d = Ux[0]
        return [(T, B, 2 * d), (T, B, d), (T, B), h0, U, Ux]

    def perform(self, node, inputs, outputs) -> None:
        mask, h0, U, Ux, h, gates, dh = inputs
        T, B, d = h.shape
        dtype = h.dtype
        one = dtype.type(1)
        dx_ = np.empty((T, B, 2 * d), dtype=dtype)
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
            dx_[t, :, :d] = dpx * hux * r * (one - r)
            dx_[t, :, d:] = gn * (hp - ht) * u * (one - u)
            carry = (one - m) * g + gn * u + dx_[t] @ U.T + dhux[t] @ Ux.T
        hprev = np.concatenate([h0[None], h[:-1]]).reshape(T * B, d)
        outputs[0][0] = dx_
        outputs[1][0] = dxx
        outputs[2][0] = dmask
        outputs[3][0] = carry.astype(dtype, copy=False)
        outputs[4][0] = hprev.T @ dx_.reshape(T * B, 2 * d)
        outputs[5][0] = hprev.T @ dhux.reshape(T * B, d)

    def c_code(self, node, name, inp, out, sub) -> str:
        self._check_c(node)
        args = ", ".join(inp) + ", " + ", ".join(f"&{o}" for o in out)
        return f"""
        if (uvs_gru_backward({args}) != 0) {{
            {sub["fail"]}
        }}
        """

    def pullback(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, i, v, "second derivative of the fused GRU")
                for i, v in enumerate(inputs)]


def _check_shapes(x_, xx_, mask, h0, U, Ux) -> None:
    T, B, d = x_.shape[0], x_.shape[1], Ux.shape[0]
    want = {"x_": (T, B, 2 * d), "xx_": (T, B, d), "mask": (T, B), "h0": (B, d),
            "U": (d, 2 * d), "Ux": (d, d)}
    for (k, shape), v in zip(want.items(), (x_, xx_, mask, h0, U, Ux), strict=True):
        if v.shape != shape:
            raise ValueError(f"GRU: {k} has shape {v.shape}, expected {shape}")


@node_rewriter([GRUForward])
def local_gru_forward_without_gates(fgraph, node):
    """Drop the gates output (T·B·4d values) where nothing uses it, e.g. when only encoding."""
    if node.op.gates and not fgraph.clients[node.outputs[1]]:
        return {node.outputs[0]: GRUForward(gates=False)(*node.inputs)}
    return None


register_specialize(local_gru_forward_without_gates)

if not hasattr(Op, "pullback"):  # PyTensor before `pullback` called `L_op`
    GRUForward.L_op = GRUForward.pullback
    GRUBackward.L_op = GRUBackward.pullback

gru_forward = GRUForward()


def gru_fused(state_below_, state_belowx, mask, init_state, U, Ux):
    """All states h: (T, B, d) of the GRU, as `uvs.layers.gru_layer`'s scan computes them.

    state_below_ = x·W + b: (T, B, 2d); state_belowx = x·Wx + bx: (T, B, d); mask (T, B).
    """
    return gru_forward(state_below_, state_belowx, mask, init_state, U, Ux)[0]


# C for both Ops; C++ templates give the float32 and float64 versions.
_SUPPORT_CODE = r"""
static inline void uvs_gemm(char ta, char tb, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta,
                            float* c, int ldc) {
    sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
static inline void uvs_gemm(char ta, char tb, int m, int n, int k, double alpha,
                            const double* a, int lda, const double* b, int ldb, double beta,
                            double* c, int ldc) {
    dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

/* Row-major C (m, n) = alpha A (m, k) . B (k, n) + beta C, through column-major BLAS. */
template <typename T>
static void uvs_mm(int m, int n, int k, const T* a, int lda, bool ta, const T* b, int ldb,
                   bool tb, T beta, T* c, int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(npy_intp)i * ldc + j] *= beta;
        return;
    }
    uvs_gemm(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, (T)1, b, ldb, a, lda, beta, c, ldc);
}

static PyArrayObject* uvs_contig(PyArrayObject* a, int type_num) {
    return (PyArrayObject*)PyArray_FromAny((PyObject*)a, PyArray_DescrFromType(type_num), 0, 0,
                                           NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
}

/* *out as a C-contiguous array of this shape: kept when it already is one, else new. */
static int uvs_output(PyArrayObject** out, int nd, npy_intp* dims, int type_num) {
    PyArrayObject* o = *out;
    if (o && PyArray_NDIM(o) == nd && PyArray_TYPE(o) == type_num
        && PyArray_IS_C_CONTIGUOUS(o)) {
        bool same = true;
        for (int i = 0; i < nd; i++) same = same && PyArray_DIMS(o)[i] == dims[i];
        if (same) return 0;
    }
    Py_XDECREF(o);
    *out = (PyArrayObject*)PyArray_EMPTY(nd, dims, type_num, 0);
    return *out ? 0 : -1;
}

static int uvs_shape_error(const char* what) {
    PyErr_Format(PyExc_ValueError, "fused GRU: %s has the wrong shape", what);
    return -1;
}

/* exp(x) in float, ~1 ulp (Cephes expf), branch-free so that loops over it vectorize. */
static inline float uvs_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float fx = x * 1.44269504088896341f;
    const int ni = (int)(fx + (fx >= 0.0f ? 0.5f : -0.5f));
    const float n = (float)ni;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const int bits = (ni + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}
static inline float uvs_sigmoid(float x) { return 1.0f / (1.0f + uvs_expf(-x)); }
/* tanh in float: 1 - 2/(e^2|x| + 1), odd; a Taylor polynomial near 0 (abs. error < 1e-7). */
static inline float uvs_tanh(float x) {
    const float ax = x < 0.0f ? -x : x;
    const float big = 1.0f - 2.0f / (uvs_expf(2.0f * ax) + 1.0f);
    const float x2 = x * x;
    const float small = x + x * x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f));
    const float t = x < 0.0f ? -big : big;  /* (two selects: a nested one does not vectorize) */
    return ax < 0.0625f ? small : t;
}
static inline double uvs_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double uvs_tanh(double x) { return tanh(x); }

template <typename T>
static bool uvs_all_zero(const T* a, npy_intp n) {
    for (npy_intp i = 0; i < n; i++) if (a[i] != 0) return false;
    return true;
}

/* One row of the forward step: g holds h·U (r|u pre-activations) and h·Ux in its last d. */
template <typename T>
static void uvs_fwd_row(int d, T* __restrict g, const T* __restrict xb,
                        const T* __restrict xxb, const T* __restrict hpb, T* __restrict hb,
                        const T m) {
    T* __restrict gr = g;
    T* __restrict gu = g + d;
    T* __restrict gt = g + 2 * d;
    const T* __restrict gx = g + 3 * d;
    const T* __restrict xu = xb + d;
#pragma omp simd
    for (int j = 0; j < d; j++) {
        const T r = uvs_sigmoid(gr[j] + xb[j]);
        const T u = uvs_sigmoid(gu[j] + xu[j]);
        const T ht = uvs_tanh(r * gx[j] + xxb[j]);
        const T hn = u * hpb[j] + ((T)1 - u) * ht;
        gr[j] = r;
        gu[j] = u;
        gt[j] = ht;
        hb[j] = m * hn + ((T)1 - m) * hpb[j];
    }
}

/* gates: (T, B, 4d) kept for the gradient, or (1, B, 4d) reused at every step. */
template <typename T>
static void uvs_gru_fwd(int Tn, int B, int d, const T* x_, const T* xx, const T* mask,
                        const T* h0, const T* U, const T* Ux, T* h, T* gates, int keep) {
    const npy_intp Bd = (npy_intp)B * d;
    for (int t = 0; t < Tn; t++) {
        const T* hp = t ? h + (t - 1) * Bd : h0;
        T* g = gates + (keep ? (npy_intp)t * 4 * Bd : 0);
        if (uvs_all_zero(hp, Bd)) {
            for (int b = 0; b < B; b++) {
                memset(g + (npy_intp)b * 4 * d, 0, 2 * d * sizeof(T));
                memset(g + (npy_intp)b * 4 * d + 3 * d, 0, d * sizeof(T));
            }
        } else {
            uvs_mm<T>(B, 2 * d, d, hp, d, false, U, 2 * d, false, (T)0, g, 4 * d);
            uvs_mm<T>(B, d, d, hp, d, false, Ux, d, false, (T)0, g + 3 * d, 4 * d);
        }
        for (int b = 0; b < B; b++)
            uvs_fwd_row<T>(d, g + (npy_intp)b * 4 * d, x_ + ((npy_intp)t * B + b) * 2 * d,
                           xx + (npy_intp)t * Bd + (npy_intp)b * d, hp + (npy_intp)b * d,
                           h + (npy_intp)t * Bd + (npy_intp)b * d, mask[(npy_intp)t * B + b]);
    }
}

/* One row of the backward step; returns this row's gradient w.r.t. its mask value. */
template <typename T>
static T uvs_bwd_row(int d, const T* __restrict g, const T* __restrict hpb,
                     const T* __restrict dhb, T* __restrict cb, T* __restrict dxb,
                     T* __restrict dxxb, T* __restrict dhuxb, const T m) {
    const T* __restrict gr = g;
    const T* __restrict gu = g + d;
    const T* __restrict gt = g + 2 * d;
    const T* __restrict gx = g + 3 * d;
    T* __restrict dxu = dxb + d;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int j = 0; j < d; j++) {
        const T r = gr[j], u = gu[j], ht = gt[j], hux = gx[j];
        const T hpv = hpb[j];
        const T gh = dhb[j] + cb[j];
        const T hn = u * hpv + ((T)1 - u) * ht;
        acc += gh * (hn - hpv);
        const T gn = m * gh;
        const T dpx = gn * ((T)1 - u) * ((T)1 - ht * ht);
        dxxb[j] = dpx;
        dhuxb[j] = dpx * r;
        dxb[j] = dpx * hux * r * ((T)1 - r);
        dxu[j] = gn * (hpv - ht) * u * ((T)1 - u);
        cb[j] = ((T)1 - m) * gh + gn * u;
    }
    return acc;
}

template <typename T>
static void uvs_gru_bwd(int Tn, int B, int d, const T* mask, const T* h0, const T* U,
                        const T* Ux, const T* h, const T* gates, const T* dh, T* dx_, T* dxx,
                        T* dmask, T* carry, T* dU, T* dUx, T* dhux) {
    const npy_intp Bd = (npy_intp)B * d;
    memset(carry, 0, Bd * sizeof(T));
    for (int t = Tn - 1; t >= 0; t--) {
        const T* hp = t ? h + (t - 1) * Bd : h0;
        for (int b = 0; b < B; b++) {
            const npy_intp row = (npy_intp)t * B + b;
            dmask[row] = uvs_bwd_row<T>(d, gates + row * 4 * d, hp + (npy_intp)b * d,
                                        dh + row * d, carry + (npy_intp)b * d,
                                        dx_ + row * 2 * d, dxx + row * d, dhux + row * d,
                                        mask[row]);
        }
        /* carry += dPre_t . U^T + dhux_t . Ux^T */
        uvs_mm<T>(B, d, 2 * d, dx_ + (npy_intp)t * 2 * Bd, 2 * d, false, U, 2 * d, true,
                  (T)1, carry, d);
        uvs_mm<T>(B, d, d, dhux + (npy_intp)t * Bd, d, false, Ux, d, true, (T)1, carry, d);
    }
    /* dU = H_prev^T . dPre over all T.B rows; H_prev = h0, h[0], ..., h[T-2] */
    const bool h0_zero = uvs_all_zero(h0, Bd);
    if (h0_zero) {
        memset(dU, 0, (npy_intp)d * 2 * d * sizeof(T));
        memset(dUx, 0, (npy_intp)d * d * sizeof(T));
    } else {
        uvs_mm<T>(d, 2 * d, B, h0, d, true, dx_, 2 * d, false, (T)0, dU, 2 * d);
        uvs_mm<T>(d, d, B, h0, d, true, dhux, d, false, (T)0, dUx, d);
    }
    if (Tn > 1) {
        const int n = (Tn - 1) * B;
        const T beta = h0_zero ? (T)0 : (T)1;
        uvs_mm<T>(d, 2 * d, n, h, d, true, dx_ + 2 * Bd, 2 * d, false, beta, dU, 2 * d);
        uvs_mm<T>(d, d, n, h, d, true, dhux + Bd, d, false, beta, dUx, d);
    }
}

static int uvs_gru_forward(PyArrayObject* x_in, PyArrayObject* xx_in, PyArrayObject* m_in,
                           PyArrayObject* h0_in, PyArrayObject* U_in, PyArrayObject* Ux_in,
                           PyArrayObject** h_out, PyArrayObject** g_out, int keep) {
    const int tn = PyArray_TYPE(x_in);
    PyArrayObject* in[6] = {x_in, xx_in, m_in, h0_in, U_in, Ux_in};
    PyArrayObject* a[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 6; i++)
        if (!(a[i] = uvs_contig(in[i], tn))) goto done;
    {
        npy_intp* s = PyArray_DIMS(a[0]);
        const npy_intp Tn = s[0], B = s[1], d = PyArray_DIMS(a[5])[0];
        if (s[2] != 2 * d) { rc = uvs_shape_error("x_"); goto done; }
        npy_intp* sx = PyArray_DIMS(a[1]);
        if (sx[0] != Tn || sx[1] != B || sx[2] != d) { rc = uvs_shape_error("xx_"); goto done; }
        npy_intp* sm = PyArray_DIMS(a[2]);
        if (sm[0] != Tn || sm[1] != B) { rc = uvs_shape_error("mask"); goto done; }
        npy_intp* sh = PyArray_DIMS(a[3]);
        if (sh[0] != B || sh[1] != d) { rc = uvs_shape_error("h0"); goto done; }
        npy_intp* su = PyArray_DIMS(a[4]);
        if (su[0] != d || su[1] != 2 * d) { rc = uvs_shape_error("U"); goto done; }
        if (PyArray_DIMS(a[5])[1] != d) { rc = uvs_shape_error("Ux"); goto done; }
        npy_intp hd[3] = {Tn, B, d}, gd[3] = {keep ? Tn : 1, B, 4 * d};
        if (uvs_output(h_out, 3, hd, tn) || uvs_output(g_out, 3, gd, tn)) goto done;
        Py_BEGIN_ALLOW_THREADS
        if (tn == NPY_FLOAT32)
            uvs_gru_fwd<float>(Tn, B, d, (float*)PyArray_DATA(a[0]), (float*)PyArray_DATA(a[1]),
                (float*)PyArray_DATA(a[2]), (float*)PyArray_DATA(a[3]),
                (float*)PyArray_DATA(a[4]), (float*)PyArray_DATA(a[5]),
                (float*)PyArray_DATA(*h_out), (float*)PyArray_DATA(*g_out), keep);
        else
            uvs_gru_fwd<double>(Tn, B, d, (double*)PyArray_DATA(a[0]),
                (double*)PyArray_DATA(a[1]), (double*)PyArray_DATA(a[2]),
                (double*)PyArray_DATA(a[3]), (double*)PyArray_DATA(a[4]),
                (double*)PyArray_DATA(a[5]), (double*)PyArray_DATA(*h_out),
                (double*)PyArray_DATA(*g_out), keep);
        Py_END_ALLOW_THREADS
        rc = 0;
    }
done:
    for (int i = 0; i < 6; i++) Py_XDECREF(a[i]);
    return rc;
}

static int uvs_gru_backward(PyArrayObject* m_in, PyArrayObject* h0_in, PyArrayObject* U_in,
                            PyArrayObject* Ux_in, PyArrayObject* h_in, PyArrayObject* g_in,
                            PyArrayObject* dh_in, PyArrayObject** dx_out,
                            PyArrayObject** dxx_out, PyArrayObject** dm_out,
                            PyArrayObject** dh0_out, PyArrayObject** dU_out,
                            PyArrayObject** dUx_out) {
    const int tn = PyArray_TYPE(h_in);
    PyArrayObject* in[7] = {m_in, h0_in, U_in, Ux_in, h_in, g_in, dh_in};
    PyArrayObject* a[7] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    PyArrayObject* dhux = NULL;
    int rc = -1;
    for (int i = 0; i < 7; i++)
        if (!(a[i] = uvs_contig(in[i], tn))) goto done;
    {
        npy_intp* s = PyArray_DIMS(a[4]);
        const npy_intp Tn = s[0], B = s[1], d = s[2];
        npy_intp* sm = PyArray_DIMS(a[0]);
        if (sm[0] != Tn || sm[1] != B) { rc = uvs_shape_error("mask"); goto done; }
        if (PyArray_DIMS(a[1])[0] != B || PyArray_DIMS(a[1])[1] != d) {
            rc = uvs_shape_error("h0"); goto done; }
        if (PyArray_DIMS(a[2])[0] != d || PyArray_DIMS(a[2])[1] != 2 * d) {
            rc = uvs_shape_error("U"); goto done; }
        if (PyArray_DIMS(a[3])[0] != d || PyArray_DIMS(a[3])[1] != d) {
            rc = uvs_shape_error("Ux"); goto done; }
        npy_intp* sg = PyArray_DIMS(a[5]);
        if (sg[0] != Tn || sg[1] != B || sg[2] != 4 * d) {
            rc = uvs_shape_error("gates"); goto done; }
        npy_intp* sd = PyArray_DIMS(a[6]);
        if (sd[0] != Tn || sd[1] != B || sd[2] != d) { rc = uvs_shape_error("dh"); goto done; }
        npy_intp dxd[3] = {Tn, B, 2 * d}, dxxd[3] = {Tn, B, d}, dmd[2] = {Tn, B};
        npy_intp dh0d[2] = {B, d}, dUd[2] = {d, 2 * d}, dUxd[2] = {d, d};
        if (uvs_output(dx_out, 3, dxd, tn) || uvs_output(dxx_out, 3, dxxd, tn)
            || uvs_output(dm_out, 2, dmd, tn) || uvs_output(dh0_out, 2, dh0d, tn)
            || uvs_output(dU_out, 2, dUd, tn) || uvs_output(dUx_out, 2, dUxd, tn))
            goto done;
        if (!(dhux = (PyArrayObject*)PyArray_EMPTY(3, dxxd, tn, 0))) goto done;
#define UVS_P(T, x) ((T*)PyArray_DATA(x))
        Py_BEGIN_ALLOW_THREADS
        if (tn == NPY_FLOAT32)
            uvs_gru_bwd<float>(Tn, B, d, UVS_P(float, a[0]), UVS_P(float, a[1]),
                UVS_P(float, a[2]), UVS_P(float, a[3]), UVS_P(float, a[4]), UVS_P(float, a[5]),
                UVS_P(float, a[6]), UVS_P(float, *dx_out), UVS_P(float, *dxx_out),
                UVS_P(float, *dm_out), UVS_P(float, *dh0_out), UVS_P(float, *dU_out),
                UVS_P(float, *dUx_out), UVS_P(float, dhux));
        else
            uvs_gru_bwd<double>(Tn, B, d, UVS_P(double, a[0]), UVS_P(double, a[1]),
                UVS_P(double, a[2]), UVS_P(double, a[3]), UVS_P(double, a[4]),
                UVS_P(double, a[5]), UVS_P(double, a[6]), UVS_P(double, *dx_out),
                UVS_P(double, *dxx_out), UVS_P(double, *dm_out), UVS_P(double, *dh0_out),
                UVS_P(double, *dU_out), UVS_P(double, *dUx_out), UVS_P(double, dhux));
        Py_END_ALLOW_THREADS
#undef UVS_P
        rc = 0;
    }
done:
    for (int i = 0; i < 7; i++) Py_XDECREF(a[i]);
    Py_XDECREF(dhux);
    return rc;
}
"""
