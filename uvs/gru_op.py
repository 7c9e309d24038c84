"""A fused GRU layer for PyTensor: the layer, and its gradient, as one Op each.

The `scan` GRU in `uvs.layers` is the reference; this computes the same thing
(DESIGN.md, "GRU") without a `scan`: the input projections of all steps at once, the
loop over time and the backward loop run in C (NumPy in `perform` where C is not used),
calling the BLAS the rest of the graph links. The backward pass accumulates the weight
gradients as one large product over all T·B rows (dU = H_prevᵀ·dPre) instead of T small ones.

`UVS_GRU=scan|fused` chooses the implementation; `fused` is the default (see
`benchmarks/train_bench.py`), except under the JAX backend, which cannot run it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.utils import MethodNotDefined
from pytensor.link.c.op import COp
from pytensor.scalar import upcast

IMPLEMENTATIONS = ("fused", "scan")
DEFAULT = "fused"
_CACHE_VERSION = 10


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
    from uvs import backend

    return "scan" if backend.mode(mode) == "JAX" else DEFAULT


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
        return ["<math.h>", "<stdlib.h>", "<string.h>"]

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
            raise MethodNotDefined("no BLAS linked: the NumPy implementation runs instead")
        if node.outputs[0].dtype not in ("float32", "float64"):
            raise MethodNotDefined(f"no C code for {node.outputs[0].dtype}")


class GRUForward(_BlasCOp):
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


class GRUBackward(_BlasCOp):
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

/* a has shape (s0[, s1[, s2]]); else a ValueError naming it. */
static int uvs_expect(PyArrayObject* a, const char* name, int nd, npy_intp s0, npy_intp s1,
                      npy_intp s2) {
    const npy_intp want[3] = {s0, s1, s2};
    bool ok = PyArray_NDIM(a) == nd;
    for (int i = 0; ok && i < nd; i++) ok = PyArray_DIMS(a)[i] == want[i];
    if (ok) return 0;
    PyErr_Format(PyExc_ValueError, "fused GRU: %s has the wrong shape", name);
    return -1;
}

/* One row of the forward step. g: x.W + h.U (r|u, 2d) | x.Wx (d) | h.Ux (d), biases not yet
   added; becomes r | u | h~ | h.Ux. */
template <typename T>
static void uvs_fwd_row(int d, T* __restrict g, const T* __restrict b,
                        const T* __restrict bx, const T* __restrict hpb, T* __restrict hb,
                        const T m) {
    T* __restrict gr = g;
    T* __restrict gu = g + d;
    T* __restrict gt = g + 2 * d;
    const T* __restrict gx = g + 3 * d;
    const T* __restrict bu = b + d;
#pragma omp simd
    for (int j = 0; j < d; j++) {
        const T r = uvs_sigmoid(gr[j] + b[j]);
        const T u = uvs_sigmoid(gu[j] + bu[j]);
        const T ht = uvs_tanh(r * gx[j] + (gt[j] + bx[j]));
        const T hn = u * hpb[j] + ((T)1 - u) * ht;
        gr[j] = r;
        gu[j] = u;
        gt[j] = ht;
        hb[j] = m * hn + ((T)1 - m) * hpb[j];
    }
}

/* gates: (T, B, 4d). */
template <typename T>
static void uvs_gru_fwd(int Tn, int B, int nin, int d, const T* x, const T* mask, const T* h0,
                        const T* W, const T* b, const T* U, const T* Wx, const T* bx,
                        const T* Ux, T* h, T* gates) {
    const npy_intp Bd = (npy_intp)B * d;
    /* the input projections of all steps at once */
    uvs_mm<T>(Tn * B, 2 * d, nin, x, nin, false, W, 2 * d, false, (T)0, gates, 4 * d);
    uvs_mm<T>(Tn * B, d, nin, x, nin, false, Wx, d, false, (T)0, gates + 2 * d, 4 * d);
    for (int t = 0; t < Tn; t++) {
        const T* hp = t ? h + (t - 1) * Bd : h0;
        T* g = gates + (npy_intp)t * 4 * Bd;
        if (uvs_all_zero(hp, Bd)) {
            for (int r = 0; r < B; r++) memset(g + (npy_intp)r * 4 * d + 3 * d, 0, d * sizeof(T));
        } else {
            uvs_mm<T>(B, 2 * d, d, hp, d, false, U, 2 * d, false, (T)1, g, 4 * d);
            uvs_mm<T>(B, d, d, hp, d, false, Ux, d, false, (T)0, g + 3 * d, 4 * d);
        }
        for (int r = 0; r < B; r++)
            uvs_fwd_row<T>(d, g + (npy_intp)r * 4 * d, b, bx, hp + (npy_intp)r * d,
                           h + (npy_intp)t * Bd + (npy_intp)r * d, mask[(npy_intp)t * B + r]);
    }
}

/* One row of the backward step: D gets dPre (2d) | dxx (d) | dhux (d); the carried gradient
   w.r.t. the previous state is updated but for its matrix products; returns d cost / d mask. */
template <typename T>
static T uvs_bwd_row(int d, const T* __restrict g, const T* __restrict hpb,
                     const T* __restrict dhb, T* __restrict cb, T* __restrict D, const T m) {
    const T* __restrict gr = g;
    const T* __restrict gu = g + d;
    const T* __restrict gt = g + 2 * d;
    const T* __restrict gx = g + 3 * d;
    T* __restrict dr = D;
    T* __restrict du = D + d;
    T* __restrict dxx = D + 2 * d;
    T* __restrict dhux = D + 3 * d;
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
        dxx[j] = dpx;
        dhux[j] = dpx * r;
        dr[j] = dpx * hux * r * ((T)1 - r);
        du[j] = gn * (hpv - ht) * u * ((T)1 - u);
        cb[j] = ((T)1 - m) * gh + gn * u;
    }
    return acc;
}

/* D: (T.B, 4d) scratch. */
template <typename T>
static void uvs_gru_bwd(int Tn, int B, int nin, int d, const T* x, const T* mask, const T* h0,
                        const T* W, const T* U, const T* Wx, const T* Ux, const T* h,
                        const T* gates, const T* dh, T* dx, T* dmask, T* carry, T* dW, T* db,
                        T* dU, T* dWx, T* dbx, T* dUx, T* D) {
    const npy_intp Bd = (npy_intp)B * d, n = (npy_intp)Tn * B, ld = 4 * d;
    memset(carry, 0, Bd * sizeof(T));
    for (int t = Tn - 1; t >= 0; t--) {
        const T* hp = t ? h + (t - 1) * Bd : h0;
        T* Dt = D + (npy_intp)t * B * ld;
        for (int r = 0; r < B; r++) {
            const npy_intp row = (npy_intp)t * B + r;
            dmask[row] = uvs_bwd_row<T>(d, gates + row * ld, hp + (npy_intp)r * d, dh + row * d,
                                        carry + (npy_intp)r * d, D + row * ld, mask[row]);
        }
        /* carry += dPre_t . U^T + dhux_t . Ux^T */
        uvs_mm<T>(B, d, 2 * d, Dt, ld, false, U, 2 * d, true, (T)1, carry, d);
        uvs_mm<T>(B, d, d, Dt + 3 * d, ld, false, Ux, d, true, (T)1, carry, d);
    }
    /* dU = H_prev^T . dPre over all T.B rows; H_prev = h0, h[0], ..., h[T-2] */
    const bool h0_zero = uvs_all_zero(h0, Bd);
    if (h0_zero) {
        memset(dU, 0, (npy_intp)d * 2 * d * sizeof(T));
        memset(dUx, 0, (npy_intp)d * d * sizeof(T));
    } else {
        uvs_mm<T>(d, 2 * d, B, h0, d, true, D, ld, false, (T)0, dU, 2 * d);
        uvs_mm<T>(d, d, B, h0, d, true, D + 3 * d, ld, false, (T)0, dUx, d);
    }
    if (Tn > 1) {
        const int rows = (Tn - 1) * B;
        const T beta = h0_zero ? (T)0 : (T)1;
        const T* D1 = D + (npy_intp)B * ld;
        uvs_mm<T>(d, 2 * d, rows, h, d, true, D1, ld, false, beta, dU, 2 * d);
        uvs_mm<T>(d, d, rows, h, d, true, D1 + 3 * d, ld, false, beta, dUx, d);
    }
    /* the input projections: dW = x^T . dPre, dWx = x^T . dxx, dx = dPre . W^T + dxx . Wx^T */
    uvs_mm<T>(nin, 2 * d, n, x, nin, true, D, ld, false, (T)0, dW, 2 * d);
    uvs_mm<T>(nin, d, n, x, nin, true, D + 2 * d, ld, false, (T)0, dWx, d);
    uvs_mm<T>(n, nin, 2 * d, D, ld, false, W, 2 * d, true, (T)0, dx, nin);
    uvs_mm<T>(n, nin, d, D + 2 * d, ld, false, Wx, d, true, (T)1, dx, nin);
    /* db, dbx: column sums of dPre and dxx, accumulated in double */
    double* acc = (double*)calloc(3 * d, sizeof(double));
    if (acc) {
        for (npy_intp row = 0; row < n; row++) {
            const T* __restrict Dr = D + row * ld;
#pragma omp simd
            for (int j = 0; j < 3 * d; j++) acc[j] += Dr[j];
        }
        for (int j = 0; j < 2 * d; j++) db[j] = (T)acc[j];
        for (int j = 0; j < d; j++) dbx[j] = (T)acc[2 * d + j];
        free(acc);
    } else {  /* out of memory for 3d doubles: sum in T */
        memset(db, 0, 2 * d * sizeof(T));
        memset(dbx, 0, d * sizeof(T));
        for (npy_intp row = 0; row < n; row++) {
            for (int j = 0; j < 2 * d; j++) db[j] += D[row * ld + j];
            for (int j = 0; j < d; j++) dbx[j] += D[row * ld + 2 * d + j];
        }
    }
}

#define UVS_P(T, a) ((T*)PyArray_DATA(a))

/* in: x, mask, h0, W, b, U, Wx, bx, Ux. */
static int uvs_gru_forward(PyArrayObject** in, PyArrayObject** h_out, PyArrayObject** g_out) {
    const int tn = PyArray_TYPE(in[0]);
    PyArrayObject* a[9] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 9; i++)
        if (!(a[i] = uvs_contig(in[i], tn))) goto done;
    if (PyArray_NDIM(a[0]) != 3 || PyArray_NDIM(a[8]) != 2) {
        uvs_shape_error("x or Ux");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[0])[0], B = PyArray_DIMS(a[0])[1];
        const npy_intp nin = PyArray_DIMS(a[0])[2], d = PyArray_DIMS(a[8])[0];
        if (uvs_expect(a[1], "mask", 2, Tn, B, 0) || uvs_expect(a[2], "h0", 2, B, d, 0)
            || uvs_expect(a[3], "W", 2, nin, 2 * d, 0) || uvs_expect(a[4], "b", 1, 2 * d, 0, 0)
            || uvs_expect(a[5], "U", 2, d, 2 * d, 0) || uvs_expect(a[6], "Wx", 2, nin, d, 0)
            || uvs_expect(a[7], "bx", 1, d, 0, 0) || uvs_expect(a[8], "Ux", 2, d, d, 0))
            goto done;
        npy_intp hd[3] = {Tn, B, d}, gd[3] = {Tn, B, 4 * d};
        if (uvs_output(h_out, 3, hd, tn) || uvs_output(g_out, 3, gd, tn)) goto done;
        Py_BEGIN_ALLOW_THREADS
#define UVS_FWD(T) uvs_gru_fwd<T>(Tn, B, nin, d, UVS_P(T, a[0]), UVS_P(T, a[1]), UVS_P(T, a[2]), \
    UVS_P(T, a[3]), UVS_P(T, a[4]), UVS_P(T, a[5]), UVS_P(T, a[6]), UVS_P(T, a[7]), \
    UVS_P(T, a[8]), UVS_P(T, *h_out), UVS_P(T, *g_out))
        if (tn == NPY_FLOAT32) UVS_FWD(float); else UVS_FWD(double);
#undef UVS_FWD
        Py_END_ALLOW_THREADS
        rc = 0;
    }
done:
    for (int i = 0; i < 9; i++) Py_XDECREF(a[i]);
    return rc;
}

/* in: x, mask, h0, W, U, Wx, Ux, h, gates, dh; out: the gradients of GRUForward's inputs. */
static int uvs_gru_backward(PyArrayObject** in, PyArrayObject*** out) {
    const int tn = PyArray_TYPE(in[7]);
    PyArrayObject* a[10] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    PyArrayObject* D = NULL;
    int rc = -1;
    for (int i = 0; i < 10; i++)
        if (!(a[i] = uvs_contig(in[i], tn))) goto done;
    if (PyArray_NDIM(a[0]) != 3 || PyArray_NDIM(a[6]) != 2) {
        uvs_shape_error("x or Ux");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[0])[0], B = PyArray_DIMS(a[0])[1];
        const npy_intp nin = PyArray_DIMS(a[0])[2], d = PyArray_DIMS(a[6])[0];
        if (uvs_expect(a[1], "mask", 2, Tn, B, 0) || uvs_expect(a[2], "h0", 2, B, d, 0)
            || uvs_expect(a[3], "W", 2, nin, 2 * d, 0) || uvs_expect(a[4], "U", 2, d, 2 * d, 0)
            || uvs_expect(a[5], "Wx", 2, nin, d, 0) || uvs_expect(a[6], "Ux", 2, d, d, 0)
            || uvs_expect(a[7], "h", 3, Tn, B, d) || uvs_expect(a[8], "gates", 3, Tn, B, 4 * d)
            || uvs_expect(a[9], "dh", 3, Tn, B, d))
            goto done;
        npy_intp shapes[9][3] = {{Tn, B, nin}, {Tn, B}, {B, d}, {nin, 2 * d}, {2 * d},
                                 {d, 2 * d}, {nin, d}, {d}, {d, d}};
        const int nds[9] = {3, 2, 2, 2, 1, 2, 2, 1, 2};
        for (int i = 0; i < 9; i++)
            if (uvs_output(out[i], nds[i], shapes[i], tn)) goto done;
        npy_intp dd[2] = {Tn * B, 4 * d};
        if (!(D = (PyArrayObject*)PyArray_EMPTY(2, dd, tn, 0))) goto done;
        Py_BEGIN_ALLOW_THREADS
#define UVS_BWD(T) uvs_gru_bwd<T>(Tn, B, nin, d, UVS_P(T, a[0]), UVS_P(T, a[1]), UVS_P(T, a[2]), \
    UVS_P(T, a[3]), UVS_P(T, a[4]), UVS_P(T, a[5]), UVS_P(T, a[6]), UVS_P(T, a[7]), \
    UVS_P(T, a[8]), UVS_P(T, a[9]), UVS_P(T, *out[0]), UVS_P(T, *out[1]), UVS_P(T, *out[2]), \
    UVS_P(T, *out[3]), UVS_P(T, *out[4]), UVS_P(T, *out[5]), UVS_P(T, *out[6]), \
    UVS_P(T, *out[7]), UVS_P(T, *out[8]), UVS_P(T, D))
        if (tn == NPY_FLOAT32) UVS_BWD(float); else UVS_BWD(double);
#undef UVS_BWD
        Py_END_ALLOW_THREADS
        rc = 0;
    }
done:
    for (int i = 0; i < 10; i++) Py_XDECREF(a[i]);
    Py_XDECREF(D);
    return rc;
}
"""
