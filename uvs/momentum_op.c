#section support_code

/* The log-bilinear models' SGD-with-momentum step of uvs/momentum_op.py over one parameter,
   in place, in one pass, the elements spread over OpenMP threads in vector lanes:

       g' = g + decay p (when decay),   delta = p_t delta - lr g',   p = p + delta          */

static void uvs_momentum(npy_intp n, float* __restrict p, const float* __restrict g,
                         float* __restrict delta, float lr, float p_t, float decay,
                         int decayed) {
#pragma omp parallel for simd schedule(static) if (n > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float gi = decayed ? g[i] + decay * p[i] : g[i];
        const float d = p_t * delta[i] - lr * gi;
        delta[i] = d;
        p[i] = p[i] + d;
    }
}

/* p, delta: float32 arrays of g's size, updated in place when `inplace` and they are
   contiguous, writeable arrays (the outputs alias them), else copied first (in C order, as g
   is read). */
static int uvs_momentum_apply(PyArrayObject* p, PyArrayObject* g, PyArrayObject* delta,
                              PyArrayObject* lr, PyArrayObject* p_t, PyArrayObject** p_out,
                              PyArrayObject** d_out, int inplace, float decay, int decayed) {
    PyArrayObject* in[2] = {p, delta};
    PyArrayObject** out[2] = {p_out, d_out};
    for (int i = 0; i < 2; i++) {
        PyArrayObject* o = uvs_inplace_or_copy(in[i], inplace);
        if (!o) return -1;
        Py_XDECREF(*out[i]);
        *out[i] = o;
    }
    p = *p_out;
    delta = *d_out;
    const npy_intp n = PyArray_SIZE(p);
    if (PyArray_TYPE(g) != NPY_FLOAT32 || PyArray_SIZE(g) != n || PyArray_SIZE(delta) != n) {
        PyErr_SetString(PyExc_ValueError, "momentum step: parameter, gradient and step must be "
                        "float32 arrays of one size");
        return -1;
    }
    if (PyArray_TYPE(p) != NPY_FLOAT32 || PyArray_TYPE(delta) != NPY_FLOAT32) {
        PyErr_SetString(PyExc_ValueError, "momentum step: float32 parameter and step");
        return -1;
    }
    PyArrayObject* gc = uvs_contig(g, NPY_FLOAT32, 0);
    if (!gc) return -1;
    const float rate = *(const float*)PyArray_DATA(lr), mom = *(const float*)PyArray_DATA(p_t);
    Py_BEGIN_ALLOW_THREADS
    uvs_momentum(n, (float*)PyArray_DATA(p), (const float*)PyArray_DATA(gc),
                 (float*)PyArray_DATA(delta), rate, mom, decay, decayed);
    Py_END_ALLOW_THREADS
    Py_DECREF(gc);
    return 0;
}
