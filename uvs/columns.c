#section support_code

/* A table's columns as rows, and back (uvs/columns.py): the log-bilinear models' context
   words, w[:, idx] read as (n, d) rows, and their gradient added into a (d, V) table of
   zeros. Every thread takes a block of the table's rows, so it reads (and writes) those rows
   alone, at every index in index order: a word that repeats sums as np.add.at sums it. */

/* out[i, k] = w[k, idx[i]]: w (d, V), out (n, d). */
static void uvs_take_columns(npy_intp d, npy_intp V, const float* w, npy_intp n,
                             const npy_int64* idx, float* out) {
#pragma omp parallel if (n * d > 1 << 14)
    {
        npy_intp k0, k1;
        uvs_thread_block(d, &k0, &k1);
        for (npy_intp k = k0; k < k1; k++) {
            const float* wk = w + k * V;
            for (npy_intp i = 0; i < n; i++) out[i * d + k] = wk[idx[i]];
        }
    }
}

/* x = zeros (d, V), then x[k, idx[i]] += y[i, k] for each i in order: y (n, d). */
static void uvs_scatter_columns(npy_intp d, npy_intp V, float* x, npy_intp n,
                                const npy_int64* idx, const float* y) {
#pragma omp parallel if (d * V > 1 << 16)
    {
        npy_intp k0, k1;
        uvs_thread_block(d, &k0, &k1);
        memset(x + k0 * V, 0, (size_t)((k1 - k0) * V) * sizeof(float));
        for (npy_intp k = k0; k < k1; k++) {
            float* xk = x + k * V;
            for (npy_intp i = 0; i < n; i++) xk[idx[i]] += y[i * d + k];
        }
    }
}

static int uvs_take_columns_apply(PyArrayObject* wa, PyArrayObject* idx, PyArrayObject** out) {
    if (PyArray_NDIM(idx) != 1 || PyArray_TYPE(idx) != NPY_INT64) {
        PyErr_SetString(PyExc_ValueError, "take columns: int64 indices");
        return -1;
    }
    PyArrayObject* w = uvs_contig(wa, NPY_FLOAT32, 2);
    if (!w) return -1;
    const npy_intp d = PyArray_DIM(w, 0), V = PyArray_DIM(w, 1), n = PyArray_DIM(idx, 0);
    const npy_intp dims[2] = {n, d};
    npy_int64* cols = uvs_wrapped_indices(idx, V, 1);
    int rc = -1;
    if (cols && uvs_output(out, 2, dims, NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_take_columns(d, V, (const float*)PyArray_DATA(w), n, cols,
                         (float*)PyArray_DATA(*out));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    free(cols);
    Py_DECREF(w);
    return rc;
}

static int uvs_scatter_columns_apply(PyArrayObject* ya, PyArrayObject* idx, npy_intp V,
                                     PyArrayObject** out) {
    if (PyArray_NDIM(idx) != 1 || PyArray_TYPE(idx) != NPY_INT64) {
        PyErr_SetString(PyExc_ValueError, "scatter columns: int64 indices");
        return -1;
    }
    PyArrayObject* y = uvs_contig(ya, NPY_FLOAT32, 2);
    if (!y) return -1;
    const npy_intp n = PyArray_DIM(y, 0), d = PyArray_DIM(y, 1);
    const npy_intp dims[2] = {d, V};
    int rc = -1;
    npy_int64* cols = NULL;
    if (V < 0 || PyArray_DIM(idx, 0) != n) {
        PyErr_Format(PyExc_ValueError, "scatter columns: %ld rows for %ld indices into %ld "
                     "columns", (long)n, (long)PyArray_DIM(idx, 0), (long)V);
    } else if ((cols = uvs_wrapped_indices(idx, V, 1))
               && uvs_output(out, 2, dims, NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_scatter_columns(d, V, (float*)PyArray_DATA(*out), n, cols,
                            (const float*)PyArray_DATA(y));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    free(cols);
    Py_DECREF(y);
    return rc;
}
