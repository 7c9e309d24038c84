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

/* in: n float32 arrays; out: a float32 scalar array. */
static int uvs_squared_norm(PyArrayObject** in, int n, PyArrayObject** out) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        PyArrayObject* a = uvs_contig(in[i], NPY_FLOAT32, 0);
        if (!a) return -1;
        const float* x = (const float*)PyArray_DATA(a);
        const npy_intp size = PyArray_SIZE(a);
        double part;
        Py_BEGIN_ALLOW_THREADS
        part = uvs_sum_squares(x, size);
        Py_END_ALLOW_THREADS
        total += part;
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
static int uvs_clip_scale(PyArrayObject* g, PyArrayObject* g2, PyArrayObject** out,
                          int inplace, float limit) {
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
    const npy_intp n = PyArray_SIZE(o);
    Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for simd schedule(static) if (n > 1 << 16)
    for (npy_intp i = 0; i < n; i++) x[i] = (limit * x[i]) / norm;
    Py_END_ALLOW_THREADS
    return 0;
}
