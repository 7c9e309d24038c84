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
