/* Float math of uvs's C Ops (gru_op.c, rowwise.c): branch-free, so that loops over it
   vectorize. The Python side puts this text in front of each file and keys the compile cache
   by its hash too (`uvs.cop.fastmath_header`). */

/* exp(x) in float, ~1 ulp (Cephes expf), branch-free so that loops over it vectorize; down
   to the denormals (2^n is applied as two normal factors), 0 below -104. */
static inline float uvs_expf(float x) {
    x = x < -104.0f ? -104.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float fx = x * 1.44269504088896341f;
    const int ni = (int)(fx + (fx >= 0.0f ? 0.5f : -0.5f));
    const float n = (float)ni;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    const float z = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * z + r + 1.0f;
    const int half = ni / 2;
    const int b1 = (half + 127) << 23, b2 = (ni - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return p * s1 * s2;
}
static inline float uvs_sigmoid(float x) { return 1.0f / (1.0f + uvs_expf(-x)); }
/* tanh in float: 1 - 2/(e^2|x| + 1), odd; a Taylor polynomial near 0 (abs. error < 1e-7). */
static inline float uvs_tanh(float x) {
    const float ax = x < 0.0f ? -x : x;
    const float big = 1.0f - 2.0f / (uvs_expf(2.0f * ax) + 1.0f);
    const float x2 = x * x;
    const float small = x + x * x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f));
    const float t = x < 0.0f ? -big : big;  /* (two selects: a nested one does not vectorize) */
    return ax < 0.0625f ? small : t;
}
static inline double uvs_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }
static inline double uvs_tanh(double x) { return tanh(x); }

