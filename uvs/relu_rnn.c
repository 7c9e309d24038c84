#section support_code

/* The fused ReLU recurrence of uvs/relu_rnn.py (the alignment model's BRNN, one direction):

       a_t = e_t + h_{t-1}.W + b,   h_t = m_t * max(a_t, 0) + (1 - m_t) * h_{t-1},   h_{-1} = 0

   Forward and backward loops in C, one BLAS product per step for the recurrence; the
   backward pass sums the weight gradient over all steps as one product (dW = H_prev^T.dA).
   The math is the `scan` of uvs/align/model.py, which tests/test_relu_rnn.py compares.
   uvs_mm, uvs_contig, uvs_output, uvs_expect: blas_support.c, put before this file. */

static const char UVS_RNN[] = "fused ReLU recurrence";

/* a: (T, B, d) gets the pre-activations, h: (T, B, d) the states. */
template <typename T>
static void uvs_relu_rnn_fwd(int Tn, int B, int d, const T* e, const T* mask, const T* W,
                             const T* b, T* a, T* h) {
    const npy_intp Bd = (npy_intp)B * d;
    for (int t = 0; t < Tn; t++) {
        const T* hp = t ? h + (t - 1) * Bd : NULL;
        T* at = a + t * Bd;
        T* ht = h + t * Bd;
        if (hp) uvs_mm<T>(B, d, d, hp, d, false, W, d, false, (T)0, at, d);
        for (int r = 0; r < B; r++) {
            const T m = mask[(npy_intp)t * B + r];
            const npy_intp o = (npy_intp)r * d;
            T* __restrict ar = at + o;
            T* __restrict hr = ht + o;
            const T* __restrict er = e + t * Bd + o;
            const T* __restrict hpr = hp ? hp + o : NULL;
            if (hpr) {
#pragma omp simd
                for (int j = 0; j < d; j++) {
                    const T v = er[j] + ar[j] + b[j];
                    ar[j] = v;
                    hr[j] = m * (v > 0 ? v : (T)0) + ((T)1 - m) * hpr[j];
                }
            } else {
#pragma omp simd
                for (int j = 0; j < d; j++) {
                    const T v = er[j] + b[j];
                    ar[j] = v;
                    hr[j] = m * (v > 0 ? v : (T)0);
                }
            }
        }
    }
}

/* dh: (T, B, d) the cost's gradient w.r.t. every state; de (T, B, d) gets dA, dW (d, d), db
   (d,); c: (B, d) scratch for the gradient carried to the previous state. */
template <typename T>
static void uvs_relu_rnn_bwd(int Tn, int B, int d, const T* mask, const T* W, const T* a,
                             const T* h, const T* dh, T* de, T* dW, T* db, T* c) {
    const npy_intp Bd = (npy_intp)B * d;
    memset(c, 0, Bd * sizeof(T));
    for (int t = Tn - 1; t >= 0; t--) {
        T* dat = de + t * Bd;
        for (int r = 0; r < B; r++) {
            const T m = mask[(npy_intp)t * B + r];
            const npy_intp o = (npy_intp)r * d;
            const T* __restrict ar = a + t * Bd + o;
            const T* __restrict dhr = dh + t * Bd + o;
            T* __restrict cr = c + o;
            T* __restrict dar = dat + o;
#pragma omp simd
            for (int j = 0; j < d; j++) {
                const T g = dhr[j] + cr[j];
                dar[j] = ar[j] >= 0 ? m * g : (T)0;  /* max(a, 0) passes where it equals a */
                cr[j] = ((T)1 - m) * g;
            }
        }
        if (t > 0) uvs_mm<T>(B, d, d, dat, d, false, W, d, true, (T)1, c, d);
    }
    /* dW = sum over steps t >= 1 of h_{t-1}^T . dA_t, one product over all their rows */
    if (Tn > 1) {
        uvs_mm<T>(d, d, (Tn - 1) * B, h, d, true, de + Bd, d, false, (T)0, dW, d);
    } else {
        memset(dW, 0, (npy_intp)d * d * sizeof(T));
    }
    double* acc = (double*)calloc(d ? d : 1, sizeof(double));
    if (acc) {
        for (npy_intp row = 0; row < (npy_intp)Tn * B; row++) {
            const T* __restrict dr = de + row * d;
#pragma omp simd
            for (int j = 0; j < d; j++) acc[j] += dr[j];
        }
        for (int j = 0; j < d; j++) db[j] = (T)acc[j];
        free(acc);
    } else {  /* out of memory for d doubles: sum in T */
        memset(db, 0, d * sizeof(T));
        for (npy_intp row = 0; row < (npy_intp)Tn * B; row++)
            for (int j = 0; j < d; j++) db[j] += de[row * d + j];
    }
}

/* in: e, mask, W, b; out: a, h. */
static int uvs_relu_rnn_forward(PyArrayObject** in, PyArrayObject** a_out,
                                PyArrayObject** h_out) {
    const int tn = PyArray_TYPE(in[0]);
    PyArrayObject* a[4] = {NULL, NULL, NULL, NULL};
    int rc = -1;
    for (int i = 0; i < 4; i++)
        if (!(a[i] = uvs_contig(in[i], tn, 0))) goto done;
    if (PyArray_NDIM(a[0]) != 3) {
        uvs_shape_error(UVS_RNN, "e");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[0])[0], B = PyArray_DIMS(a[0])[1];
        const npy_intp d = PyArray_DIMS(a[0])[2];
        if (uvs_expect(UVS_RNN, a[1], "mask", 2, Tn, B, 0)
            || uvs_expect(UVS_RNN, a[2], "W", 2, d, d, 0)
            || uvs_expect(UVS_RNN, a[3], "b", 1, d, 0, 0))
            goto done;
        npy_intp hd[3] = {Tn, B, d};
        if (!uvs_output(a_out, 3, hd, tn) || !uvs_output(h_out, 3, hd, tn)) goto done;
        Py_BEGIN_ALLOW_THREADS
#define UVS_FWD(T) uvs_relu_rnn_fwd<T>(Tn, B, d, UVS_P(T, a[0]), UVS_P(T, a[1]), \
    UVS_P(T, a[2]), UVS_P(T, a[3]), UVS_P(T, *a_out), UVS_P(T, *h_out))
        if (tn == NPY_FLOAT32) UVS_FWD(float); else UVS_FWD(double);
#undef UVS_FWD
        Py_END_ALLOW_THREADS
        rc = 0;
    }
done:
    for (int i = 0; i < 4; i++) Py_XDECREF(a[i]);
    return rc;
}

/* in: mask, W, a, h, dh; out: de, dW, db. */
static int uvs_relu_rnn_backward(PyArrayObject** in, PyArrayObject*** out) {
    const int tn = PyArray_TYPE(in[2]);
    PyArrayObject* a[5] = {NULL, NULL, NULL, NULL, NULL};
    PyArrayObject* c = NULL;
    int rc = -1;
    for (int i = 0; i < 5; i++)
        if (!(a[i] = uvs_contig(in[i], tn, 0))) goto done;
    if (PyArray_NDIM(a[2]) != 3) {
        uvs_shape_error(UVS_RNN, "a");
        goto done;
    }
    {
        const npy_intp Tn = PyArray_DIMS(a[2])[0], B = PyArray_DIMS(a[2])[1];
        const npy_intp d = PyArray_DIMS(a[2])[2];
        if (uvs_expect(UVS_RNN, a[0], "mask", 2, Tn, B, 0)
            || uvs_expect(UVS_RNN, a[1], "W", 2, d, d, 0)
            || uvs_expect(UVS_RNN, a[3], "h", 3, Tn, B, d)
            || uvs_expect(UVS_RNN, a[4], "dh", 3, Tn, B, d))
            goto done;
        npy_intp shapes[3][3] = {{Tn, B, d}, {d, d}, {d}};
        const int nds[3] = {3, 2, 1};
        for (int i = 0; i < 3; i++)
            if (!uvs_output(out[i], nds[i], shapes[i], tn)) goto done;
        npy_intp cd[2] = {B, d};
        if (!(c = (PyArrayObject*)PyArray_EMPTY(2, cd, tn, 0))) goto done;
        Py_BEGIN_ALLOW_THREADS
#define UVS_BWD(T) uvs_relu_rnn_bwd<T>(Tn, B, d, UVS_P(T, a[0]), UVS_P(T, a[1]), \
    UVS_P(T, a[2]), UVS_P(T, a[3]), UVS_P(T, a[4]), UVS_P(T, *out[0]), UVS_P(T, *out[1]), \
    UVS_P(T, *out[2]), UVS_P(T, c))
        if (tn == NPY_FLOAT32) UVS_BWD(float); else UVS_BWD(double);
#undef UVS_BWD
        Py_END_ALLOW_THREADS
        rc = 0;
    }
done:
    for (int i = 0; i < 5; i++) Py_XDECREF(a[i]);
    Py_XDECREF(c);
    return rc;
}
