#section support_code

/* What uvs's BLAS-calling C Ops share (gru_op.c, relu_rnn.c; `uvs.cop.BlasCOp` puts this file
   before each): row-major products through the BLAS PyTensor links (sgemm_/dgemm_, declared
   by PyTensor's BLAS header, put in front), contiguous inputs, reused outputs, shape checks. */

static inline void uvs_gemm(char ta, char tb, int m, int n, int k, float alpha,
                            const float* a, int lda, const float* b, int ldb, float beta,
                            float* c, int ldc) {
    sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
static inline void uvs_gemm(char ta, char tb, int m, int n, int k, double alpha,
                            const double* a, int lda, const double* b, int ldb, double beta,
                            double* c, int ldc) {
    dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

/* Row-major C (m, n) = alpha A (m, k) . B (k, n) + beta C, through column-major BLAS. */
template <typename T>
static void uvs_mm(int m, int n, int k, const T* a, int lda, bool ta, const T* b, int ldb,
                   bool tb, T beta, T* c, int ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) c[(npy_intp)i * ldc + j] *= beta;
        return;
    }
    uvs_gemm(tb ? 'T' : 'N', ta ? 'T' : 'N', n, m, k, (T)1, b, ldb, a, lda, beta, c, ldc);
}

static int uvs_shape_error(const char* op, const char* what) {
    PyErr_Format(PyExc_ValueError, "%s: %s has the wrong shape", op, what);
    return -1;
}

template <typename T>
static bool uvs_all_zero(const T* a, npy_intp n) {
    for (npy_intp i = 0; i < n; i++) if (a[i] != 0) return false;
    return true;
}

/* a has shape (s0[, s1[, s2]]); else a ValueError naming it. */
static int uvs_expect(const char* op, PyArrayObject* a, const char* name, int nd, npy_intp s0,
                      npy_intp s1, npy_intp s2) {
    const npy_intp want[3] = {s0, s1, s2};
    bool ok = PyArray_NDIM(a) == nd;
    for (int i = 0; ok && i < nd; i++) ok = PyArray_DIMS(a)[i] == want[i];
    if (ok) return 0;
    return uvs_shape_error(op, name);
}

#define UVS_P(T, a) ((T*)PyArray_DATA(a))
