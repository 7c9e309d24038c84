#section support_code

/* The bag-of-words sentence of uvs/bag_of_words.py and its gradient, without the (T, B, d)
   word vectors and masked products of the graph they replace:

       s[b]        = sum_t W[x[t, b]] mask[t, b]      (each product in float, summed in double)
       dW[x[t, b]] += g[b] mask[t, b]                 (t-major order, as np.add.at)        */

/* sentences b over threads; acc: d doubles per thread */
static void uvs_bow(const float* W, npy_intp d, const npy_int64* rows, const float* mask,
                    npy_intp T, npy_intp B, float* s, double* acc_all, int threads) {
#pragma omp parallel num_threads(threads) if (T * B * d > 1 << 15)
    {
        double* __restrict acc = acc_all + (npy_intp)uvs_thread_num() * d;
#pragma omp for schedule(static)
        for (npy_intp b = 0; b < B; b++) {
            memset(acc, 0, d * sizeof(double));
            for (npy_intp t = 0; t < T; t++) {
                const float w = mask[t * B + b];
                const float* __restrict row = W + rows[t * B + b] * d;
#pragma omp simd
                for (npy_intp k = 0; k < d; k++) acc[k] += (double)(row[k] * w);
            }
            float* __restrict sb = s + b * d;
            for (npy_intp k = 0; k < d; k++) sb[k] = (float)acc[k];
        }
    }
}

/* every thread adds its own columns of every row, rows in t-major order (as uvs_inc_rows) */
static void uvs_bow_grad(npy_intp T, npy_intp B, npy_intp d, float* __restrict out,
                         const float* __restrict g, const float* mask, const npy_int64* rows) {
#pragma omp parallel if (T * B * d > 1 << 15)
    {
        npy_intp c0, c1;
        uvs_thread_block(d, &c0, &c1);
        for (npy_intp i = 0; i < T * B; i++) {
            const float w = mask[i];
            float* __restrict o = out + rows[i] * d;
            const float* __restrict gb = g + (i % B) * d;
#pragma omp simd
            for (npy_intp c = c0; c < c1; c++) o[c] += gb[c] * w;
        }
    }
}

/* x (T, B) int64 and mask (T, B) float32 as contiguous arrays of one shape, and the rows
   (new references and a malloc'd array; 0), or -1 with the error set. */
static int uvs_bow_inputs(PyArrayObject* xa, PyArrayObject* ma, npy_intp V, PyArrayObject** x,
                          PyArrayObject** mask, npy_int64** rows) {
    *x = uvs_contig(xa, NPY_INT64, 2);
    *mask = *x ? uvs_contig(ma, NPY_FLOAT32, 2) : NULL;
    *rows = NULL;
    if (*mask && (PyArray_DIMS(*x)[0] != PyArray_DIMS(*mask)[0]
                  || PyArray_DIMS(*x)[1] != PyArray_DIMS(*mask)[1])) {
        PyErr_Format(PyExc_ValueError, "bag of words: words (%ld, %ld), mask (%ld, %ld)",
                     (long)PyArray_DIMS(*x)[0], (long)PyArray_DIMS(*x)[1],
                     (long)PyArray_DIMS(*mask)[0], (long)PyArray_DIMS(*mask)[1]);
    } else if (*mask) {
        const npy_intp n = PyArray_SIZE(*x);
        *rows = (npy_int64*)malloc((n > 0 ? n : 1) * sizeof(npy_int64));
        if (!*rows) {
            PyErr_NoMemory();
        } else if (uvs_wrap_indices(PyArray_BYTES(*x), sizeof(npy_int64), n, V, 0, *rows) == 0) {
            return 0;
        }
    }
    free(*rows);
    Py_XDECREF(*x);
    Py_XDECREF(*mask);
    return -1;
}

static int uvs_bow_apply(PyArrayObject* Wa, PyArrayObject* xa, PyArrayObject* ma,
                         PyArrayObject** out) {
    PyArrayObject* W = uvs_contig(Wa, NPY_FLOAT32, 2);
    if (!W) return -1;
    PyArrayObject *x, *mask;
    npy_int64* rows;
    if (uvs_bow_inputs(xa, ma, PyArray_DIMS(W)[0], &x, &mask, &rows) != 0) {
        Py_DECREF(W);
        return -1;
    }
    const npy_intp T = PyArray_DIMS(x)[0], B = PyArray_DIMS(x)[1], d = PyArray_DIMS(W)[1];
    npy_intp dims[2] = {B, d};
    int rc = -1;
    const int threads = uvs_max_threads();
    double* acc = (double*)malloc((size_t)threads * (d > 0 ? d : 1) * sizeof(double));
    Py_XDECREF(*out);
    *out = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
    if (!acc) {
        PyErr_NoMemory();
    } else if (*out) {
        Py_BEGIN_ALLOW_THREADS
        uvs_bow((const float*)PyArray_DATA(W), d, rows, (const float*)PyArray_DATA(mask), T, B,
                (float*)PyArray_DATA(*out), acc, threads);
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    free(acc);
    free(rows);
    Py_DECREF(W);
    Py_DECREF(x);
    Py_DECREF(mask);
    return rc;
}

/* table (V, d) float32, added into where it lies when `inplace`, else a copy; g (B, d) */
static int uvs_bow_grad_apply(PyArrayObject* table, PyArrayObject* ga, PyArrayObject* xa,
                              PyArrayObject* ma, PyArrayObject** out, int inplace) {
    if (PyArray_NDIM(table) != 2 || PyArray_TYPE(table) != NPY_FLOAT32) {
        PyErr_SetString(PyExc_ValueError, "bag of words gradient: a float32 table");
        return -1;
    }
    PyArrayObject* g = uvs_contig(ga, NPY_FLOAT32, 2);
    if (!g) return -1;
    PyArrayObject *x, *mask;
    npy_int64* rows;
    if (uvs_bow_inputs(xa, ma, PyArray_DIMS(table)[0], &x, &mask, &rows) != 0) {
        Py_DECREF(g);
        return -1;
    }
    const npy_intp T = PyArray_DIMS(x)[0], B = PyArray_DIMS(x)[1], d = PyArray_DIMS(table)[1];
    int rc = -1;
    if (PyArray_DIMS(g)[0] != B || PyArray_DIMS(g)[1] != d) {
        PyErr_Format(PyExc_ValueError, "bag of words gradient: %ld sentences of %ld values for "
                     "(%ld, %ld) words and a table of width %ld", (long)PyArray_DIMS(g)[0],
                     (long)PyArray_DIMS(g)[1], (long)T, (long)B, (long)d);
    } else {
        PyArrayObject* o = uvs_inplace_or_copy(table, inplace);
        if (o) {
            Py_XDECREF(*out);
            *out = o;
            Py_BEGIN_ALLOW_THREADS
            uvs_bow_grad(T, B, d, (float*)PyArray_DATA(o), (const float*)PyArray_DATA(g),
                         (const float*)PyArray_DATA(mask), rows);
            Py_END_ALLOW_THREADS
            rc = 0;
        }
    }
    free(rows);
    Py_DECREF(g);
    Py_DECREF(x);
    Py_DECREF(mask);
    return rc;
}
