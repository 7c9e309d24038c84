#section support_code

/* The fused GRU of uvs/gru_op.py: its forward and backward Ops call uvs_gru_forward and
   uvs_gru_backward. C++ templates give the float32 and float64 versions; every matrix
   product goes to the BLAS PyTensor links (sgemm_/dgemm_, declared by PyTensor's BLAS
   header, which uvs_gru's Ops put in front of this file). PyTensor's ExternalCOp loads this
   file and keys its compile cache by a hash of it. The math is the `scan` GRU of
   uvs/layers.py (gru_layer), which the tests compare this with (tests/test_gru_op.py). */

/* uvs_gemm, uvs_mm, uvs_contig, uvs_output, uvs_expect: blas_support.c, put before this file;
   uvs_expf, uvs_sigmoid, uvs_tanh: fastmath.h, put in front of both */

static const char UVS_GRU[] = "fused GRU";

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

/* in: x, mask, h0, W, b, U, Wx, bx, Ux. */
static int uvs_gru_forward(PyArrayObject** in, PyArrayObject** h_out, PyArrayObject** g_out) {
    const int tn = PyArray_TYPE(in[0]);
    PyArrayObject* a[9] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 9; i++)
        if (!(a[i] = uvs_contig(in[i], tn, 0))) goto done;
    if (PyArray_NDIM(a[0]) != 3 || PyArray_NDIM(a[8]) != 2) {
        uvs_shape_error(UVS_GRU, "x or Ux");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[0])[0], B = PyArray_DIMS(a[0])[1];
        const npy_intp nin = PyArray_DIMS(a[0])[2], d = PyArray_DIMS(a[8])[0];
        if (uvs_expect(UVS_GRU, a[1], "mask", 2, Tn, B, 0)
            || uvs_expect(UVS_GRU, a[2], "h0", 2, B, d, 0)
            || uvs_expect(UVS_GRU, a[3], "W", 2, nin, 2 * d, 0)
            || uvs_expect(UVS_GRU, a[4], "b", 1, 2 * d, 0, 0)
            || uvs_expect(UVS_GRU, a[5], "U", 2, d, 2 * d, 0)
            || uvs_expect(UVS_GRU, a[6], "Wx", 2, nin, d, 0)
            || uvs_expect(UVS_GRU, a[7], "bx", 1, d, 0, 0)
            || uvs_expect(UVS_GRU, a[8], "Ux", 2, d, d, 0))
            goto done;
        npy_intp hd[3] = {Tn, B, d}, gd[3] = {Tn, B, 4 * d};
        if (!uvs_output(h_out, 3, hd, tn) || !uvs_output(g_out, 3, gd, tn)) goto done;
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
        if (!(a[i] = uvs_contig(in[i], tn, 0))) goto done;
    if (PyArray_NDIM(a[0]) != 3 || PyArray_NDIM(a[6]) != 2) {
        uvs_shape_error(UVS_GRU, "x or Ux");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[0])[0], B = PyArray_DIMS(a[0])[1];
        const npy_intp nin = PyArray_DIMS(a[0])[2], d = PyArray_DIMS(a[6])[0];
        if (uvs_expect(UVS_GRU, a[1], "mask", 2, Tn, B, 0)
            || uvs_expect(UVS_GRU, a[2], "h0", 2, B, d, 0)
            || uvs_expect(UVS_GRU, a[3], "W", 2, nin, 2 * d, 0)
            || uvs_expect(UVS_GRU, a[4], "U", 2, d, 2 * d, 0)
            || uvs_expect(UVS_GRU, a[5], "Wx", 2, nin, d, 0)
            || uvs_expect(UVS_GRU, a[6], "Ux", 2, d, d, 0)
            || uvs_expect(UVS_GRU, a[7], "h", 3, Tn, B, d)
            || uvs_expect(UVS_GRU, a[8], "gates", 3, Tn, B, 4 * d)
            || uvs_expect(UVS_GRU, a[9], "dh", 3, Tn, B, d))
            goto done;
        npy_intp shapes[9][3] = {{Tn, B, nin}, {Tn, B}, {B, d}, {nin, 2 * d}, {2 * d},
                                 {d, 2 * d}, {nin, d}, {d}, {d, d}};
        const int nds[9] = {3, 2, 2, 2, 1, 2, 2, 1, 2};
        for (int i = 0; i < 9; i++)
            if (!uvs_output(out[i], nds[i], shapes[i], tn)) goto done;
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
