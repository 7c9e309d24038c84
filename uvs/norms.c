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
        PyArrayObject* a = (PyArrayObject*)PyArray_FromAny(
            (PyObject*)in[i], PyArray_DescrFromType(NPY_FLOAT32), 0, 0,
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
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
