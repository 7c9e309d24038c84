#section support_code

/* The batch-invariant product of uvs/invariant_dot.py: out (n, m) = x (n, k) . w (k, m) in
   float32, every element summed in one fixed order, whatever n is and wherever the row sits:

       acc = 0; for kk in 0 .. k-1: acc = acc + (x[i, kk] * w[kk, j])   (two roundings)

   A BLAS sums differently for the tail rows of its blocks and when threads split the rows,
   so one context's scores would depend on the other contexts beside it. Vectors run across
   columns (j), never across kk; the scalar tail does the same operations one column at a time.
   Built with -ffp-contract=off so that no multiply-add is fused: NumPy, which rounds the
   product and the sum separately, gives bit-identical results (the Op's `perform`). */

typedef float uvs_v8 __attribute__((vector_size(32)));

static inline uvs_v8 uvs_load8(const float* p) {
    uvs_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void uvs_store8(float* p, uvs_v8 v) { memcpy(p, &v, sizeof v); }

#define UVS_NV 2 /* a panel of 2 vectors (16 columns) by 6 rows: 12 accumulators */
#define UVS_RB 6
enum { UVS_PANEL = 8 * UVS_NV, UVS_ROWS = UVS_RB };

/* R rows of out, columns [j0, j0 + UVS_PANEL); wp: the panel's first column in w, ldw: the
   stride of its rows (m, or UVS_PANEL when the panel is packed). */
template <int R>
static void uvs_panel(const float* x, npy_intp k, const float* wp, npy_intp ldw, float* out,
                      npy_intp m, npy_intp j0) {
    uvs_v8 acc[R][UVS_NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < UVS_NV; v++) acc[r][v] = (uvs_v8){0, 0, 0, 0, 0, 0, 0, 0};
    for (npy_intp kk = 0; kk < k; kk++) {
        const float* wr = wp + kk * ldw;
        uvs_v8 wv[UVS_NV];
        for (int v = 0; v < UVS_NV; v++) wv[v] = uvs_load8(wr + 8 * v);
        for (int r = 0; r < R; r++) {
            const float a = x[r * k + kk];
            const uvs_v8 b = {a, a, a, a, a, a, a, a};
            for (int v = 0; v < UVS_NV; v++) acc[r][v] += wv[v] * b;
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < UVS_NV; v++) uvs_store8(out + r * m + j0 + 8 * v, acc[r][v]);
}

/* One row of out, columns [j0, m): the same operations, one column at a time. */
static void uvs_tail(const float* x, npy_intp k, const float* w, npy_intp m, float* out,
                     npy_intp j0) {
    for (npy_intp j = j0; j < m; j++) {
        float acc = 0.0f;
        for (npy_intp kk = 0; kk < k; kk++) {
            const float p = x[kk] * w[kk * m + j];
            acc = acc + p;
        }
        out[j] = acc;
    }
}

/* rows [i, n) of out for one panel: blocks of UVS_ROWS, then one block of the rest */
static void uvs_rows(const float* x, npy_intp n, npy_intp k, const float* wp, npy_intp ldw,
                     float* out, npy_intp m, npy_intp j0) {
    npy_intp i = 0;
    for (; i + UVS_ROWS <= n; i += UVS_ROWS)
        uvs_panel<UVS_ROWS>(x + i * k, k, wp, ldw, out + i * m, m, j0);
    const float* xi = x + i * k;
    float* oi = out + i * m;
    switch (n - i) {
        case 5: uvs_panel<5>(xi, k, wp, ldw, oi, m, j0); break;
        case 4: uvs_panel<4>(xi, k, wp, ldw, oi, m, j0); break;
        case 3: uvs_panel<3>(xi, k, wp, ldw, oi, m, j0); break;
        case 2: uvs_panel<2>(xi, k, wp, ldw, oi, m, j0); break;
        case 1: uvs_panel<1>(xi, k, wp, ldw, oi, m, j0); break;
        default: break;
    }
}

static int uvs_invariant_dot(const float* x, npy_intp n, npy_intp k, const float* w,
                              npy_intp m, float* out) {
    const npy_intp panels = m / UVS_PANEL;
    /* a panel of w is packed when more than one block of rows will read it */
    const bool pack = n > UVS_ROWS;
    int failed = 0;
    /* threads split the columns: each element is still summed by one thread, in order */
#pragma omp parallel for schedule(static) if (n * m * k > (npy_intp)1 << 20)
    for (npy_intp p = 0; p <= panels; p++) {
        const npy_intp j0 = p * UVS_PANEL;
        if (p == panels) {
            for (npy_intp i = 0; i < n; i++) uvs_tail(x + i * k, k, w, m, out + i * m, j0);
            continue;
        }
        if (!pack) {
            uvs_rows(x, n, k, w + j0, m, out, m, j0);
            continue;
        }
        float* wp = (float*)malloc(sizeof(float) * UVS_PANEL * (k ? k : 1));
        if (!wp) {
#pragma omp atomic write
            failed = 1;
            continue;
        }
        for (npy_intp kk = 0; kk < k; kk++)
            memcpy(wp + kk * UVS_PANEL, w + kk * m + j0, sizeof(float) * UVS_PANEL);
        uvs_rows(x, n, k, wp, UVS_PANEL, out, m, j0);
        free(wp);
    }
    return failed ? -1 : 0;
}

static PyArrayObject* uvs_float32_contig(PyArrayObject* a) {
    return (PyArrayObject*)PyArray_FromAny((PyObject*)a, PyArray_DescrFromType(NPY_FLOAT32), 2, 2,
                                           NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
}

static int uvs_invariant_dot_apply(PyArrayObject* xa, PyArrayObject* wa, PyArrayObject** out) {
    if (PyArray_DIMS(xa)[1] != PyArray_DIMS(wa)[0]) {
        PyErr_Format(PyExc_ValueError,
                     "invariant dot: shapes (%ld, %ld) and (%ld, %ld) do not multiply",
                     (long)PyArray_DIMS(xa)[0], (long)PyArray_DIMS(xa)[1],
                     (long)PyArray_DIMS(wa)[0], (long)PyArray_DIMS(wa)[1]);
        return -1;
    }
    PyArrayObject* x = uvs_float32_contig(xa);
    PyArrayObject* w = x ? uvs_float32_contig(wa) : NULL;
    if (!w) {
        Py_XDECREF(x);
        return -1;
    }
    npy_intp dims[2] = {PyArray_DIMS(x)[0], PyArray_DIMS(w)[1]};
    PyArrayObject* o = *out;
    if (!(o && PyArray_NDIM(o) == 2 && PyArray_TYPE(o) == NPY_FLOAT32
          && PyArray_IS_C_CONTIGUOUS(o) && PyArray_DIMS(o)[0] == dims[0]
          && PyArray_DIMS(o)[1] == dims[1])) {
        Py_XDECREF(o);
        *out = o = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
    }
    if (o) {
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = uvs_invariant_dot((const float*)PyArray_DATA(x), dims[0], PyArray_DIMS(x)[1],
                                   (const float*)PyArray_DATA(w), dims[1],
                                   (float*)PyArray_DATA(o));
        Py_END_ALLOW_THREADS
        if (status != 0) {
            PyErr_NoMemory();
            Py_CLEAR(*out);
            o = NULL;
        }
    }
    Py_DECREF(x);
    Py_DECREF(w);
    return o ? 0 : -1;
}
