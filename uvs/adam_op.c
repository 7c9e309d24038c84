#section support_code

/* The Adam step of uvs/adam_op.py over one parameter, in place, in one pass: the moments and
   the parameter read and written once, the elements spread over OpenMP threads in vector
   lanes. The arithmetic is uvs.optim's graph, element by element:

       m = b1 g + c1 m,   v = b2 g^2 + c2 v,   p = p - lr m / (sqrt(v) + e)

   where g, when clipped (`clip`), is read as uvs/norms.c's `uvs_clip_scale` writes it:
   (limit g) / norm, norm the square root of the gradients' squared norm.                   */

/* The clipping of a step: whether to rescale, by limit / norm */
typedef struct {
    int on;
    float limit, norm;
} uvs_adam_clip;

/* One element's step with its gradient gi. */
static inline void uvs_adam_one(float gi, float* p, float* m, float* v, float lr, float b1,
                                float c1, float b2, float c2, float e) {
    const float mt = b1 * gi + c1 * *m;
    const float vt = b2 * (gi * gi) + c2 * *v;
    *m = mt;
    *v = vt;
    *p = *p - lr * (mt / (sqrtf(vt) + e));
}

/* The step over n consecutive elements, in vector lanes (a loop for each case of `clip`, so
   that the unclipped one has no division). */
static inline void uvs_adam_span(npy_intp n, float* __restrict p, const float* __restrict g,
                                 float* __restrict m, float* __restrict v, float lr, float b1,
                                 float c1, float b2, float c2, float e, uvs_adam_clip clip) {
    if (clip.on) {
        const float limit = clip.limit, norm = clip.norm;
#pragma omp simd
        for (npy_intp i = 0; i < n; i++)
            uvs_adam_one((limit * g[i]) / norm, p + i, m + i, v + i, lr, b1, c1, b2, c2, e);
    } else {
#pragma omp simd
        for (npy_intp i = 0; i < n; i++)
            uvs_adam_one(g[i], p + i, m + i, v + i, lr, b1, c1, b2, c2, e);
    }
}

/* ... over a whole parameter of n elements, a block of them per OpenMP thread. */
static void uvs_adam(npy_intp n, float* p, const float* g, float* m, float* v, float lr,
                     float b1, float c1, float b2, float c2, float e, uvs_adam_clip clip) {
#pragma omp parallel if (n > 1 << 16)
    {
        npy_intp a, b;
        uvs_thread_block(n, &a, &b);
        uvs_adam_span(b - a, p + a, g + a, m + a, v + a, lr, b1, c1, b2, c2, e, clip);
    }
}

/* The same step over a (n, d) table whose gradient is zeros but its listed rows
   (`uvs.row_grads`): g (k, d) holds those rows, rows (k,) increasing; every other row steps
   with the zero row `zeros`, as the dense step would (its moments decay, the parameter moves).
   The rows spread over OpenMP threads; each thread finds its first listed row by bisection. */
static void uvs_adam_rows(npy_intp n, npy_intp d, float* p, const float* g,
                          const npy_int64* rows, npy_intp k, float* m, float* v,
                          const float* zeros, float lr, float b1, float c1, float b2, float c2,
                          float e, uvs_adam_clip clip) {
    const uvs_adam_clip none = {0, 0.0f, 1.0f};
#pragma omp parallel if (n * d > 1 << 16)
    {
        npy_intp r0, r1;
        uvs_thread_block(n, &r0, &r1);
        npy_intp lo = 0, hi = k;
        while (lo < hi) {
            const npy_intp mid = lo + (hi - lo) / 2;
            if (rows[mid] < r0) lo = mid + 1;
            else hi = mid;
        }
        for (npy_intp r = r0, j = lo; r < r1; r++) {
            if (j < k && rows[j] == r) {
                uvs_adam_span(d, p + r * d, g + (j++) * d, m + r * d, v + r * d, lr, b1, c1, b2,
                              c2, e, clip);
            } else {  /* a zero row, rescaled or not: (limit 0) / norm is 0 */
                uvs_adam_span(d, p + r * d, zeros, m + r * d, v + r * d, lr, b1, c1, b2, c2, e,
                              none);
            }
        }
    }
}

/* p, m, v: C-contiguous float32 arrays of g's size, updated in place when `inplace` (the
   outputs alias them), else copied first. When `rows` is not empty, or g is not of p's size,
   p, m, v are (n, d) tables and g (k, d) their gradient's listed rows (`uvs_adam_rows`).
   limit > 0: g is rescaled as read when its squared norm g2 exceeds limit^2. */
static int uvs_adam_apply(PyArrayObject* p, PyArrayObject* g, PyArrayObject* m,
                          PyArrayObject* v, PyArrayObject* lr, PyArrayObject* rows_in,
                          PyArrayObject* g2, PyArrayObject** p_out, PyArrayObject** m_out,
                          PyArrayObject** v_out, int inplace, float b1, float c1, float b2,
                          float c2, float e, float limit) {
    if (PyArray_TYPE(g2) != NPY_FLOAT32 || PyArray_NDIM(g2) != 0) {
        PyErr_SetString(PyExc_ValueError, "adam step: a float32 scalar squared norm");
        return -1;
    }
    const float n2 = *(const float*)PyArray_DATA(g2);
    uvs_adam_clip clip = {limit > 0.0f && n2 > limit * limit, limit, 1.0f};
    if (clip.on) clip.norm = sqrtf(n2);
    PyArrayObject* rows = PyArray_SIZE(rows_in) || PyArray_SIZE(g) != PyArray_SIZE(p)
                          ? rows_in : NULL;
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
    const npy_intp n = PyArray_SIZE(p);
    for (int i = 0; i < 4; i++) {
        PyArrayObject* a = arrays[i];
        if (PyArray_TYPE(a) != NPY_FLOAT32 || !PyArray_IS_C_CONTIGUOUS(a)
            || !PyArray_ISALIGNED(a) || (i != 1 && PyArray_SIZE(a) != n)
            || (i != 1 && !PyArray_ISWRITEABLE(a))) {
            PyErr_SetString(PyExc_ValueError, "adam step: parameter, gradient and moments must "
                            "be contiguous float32 arrays of one size");
            return -1;
        }
    }
    const float rate = *(const float*)PyArray_DATA(lr);
    if (!rows) {
        Py_BEGIN_ALLOW_THREADS
        uvs_adam(n, (float*)PyArray_DATA(p), (const float*)PyArray_DATA(g),
                 (float*)PyArray_DATA(m), (float*)PyArray_DATA(v), rate, b1, c1, b2, c2, e,
                 clip);
        Py_END_ALLOW_THREADS
        return 0;
    }
    if (PyArray_NDIM(p) != 2 || PyArray_NDIM(g) != 2 || PyArray_NDIM(m) != 2
        || PyArray_NDIM(v) != 2 || PyArray_DIM(g, 1) != PyArray_DIM(p, 1)
        || PyArray_DIM(m, 0) != PyArray_DIM(p, 0) || PyArray_DIM(v, 0) != PyArray_DIM(p, 0)) {
        PyErr_SetString(PyExc_ValueError, "adam step over rows: (n, d) parameter and moments, "
                        "(k, d) gradient rows");
        return -1;
    }
    const npy_intp rn = PyArray_DIM(p, 0), d = PyArray_DIM(p, 1);
    PyArrayObject* r = uvs_listed_rows(rows, rn);
    if (!r) return -1;
    const npy_intp k = PyArray_DIM(r, 0);
    if (PyArray_DIM(g, 0) != k) {
        PyErr_Format(PyExc_ValueError, "adam step over rows: %ld gradient rows for %ld listed "
                     "rows", (long)PyArray_DIM(g, 0), (long)k);
        Py_DECREF(r);
        return -1;
    }
    float* zeros = (float*)calloc(d > 0 ? d : 1, sizeof(float));
    if (!zeros) {
        Py_DECREF(r);
        PyErr_NoMemory();
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    uvs_adam_rows(rn, d, (float*)PyArray_DATA(p), (const float*)PyArray_DATA(g),
                  (const npy_int64*)PyArray_DATA(r), k, (float*)PyArray_DATA(m),
                  (float*)PyArray_DATA(v), zeros, rate, b1, c1, b2, c2, e, clip);
    Py_END_ALLOW_THREADS
    free(zeros);
    Py_DECREF(r);
    return 0;
}
