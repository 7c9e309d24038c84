"""The batch-invariant product: C and NumPy bit for bit, rows independent of their batch."""

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

from uvs import backend
from uvs.rowwise import invariant_dot, rowwise_graph


@pytest.fixture(scope="module")
def c_dot():
    x, w = pt.matrix("x", dtype="float32"), pt.matrix("w", dtype="float32")
    f = backend.function([x, w], invariant_dot(x, w), mode="CVM")
    assert all(hasattr(t, "cthunk") for t in f.vm.thunks)
    return f


def numpy_dot(x, w):
    out = [None]
    invariant_dot.perform(None, [x, w], [out])
    return out[0]


@pytest.mark.parametrize("n", [1, 2, 5, 6, 7, 13])
@pytest.mark.parametrize("k,m", [(1, 1), (7, 15), (64, 16), (33, 17), (130, 40), (0, 5)])
def test_c_is_numpy_bit_for_bit(c_dot, n, k, m):
    rng = np.random.RandomState(n * 1000 + k * 10 + m)
    x, w = rng.randn(n, k).astype("float32"), rng.randn(k, m).astype("float32")
    got = c_dot(x, w)
    assert got.shape == (n, m) and got.dtype == np.float32
    assert got.tobytes() == numpy_dot(x, w).tobytes()
    np.testing.assert_allclose(got, x.astype("float64") @ w.astype("float64"), rtol=1e-4,
                               atol=1e-4)


def test_a_row_does_not_depend_on_the_rows_beside_it(c_dot):
    rng = np.random.RandomState(0)
    x, w = rng.randn(61, 300).astype("float32"), rng.randn(300, 1000).astype("float32")
    full = c_dot(x, w)
    for start, stop in [(0, 1), (5, 6), (3, 8), (13, 61), (1, 60), (7, 19)]:
        part = c_dot(np.ascontiguousarray(x[start:stop]), w)
        assert part.tobytes() == full[start:stop].tobytes(), (start, stop)
    strided = c_dot(x[::2], w)  # non-contiguous input: copied, same rows
    assert strided.tobytes() == full[::2].tobytes()


def test_bad_shapes_are_one_line_errors(c_dot):
    with pytest.raises(ValueError, match="do not multiply"):
        c_dot(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))
    with pytest.raises(TypeError, match="float32 matrices"):
        invariant_dot(pt.vector("v", dtype="float32"), pt.matrix("w", dtype="float32"))


def test_rowwise_graph_replaces_every_product():
    x = pt.matrix("x", dtype="float32")
    w1 = pt.matrix("w1", dtype="float32")
    w2 = pt.matrix("w2", dtype="float32")
    h = pt.tanh(pt.dot(x, w1) + 1)
    out = pt.special.softmax(pt.dot(h, w2) + pt.dot(x, w1).sum(), axis=-1)
    (inv,) = rowwise_graph([out])
    f = backend.function([x, w1, w2], inv, mode="CVM")
    names = {type(n.op).__name__ for n in f.maker.fgraph.apply_nodes}
    assert "InvariantDot" in names
    assert not names & {"Dot", "Dot22", "Dot22Scalar", "Gemm", "Gemv", "Ger"}
    rng = np.random.RandomState(1)
    args = [rng.randn(*s).astype("float32") for s in ((9, 20), (20, 30), (30, 11))]
    ref = backend.function([x, w1, w2], out, mode="CVM")(*args)
    np.testing.assert_allclose(f(*args), ref, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def c_softmax_draw():
    from uvs.rowwise import draw_rows, softmax_rows

    x, u = pt.matrix("x", dtype="float32"), pt.vector("u", dtype="float32")
    p = softmax_rows(x)
    f = backend.function([x, u], [p, draw_rows(p, u)], mode="CVM")
    assert all(hasattr(t, "cthunk") for t in f.vm.thunks)
    return f


def test_softmax_rows_is_the_softmax(c_softmax_draw):
    from uvs.rowwise import softmax_rows

    rng = np.random.RandomState(2)
    x = (rng.randn(9, 1000) * np.array([[1], [10], [40], [100], [1], [0], [3], [7], [200]])
         ).astype("float32")
    p, _ = c_softmax_draw(x, np.full(9, 0.5, np.float32))
    e = np.exp((x - x.max(axis=1, keepdims=True)).astype("float64"))  # x − max rounds in float32
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=2e-6, atol=1e-30)
    out = [None]
    softmax_rows.perform(None, [x], [out])
    np.testing.assert_allclose(out[0], p, rtol=1e-6, atol=1e-30)
    for a, b in [(0, 1), (3, 4), (2, 9)]:  # rows do not see each other
        assert c_softmax_draw(x[a:b], np.full(b - a, 0.5, np.float32))[0].tobytes() \
            == p[a:b].tobytes()


def test_draw_rows_is_the_inverse_cdf_count(c_softmax_draw):
    from uvs.rowwise import draw_rows

    rng = np.random.RandomState(3)
    x = rng.randn(300, 50).astype("float32") * 3
    u = rng.rand(300).astype("float32")
    u[:4] = [0.0, 1.0, 0.9999999, np.nextafter(np.float32(1), np.float32(2))]  # ends of [0, 1]
    p, draws = c_softmax_draw(x, u)
    below = (np.cumsum(p, axis=1, dtype=np.float32) < u[:, None]).sum(axis=1)
    assert draws.dtype == np.int64
    assert draws.tolist() == np.minimum(below, 49).tolist()
    out = [None]
    draw_rows.perform(None, [p, u], [out])
    assert out[0].tolist() == draws.tolist()
    freq = np.bincount(c_softmax_draw(np.log(np.full((20000, 3), 1 / 3, np.float32)) * 0,
                                      rng.rand(20000).astype("float32"))[1], minlength=3)
    assert all(abs(f / 20000 - 1 / 3) < 0.02 for f in freq)


def test_beam_candidates_c_and_numpy_agree():
    from uvs.rowwise import beam_candidates

    p = pt.matrix("p", dtype="float32")
    keep = pt.vector("keep", dtype="int64")
    skip = pt.scalar("skip", dtype="int64")
    f = backend.function([p, keep, skip], beam_candidates(p, keep, skip, np.float32(0.01), 8),
                         mode="CVM")
    rng = np.random.RandomState(6)
    probs = rng.dirichlet(np.ones(40) * 0.3, size=12).astype("float32")
    probs[0, :] = 1 / 40  # all tied: more than 8 candidates
    probs[1, 5:] = 0  # five positive values only
    probs[2, [3, 7, 9]] = probs[2].max() * np.float32(1.001)  # within the margin of each other
    keeps = rng.randint(1, 6, size=12).astype("int64")
    keeps[1], keeps[3] = 6, 9  # more than the positive values; more than the width
    for s in (-1, 1):
        idx, count = f(probs, keeps, np.int64(s))
        ref_idx, ref_count = [None], [None]
        beam_candidates.perform(None, [probs, keeps, np.int64(s), np.float32(0.01), 8],
                                [ref_idx, ref_count])
        assert count.tolist() == ref_count[0].tolist()
        assert idx.tolist() == ref_idx[0].tolist()
        assert count[1] == -1 and count[3] == -1 and count[0] == 40 - (s == 1)
        for i in range(12):
            if count[i] < 0:
                continue
            valid = np.array([j != s and probs[i, j] > 0 for j in range(40)])
            top = np.sort(probs[i][valid])[-keeps[i]]
            want = [j for j in range(40) if valid[j] and probs[i, j] >= top * np.float32(0.99)]
            assert count[i] == len(want)
            assert idx[i, :min(len(want), 8)].tolist() == want[:8]


def _round32(q):
    """The float32 nearest the rational q (ties to even), exactly."""
    from fractions import Fraction

    r = np.float32(float(q))
    best = r
    for cand in (np.nextafter(r, np.float32(-np.inf)), np.nextafter(r, np.float32(np.inf))):
        d, db = abs(Fraction(float(cand)) - q), abs(Fraction(float(best)) - q)
        if d < db or (d == db and int(cand.view(np.int32)) % 2 == 0):
            best = cand
    return best


def test_fma32_rounds_once():
    from fractions import Fraction

    from uvs.rowwise import fma32

    f = np.float32
    # exactly halfway in float64, the true value just above: rounding twice gives 1.0
    a = np.array([-(2.0 ** -24) * (1 + 2.0 ** -18)], f)
    b = np.array([1 - 2.0 ** -18], f)
    c = np.array([1 + 2.0 ** -23], f)
    assert fma32(a, b, c)[0] == f(1 + 2.0 ** -23)
    assert f(a.astype(np.float64) * b + c)[0] == f(1.0)  # what rounding twice gives
    rng = np.random.RandomState(9)
    a = (rng.randn(3000) * 2.0 ** rng.randint(-30, 30, 3000)).astype(f)
    b = (rng.randn(3000) * 2.0 ** rng.randint(-30, 30, 3000)).astype(f)
    c = np.where(rng.rand(3000) < 0.5, -(a.astype(np.float64) * b), rng.randn(3000)).astype(f)
    got = fma32(a, b, c)
    want = [_round32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
            for x, y, z in zip(a, b, c, strict=True)]
    assert got.tobytes() == np.array(want, f).tobytes()


def test_c_product_fuses_each_multiply_add(c_dot):
    f = np.float32
    x = np.array([[1 + 2.0 ** -23, -(2.0 ** -24) * (1 + 2.0 ** -18)]] * 3, f)
    w = np.tile(np.array([[1.0], [1 - 2.0 ** -18]], f), (1, 19))  # vector and tail columns
    assert (c_dot(x, w) == f(1 + 2.0 ** -23)).all()


def test_softmax_rows_gradient_is_the_softmax_gradient():
    from uvs.rowwise import softmax_rows

    x = pt.matrix("x", dtype="float32")
    g = pt.matrix("g", dtype="float32")
    mine = pt.grad((softmax_rows(x) * g).sum(), x)
    ref = pt.grad((pt.special.softmax(x, axis=-1) * g).sum(), x)
    f = backend.function([x, g], [mine, ref], mode="CVM")
    rng = np.random.RandomState(11)
    a, b = f(rng.randn(7, 30).astype("float32") * 3, rng.randn(7, 30).astype("float32"))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _old_loss(x, y, g):
    """The decoders' loss as it was built before `softmax_nll_rows`: the softmax, −log of the
    target's probability + 1e-8, weighted by g; and its gradient."""
    from uvs.rowwise import softmax_rows

    p = softmax_rows(x).flatten()
    nll = -pt.log(p[pt.arange(y.shape[0]) * x.shape[1] + y] + 1e-8)
    return nll, pt.grad((nll * g).sum(), x)


@pytest.mark.parametrize("n,m", [(7, 30), (5, 8), (3, 1), (4, 1003), (6, 48)])  # blocks of 16
def test_softmax_nll_rows_is_the_loss_it_replaces(n, m):
    from uvs.rowwise import softmax_nll_rows

    x = pt.matrix("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    g = pt.vector("g", dtype="float32")
    nll = softmax_nll_rows(x, y)
    old_nll, old_grad = _old_loss(x, y, g)
    f = backend.function([x, y, g], [nll, pt.grad((nll * g).sum(), x), old_nll, old_grad],
                         mode="CVM")
    rng = np.random.RandomState(n * m)
    xv = (rng.randn(n, m) * 4).astype("float32")
    yv = rng.randint(0, m, n).astype("int64")
    gv = rng.rand(n).astype("float32") * (rng.rand(n) < 0.8)  # masked rows too
    a, da, b, db = f(xv, yv, gv)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the same arithmetic as the softmax's gradient over a one-hot gradient of p: to the bit
    assert da.tobytes() == db.tobytes()
    for op, args, want in ((nll.owner.op, [xv, yv], a),
                           (f.maker.fgraph.outputs[1].owner.op, [xv, yv, gv], da)):
        out = [None]
        op.perform(None, args, [out])  # NumPy, for modes without C
        np.testing.assert_allclose(out[0], want, rtol=1e-5, atol=1e-6)


def test_softmax_nll_rows_refuses_a_word_outside_the_row():
    from uvs.rowwise import softmax_nll_rows

    x = pt.matrix("x", dtype="float32")
    y = pt.vector("y", dtype="int64")
    f = backend.function([x, y], softmax_nll_rows(x, y), mode="CVM")
    with pytest.raises(IndexError, match="outside the 4 columns"):
        f(np.zeros((2, 4), "float32"), np.array([1, 4]))
    with pytest.raises(ValueError, match="2 rows, 3 words"):
        f(np.zeros((2, 4), "float32"), np.array([1, 2, 3]))


def _old_xent(x, y):
    """The log-bilinear loss as `uvs.mnlm.lbl` built it before `softmax_xent_rows`: summed
    cost log Σ exp(z) − Σ y·z (z = x − max) and objective −Σ y·log(p + 1e-20)."""
    import pytensor

    z = x - pytensor.gradient.disconnected_grad(x.max(axis=1, keepdims=True))
    lse = pt.log(pt.exp(z).sum(axis=1))
    p = pt.exp(z - lse[:, None])
    return lse.sum() - (y * z).sum(), -(y * pt.log(p + np.float32(1e-20))).sum()


@pytest.mark.parametrize("n,m", [(7, 30), (5, 8), (3, 1), (4, 1003), (6, 48)])  # blocks of 16
def test_softmax_xent_rows_is_the_loss_it_replaces(n, m):
    from uvs.rowwise import softmax_xent_rows

    x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
    cost, obj = softmax_xent_rows(x, y)
    old_cost, old_obj = _old_xent(x, y)
    f = backend.function([x, y], [cost.sum(), obj.sum(), pt.grad(cost.sum() * 0.25, x),
                                  old_cost, old_obj, pt.grad(old_cost * 0.25, x)],
                         mode=get_mode("CVM").excluding("uvs_softmax_xent_fused"))  # below
    rng = np.random.RandomState(n * m)
    xv = (rng.randn(n, m) * 4).astype("float32")
    xv[0, 0] = -200.0  # a probability that underflows: log(0 + 1e-20)
    yv = np.zeros((n, m), np.float32)
    yv[np.arange(n), rng.randint(0, m, n)] = 1.0
    yv[0, 0] = 0.5  # a label on the underflowing column, and a row of two labels
    a, b, da, old_a, old_b, old_da = f(xv, yv)
    np.testing.assert_allclose([a, b], [old_a, old_b], rtol=2e-6)
    np.testing.assert_allclose(da, old_da, rtol=1e-5, atol=1e-7)  # 0.25·(p − y)
    for op, args, want in ((cost.owner.op, [xv, yv], None),
                           (f.maker.fgraph.outputs[2].owner.op, [xv, yv, np.full(n, 0.25,
                                                                                 "float32")],
                            da)):
        out = [[None] for _ in op.make_node(*args).outputs]  # NumPy, for modes without C
        op.perform(None, args, out)
        if want is None:
            np.testing.assert_allclose([out[0][0].sum(), out[1][0].sum()], [a, b], rtol=2e-6)
        else:
            np.testing.assert_allclose(out[0][0], want, rtol=1e-5, atol=1e-7)


def test_softmax_xent_rows_refuses_labels_of_another_shape():
    from uvs.rowwise import softmax_xent_rows

    x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
    f = backend.function([x, y], softmax_xent_rows(x, y)[0], mode="CVM")
    with pytest.raises(ValueError, match=r"scores \(2, 4\), labels \(2, 3\)"):
        f(np.zeros((2, 4), "float32"), np.zeros((2, 3), "float32"))


@pytest.mark.parametrize("n,m", [(7, 30), (5, 8), (3, 1), (70, 1003)])
def test_softmax_nll_bias_rows_is_the_loss_of_the_biased_scores(n, m):
    from uvs.rowwise import softmax_nll_bias, softmax_nll_bias_rows, softmax_nll_rows

    x, b = pt.matrix("x", dtype="float32"), pt.vector("b", dtype="float32")
    y, g = pt.vector("y", dtype="int64"), pt.vector("g", dtype="float32")
    nll = softmax_nll_bias(x, b, y)
    assert nll.owner.op is softmax_nll_bias_rows
    before = softmax_nll_rows(x + b, y)  # the decoders' loss before: the bias added first
    dx, db = pt.grad((nll * g).sum(), [x, b])
    old_dx, old_db = pt.grad((before * g).sum(), [x, b])
    two_passes = get_mode("CVM").excluding("uvs_softmax_nll_bias_fused")  # the fused: below
    f = backend.function([x, b, y, g], [nll, dx, db, before, old_dx, old_db], mode=two_passes)
    rng = np.random.RandomState(n + m)
    xv = (rng.randn(n, m) * 4).astype("float32")
    bv = rng.randn(m).astype("float32")
    yv = rng.randint(0, m, n).astype("int64")
    gv = rng.rand(n).astype("float32") * (rng.rand(n) < 0.8)
    a, da, dbv, b0, dz, db0 = f(xv, bv, yv, gv)
    assert a.tobytes() == b0.tobytes() and da.tobytes() == dz.tobytes()  # to the bit
    np.testing.assert_allclose(dbv, db0, rtol=1e-6, atol=1e-8)  # column sums, in other order
    np.testing.assert_allclose(dbv, dz.sum(axis=0, dtype=np.float64), rtol=1e-6, atol=1e-8)
    op = nll.owner.op
    out = [[None], [None], [None]]
    op.perform(None, [xv, bv, yv], out)  # NumPy, for modes without C
    np.testing.assert_allclose(out[0][0], a, rtol=1e-5, atol=1e-6)
    grad = [[None], [None]]
    f.maker.fgraph.outputs[1].owner.op.perform(None, [out[1][0], out[2][0], yv, gv], grad)
    np.testing.assert_allclose(grad[0][0], da, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad[1][0], dbv, rtol=1e-5, atol=1e-6)


def test_softmax_nll_bias_rows_refuses_a_bias_of_another_width():
    from uvs.rowwise import softmax_nll_bias

    x, b, y = pt.matrix("x", dtype="float32"), pt.vector("b", dtype="float32"), pt.lvector("y")
    f = backend.function([x, b, y], softmax_nll_bias(x, b, y), mode="CVM")
    with pytest.raises(ValueError, match="2 rows of 4 scores, 2 words, 3 biases"):
        f(np.zeros((2, 4), "float32"), np.zeros(3, "float32"), np.array([1, 2]))
    with pytest.raises(IndexError, match="outside the 4 columns"):
        f(np.zeros((2, 4), "float32"), np.zeros(4, "float32"), np.array([1, 4]))


@pytest.mark.parametrize("n,m", [(7, 30), (3, 1), (70, 1003)])
@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])  # C, then `perform`
def test_the_loss_and_its_gradient_in_one_pass_are_the_two_passes(n, m, mode):
    """Where the rows' weights do not depend on the loss, one Op gives the loss, its gradient
    and the bias's, the same floats as the loss and gradient Ops."""
    from uvs.rowwise import SoftmaxNLLBiasRowsFused, softmax_nll_bias

    x, b = pt.matrix("x", dtype="float32"), pt.vector("b", dtype="float32")
    y, g = pt.vector("y", dtype="int64"), pt.vector("g", dtype="float32")
    nll = softmax_nll_bias(x, b, y)
    outs = [nll, *pt.grad((nll * g).sum(), [x, b])]
    one = backend.function([x, b, y, g], outs, mode=get_mode(mode))
    two = backend.function([x, b, y, g], outs,
                           mode=get_mode(mode).excluding("uvs_softmax_nll_bias_fused"))
    ops = {type(n.op) for n in one.maker.fgraph.toposort()}
    assert (SoftmaxNLLBiasRowsFused in ops) == (mode == "CVM")  # C backend only
    assert SoftmaxNLLBiasRowsFused not in {type(n.op) for n in two.maker.fgraph.toposort()}
    rng = np.random.RandomState(n * m)
    args = ((rng.randn(n, m) * 4).astype("float32"), rng.randn(m).astype("float32"),
            rng.randint(0, m, n).astype("int64"),
            rng.rand(n).astype("float32") * (rng.rand(n) < 0.8))
    for a, c in zip(one(*args), two(*args), strict=True):
        assert a.tobytes() == c.tobytes()
    out = [[None], [None], [None]]
    SoftmaxNLLBiasRowsFused().perform(None, list(args), out)  # NumPy, for modes without C
    for a, c in zip(out, one(*args), strict=True):
        np.testing.assert_allclose(a[0], c, rtol=1e-5, atol=1e-6)


def test_one_pass_only_where_the_weights_do_not_depend_on_the_loss():
    from uvs.rowwise import SoftmaxNLLBiasRowsFused, softmax_nll_bias

    x, b, y = pt.matrix("x", dtype="float32"), pt.vector("b", dtype="float32"), pt.lvector("y")
    nll = softmax_nll_bias(x, b, y)
    cost = (nll ** 2).sum()  # the gradient's weights are 2·nll: the loss must come first
    f = backend.function([x, b, y], [cost, *pt.grad(cost, [x, b])], mode="CVM")
    assert SoftmaxNLLBiasRowsFused not in {type(n.op) for n in f.maker.fgraph.toposort()}
    rng = np.random.RandomState(5)
    xv, bv = rng.randn(4, 6).astype("float32"), rng.randn(6).astype("float32")
    yv = np.array([0, 5, 2, 2])
    c, dx, _ = f(xv, bv, yv)
    z = (xv + bv).astype(np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    nl = -np.log(p[np.arange(4), yv] + 1e-8)
    r = p[np.arange(4), yv] / (p[np.arange(4), yv] + 1e-8)
    dnll = p * r[:, None]
    dnll[np.arange(4), yv] -= r
    want = 2 * nl[:, None] * dnll
    np.testing.assert_allclose(c, (nl ** 2).sum(), rtol=1e-5)
    np.testing.assert_allclose(dx, want, rtol=1e-4, atol=1e-6)


def test_one_pass_refuses_weights_of_another_length():
    from uvs.rowwise import SoftmaxNLLBiasRowsFused

    x, b, y, g = (pt.matrix("x", dtype="float32"), pt.vector("b", dtype="float32"),
                  pt.lvector("y"), pt.vector("g", dtype="float32"))
    f = backend.function([x, b, y, g], SoftmaxNLLBiasRowsFused()(x, b, y, g), mode="CVM")
    with pytest.raises(ValueError, match="2 rows of 4 scores, 2 words, 4 biases, 3 weights"):
        f(np.zeros((2, 4), "float32"), np.zeros(4, "float32"), np.array([1, 2]),
          np.ones(3, "float32"))


@pytest.mark.parametrize("n,m", [(7, 30), (3, 1), (40, 1003)])
@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])  # C, then `perform`
def test_the_log_bilinear_loss_and_gradient_in_one_pass_are_the_two_passes(n, m, mode):
    from uvs.rowwise import SoftmaxXentRowsFused, softmax_xent_rows

    x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
    cost, obj = softmax_xent_rows(x, y)
    outs = [cost, obj, pt.grad(cost.sum() / x.shape[0].astype("float32"), x)]
    one = backend.function([x, y], outs, mode=get_mode(mode))
    two = backend.function([x, y], outs, mode=get_mode(mode).excluding("uvs_softmax_xent_fused"))
    assert (SoftmaxXentRowsFused in {type(n.op) for n in one.maker.fgraph.toposort()}) == (
        mode == "CVM")
    assert SoftmaxXentRowsFused not in {type(n.op) for n in two.maker.fgraph.toposort()}
    rng = np.random.RandomState(n * m)
    xv = (rng.randn(n, m) * 4).astype("float32")
    yv = np.zeros((n, m), "float32")
    yv[np.arange(n), rng.randint(0, m, n)] = 1
    yv[0, 0] += 0.5  # a row of several labels
    for a, c in zip(one(xv, yv), two(xv, yv), strict=True):
        assert a.tobytes() == c.tobytes()
    out = [[None], [None], [None]]
    g = np.full(n, 1 / n, "float32")
    SoftmaxXentRowsFused().perform(None, [xv, yv, g], out)  # NumPy, for modes without C
    for a, c in zip(out, one(xv, yv), strict=True):
        np.testing.assert_allclose(a[0], c, rtol=1e-5, atol=1e-6)


def test_the_log_bilinear_loss_stays_two_passes_where_the_weights_need_it():
    from uvs.rowwise import SoftmaxXentRowsFused, softmax_xent_rows

    x, y = pt.matrix("x", dtype="float32"), pt.matrix("y", dtype="float32")
    cost, _ = softmax_xent_rows(x, y)
    loss = (cost ** 2).sum()  # weights 2·cost: the loss first
    f = backend.function([x, y], [loss, pt.grad(loss, x)], mode="CVM")
    assert SoftmaxXentRowsFused not in {type(n.op) for n in f.maker.fgraph.toposort()}
    xv = np.array([[0.5, -1.0, 2.0]], "float32")
    yv = np.array([[0.0, 1.0, 0.0]], "float32")
    c, dx = f(xv, yv)
    p = np.exp(xv - xv.max()) / np.exp(xv - xv.max()).sum()
    ce = -np.log(p[0, 1])
    np.testing.assert_allclose(c, ce ** 2, rtol=1e-5)
    np.testing.assert_allclose(dx, 2 * ce * (p - yv), rtol=1e-5, atol=1e-7)
