#section support_code

/* The sums of uvs/axis_sums.py: out[k] = (float) of a double started at 0 and added, in
   increasing order along the summed axis, each float x (or x * x, squared in float) — the
   order and roundings of PyTensor's CAReduce loop. Many sums run at once instead of one
   latency-bound chain: along axis 1, eight rows' chains interleaved; along axis 0, a block
   of columns in vector lanes. Byte strides s0, s1: any layout. Threads only from 2^20 values
   on: below, waking them costs more in an update than the sums (0.1 against 0.05 ms for
   128 x 1 024). */

#define UVS_SUM_TERM(v) (squared ? (double)((v) * (v)) : (double)(v))

/* x (n, m), summed along axis 1: a sum per row, eight rows at a time */
static void uvs_sum_rows(const char* x, npy_intp n, npy_intp m, npy_intp s0, npy_intp s1,
                         int squared, float* out) {
    const npy_intp groups = (n + 7) / 8;
#pragma omp parallel for schedule(static) if (n * m > 1 << 20)
    for (npy_intp g = 0; g < groups; g++) {
        const npy_intp r0 = g * 8, rn = n - r0 < 8 ? n - r0 : 8;
        double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (rn == 8) {
            for (npy_intp j = 0; j < m; j++) {
                const char* c = x + r0 * s0 + j * s1;
                for (int r = 0; r < 8; r++) {
                    const float v = *(const float*)(c + r * s0);
                    acc[r] += UVS_SUM_TERM(v);
                }
            }
        } else {
            for (npy_intp r = 0; r < rn; r++)
                for (npy_intp j = 0; j < m; j++) {
                    const float v = *(const float*)(x + (r0 + r) * s0 + j * s1);
                    acc[r] += UVS_SUM_TERM(v);
                }
        }
        for (npy_intp r = 0; r < rn; r++) out[r0 + r] = (float)acc[r];
    }
}

/* x (n, m), summed along axis 0: a sum per column, blocks of columns over threads */
static void uvs_sum_columns(const char* x, npy_intp n, npy_intp m, npy_intp s0, npy_intp s1,
                            int squared, float* out) {
    enum { BLOCK = 256 };
    const npy_intp blocks = (m + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if (n * m > 1 << 20)
    for (npy_intp b = 0; b < blocks; b++) {
        const npy_intp c0 = b * BLOCK, cn = m - c0 < BLOCK ? m - c0 : BLOCK;
        double acc[BLOCK];
        for (npy_intp c = 0; c < cn; c++) acc[c] = 0.0;
        for (npy_intp i = 0; i < n; i++) {
            const char* row = x + i * s0 + c0 * s1;
            if (s1 == (npy_intp)sizeof(float)) {
                const float* __restrict v = (const float*)row;
#pragma omp simd
                for (npy_intp c = 0; c < cn; c++) acc[c] += UVS_SUM_TERM(v[c]);
            } else {
                for (npy_intp c = 0; c < cn; c++) {
                    const float v = *(const float*)(row + c * s1);
                    acc[c] += UVS_SUM_TERM(v);
                }
            }
        }
        for (npy_intp c = 0; c < cn; c++) out[c0 + c] = (float)acc[c];
    }
}

/* in: a float32 matrix; out: its sums along `axis` (0 or 1) as a float32 vector */
static int uvs_axis_sum(PyArrayObject* in, int axis, int squared, PyArrayObject** out) {
    if (PyArray_NDIM(in) != 2 || PyArray_TYPE(in) != NPY_FLOAT32 || !PyArray_ISALIGNED(in)) {
        PyErr_SetString(PyExc_ValueError, "axis sum: an aligned float32 matrix");
        return -1;
    }
    const npy_intp n = PyArray_DIM(in, 0), m = PyArray_DIM(in, 1);
    const npy_intp size = axis ? n : m;
    if (!uvs_output(out, 1, &size, NPY_FLOAT32)) return -1;
    const char* x = PyArray_BYTES(in);
    float* o = (float*)PyArray_DATA(*out);
    const npy_intp s0 = PyArray_STRIDE(in, 0), s1 = PyArray_STRIDE(in, 1);
    Py_BEGIN_ALLOW_THREADS
    if (axis)
        uvs_sum_rows(x, n, m, s0, s1, squared, o);
    else
        uvs_sum_columns(x, n, m, s0, s1, squared, o);
    Py_END_ALLOW_THREADS
    return 0;
}
