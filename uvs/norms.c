#section support_code

/* The squared norm of uvs/norms.py: the sum of the squares of every element of every input,
   in double, each input read once by vector lanes spread over OpenMP threads; rounded to
   float once at the end. */

static double uvs_sum_squares(const float* x, npy_intp n) {
    double total = 0.0;
#pragma omp parallel for simd reduction(+ : total) schedule(static) if (n > 1 << 16)
    for (npy_intp i = 0; i < n; i++) total += (double)x[i] * (double)x[i];
    return total;
}

/* The squares of a table's listed rows only, in double: a table of zeros but those rows
   (`uvs.inc_rows.SparseTableRows`). x (n, d) C-contiguous; rows valid, each at most once. */
static double uvs_sum_squares_rows(const float* x, npy_intp d, const npy_int64* rows,
                                   npy_intp k) {
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (k * d > 1 << 16)
    for (npy_intp r = 0; r < k; r++) {
        const float* xr = x + rows[r] * d;
        double part = 0.0;
#pragma omp simd reduction(+ : part)
        for (npy_intp j = 0; j < d; j++) part += (double)xr[j] * (double)xr[j];
        total += part;
    }
    return total;
}

/* in: n float32 arrays, then one int64 row list for each of the `nrows` arrays named by
   `rows_of` (those arrays are tables of zeros but their listed rows); out: a float32 scalar
   array. */
static int uvs_squared_norm(PyArrayObject** in, int n, const int* rows_of, int nrows,
                            PyArrayObject** out) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        int listed = -1;
        for (int k = 0; k < nrows; k++)
            if (rows_of[k] == i) listed = k;
        PyArrayObject* a = uvs_contig(in[i], NPY_FLOAT32, listed >= 0 ? 2 : 0);
        if (!a) return -1;
        const float* x = (const float*)PyArray_DATA(a);
        PyArrayObject* rows = NULL;
        if (listed >= 0 && !(rows = uvs_listed_rows(in[n + listed], PyArray_DIM(a, 0)))) {
            Py_DECREF(a);
            return -1;
        }
        double part;
        Py_BEGIN_ALLOW_THREADS
        part = rows ? uvs_sum_squares_rows(x, PyArray_DIM(a, 1),
                                           (const npy_int64*)PyArray_DATA(rows),
                                           PyArray_DIM(rows, 0))
                    : uvs_sum_squares(x, PyArray_SIZE(a));
        Py_END_ALLOW_THREADS
        total += part;
        Py_XDECREF(rows);
        Py_DECREF(a);
    }
    if (!*out || PyArray_NDIM(*out) != 0 || PyArray_TYPE(*out) != NPY_FLOAT32) {
        Py_XDECREF(*out);
        *out = (PyArrayObject*)PyArray_EMPTY(0, NULL, NPY_FLOAT32, 0);
        if (!*out) return -1;
    }
    *(float*)PyArray_DATA(*out) = (float)total;
    return 0;
}

/* The clipping of uvs/norms.py: g rescaled to norm `limit` when its squared norm g2 exceeds
   limit², as (limit g) / sqrt(g2) element by element (the graph it replaces, as PyTensor's
   rewrites write it); the elements spread over OpenMP threads. g itself is the output when
   `inplace` (nothing to do below the limit), else a copy. */
static int uvs_clip_scale(PyArrayObject* g, PyArrayObject* g2, PyArrayObject* rows,
                          PyArrayObject** out, int inplace, float limit) {
    if (PyArray_TYPE(g) != NPY_FLOAT32 || PyArray_TYPE(g2) != NPY_FLOAT32
        || PyArray_NDIM(g2) != 0) {
        PyErr_SetString(PyExc_ValueError, "clip scale: a float32 tensor and a float32 scalar");
        return -1;
    }
    PyArrayObject* o = uvs_inplace_or_copy(g, inplace);
    if (!o) return -1;
    Py_XDECREF(*out);
    *out = o;
    const float n2 = *(const float*)PyArray_DATA(g2);
    if (!(n2 > limit * limit)) return 0;
    const float norm = sqrtf(n2);
    float* __restrict x = (float*)PyArray_DATA(o);
    if (rows) {  /* a table of zeros but these rows: (limit 0) / norm is 0 */
        if (PyArray_NDIM(o) != 2) {
            PyErr_SetString(PyExc_ValueError, "clip scale: rows of a matrix");
            return -1;
        }
        const npy_intp d = PyArray_DIM(o, 1);
        PyArrayObject* r = uvs_listed_rows(rows, PyArray_DIM(o, 0));
        if (!r) return -1;
        const npy_int64* v = (const npy_int64*)PyArray_DATA(r);
        const npy_intp k = PyArray_DIM(r, 0);
        Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for schedule(static) if (k * d > 1 << 16)
        for (npy_intp i = 0; i < k; i++) {
            float* __restrict xr = x + v[i] * d;
#pragma omp simd
            for (npy_intp j = 0; j < d; j++) xr[j] = (limit * xr[j]) / norm;
        }
        Py_END_ALLOW_THREADS
        Py_DECREF(r);
        return 0;
    }
    const npy_intp n = PyArray_SIZE(o);
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for simd schedule(static) if (n > 1 << 16)
    for (npy_intp i = 0; i < n; i++) x[i] = (limit * x[i]) / norm;
    Py_END_ALLOW_THREADS
    return 0;
}
