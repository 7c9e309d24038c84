"""uvs.mnlm against a NumPy port of the original (tests/mnlm_reference.py)."""

import numpy as np
import pytest
import scipy.sparse as sp
from mnlm_reference import RefMLBL, RefMLBLF, ref_beam_search, ref_perplexity

from uvs.mnlm import lm_tools
from uvs.mnlm.lbl import momentum, py2div
from uvs.mnlm.mlbl import MLBL
from uvs.mnlm.mlblf import MLBLF

V, K, D, H, CTX = 23, 6, 5, 4, 3
KW = dict(V=V, K=K, D=D, h=H, context=CTX, eta_t=0.5, gamma_r=1e-3, gamma_c=1e-2, f=0.9,
          p_i=0.3, p_f=0.8)
CASES = [(MLBL, RefMLBL, {}), (MLBLF, RefMLBLF, {"factors": 3})]
NAMES = ["mlbl", "mlblf"]


def pair(cls, ref_cls, extra, dtype="float64", **kw):
    args = {**KW, **extra, **kw}
    ref = ref_cls(**args)
    ref.init_params(None, None)
    net = cls(**args, dtype=dtype)
    net.init_params()
    return net, ref


def batch(rng, B=7):
    X = rng.randint(0, V, size=(B, CTX))
    X[1, 0] = X[0, 0]  # a word repeated at one position across rows
    X[2, 1] = X[2, 0]  # and within a row
    Im = rng.randn(B, D)
    y = rng.randint(0, V, B)
    return X, Im, sp.csr_matrix((np.ones(B), (np.arange(B), y)), shape=(B, V))


def test_python2_division():
    assert py2div(1, 20) == 0 and py2div(1, 20.0) == 0.05 and py2div(-1, 2) == -1
    assert momentum(1, 20, 0.5, 0.9) == 0.5
    assert momentum(20, 20, 0.5, 0.9) == 0.9
    assert momentum(1, 20.0, 0.5, 0.9) == pytest.approx(0.52)


@pytest.mark.parametrize("T", [4, 4.0])
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_schedules_as_python2(cls, ref_cls, extra, T):
    net, ref = pair(cls, ref_cls, extra, T=T)
    seen = []
    for step in range(7):
        assert net.p_t == pytest.approx(ref.p_t, abs=0) and net.eta_t == ref.eta_t
        seen.append(net.p_t)
        for m in (net, ref):
            m.step = step
            m.update_hyperparams()
    if isinstance(T, int):  # no ramp: p_i until step + 1 == T
        assert seen[:4] == [0.3] * 4 and seen[4] == pytest.approx(0.8)
    else:
        assert 0.3 < seen[1] < seen[2] < 0.8


@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_init_params_as_original(cls, ref_cls, extra):
    net, ref = pair(cls, ref_cls, extra)
    for p, d in net.PARAMS.items():
        np.testing.assert_allclose(getattr(net, p), getattr(ref, p), rtol=0, atol=1e-12)
        assert getattr(net, d).shape == getattr(ref, d).shape and not getattr(net, d).any()


def test_mlblf_svd_init_folds_R():
    """Wfx·Whf is the rank-`factors` approximation of R (the SVD ran on Rᵀ)."""
    net, ref = pair(MLBLF, RefMLBLF, {"factors": 5})
    prng = np.random.RandomState(net.seed)
    r = np.sqrt(6) / np.sqrt(K + V + 1)
    R = prng.rand(K, V) * 2 * r - r
    U, s, Vt = np.linalg.svd(R, full_matrices=False)
    best = (U[:, :5] * s[:5]) @ Vt[:5]
    np.testing.assert_allclose(net.Wfx @ net.Whf, best, atol=1e-8)
    assert net.Wfx.shape == (K, 5) and net.Whf.shape == (5, V)


@pytest.mark.parametrize("dropout", [0.0, 0.25])
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_forward_preds_as_original(cls, ref_cls, extra, dropout):
    rng = np.random.RandomState(1)
    net, ref = pair(cls, ref_cls, extra, dropout=dropout, dtype="float32")
    X, Im, _ = batch(rng)
    out, want = net.forward(X, Im), ref.forward(X, Im)
    assert len(out) == len(want)
    np.testing.assert_allclose(out[-1], want[-1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[0], want[0], rtol=1e-5, atol=1e-7)  # words (B, K, ctx)
    np.random.seed(5)
    train = net.forward(X, Im, test=False)
    np.random.seed(5)
    train_ref = ref.forward(X, Im, test=False)
    np.testing.assert_allclose(train[-1], train_ref[-1], rtol=1e-5, atol=1e-7)
    _, _, Y = batch(np.random.RandomState(1))
    assert net.compute_obj(X, Im, Y) == pytest.approx(ref.objective(Y, want[-1]), rel=1e-5)


@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_perplexity_as_original(cls, ref_cls, extra):
    net, ref = pair(cls, ref_cls, extra)
    words = ["<start>", "<end>", "unk"] + [f"w{i}" for i in range(V - 3)]
    word_dict = {w: i for i, w in enumerate(words)}
    rng = np.random.RandomState(2)
    caps = [["<start>"] * CTX + [words[3 + rng.randint(V - 3)] for _ in range(n)] + ["<end>"]
            for n in (2, 5, 4)]
    caps[1][CTX] = "never-seen"  # unknown words map to unk
    ngrams = lm_tools.get_ngrams(caps, context=CTX)
    Im = rng.randn(3, D)
    got = lm_tools.perplexity(net, ngrams, word_dict, Im=Im, context=CTX, chunk=4)
    assert got == pytest.approx(ref_perplexity(ref, ngrams, word_dict, Im=Im, context=CTX),
                                rel=1e-10)


def _dicts():
    words = ["<start>", "<end>", "unk"] + [f"w{i}" for i in range(V - 3)]
    return {w: i for i, w in enumerate(words)}, dict(enumerate(words))


@pytest.mark.parametrize("k,num", [(1, 6), (2, 7), (3, 12)])
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_beam_search_as_original(cls, ref_cls, extra, k, num):
    net, ref = pair(cls, ref_cls, extra)  # float64 on both sides
    net.bw[0, 1] += 1.0  # make <end> likely, so that beams finish at different steps
    ref.bw[0, 1] += 1.0
    word_dict, index_dict = _dicts()
    IM = np.random.RandomState(3).randn(6, D) * 3
    loop = [lm_tools.beam_search(net, word_dict, index_dict, num, im, k=k) for im in IM]
    want = [ref_beam_search(ref, word_dict, index_dict, num, im, k=k) for im in IM]
    assert loop == want
    assert lm_tools.beam_search_batch(net, word_dict, index_dict, num, IM, k=k, chunk=4) == want
    net32, _ = pair(cls, ref_cls, extra, dtype="float32")  # float32 scores: batch == loop
    net32.bw[0, 1] += 1.0
    loop32 = [lm_tools.beam_search(net32, word_dict, index_dict, num, im, k=k) for im in IM]
    assert lm_tools.beam_search_batch(net32, word_dict, index_dict, num, IM, k=k) == loop32
    assert all(len(b) <= num - 1 for caps in want for b in caps)
    assert any(len(b) < num - 2 for caps in want for b in caps)  # some ended with <end>


def test_beam_search_num_below_3_refused():
    net, _ = pair(MLBL, RefMLBL, {})
    word_dict, index_dict = _dicts()
    with pytest.raises(ValueError, match="at least 3"):
        lm_tools.beam_search(net, word_dict, index_dict, 2, np.zeros(D), k=2)


def test_top_k_ties_as_argsort():
    row = np.array([0.5, 0.1, 0.5, 0.5, -1.0, 0.1], dtype=np.float32)
    for k in range(1, 6):
        assert list(lm_tools._top(row, k)) == list(np.argsort(row)[::-1][:k])


def test_model_inputs_and_ngrams():
    caps = [["<start>", "<start>", "a", "b", "<end>"], ["<start>", "<start>", "<end>"]]
    ng = lm_tools.get_ngrams(caps, context=2)
    assert ng[0] == [("<start>", "<start>", "a"), ("<start>", "a", "b"), ("a", "b", "<end>")]
    assert ng[1] == [("<start>", "<start>", "<end>")]
    wd = {"<start>": 0, "<end>": 1, "unk": 2, "a": 3}
    inst, index = lm_tools.model_inputs(ng, wd, context=2, include_last=False,
                                        include_index=True)
    assert inst.tolist() == [[0, 0], [0, 3], [3, 2], [0, 0]]
    assert index[:, 0].tolist() == [0, 0, 0, 1]


# --- the compiled update ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_labels_are_the_sparse_matrix_made_dense(dtype):
    """`train_step`'s labels: a canonical sparse matrix written into a buffer kept between
    updates, the last batch's entries gone; anything else as `to_dense` makes it."""
    net, _ = pair(MLBL, RefMLBL, {}, dtype=dtype)
    rng = np.random.RandomState(0)
    for B in (5, 5, 3, 5):  # the same size again, and another
        Y = sp.random(B, V, density=0.1, format="csr", random_state=rng)
        Y.data = rng.rand(Y.nnz) * 3  # not ones: several labels of any weight
        got = net._dense_labels(Y)
        assert got.dtype == dtype and np.array_equal(got, Y.toarray().astype(dtype))
    Y = sp.csr_matrix((np.array([1.0, 2.0]), np.array([4, 4]), np.array([0, 2, 2])),
                      shape=(2, V))  # a repeated entry: not canonical, summed as toarray sums
    assert not Y.has_canonical_format
    assert np.array_equal(net._dense_labels(Y), Y.toarray().astype(dtype))
    coo = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([4, 4]))),
                        shape=(2, V))  # another format: as toarray makes it
    assert np.array_equal(net._dense_labels(coo), coo.toarray().astype(dtype))
    dense = rng.rand(4, V)
    assert np.array_equal(net._dense_labels(dense), dense.astype(dtype))
    with pytest.raises(ValueError, match=f"labels Y must be \\(batch, {V}\\)"):
        net._dense_labels(sp.csr_matrix((2, V + 1)))


@pytest.mark.slow
@pytest.mark.parametrize("T", [2, 3.0])
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_train_step_as_original(cls, ref_cls, extra, T):
    """Several updates with momentum and LR schedules: float32 uvs vs float64 original."""
    rng = np.random.RandomState(4)
    net, ref = pair(cls, ref_cls, extra, dtype="float32", T=T)
    for step in range(5):
        X, Im, Y = batch(rng, B=6 + step % 2)  # batches of different sizes
        ref.step_once(X, Im, Y)
        obj, nan = net.train_step(X, Im, Y.toarray() if step % 2 else Y)
        assert not nan and np.isfinite(obj)
        for m in (net, ref):
            m.step = step
            m.update_hyperparams()
    assert net.p_t == ref.p_t
    for p, d in net.PARAMS.items():
        scale = np.abs(getattr(ref, d)).max()
        np.testing.assert_allclose(getattr(net, p), getattr(ref, p), rtol=0,
                                   atol=1e-6 * max(1.0, np.abs(getattr(ref, p)).max()))
        np.testing.assert_allclose(getattr(net, d), getattr(ref, d), rtol=0,
                                   atol=1e-4 * scale + 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_train_step_dropout_draws_the_original_mask(cls, ref_cls, extra):
    rng = np.random.RandomState(6)
    net, ref = pair(cls, ref_cls, extra, dtype="float32", dropout=0.4)
    X, Im, Y = batch(rng)
    np.random.seed(11)
    ref.step_once(X, Im, Y)
    np.random.seed(11)
    net.train_step(X, Im, Y)
    for p in net.PARAMS:
        np.testing.assert_allclose(getattr(net, p), getattr(ref, p), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cls,ref_cls,extra", CASES, ids=NAMES)
def test_gradients_by_finite_differences(cls, ref_cls, extra):
    """float64: with p = 0 and no decay one update is -eta/B² · ∂(mean cost); compare with
    central differences of the objective."""
    rng = np.random.RandomState(7)
    net, _ = pair(cls, ref_cls, extra, p_i=0.0, p_f=0.0, gamma_r=0.0, gamma_c=0.0, eta_t=1.0)
    X, Im, Y = batch(rng, B=5)
    before = {p: getattr(net, p).copy() for p in net.PARAMS}
    net.train_step(X, Im, Y)
    B = X.shape[0]
    grads = {p: -getattr(net, d) * B / net.eta_t for p, d in net.PARAMS.items()}
    for p in net.PARAMS:
        setattr(net, p, before[p])
    for p in net.PARAMS:
        flat = before[p].reshape(-1)
        for i in rng.choice(flat.size, size=min(12, flat.size), replace=False):
            num = 0.0
            for sign in (1, -1):
                x = flat.copy()
                x[i] += sign * 1e-6
                setattr(net, p, x.reshape(before[p].shape))
                num += sign * net.compute_obj(X, Im, Y) / 2e-6
            setattr(net, p, before[p])
            assert grads[p].reshape(-1)[i] == pytest.approx(num, rel=1e-5, abs=1e-9), (p, i)


# --- the SC-NLM --------------------------------------------------------------------------

def scnlm(dtype="float64", **kw):
    from uvs.mnlm.scnlm import SCNLM

    args = {**KW, "factors": 3, "n_tags": 5, "structure_context": 2, **kw}
    net = SCNLM(**args, dtype=dtype)
    net.init_params()
    return net


def test_scnlm_conditioning_replaces_the_image_vector():
    """v = max(0, Σ Tt[t_i]·Ct[i] + u·Cm + bj) gates the factors and enters the additive term:
    an MLBL-F given v's parameters as its image layer predicts the same words."""
    net = scnlm()
    rng = np.random.RandomState(8)
    X, U, _ = batch(rng)
    tags = rng.randint(0, 5, size=(len(X), 3))
    v = net.conditioning(tags, U)
    want = sum(net.Tt[tags[:, i]] @ net.Ct[i] for i in range(3)) + U @ net.Cm + net.bj
    np.testing.assert_allclose(v, np.maximum(want, 0), atol=1e-12)
    f = MLBLF(**{**KW, "D": H}, factors=3, dtype="float64")
    f.init_params()
    for p in ("C", "bw", "M", "Whf", "Wfv", "Wfx"):
        setattr(f, p, getattr(net, p))
    f.J, f.bj = np.eye(H), np.zeros((1, H))  # IF = max(0, v) = v
    np.testing.assert_allclose(net.forward(X, U, tags=tags)[-1], f.forward(X, v)[-1],
                               atol=1e-12)
    assert net.forward(X, U, tags=(tags + 1) % 5)[-1].tolist() != net.forward(
        X, U, tags=tags)[-1].tolist()


@pytest.mark.slow
def test_scnlm_gradients_by_finite_differences():
    rng = np.random.RandomState(9)
    net = scnlm(p_i=0.0, p_f=0.0, eta_t=1.0, gamma_r=0.0, gamma_c=0.0)
    X, U, Y = batch(rng, B=5)
    tags = rng.randint(0, 5, size=(5, 3))
    before = {p: getattr(net, p).copy() for p in net.PARAMS}
    obj0 = net.compute_obj(X, U, Y, tags=tags)
    obj, _ = net.train_step(X, U, Y, tags=tags)
    assert obj == pytest.approx(obj0, rel=1e-10)
    grads = {p: -getattr(net, d) * 5 / net.eta_t for p, d in net.PARAMS.items()}
    for p in net.PARAMS:
        setattr(net, p, before[p])
    for p in net.PARAMS:
        flat = before[p].reshape(-1)
        for i in rng.choice(flat.size, size=min(10, flat.size), replace=False):
            num = 0.0
            for sign in (1, -1):
                x = flat.copy()
                x[i] += sign * 1e-6
                setattr(net, p, x.reshape(before[p].shape))
                num += sign * net.compute_obj(X, U, Y, tags=tags) / 2e-6
            setattr(net, p, before[p])
            assert grads[p].reshape(-1)[i] == pytest.approx(num, rel=1e-5, abs=1e-9), (p, i)


def test_scnlm_round_trip(tmp_path):
    net = scnlm(dtype="float32")
    net.tag_dict = {"<end>": 0, "DT": 1, "NN": 2, "VBZ": 3, ".": 4}
    net.word_dict = {"<start>": 0, "<end>": 1}
    lm_tools.save_model(net, tmp_path / "s.npz")
    back = lm_tools.load_model(tmp_path / "s.npz")
    assert type(back).__name__ == "SCNLM" and back.tag_dict == net.tag_dict
    assert back.structure_context == 2 and back.n_tags == 5
    for p in net.PARAMS:
        np.testing.assert_array_equal(getattr(back, p), getattr(net, p))


def test_tag_windows():
    from uvs.mnlm.scnlm import tag_windows

    assert tag_windows([3, 4, 5], 3, 1, 0).tolist() == [[3, 4], [4, 5], [5, 0], [0, 0]]


@pytest.mark.slow
def test_original_train_signature_runs_its_schedule(tmp_path):
    """`train(X, indX, XY, V, indV, VY, IM, VIM, count_dict, word_dict, embed_map, prog)`:
    epochs of `inds[minibatch::numbatches]` batches, the schedule stepped every epoch, the
    model saved where BLEU-4 does not drop."""
    rng = np.random.RandomState(12)
    N = 60
    X = rng.randint(0, V, size=(N, CTX))
    indX = np.repeat(np.arange(N // 5), 5)[:, None].astype(float) * 5
    XY = sp.csr_matrix((np.ones(N), (np.arange(N), rng.randint(0, V, N))), shape=(N, V))
    IM = rng.randn(N // 5, D)
    word_dict, index_dict = _dicts()
    net = MLBL(**{**KW, "batchsize": 7, "maxepoch": 3, "T": 20.0}, loc=str(tmp_path / "m.npz"))
    prog = {"_details": 10**6, "_samples": 10**6, "_update": 10**6, "_bleu": 14}
    seen = []
    best = net.train(X, indX, XY, None, None, None, IM, IM[:2], index_dict, word_dict, None,
                     prog, bleu=lambda m: seen.append(m.step) or [0.5, 0.4, 0.3, 0.2])
    assert net.step == 3 and net.eta_t == pytest.approx(0.5 * 0.9 ** 3)
    assert best == 0.2 and seen and (tmp_path / "m.npz").exists()
    assert lm_tools.load_model(tmp_path / "m.npz").V == V
