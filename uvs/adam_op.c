#section support_code

/* The Adam step of uvs/adam_op.py over one parameter, in place, in one pass: the moments and
   the parameter read and written once, the elements spread over OpenMP threads in vector
   lanes. The arithmetic is uvs.optim's graph, element by element:

       m = b1 g + c1 m,   v = b2 g^2 + c2 v,   p = p - lr m / (sqrt(v) + e)          */

static void uvs_adam(npy_intp n, float* __restrict p, const float* __restrict g,
                     float* __restrict m, float* __restrict v, float lr, float b1, float c1,
                     float b2, float c2, float e) {
#pragma omp parallel for simd schedule(static) if (n > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float gi = g[i];
        const float mt = b1 * gi + c1 * m[i];
        const float vt = b2 * (gi * gi) + c2 * v[i];
        m[i] = mt;
        v[i] = vt;
        p[i] = p[i] - lr * (mt / (sqrtf(vt) + e));
    }
}

/* p, m, v: C-contiguous float32 arrays of g's size, updated in place when `inplace` (the
   outputs alias them), else copied first. */
static int uvs_adam_apply(PyArrayObject* p, PyArrayObject* g, PyArrayObject* m,
                          PyArrayObject* v, PyArrayObject* lr, PyArrayObject** p_out,
                          PyArrayObject** m_out, PyArrayObject** v_out, int inplace, float b1,
                          float c1, float b2, float c2, float e) {
    PyArrayObject* in[3] = {p, m, v};
    PyArrayObject** out[3] = {p_out, m_out, v_out};
    for (int i = 0; i < 3; i++) {
        PyArrayObject* o = inplace ? in[i] : (PyArrayObject*)PyArray_NewCopy(in[i], NPY_CORDER);
        if (!o) return -1;
        if (inplace) Py_INCREF(o);
        Py_XDECREF(*out[i]);
        *out[i] = o;
    }
    p = *p_out;
    m = *m_out;
    v = *v_out;
    PyArrayObject* arrays[4] = {p, g, m, v};
    const npy_intp n = PyArray_SIZE(g);
    for (int i = 0; i < 4; i++) {
        PyArrayObject* a = arrays[i];
        if (PyArray_TYPE(a) != NPY_FLOAT32 || !PyArray_IS_C_CONTIGUOUS(a)
            || !PyArray_ISALIGNED(a) || PyArray_SIZE(a) != n
            || (i != 1 && !PyArray_ISWRITEABLE(a))) {
            PyErr_SetString(PyExc_ValueError, "adam step: parameter, gradient and moments must "
                            "be contiguous float32 arrays of one size");
            return -1;
        }
    }
    const float rate = *(const float*)PyArray_DATA(lr);
    Py_BEGIN_ALLOW_THREADS
    uvs_adam(n, (float*)PyArray_DATA(p), (const float*)PyArray_DATA(g), (float*)PyArray_DATA(m),
             (float*)PyArray_DATA(v), rate, b1, c1, b2, c2, e);
    Py_END_ALLOW_THREADS
    return 0;
}
