#section support_code

/* x[idx[i]] += y[i] for each i in order (uvs/inc_rows.py): the gradient of an embedding
   lookup, its rows added into the table's gradient. Every thread adds its own columns of
   every row, rows in index order, so a word that repeats sums exactly as np.add.at sums it. */

static void uvs_inc_rows(npy_intp k, npy_intp d, float* __restrict x,
                         const float* __restrict y, npy_intp y_step, const npy_int64* rows) {
#pragma omp parallel if (k * d > 1 << 15)
    {
        npy_intp c0, c1;
        uvs_thread_block(d, &c0, &c1);
        for (npy_intp i = 0; i < k; i++) {
            float* __restrict xr = x + rows[i] * d;
            const float* __restrict yr = y + i * y_step;
#pragma omp simd
            for (npy_intp c = c0; c < c1; c++) xr[c] += yr[c];
        }
    }
}

/* x (n, d), y (k or 1, d) float32, idx (k,) int64, negative indices from the end as NumPy's;
   the output is x itself when `inplace`, else a copy. */
static int uvs_inc_rows_apply(PyArrayObject* x, PyArrayObject* y, PyArrayObject* idx,
                              PyArrayObject** out, int inplace) {
    if (PyArray_NDIM(x) != 2 || PyArray_NDIM(y) != 2 || PyArray_NDIM(idx) != 1
        || PyArray_TYPE(x) != NPY_FLOAT32 || PyArray_TYPE(y) != NPY_FLOAT32
        || PyArray_TYPE(idx) != NPY_INT64) {
        PyErr_SetString(PyExc_ValueError, "inc rows: a float32 matrix, float32 rows and "
                        "int64 indices");
        return -1;
    }
    const npy_intp n = PyArray_DIM(x, 0), d = PyArray_DIM(x, 1), k = PyArray_DIM(idx, 0);
    const npy_intp yk = PyArray_DIM(y, 0);
    if (PyArray_DIM(y, 1) != d || (yk != k && yk != 1)) {
        PyErr_Format(PyExc_ValueError, "inc rows: %ld rows of %ld values cannot be added at "
                     "%ld indices of a (%ld, %ld) matrix", (long)yk, (long)PyArray_DIM(y, 1),
                     (long)k, (long)n, (long)d);
        return -1;
    }
    PyArrayObject* o = uvs_inplace_or_copy(x, inplace);
    if (!o) return -1;
    Py_XDECREF(*out);
    *out = o;
    PyArrayObject* yc = (PyArrayObject*)PyArray_GETCONTIGUOUS(y);
    if (!yc) return -1;
    npy_int64* rows = uvs_wrapped_indices(idx, n, 0);
    if (!rows) {
        Py_DECREF(yc);
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    uvs_inc_rows(k, d, (float*)PyArray_DATA(o), (const float*)PyArray_DATA(yc),
                 yk == 1 ? 0 : d, rows);
    Py_END_ALLOW_THREADS
    free(rows);
    Py_DECREF(yc);
    return 0;
}

/* x zeroed where it lies (uvs/inc_rows.py's ZeroFill: the last update's gradient storage
   reused for this one's), over OpenMP threads; a new zero array when x is not a writeable,
   contiguous float32 array of `shape`. */
static int uvs_zero_fill(PyArrayObject* x, npy_intp* shape, int nd, PyArrayObject** out) {
    int same = PyArray_TYPE(x) == NPY_FLOAT32 && PyArray_NDIM(x) == nd
               && PyArray_IS_C_CONTIGUOUS(x) && PyArray_ISWRITEABLE(x);
    for (int i = 0; same && i < nd; i++) same = PyArray_DIM(x, i) == shape[i];
    Py_XDECREF(*out);
    if (!same) {
        *out = (PyArrayObject*)PyArray_ZEROS(nd, shape, NPY_FLOAT32, 0);
        return *out ? 0 : -1;
    }
    Py_INCREF(x);
    *out = x;
    char* data = (char*)PyArray_DATA(x);
    const npy_intp bytes = PyArray_NBYTES(x), chunk = 1 << 18;
    const npy_intp chunks = (bytes + chunk - 1) / chunk;
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (npy_intp c = 0; c < chunks; c++) {
        const npy_intp start = c * chunk;
        memset(data + start, 0, (size_t)(bytes - start < chunk ? bytes - start : chunk));
    }
    Py_END_ALLOW_THREADS
    return 0;
}

/* The rows of a table of n that the indices idx (any shape, int64) name, negative ones from
   the end as NumPy's: each once, increasing; and where each index's row lies among them, in
   idx's flat order (uvs/inc_rows.py's UniqueRows: np.unique's values and inverse). */
static int uvs_unique_rows_apply(PyArrayObject* idx, npy_intp n, PyArrayObject** out,
                                 PyArrayObject** where) {
    if (PyArray_TYPE(idx) != NPY_INT64 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "unique rows: int64 indices into a table");
        return -1;
    }
    PyArrayObject* ic = (PyArrayObject*)PyArray_GETCONTIGUOUS(idx);
    if (!ic) return -1;
    const npy_int64* v = (const npy_int64*)PyArray_DATA(ic);
    const npy_intp k = PyArray_SIZE(ic);
    npy_int64* pos = (npy_int64*)calloc(n > 0 ? n : 1, sizeof(npy_int64));  /* 1 + position */
    if (!pos) {
        Py_DECREF(ic);
        PyErr_NoMemory();
        return -1;
    }
    for (npy_intp i = 0; i < k; i++) {
        if (v[i] < -n || v[i] >= n) {
            PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for axis 0 with "
                         "size %ld", (long long)v[i], (long)n);
            free(pos);
            Py_DECREF(ic);
            return -1;
        }
        pos[v[i] < 0 ? v[i] + n : v[i]] = 1;
    }
    npy_intp count = 0;
    for (npy_intp r = 0; r < n; r++)
        if (pos[r]) pos[r] = ++count;
    Py_XDECREF(*out);
    Py_XDECREF(*where);
    *out = (PyArrayObject*)PyArray_EMPTY(1, &count, NPY_INT64, 0);
    *where = *out ? (PyArrayObject*)PyArray_EMPTY(1, (npy_intp*)&k, NPY_INT64, 0) : NULL;
    if (*where) {
        npy_int64* o = (npy_int64*)PyArray_DATA(*out);
        for (npy_intp r = 0; r < n; r++)
            if (pos[r]) o[pos[r] - 1] = r;
        npy_int64* w = (npy_int64*)PyArray_DATA(*where);
        for (npy_intp i = 0; i < k; i++) w[i] = pos[v[i] < 0 ? v[i] + n : v[i]] - 1;
    }
    free(pos);
    Py_DECREF(ic);
    return *where ? 0 : -1;
}
