#section support_code

/* The order-embedding errors of uvs/order_op.py and their gradient:

       E[i, j] = sum_k max(0, s[i, k] - im[j, k])^2              (summed in double)
       ds[i]   =  sum_j G[i, j] 2 max(0, s[i] - im[j])           (summed in double)
       dim[j]  = -sum_i G[i, j] 2 max(0, s[i] - im[j])

   one pass over the pairs each, rows spread over OpenMP threads, the k loop in vector lanes,
   never the (n, m, d) temporaries of the graph they replace. */

static void uvs_order_errors(const float* s, const float* im, npy_intp n, npy_intp m,
                             npy_intp d, float* E) {
#pragma omp parallel for schedule(static) if (n * m * d > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* __restrict si = s + i * d;
        for (npy_intp j = 0; j < m; j++) {
            const float* __restrict ij = im + j * d;
            double acc = 0.0;
#pragma omp simd reduction(+ : acc)
            for (npy_intp k = 0; k < d; k++) {
                const float x = si[k] - ij[k];
                const float v = x > 0.0f ? x : 0.0f;
                acc += (double)(v * v);
            }
            E[i * m + j] = (float)acc;
        }
    }
}

/* rows of a (na, d) against rows of b (nb, d), G[a, b] at G + a * ga + b * gb:
   out[a] = sign * sum_b G[a, b] 2 max(0, sign * (a - b)), in double; acc: d doubles for each
   of `threads` threads (allocated by the caller, before the threads start). */
static void uvs_order_grad_rows(const float* a, const float* b, const float* G, npy_intp na,
                                npy_intp nb, npy_intp d, npy_intp ga, npy_intp gb, float sign,
                                float* out, double* acc, int threads) {
#pragma omp parallel num_threads(threads) if (na * nb * d > 1 << 16)
    {
        double* __restrict ac = acc + (npy_intp)uvs_thread_num() * d;
#pragma omp for schedule(static)
        for (npy_intp r = 0; r < na; r++) {
            const float* __restrict ar = a + r * d;
            float* __restrict o = out + r * d;
            memset(ac, 0, d * sizeof(double));
            for (npy_intp q = 0; q < nb; q++) {
                const float g = 2.0f * G[r * ga + q * gb];
                if (g == 0.0f) continue;
                const float* __restrict bq = b + q * d;
#pragma omp simd
                for (npy_intp k = 0; k < d; k++) {
                    const float x = sign * (ar[k] - bq[k]);
                    ac[k] += (double)(g * (x > 0.0f ? x : 0.0f));
                }
            }
            for (npy_intp k = 0; k < d; k++) o[k] = (float)(sign * ac[k]);
        }
    }
}

static int uvs_order_check(PyArrayObject* s, PyArrayObject* im) {
    if (PyArray_DIMS(s)[1] != PyArray_DIMS(im)[1]) {
        PyErr_Format(PyExc_ValueError, "order errors: sentences of dimension %ld, images of %ld",
                     (long)PyArray_DIMS(s)[1], (long)PyArray_DIMS(im)[1]);
        return -1;
    }
    return 0;
}

static int uvs_order_errors_apply(PyArrayObject* sa, PyArrayObject* ima, PyArrayObject** out) {
    PyArrayObject* s = uvs_contig(sa, NPY_FLOAT32, 2);
    PyArrayObject* im = s ? uvs_contig(ima, NPY_FLOAT32, 2) : NULL;
    int rc = -1;
    if (im && uvs_order_check(s, im) == 0) {
        const npy_intp dims[2] = {PyArray_DIMS(s)[0], PyArray_DIMS(im)[0]};
        if (uvs_output(out, 2, dims, NPY_FLOAT32)) {
            Py_BEGIN_ALLOW_THREADS
            uvs_order_errors((const float*)PyArray_DATA(s), (const float*)PyArray_DATA(im),
                             PyArray_DIMS(s)[0], PyArray_DIMS(im)[0], PyArray_DIMS(s)[1],
                             (float*)PyArray_DATA(*out));
            Py_END_ALLOW_THREADS
            rc = 0;
        }
    }
    Py_XDECREF(s);
    Py_XDECREF(im);
    return rc;
}

static int uvs_order_grad_apply(PyArrayObject* sa, PyArrayObject* ima, PyArrayObject* Ga,
                                PyArrayObject** ds, PyArrayObject** dim) {
    PyArrayObject* s = uvs_contig(sa, NPY_FLOAT32, 2);
    PyArrayObject* im = s ? uvs_contig(ima, NPY_FLOAT32, 2) : NULL;
    PyArrayObject* G = im ? uvs_contig(Ga, NPY_FLOAT32, 2) : NULL;
    int rc = -1;
    if (G && uvs_order_check(s, im) == 0) {
        const npy_intp n = PyArray_DIMS(s)[0], m = PyArray_DIMS(im)[0], d = PyArray_DIMS(s)[1];
        const npy_intp ds_dims[2] = {n, d}, dim_dims[2] = {m, d};
        if (PyArray_DIMS(G)[0] != n || PyArray_DIMS(G)[1] != m) {
            PyErr_SetString(PyExc_ValueError, "order errors gradient: G has the wrong shape");
        } else if (uvs_output(ds, 2, ds_dims, NPY_FLOAT32)
                   && uvs_output(dim, 2, dim_dims, NPY_FLOAT32)) {
            const float* sp = (const float*)PyArray_DATA(s);
            const float* ip = (const float*)PyArray_DATA(im);
            const float* gp = (const float*)PyArray_DATA(G);
            const int threads = uvs_max_threads();
            double* acc = (double*)malloc((size_t)threads * (d ? d : 1) * sizeof(double));
            if (!acc) {
                PyErr_NoMemory();
            } else {
                Py_BEGIN_ALLOW_THREADS
                uvs_order_grad_rows(sp, ip, gp, n, m, d, m, 1, 1.0f,
                                    (float*)PyArray_DATA(*ds), acc, threads);
                uvs_order_grad_rows(ip, sp, gp, m, n, d, 1, m, -1.0f,
                                    (float*)PyArray_DATA(*dim), acc, threads);
                Py_END_ALLOW_THREADS
                free(acc);
                rc = 0;
            }
        }
    }
    Py_XDECREF(s);
    Py_XDECREF(im);
    Py_XDECREF(G);
    return rc;
}
