/* Threads and arrays shared by uvs's C Ops (uvs.cop.OpenMPCOp and BlasCOp, uvs.rowwise): each
   Op puts this text before its own C and adds its hash to its cache version
   (`uvs.cop.support_header`), as PyTensor hashes only an Op's own files. */

#ifdef _OPENMP
#include <omp.h>
#endif

/* threads a parallel region may use (1 without OpenMP): scratch for each, allocated before */
static inline int uvs_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* this thread's number in its team (0 without OpenMP) */
static inline int uvs_thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* this thread's share [*a, *b) of n items, the team's shares in order */
static inline void uvs_thread_block(npy_intp n, npy_intp* a, npy_intp* b) {
    *a = 0;
    *b = n;
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    *a = n * t / nt;
    *b = n * (t + 1) / nt;
#endif
}

/* a as a C-contiguous aligned array of this type (and rank, when nd > 0): a new reference */
static PyArrayObject* uvs_contig(PyArrayObject* a, int type_num, int nd) {
    return (PyArrayObject*)PyArray_FromAny((PyObject*)a, PyArray_DescrFromType(type_num), nd, nd,
                                           NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, NULL);
}

/* the array an in-place Op writes: a itself (a new reference) when `inplace` and a is a
   writeable, aligned, C-contiguous array, else a C-ordered copy */
static PyArrayObject* uvs_inplace_or_copy(PyArrayObject* a, int inplace) {
    if (inplace && PyArray_IS_C_CONTIGUOUS(a) && PyArray_ISALIGNED(a) && PyArray_ISWRITEABLE(a)) {
        Py_INCREF(a);
        return a;
    }
    return (PyArrayObject*)PyArray_NewCopy(a, NPY_CORDER);
}

/* *out as a C-contiguous array of this shape and type: kept when it already is one, else new
   (NULL with the error set) */
static PyArrayObject* uvs_output(PyArrayObject** out, int nd, const npy_intp* dims,
                                 int type_num) {
    PyArrayObject* o = *out;
    int same = o && PyArray_NDIM(o) == nd && PyArray_TYPE(o) == type_num
               && PyArray_IS_C_CONTIGUOUS(o);
    for (int i = 0; same && i < nd; i++) same = PyArray_DIMS(o)[i] == dims[i];
    if (!same) {
        Py_XDECREF(o);
        *out = o = (PyArrayObject*)PyArray_EMPTY(nd, (npy_intp*)dims, type_num, 0);
    }
    return o;
}

/* out[i] = the k int64 indices at data (stride bytes apart) into n along `axis`, negative
   ones from the end as NumPy's: 0, or -1 with NumPy's IndexError for the first out of bounds */
static int uvs_wrap_indices(const char* data, npy_intp stride, npy_intp k, npy_intp n,
                            int axis, npy_int64* out) {
    for (npy_intp i = 0; i < k; i++) {
        const npy_int64 v = *(const npy_int64*)(data + i * stride);
        if (v < -n || v >= n) {
            PyErr_Format(PyExc_IndexError, "index %lld is out of bounds for axis %d with "
                         "size %ld", (long long)v, axis, (long)n);
            return -1;
        }
        out[i] = v < 0 ? v + n : v;
    }
    return 0;
}

/* `uvs_wrap_indices` of idx (k,) int64 into a new array (free it), or NULL with the error */
static npy_int64* uvs_wrapped_indices(PyArrayObject* idx, npy_intp n, int axis) {
    const npy_intp k = PyArray_DIM(idx, 0);
    npy_int64* out = (npy_int64*)malloc((k > 0 ? k : 1) * sizeof(npy_int64));
    if (!out) {
        PyErr_NoMemory();
    } else if (uvs_wrap_indices(PyArray_BYTES(idx), PyArray_STRIDE(idx, 0), k, n, axis,
                                out) != 0) {
        free(out);
        out = NULL;
    }
    return out;
}

/* rows (k,) int64, increasing, each in [0, n) (UniqueRows' output: no row counted, rescaled
   or stepped twice): a C-contiguous array (new reference), or NULL with the error set. */
static PyArrayObject* uvs_listed_rows(PyArrayObject* rows, npy_intp n) {
    PyArrayObject* r = uvs_contig(rows, NPY_INT64, 1);
    if (!r) return NULL;
    const npy_int64* v = (const npy_int64*)PyArray_DATA(r);
    for (npy_intp i = 0; i < PyArray_DIM(r, 0); i++) {
        if (v[i] < 0 || v[i] >= n || (i && v[i] <= v[i - 1])) {
            PyErr_Format(PyExc_ValueError, "rows of a table of %ld: %lld after %lld, not "
                         "increasing rows of the table", (long)n, (long long)v[i],
                         (long long)(i ? v[i - 1] : -1));
            Py_DECREF(r);
            return NULL;
        }
    }
    return r;
}
