#section support_code

/* The row-wise Ops of uvs/rowwise.py, for the decoders' sampler: each row of a result depends
   on that row of the inputs alone, and rows are spread over OpenMP threads.

   The batch-invariant product: out (n, m) = x (n, k) . w (k, m) in float32, every element
   summed in one fixed order, whatever n is and wherever the row sits:

       acc = 0; for kk in 0 .. k-1: acc = fma(x[i, kk], w[kk, j], acc)   (one rounding each)

   A BLAS sums differently for the tail rows of its blocks and when threads split the rows,
   so one context's scores would depend on the other contexts beside it. Vectors run across
   columns (j), never across kk; the scalar tail does the same operations one column at a time.
   Every multiply-add is an explicit fused one (the FMA instruction where the target has it,
   else fmaf per lane), and the file is built with -ffp-contract=off so that nothing else is
   fused: the Op's `perform` emulates the same fma exactly in NumPy, bit for bit. */

#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

typedef float uvs_v8 __attribute__((vector_size(32)));

/* a * b + c per lane, rounded once */
static inline uvs_v8 uvs_fma8(uvs_v8 a, uvs_v8 b, uvs_v8 c) {
#if defined(__FMA__) && defined(__AVX__)
    return (uvs_v8)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    uvs_v8 r;
    for (int l = 0; l < 8; l++) r[l] = fmaf(a[l], b[l], c[l]);
    return r;
#endif
}

static inline uvs_v8 uvs_load8(const float* p) {
    uvs_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void uvs_store8(float* p, uvs_v8 v) { memcpy(p, &v, sizeof v); }

#define UVS_NV 2 /* a panel of 2 vectors (16 columns) by 6 rows: 12 accumulators */
#define UVS_RB 6
enum { UVS_PANEL = 8 * UVS_NV, UVS_ROWS = UVS_RB };

/* R rows of out, columns [j0, j0 + UVS_PANEL); wp: the panel's first column in w, ldw: the
   stride of its rows (m, or UVS_PANEL when the panel is packed). */
template <int R>
static void uvs_panel(const float* x, npy_intp k, const float* wp, npy_intp ldw, float* out,
                      npy_intp m, npy_intp j0) {
    uvs_v8 acc[R][UVS_NV];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < UVS_NV; v++) acc[r][v] = (uvs_v8){0, 0, 0, 0, 0, 0, 0, 0};
    for (npy_intp kk = 0; kk < k; kk++) {
        const float* wr = wp + kk * ldw;
        uvs_v8 wv[UVS_NV];
        for (int v = 0; v < UVS_NV; v++) wv[v] = uvs_load8(wr + 8 * v);
        for (int r = 0; r < R; r++) {
            const float a = x[r * k + kk];
            const uvs_v8 b = {a, a, a, a, a, a, a, a};
            for (int v = 0; v < UVS_NV; v++) acc[r][v] = uvs_fma8(wv[v], b, acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < UVS_NV; v++) uvs_store8(out + r * m + j0 + 8 * v, acc[r][v]);
}

/* One row of out, columns [j0, m): the same operations, one column at a time. */
static void uvs_tail(const float* x, npy_intp k, const float* w, npy_intp m, float* out,
                     npy_intp j0) {
    for (npy_intp j = j0; j < m; j++) {
        float acc = 0.0f;
        for (npy_intp kk = 0; kk < k; kk++) {
            acc = fmaf(x[kk], w[kk * m + j], acc);
        }
        out[j] = acc;
    }
}

/* rows [i, n) of out for one panel: blocks of UVS_ROWS, then one block of the rest */
static void uvs_rows(const float* x, npy_intp n, npy_intp k, const float* wp, npy_intp ldw,
                     float* out, npy_intp m, npy_intp j0) {
    npy_intp i = 0;
    for (; i + UVS_ROWS <= n; i += UVS_ROWS)
        uvs_panel<UVS_ROWS>(x + i * k, k, wp, ldw, out + i * m, m, j0);
    const float* xi = x + i * k;
    float* oi = out + i * m;
    switch (n - i) {
        case 5: uvs_panel<5>(xi, k, wp, ldw, oi, m, j0); break;
        case 4: uvs_panel<4>(xi, k, wp, ldw, oi, m, j0); break;
        case 3: uvs_panel<3>(xi, k, wp, ldw, oi, m, j0); break;
        case 2: uvs_panel<2>(xi, k, wp, ldw, oi, m, j0); break;
        case 1: uvs_panel<1>(xi, k, wp, ldw, oi, m, j0); break;
        default: break;
    }
}

static int uvs_invariant_dot(const float* x, npy_intp n, npy_intp k, const float* w,
                              npy_intp m, float* out) {
    const npy_intp panels = m / UVS_PANEL;
    /* a panel of w is packed when more than one block of rows will read it */
    const bool pack = n > UVS_ROWS;
    int failed = 0;
    /* threads split the columns: each element is still summed by one thread, in order */
#pragma omp parallel for schedule(static) if (n * m * k > (npy_intp)1 << 20)
    for (npy_intp p = 0; p <= panels; p++) {
        const npy_intp j0 = p * UVS_PANEL;
        if (p == panels) {
            for (npy_intp i = 0; i < n; i++) uvs_tail(x + i * k, k, w, m, out + i * m, j0);
            continue;
        }
        if (!pack) {
            uvs_rows(x, n, k, w + j0, m, out, m, j0);
            continue;
        }
        float* wp = (float*)malloc(sizeof(float) * UVS_PANEL * (k ? k : 1));
        if (!wp) {
#pragma omp atomic write
            failed = 1;
            continue;
        }
        for (npy_intp kk = 0; kk < k; kk++)
            memcpy(wp + kk * UVS_PANEL, w + kk * m + j0, sizeof(float) * UVS_PANEL);
        uvs_rows(x, n, k, wp, UVS_PANEL, out, m, j0);
        free(wp);
    }
    return failed ? -1 : 0;
}

/* a scratch row of m floats for each thread a region may use (`uvs_max_threads`), taken
   before the threads start; NULL with the error set */
static float* uvs_row_scratch(npy_intp m, int* threads) {
    *threads = uvs_max_threads();
    float* scratch = (float*)malloc((size_t)*threads * (m ? m : 1) * sizeof(float));
    if (!scratch) PyErr_NoMemory();
    return scratch;
}

/* a and b as C-contiguous aligned arrays of these types and ranks (new references, 0), or
   neither (-1, the error set). */
static int uvs_contig2(PyArrayObject* a, int type_a, int nd_a, PyArrayObject* b, int type_b,
                       int nd_b, PyArrayObject** ra, PyArrayObject** rb) {
    *ra = uvs_contig(a, type_a, nd_a);
    *rb = *ra ? uvs_contig(b, type_b, nd_b) : NULL;
    if (!*rb) {
        Py_CLEAR(*ra);
        return -1;
    }
    return 0;
}

static int uvs_invariant_dot_apply(PyArrayObject* xa, PyArrayObject* wa, PyArrayObject** out) {
    if (PyArray_DIMS(xa)[1] != PyArray_DIMS(wa)[0]) {
        PyErr_Format(PyExc_ValueError,
                     "invariant dot: shapes (%ld, %ld) and (%ld, %ld) do not multiply",
                     (long)PyArray_DIMS(xa)[0], (long)PyArray_DIMS(xa)[1],
                     (long)PyArray_DIMS(wa)[0], (long)PyArray_DIMS(wa)[1]);
        return -1;
    }
    PyArrayObject *x, *w;
    if (uvs_contig2(xa, NPY_FLOAT32, 2, wa, NPY_FLOAT32, 2, &x, &w) != 0) return -1;
    npy_intp dims[2] = {PyArray_DIMS(x)[0], PyArray_DIMS(w)[1]};
    PyArrayObject* o = uvs_output(out, 2, dims, NPY_FLOAT32);
    if (o) {
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = uvs_invariant_dot((const float*)PyArray_DATA(x), dims[0], PyArray_DIMS(x)[1],
                                   (const float*)PyArray_DATA(w), dims[1],
                                   (float*)PyArray_DATA(o));
        Py_END_ALLOW_THREADS
        if (status != 0) {
            PyErr_NoMemory();
            Py_CLEAR(*out);
            o = NULL;
        }
    }
    Py_DECREF(x);
    Py_DECREF(w);
    return o ? 0 : -1;
}

/* The largest of a row's m floats: in 8 lanes, then across them (the same in any order). */
static inline float uvs_row_max(const float* x, npy_intp m) {
    float top = m ? x[0] : 0.0f;
    npy_intp j = 0;
    if (m >= 8) {
        uvs_v8 top8 = uvs_load8(x);
        for (j = 8; j + 8 <= m; j += 8) {
            const uvs_v8 v = uvs_load8(x + j);
            top8 = v > top8 ? v : top8;
        }
        top = top8[0];
        for (int l = 1; l < 8; l++) top = top8[l] > top ? top8[l] : top;
    }
    for (; j < m; j++) top = x[j] > top ? x[j] : top;
    return top;
}

/* The sum of a row (m) of exponentials: in 8 float lanes, then in double. */
static inline float uvs_lane_sum(const float* e, npy_intp m) {
    uvs_v8 lanes = {0, 0, 0, 0, 0, 0, 0, 0};
    npy_intp j = 0;
    for (; j + 8 <= m; j += 8) lanes += uvs_load8(e + j);
    double sum = 0.0;
    for (int l = 0; l < 8; l++) sum += lanes[l];
    for (; j < m; j++) sum += e[j];
    return (float)sum;
}

/* e = exp(x - top) of a row (m), and its sum (`uvs_lane_sum`). */
static inline float uvs_exp_sum(const float* x, npy_intp m, float top, float* e) {
    for (npy_intp j = 0; j < m; j++) e[j] = uvs_expf(x[j] - top);
    return uvs_lane_sum(e, m);
}

/* The softmax of each row of x (n, m): e = exp(x - max) (`uvs_exp_sum`), p = e / sum. */
static void uvs_softmax(const float* x, npy_intp n, npy_intp m, float* out) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* xi = x + i * m;
        float* oi = out + i * m;
        const float s = uvs_exp_sum(xi, m, uvs_row_max(xi, m), oi);
        for (npy_intp j = 0; j < m; j++) oi[j] = oi[j] / s;
    }
}

/* Whether every y[i] indexes a column of m; else the error set. */
static int uvs_check_words(const npy_int64* y, npy_intp n, npy_intp m) {
    for (npy_intp i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= m) {
            PyErr_Format(PyExc_IndexError, "softmax nll: word %lld of row %ld is outside the "
                         "%ld columns", (long long)y[i], (long)i, (long)m);
            return -1;
        }
    }
    return 0;
}

/* nll[i] = -log(p[i, y[i]] + 1e-8), p the softmax of row i as `uvs_softmax` computes it (the
   decoders' loss, without writing p); scratch: a row for each of `threads` threads. */
static void uvs_softmax_nll(const float* x, const npy_int64* y, npy_intp n, npy_intp m,
                            float* nll, float* scratch, int threads) {
#pragma omp parallel num_threads(threads) if (n * m > 1 << 16)
    {
        float* e = scratch + (npy_intp)uvs_thread_num() * m;
#pragma omp for schedule(static)
        for (npy_intp i = 0; i < n; i++) {
            const float* xi = x + i * m;
            const float s = uvs_exp_sum(xi, m, uvs_row_max(xi, m), e);
            nll[i] = -logf(e[y[i]] / s + 1e-8f);
        }
    }
}

/* The gradient of g[i] * nll[i] by x, as the softmax's gradient (`uvs_softmax_grad`) computes
   it from the dense gradient of p, zero but at y[i], where it is -g[i] / (p + 1e-8). */
static void uvs_softmax_nll_grad(const float* x, const npy_int64* y, const float* g, npy_intp n,
                                 npy_intp m, float* out) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* xi = x + i * m;
        float* oi = out + i * m;
        const float s = uvs_exp_sum(xi, m, uvs_row_max(xi, m), oi);
        const float py = oi[y[i]] / s;
        const float gy = -g[i] / (py + 1e-8f);
        const float dot = (float)((double)gy * py);
        for (npy_intp j = 0; j < m; j++) oi[j] = (oi[j] / s) * (0.0f - dot);
        oi[y[i]] = py * (gy - dot);
    }
}

static int uvs_softmax_apply(PyArrayObject* xa, PyArrayObject** out) {
    PyArrayObject* x = uvs_contig(xa, NPY_FLOAT32, 2);
    if (!x) return -1;
    PyArrayObject* o = uvs_output(out, 2, PyArray_DIMS(x), NPY_FLOAT32);
    if (o) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax((const float*)PyArray_DATA(x), PyArray_DIMS(x)[0], PyArray_DIMS(x)[1],
                    (float*)PyArray_DATA(o));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return o ? 0 : -1;
}

/* A draw from each row of probabilities p (n, m) by inverse CDF: the first j whose float32
   running sum reaches u[i] (m - 1 if none does), which is how many running sums are below
   u[i], as the original's graph counts them. */
static void uvs_draw(const float* p, npy_intp n, npy_intp m, const float* u, npy_int64* out) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* pi = p + i * m;
        float acc = 0.0f;
        npy_intp j = 0;
        for (; j < m; j++) {
            acc = acc + pi[j];
            if (!(acc < u[i])) break;
        }
        out[i] = j < m ? j : (m ? m - 1 : 0);
    }
}

static int uvs_draw_apply(PyArrayObject* pa, PyArrayObject* ua, PyArrayObject** out) {
    if (PyArray_DIMS(ua)[0] != PyArray_DIMS(pa)[0]) {
        PyErr_Format(PyExc_ValueError, "row draw: %ld rows of probabilities, %ld uniforms",
                     (long)PyArray_DIMS(pa)[0], (long)PyArray_DIMS(ua)[0]);
        return -1;
    }
    PyArrayObject *p, *u;
    if (uvs_contig2(pa, NPY_FLOAT32, 2, ua, NPY_FLOAT32, 1, &p, &u) != 0) return -1;
    PyArrayObject* o = uvs_output(out, 1, PyArray_DIMS(p), NPY_INT64);
    if (o) {
        Py_BEGIN_ALLOW_THREADS
        uvs_draw((const float*)PyArray_DATA(p), PyArray_DIMS(p)[0], PyArray_DIMS(p)[1],
                 (const float*)PyArray_DATA(u), (npy_int64*)PyArray_DATA(o));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(p);
    Py_DECREF(u);
    return o ? 0 : -1;
}

/* The beam search's candidates in each row of p (n, m): the columns (but `skip`) whose p is at
   least (1 - margin) times the row's keep[i]-th largest, up to `width` of them in idx (n,
   width), their number in count (n,); count = -1 when the row has fewer than keep[i]
   positive values besides `skip`, or keep[i] > width (the caller then looks at the whole
   row). */
static void uvs_top(const float* p, npy_intp n, npy_intp m, const npy_int64* keep,
                    npy_int64 skip, float margin, npy_intp width, npy_int64* idx,
                    npy_int64* count) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* pi = p + i * m;
        npy_int64* ii = idx + i * width;
        const npy_intp q = (npy_intp)keep[i];
        count[i] = -1;
        for (npy_intp c = 0; c < width; c++) ii[c] = -1;
        if (q < 1 || q > width) continue;
        float best[64]; /* the q largest so far, in decreasing order */
        npy_intp have = 0;
        for (npy_intp j = 0; j < m; j++) {
            const float v = pi[j];
            if (j == skip || !(v > 0.0f) || (have == q && !(v > best[q - 1]))) continue;
            npy_intp at = have < q ? have++ : q - 1;
            while (at > 0 && best[at - 1] < v) {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = v;
        }
        if (have < q) continue;
        const float floor = best[q - 1] * (1.0f - margin);
        npy_intp c = 0;
        for (npy_intp j = 0; j < m; j++) {
            if (j == skip || !(pi[j] >= floor)) continue;
            if (c < width) ii[c] = j;
            c++;
        }
        count[i] = c;
    }
}

static int uvs_top_apply(PyArrayObject* pa, PyArrayObject* ka, PyArrayObject* sa,
                         PyArrayObject* ma, PyArrayObject* wa, PyArrayObject** idx_out,
                         PyArrayObject** count_out) {
    const npy_int64 width = *(npy_int64*)PyArray_DATA(wa);
    if (PyArray_DIMS(ka)[0] != PyArray_DIMS(pa)[0] || width < 1 || width > 64) {
        PyErr_SetString(PyExc_ValueError, "beam candidates: one keep per row, width 1..64");
        return -1;
    }
    PyArrayObject *p, *k;
    if (uvs_contig2(pa, NPY_FLOAT32, 2, ka, NPY_INT64, 1, &p, &k) != 0) return -1;
    npy_intp dims[2] = {PyArray_DIMS(p)[0], (npy_intp)width};
    PyArrayObject* idx = uvs_output(idx_out, 2, dims, NPY_INT64);
    PyArrayObject* count = idx ? uvs_output(count_out, 1, dims, NPY_INT64) : NULL;
    if (count) {
        const npy_int64 skip = *(npy_int64*)PyArray_DATA(sa);
        const float margin = *(float*)PyArray_DATA(ma);
        Py_BEGIN_ALLOW_THREADS
        uvs_top((const float*)PyArray_DATA(p), dims[0], PyArray_DIMS(p)[1],
                (const npy_int64*)PyArray_DATA(k), skip, margin, dims[1],
                (npy_int64*)PyArray_DATA(idx), (npy_int64*)PyArray_DATA(count));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(p);
    Py_DECREF(k);
    return count ? 0 : -1;
}

/* sigmoid or tanh of every element of x (any shape), fastmath.h's vectorized float math. */
static int uvs_unary_apply(PyArrayObject* xa, PyArrayObject** out, bool tanh_) {
    PyArrayObject* x = uvs_contig(xa, NPY_FLOAT32, PyArray_NDIM(xa));
    if (!x) return -1;
    PyArrayObject* o = uvs_output(out, PyArray_NDIM(x), PyArray_DIMS(x), NPY_FLOAT32);
    if (o) {
        const float* xd = (const float*)PyArray_DATA(x);
        float* od = (float*)PyArray_DATA(o);
        const npy_intp size = PyArray_SIZE(x), block = 4096;
        Py_BEGIN_ALLOW_THREADS
#pragma omp parallel for schedule(static) if (size > 1 << 16)
        for (npy_intp b = 0; b < size; b += block) {
            const npy_intp end = b + block < size ? b + block : size;
            if (tanh_)
                for (npy_intp i = b; i < end; i++) od[i] = uvs_tanh(xd[i]);
            else
                for (npy_intp i = b; i < end; i++) od[i] = uvs_sigmoid(xd[i]);
        }
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(x);
    return o ? 0 : -1;
}
static int uvs_sigmoid_apply(PyArrayObject* x, PyArrayObject** out) {
    return uvs_unary_apply(x, out, false);
}
static int uvs_tanh_apply(PyArrayObject* x, PyArrayObject** out) {
    return uvs_unary_apply(x, out, true);
}

/* The gradient of each row's softmax: dx = p * (g - sum(g * p)), the sum in double. */
static void uvs_softmax_grad(const float* p, const float* g, npy_intp n, npy_intp m,
                             float* out) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* pi = p + i * m;
        const float* gi = g + i * m;
        float* oi = out + i * m;
        double dot = 0.0;
        for (npy_intp j = 0; j < m; j++) dot += (double)gi[j] * pi[j];
        const float s = (float)dot;
        for (npy_intp j = 0; j < m; j++) oi[j] = pi[j] * (gi[j] - s);
    }
}

static int uvs_softmax_grad_apply(PyArrayObject* pa, PyArrayObject* ga, PyArrayObject** out) {
    if (PyArray_NDIM(ga) != 2 || PyArray_DIMS(ga)[0] != PyArray_DIMS(pa)[0]
        || PyArray_DIMS(ga)[1] != PyArray_DIMS(pa)[1]) {
        PyErr_SetString(PyExc_ValueError, "softmax gradient: p and g differ in shape");
        return -1;
    }
    PyArrayObject *p, *g;
    if (uvs_contig2(pa, NPY_FLOAT32, 2, ga, NPY_FLOAT32, 2, &p, &g) != 0) return -1;
    PyArrayObject* o = uvs_output(out, 2, PyArray_DIMS(p), NPY_FLOAT32);
    if (o) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax_grad((const float*)PyArray_DATA(p), (const float*)PyArray_DATA(g),
                         PyArray_DIMS(p)[0], PyArray_DIMS(p)[1], (float*)PyArray_DATA(o));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(p);
    Py_DECREF(g);
    return o ? 0 : -1;
}

static int uvs_softmax_nll_apply(PyArrayObject* xa, PyArrayObject* ya, PyArrayObject** out) {
    PyArrayObject *x, *y;
    if (uvs_contig2(xa, NPY_FLOAT32, 2, ya, NPY_INT64, 1, &x, &y) != 0) return -1;
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (PyArray_DIMS(y)[0] != n) {
        PyErr_Format(PyExc_ValueError, "softmax nll: %ld rows, %ld words", (long)n,
                     (long)PyArray_DIMS(y)[0]);
    } else if (uvs_check_words((const npy_int64*)PyArray_DATA(y), n, m) == 0
               && uvs_output(out, 1, &n, NPY_FLOAT32)) {
        int threads;
        float* scratch = uvs_row_scratch(m, &threads);
        if (scratch) {
            Py_BEGIN_ALLOW_THREADS
            uvs_softmax_nll((const float*)PyArray_DATA(x), (const npy_int64*)PyArray_DATA(y), n,
                            m, (float*)PyArray_DATA(*out), scratch, threads);
            Py_END_ALLOW_THREADS
            free(scratch);
            rc = 0;
        }
    }
    Py_DECREF(x);
    Py_DECREF(y);
    return rc;
}

static int uvs_softmax_nll_grad_apply(PyArrayObject* xa, PyArrayObject* ya, PyArrayObject* ga,
                                      PyArrayObject** out) {
    PyArrayObject *x, *y;
    if (uvs_contig2(xa, NPY_FLOAT32, 2, ya, NPY_INT64, 1, &x, &y) != 0) return -1;
    PyArrayObject* g = uvs_contig(ga, NPY_FLOAT32, 1);
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (g && (PyArray_DIMS(y)[0] != n || PyArray_DIMS(g)[0] != n)) {
        PyErr_Format(PyExc_ValueError, "softmax nll gradient: %ld rows, %ld words, %ld weights",
                     (long)n, (long)PyArray_DIMS(y)[0], (long)PyArray_DIMS(g)[0]);
    } else if (g && uvs_check_words((const npy_int64*)PyArray_DATA(y), n, m) == 0
               && (m > 0 || n == 0) && uvs_output(out, 2, PyArray_DIMS(x), NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax_nll_grad((const float*)PyArray_DATA(x), (const npy_int64*)PyArray_DATA(y),
                             (const float*)PyArray_DATA(g), n, m, (float*)PyArray_DATA(*out));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    Py_DECREF(x);
    Py_DECREF(y);
    Py_XDECREF(g);
    return rc;
}

/* The log-bilinear models' loss of a row xi (m) with labels yi, p its softmax as `uvs_softmax`
   computes it, z = x - max:
       cost = log(sum_j exp(z_j)) - sum_j y_j z_j    (its gradient by x: p - y)
       obj  = -sum_j y_j log(p_j + 1e-20)           (the original's objective)
   both sums over the labelled j in order, in double; e (m) receives exp(z), and its sum is
   returned. */
/* yz and o of `uvs_xent_row` over the labelled j of [j0, j1), in order */
static inline void uvs_xent_labelled(const float* xi, const float* yi, const float* e, float s,
                                     float top, npy_intp j0, npy_intp j1, double* yz,
                                     double* o) {
    for (npy_intp j = j0; j < j1; j++) {
        if (yi[j] != 0.0f) {
            *yz += (double)yi[j] * (xi[j] - top);
            *o += (double)yi[j] * logf(e[j] / s + 1e-20f);
        }
    }
}

static inline float uvs_xent_row(const float* xi, const float* yi, npy_intp m, float* e,
                                 float* cost, float* obj) {
    const float top = uvs_row_max(xi, m);
    const float s = uvs_exp_sum(xi, m, top, e);
    double yz = 0.0, o = 0.0;
    npy_intp j = 0;
    for (; j + 16 <= m; j += 16) {  /* sixteen labels at a time, skipped if all are zeros */
        int any = 0;
#pragma omp simd reduction(| : any)
        for (int l = 0; l < 16; l++) any |= yi[j + l] != 0.0f;
        if (any) uvs_xent_labelled(xi, yi, e, s, top, j, j + 16, &yz, &o);
    }
    uvs_xent_labelled(xi, yi, e, s, top, j, m, &yz, &o);
    *cost = logf(s) - (float)yz;
    *obj = -(float)o;
    return s;
}

/* A row's gradient g (p - y) in place of its exponentials e (whose sum is s). */
static inline void uvs_xent_grad_row(float* e, const float* yi, npy_intp m, float s, float g) {
    for (npy_intp j = 0; j < m; j++) e[j] = g * (e[j] / s - yi[j]);
}

/* The loss of each row of x (n, m) with label rows y (n, m) (`uvs_xent_row`), without
   writing p; scratch: a row for each of `threads` threads. */
static void uvs_softmax_xent(const float* x, const float* y, npy_intp n, npy_intp m,
                             float* cost, float* obj, float* scratch, int threads) {
#pragma omp parallel num_threads(threads) if (n * m > 1 << 16)
    {
        float* e = scratch + (npy_intp)uvs_thread_num() * m;
#pragma omp for schedule(static)
        for (npy_intp i = 0; i < n; i++)
            uvs_xent_row(x + i * m, y + i * m, m, e, cost + i, obj + i);
    }
}

/* The gradient of sum_i g[i] cost[i] by x: g[i] (p_ij - y_ij). */
static void uvs_softmax_xent_grad(const float* x, const float* y, const float* g, npy_intp n,
                                  npy_intp m, float* out) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        const float* xi = x + i * m;
        float* oi = out + i * m;
        const float s = uvs_exp_sum(xi, m, uvs_row_max(xi, m), oi);
        uvs_xent_grad_row(oi, y + i * m, m, s, g[i]);
    }
}

/* Both at once, when the rows' weights g are known before the loss (1/B in the trainer):
   each row's e made in its row of dx, the loss and objective taken from it, then turned into
   g[i] (p - y) while in cache: the same floats as `uvs_softmax_xent` then
   `uvs_softmax_xent_grad`, without the second pass's exponentials. */
static void uvs_softmax_xent_fused(const float* x, const float* y, const float* g, npy_intp n,
                                   npy_intp m, float* cost, float* obj, float* dx) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++) {
        float* oi = dx + i * m;
        const float s = uvs_xent_row(x + i * m, y + i * m, m, oi, cost + i, obj + i);
        uvs_xent_grad_row(oi, y + i * m, m, s, g[i]);
    }
}

/* x and y (n, m) float32 as C-contiguous arrays of one shape (new references, 0), or -1. */
static int uvs_xent_inputs(PyArrayObject* xa, PyArrayObject* ya, PyArrayObject** x,
                           PyArrayObject** y) {
    if (uvs_contig2(xa, NPY_FLOAT32, 2, ya, NPY_FLOAT32, 2, x, y) != 0) return -1;
    if (PyArray_DIMS(*x)[0] != PyArray_DIMS(*y)[0]
        || PyArray_DIMS(*x)[1] != PyArray_DIMS(*y)[1]) {
        PyErr_Format(PyExc_ValueError, "softmax cross-entropy: scores (%ld, %ld), labels "
                     "(%ld, %ld)", (long)PyArray_DIMS(*x)[0], (long)PyArray_DIMS(*x)[1],
                     (long)PyArray_DIMS(*y)[0], (long)PyArray_DIMS(*y)[1]);
        Py_DECREF(*x);
        Py_DECREF(*y);
        return -1;
    }
    return 0;
}

static int uvs_softmax_xent_apply(PyArrayObject* xa, PyArrayObject* ya, PyArrayObject** cost,
                                  PyArrayObject** obj) {
    PyArrayObject *x, *y;
    if (uvs_xent_inputs(xa, ya, &x, &y) != 0) return -1;
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (uvs_output(cost, 1, &n, NPY_FLOAT32) && uvs_output(obj, 1, &n, NPY_FLOAT32)) {
        int threads;
        float* scratch = uvs_row_scratch(m, &threads);
        if (scratch) {
            Py_BEGIN_ALLOW_THREADS
            uvs_softmax_xent((const float*)PyArray_DATA(x), (const float*)PyArray_DATA(y), n, m,
                             (float*)PyArray_DATA(*cost), (float*)PyArray_DATA(*obj), scratch,
                             threads);
            Py_END_ALLOW_THREADS
            free(scratch);
            rc = 0;
        }
    }
    Py_DECREF(x);
    Py_DECREF(y);
    return rc;
}

static int uvs_softmax_xent_grad_apply(PyArrayObject* xa, PyArrayObject* ya,
                                       PyArrayObject* ga, PyArrayObject** out) {
    PyArrayObject *x, *y;
    if (uvs_xent_inputs(xa, ya, &x, &y) != 0) return -1;
    PyArrayObject* g = uvs_contig(ga, NPY_FLOAT32, 1);
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (g && PyArray_DIMS(g)[0] != n) {
        PyErr_Format(PyExc_ValueError, "softmax cross-entropy gradient: %ld rows, %ld weights",
                     (long)n, (long)PyArray_DIMS(g)[0]);
    } else if (g && uvs_output(out, 2, PyArray_DIMS(x), NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax_xent_grad((const float*)PyArray_DATA(x), (const float*)PyArray_DATA(y),
                              (const float*)PyArray_DATA(g), n, m, (float*)PyArray_DATA(*out));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    Py_DECREF(x);
    Py_DECREF(y);
    Py_XDECREF(g);
    return rc;
}

/* The decoders' loss with the output layer's bias folded in (`uvs_softmax_nll` of x + b), for
   one row: z = x + b (float, as the graph's add) made in e (m), then e = exp(z - max) in
   place, its sum returned and nll = -log(p[y] + 1e-8), p the softmax as `uvs_softmax`
   computes it. In place through one pointer: `uvs_exp_sum(e, .., e)` would take the loop's
   unvectorized version, meant for overlapping rows. */
static inline float uvs_nll_bias_row(const float* xi, const float* b, npy_intp m, npy_int64 y,
                                     float* e, float* nll) {
    for (npy_intp j = 0; j < m; j++) e[j] = xi[j] + b[j];
    const float top = uvs_row_max(e, m);
    for (npy_intp j = 0; j < m; j++) e[j] = uvs_expf(e[j] - top);
    const float s = uvs_lane_sum(e, m);
    *nll = -logf(e[y] / s + 1e-8f);
    return s;
}

/* A row's gradient of g nll, as `uvs_softmax_nll_grad`, in place of its exponentials e (sum
   s), then added into the bias's column sums acc. */
static inline void uvs_nll_grad_row(float* e, npy_intp m, float s, npy_int64 y, float g,
                                    double* acc) {
    const float py = e[y] / s;
    const float gy = -g / (py + 1e-8f);
    const float dot = (float)((double)gy * py);
    for (npy_intp j = 0; j < m; j++) e[j] = (e[j] / s) * (0.0f - dot);
    e[y] = py * (gy - dot);
    for (npy_intp j = 0; j < m; j++) acc[j] += e[j];
}

/* The loss of each row of x (n, m) before the bias b (m,): nll, and the rows of e and their
   sums kept for the gradient, which then needs no exp. */
static void uvs_softmax_nll_bias(const float* x, const float* b, const npy_int64* y,
                                 npy_intp n, npy_intp m, float* nll, float* e, float* sums) {
#pragma omp parallel for schedule(static) if (n * m > 1 << 16)
    for (npy_intp i = 0; i < n; i++)
        sums[i] = uvs_nll_bias_row(x + i * m, b, m, y[i], e + i * m, nll + i);
}

#define UVS_BIAS_BLOCK 32 /* rows whose bias gradients are summed together, then the blocks */

/* Its gradient dx (`uvs_nll_grad_row`) and db = the column sums of dx in double: each block of
   UVS_BIAS_BLOCK rows summed while its rows are in cache, then the blocks in order (the same
   sums for any number of threads). Each row of dx starts as the row's exponentials: with x
   given (the weights g known before the loss, the trainer's mask), made from x and b there,
   its nll taken, and the gradient made while the row is in cache, without writing e to memory
   and reading it back; else copied from the kept e and sums. The same floats either way.
   part: a double per block and column (`uvs_softmax_nll_bias_grad_run` takes it). */
static void uvs_softmax_nll_bias_grad(const float* x, const float* b, const float* e,
                                      const float* sums, const npy_int64* y, const float* g,
                                      npy_intp n, npy_intp m, float* nll, float* dx,
                                      double* part, float* db) {
    const npy_intp blocks = (n + UVS_BIAS_BLOCK - 1) / UVS_BIAS_BLOCK;
#pragma omp parallel if (n * m > 1 << 16)
    {
#pragma omp for schedule(static)
        for (npy_intp k = 0; k < blocks; k++) {
            double* acc = part + k * m;
            for (npy_intp j = 0; j < m; j++) acc[j] = 0.0;
            const npy_intp end = (k + 1) * UVS_BIAS_BLOCK < n ? (k + 1) * UVS_BIAS_BLOCK : n;
            for (npy_intp i = k * UVS_BIAS_BLOCK; i < end; i++) {
                float* oi = dx + i * m;
                float s;
                if (x) {
                    s = uvs_nll_bias_row(x + i * m, b, m, y[i], oi, nll + i);
                } else {
                    memcpy(oi, e + i * m, (size_t)m * sizeof(float));
                    s = sums[i];
                }
                uvs_nll_grad_row(oi, m, s, y[i], g[i], acc);
            }
        }
#pragma omp for schedule(static)
        for (npy_intp j = 0; j < m; j++) {
            double total = 0.0;
            for (npy_intp k = 0; k < blocks; k++) total += part[k * m + j];
            db[j] = (float)total;
        }
    }
}

/* `uvs_softmax_nll_bias_grad` with its scratch taken before the threads start and the GIL
   released around it: 0, or -1 with the error set */
static int uvs_softmax_nll_bias_grad_run(const float* x, const float* b, const float* e,
                                         const float* sums, const npy_int64* y, const float* g,
                                         npy_intp n, npy_intp m, float* nll, float* dx,
                                         float* db) {
    const npy_intp blocks = (n + UVS_BIAS_BLOCK - 1) / UVS_BIAS_BLOCK;
    double* part = (double*)malloc((blocks * m > 0 ? blocks * m : 1) * sizeof(double));
    if (!part) {
        PyErr_NoMemory();
        return -1;
    }
    Py_BEGIN_ALLOW_THREADS
    uvs_softmax_nll_bias_grad(x, b, e, sums, y, g, n, m, nll, dx, part, db);
    Py_END_ALLOW_THREADS
    free(part);
    return 0;
}

static int uvs_softmax_nll_bias_apply(PyArrayObject* xa, PyArrayObject* ba, PyArrayObject* ya,
                                      PyArrayObject** out, PyArrayObject** e,
                                      PyArrayObject** sums) {
    PyArrayObject *x, *y;
    if (uvs_contig2(xa, NPY_FLOAT32, 2, ya, NPY_INT64, 1, &x, &y) != 0) return -1;
    PyArrayObject* b = uvs_contig(ba, NPY_FLOAT32, 1);
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (!b) {
        rc = -1;  /* the error set */
    } else if (PyArray_DIMS(y)[0] != n || PyArray_DIMS(b)[0] != m) {
        PyErr_Format(PyExc_ValueError, "softmax nll: %ld rows of %ld scores, %ld words, %ld "
                     "biases", (long)n, (long)m, (long)PyArray_DIMS(y)[0],
                     (long)PyArray_DIMS(b)[0]);
    } else if (uvs_check_words((const npy_int64*)PyArray_DATA(y), n, m) == 0
               && uvs_output(out, 1, &n, NPY_FLOAT32) && uvs_output(sums, 1, &n, NPY_FLOAT32)
               && uvs_output(e, 2, PyArray_DIMS(x), NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax_nll_bias((const float*)PyArray_DATA(x), (const float*)PyArray_DATA(b),
                             (const npy_int64*)PyArray_DATA(y), n, m,
                             (float*)PyArray_DATA(*out), (float*)PyArray_DATA(*e),
                             (float*)PyArray_DATA(*sums));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    Py_DECREF(x);
    Py_DECREF(y);
    Py_XDECREF(b);
    return rc;
}

static int uvs_softmax_nll_bias_grad_apply(PyArrayObject* ea, PyArrayObject* sa,
                                           PyArrayObject* ya, PyArrayObject* ga,
                                           PyArrayObject** dx, PyArrayObject** db) {
    PyArrayObject *e, *y;
    if (uvs_contig2(ea, NPY_FLOAT32, 2, ya, NPY_INT64, 1, &e, &y) != 0) return -1;
    PyArrayObject* s = uvs_contig(sa, NPY_FLOAT32, 1);
    PyArrayObject* g = s ? uvs_contig(ga, NPY_FLOAT32, 1) : NULL;
    const npy_intp n = PyArray_DIMS(e)[0], m = PyArray_DIMS(e)[1];
    int rc = -1;
    if (!g) {
        rc = -1;  /* the error set */
    } else if (PyArray_DIMS(y)[0] != n || PyArray_DIMS(s)[0] != n || PyArray_DIMS(g)[0] != n) {
        PyErr_Format(PyExc_ValueError, "softmax nll gradient: %ld rows, %ld words, %ld sums, "
                     "%ld weights", (long)n, (long)PyArray_DIMS(y)[0], (long)PyArray_DIMS(s)[0],
                     (long)PyArray_DIMS(g)[0]);
    } else if (uvs_check_words((const npy_int64*)PyArray_DATA(y), n, m) == 0
               && uvs_output(dx, 2, PyArray_DIMS(e), NPY_FLOAT32)
               && uvs_output(db, 1, &m, NPY_FLOAT32)) {
        rc = uvs_softmax_nll_bias_grad_run(NULL, NULL, (const float*)PyArray_DATA(e),
                                           (const float*)PyArray_DATA(s),
                                           (const npy_int64*)PyArray_DATA(y),
                                           (const float*)PyArray_DATA(g), n, m, NULL,
                                           (float*)PyArray_DATA(*dx), (float*)PyArray_DATA(*db));
    }
    Py_DECREF(e);
    Py_DECREF(y);
    Py_XDECREF(s);
    Py_XDECREF(g);
    return rc;
}

static int uvs_softmax_nll_bias_fused_apply(PyArrayObject* xa, PyArrayObject* ba,
                                            PyArrayObject* ya, PyArrayObject* ga,
                                            PyArrayObject** out, PyArrayObject** dx,
                                            PyArrayObject** db) {
    PyArrayObject *x, *y;
    if (uvs_contig2(xa, NPY_FLOAT32, 2, ya, NPY_INT64, 1, &x, &y) != 0) return -1;
    PyArrayObject* b = uvs_contig(ba, NPY_FLOAT32, 1);
    PyArrayObject* g = b ? uvs_contig(ga, NPY_FLOAT32, 1) : NULL;
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (!g) {
        rc = -1;  /* the error set */
    } else if (PyArray_DIMS(y)[0] != n || PyArray_DIMS(b)[0] != m || PyArray_DIMS(g)[0] != n) {
        PyErr_Format(PyExc_ValueError, "softmax nll: %ld rows of %ld scores, %ld words, %ld "
                     "biases, %ld weights", (long)n, (long)m, (long)PyArray_DIMS(y)[0],
                     (long)PyArray_DIMS(b)[0], (long)PyArray_DIMS(g)[0]);
    } else if (uvs_check_words((const npy_int64*)PyArray_DATA(y), n, m) == 0
               && uvs_output(out, 1, &n, NPY_FLOAT32)
               && uvs_output(dx, 2, PyArray_DIMS(x), NPY_FLOAT32)
               && uvs_output(db, 1, &m, NPY_FLOAT32)) {
        rc = uvs_softmax_nll_bias_grad_run((const float*)PyArray_DATA(x),
                                           (const float*)PyArray_DATA(b), NULL, NULL,
                                           (const npy_int64*)PyArray_DATA(y),
                                           (const float*)PyArray_DATA(g), n, m,
                                           (float*)PyArray_DATA(*out), (float*)PyArray_DATA(*dx),
                                           (float*)PyArray_DATA(*db));
    }
    Py_DECREF(x);
    Py_DECREF(y);
    Py_XDECREF(b);
    Py_XDECREF(g);
    return rc;
}

static int uvs_softmax_xent_fused_apply(PyArrayObject* xa, PyArrayObject* ya, PyArrayObject* ga,
                                        PyArrayObject** cost, PyArrayObject** obj,
                                        PyArrayObject** dx) {
    PyArrayObject *x, *y;
    if (uvs_xent_inputs(xa, ya, &x, &y) != 0) return -1;
    PyArrayObject* g = uvs_contig(ga, NPY_FLOAT32, 1);
    const npy_intp n = PyArray_DIMS(x)[0], m = PyArray_DIMS(x)[1];
    int rc = -1;
    if (g && PyArray_DIMS(g)[0] != n) {
        PyErr_Format(PyExc_ValueError, "softmax cross-entropy gradient: %ld rows, %ld weights",
                     (long)n, (long)PyArray_DIMS(g)[0]);
    } else if (g && uvs_output(cost, 1, &n, NPY_FLOAT32) && uvs_output(obj, 1, &n, NPY_FLOAT32)
               && uvs_output(dx, 2, PyArray_DIMS(x), NPY_FLOAT32)) {
        Py_BEGIN_ALLOW_THREADS
        uvs_softmax_xent_fused((const float*)PyArray_DATA(x), (const float*)PyArray_DATA(y),
                               (const float*)PyArray_DATA(g), n, m, (float*)PyArray_DATA(*cost),
                               (float*)PyArray_DATA(*obj), (float*)PyArray_DATA(*dx));
        Py_END_ALLOW_THREADS
        rc = 0;
    }
    Py_DECREF(x);
    Py_DECREF(y);
    Py_XDECREF(g);
    return rc;
}
