"""Decoder speed, measured in one process.

1. One training update (cost, gradients, global-norm clip, released Adam) at caption sizes
   (vocabulary 10000, dim_word 512, dim 512, batch 128, 16 words): uvs (PyTensor) against
   the same decoder, loss and Adam written in PyTorch on the same CPU threads.
2. Beam-5 generation of N captions: `gen_sample_batch` against the original's loop of
   `gen_sample` calls, one context at a time, on the same sampler (whose row-wise Ops make
   the outputs identical, which is checked); and against that loop on the original's graph
   (`build_sampler(rowwise_ops=False)`: BLAS products, PyTensor's softmax), whose outputs agree
   only to float32 rounding (how many beams come out the same is printed).
3. The sampler's batch-invariant product against PyTensor's BLAS product (`pt.dot`) at the
   logit layer's sizes, for 640 rows (a batched step) and for 5 (a one-context step).

    python benchmarks/decoder_bench.py [--captions 1000] [--loop-sample 100] [--updates 5]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np

V, DW, D, B, T, DIMCTX = 10000, 512, 512, 128, 16, 1024


def best_of(f, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def uvs_update(options, x, mask, ctx):
    import pytensor.tensor as tensor

    from uvs.decoding.model import build_model, init_params
    from uvs.optim import adam, clip_global_norm
    from uvs.utils import init_tparams, itemlist

    tparams = init_tparams(init_params(options, rng=np.random.RandomState(0)))
    _, inps, cost = build_model(tparams, options)
    grads = clip_global_norm(tensor.grad(cost, wrt=itemlist(tparams)), np.float32(5.0))
    lr = tensor.scalar("lr", dtype="float32")
    f_grad_shared, f_update = adam(lr, tparams, grads, inps, cost)

    def step():
        f_grad_shared(x, mask, ctx)
        f_update(np.float32(0.0002))
    return step


def torch_update(x, mask, ctx, options: dict | None = None):
    """The same decoder, loss, clipping and Adam in PyTorch; sizes from `options` (default the
    module's), `inject` init (h0 = tanh(ctx·W + b)) or bias (ctx·W + b as the first input)."""
    import torch

    o = options or {"n_words": V, "dim_word": DW, "dim": D, "dimctx": DIMCTX}
    n_words, dw, d = o["n_words"], o["dim_word"], o["dim"]
    init = o.get("inject", "init") == "init"
    torch.manual_seed(0)
    g = torch.nn.GRUCell(dw, d)  # same equations up to where r multiplies (h·Ux + b_hn)
    emb = torch.nn.Embedding(n_words, dw)
    ff_state = torch.nn.Linear(o["dimctx"], d if init else dw)
    ff_logit = torch.nn.Linear(d, n_words)
    params = [*g.parameters(), *emb.parameters(), *ff_state.parameters(),
              *ff_logit.parameters()]
    opt = torch.optim.Adam(params, lr=0.0002, betas=(0.9, 0.999), eps=1e-8)
    xt, mt, ct = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(ctx)

    def step():
        opt.zero_grad()
        e = emb(xt)
        if init:
            e = torch.cat([torch.zeros_like(e[:1]), e[:-1]])
            h = torch.tanh(ff_state(ct))
        else:
            e = torch.cat([ff_state(ct)[None], e[:-1]])
            h = e.new_zeros((xt.shape[1], d))
        states = []
        for t in range(xt.shape[0]):
            hn = g(e[t], h)
            m = mt[t][:, None]
            h = m * hn + (1 - m) * h
            states.append(h)
        logp = torch.log_softmax(ff_logit(torch.stack(states)), dim=-1)
        nll = -(logp.gather(2, xt[:, :, None])[:, :, 0] * mt).sum()
        nll.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captions", type=int, default=1000, help="0 skips generation.")
    ap.add_argument("--loop-sample", type=int, default=100,
                    help="Contexts the one-at-a-time loop runs (its time is extrapolated to "
                         "--captions; 0 = all).")
    ap.add_argument("--updates", type=int, default=5)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    rng = np.random.RandomState(0)
    x = rng.randint(2, V, size=(T, B)).astype("int64")
    x[-1] = 0
    mask = np.ones((T, B), dtype="float32")
    ctx = rng.randn(B, DIMCTX).astype("float32")
    options = {"n_words": V, "dim_word": DW, "dim": D, "dimctx": DIMCTX, "decoder": "gru",
               "doutput": False}
    if not args.skip_train:
        import torch

        step_u = uvs_update(options, x, mask, ctx)
        step_t = torch_update(x, mask, ctx)
        step_u(), step_t()  # warm up
        tu, tt = best_of(step_u, args.updates), best_of(step_t, args.updates)
        print(f"training update (V {V}, dim_word {DW}, dim {D}, batch {B}, {T} words), best "
              f"of {args.updates}: uvs {tu:.3f} s, PyTorch {tt:.3f} s ({torch.get_num_threads()}"
              f" threads); uvs/PyTorch = {tu / tt:.2f}")

    if args.captions > 0:
        generation(args, options, rng)
        products()


def same(a, b) -> bool:
    """Two (sample, score) results equal: word sequences, and float32 scores bit for bit."""
    return a[0] == b[0] and [np.float32(s).tobytes() for s in a[1]] \
        == [np.float32(s).tobytes() for s in b[1]]


def generation(args, options, rng) -> None:
    from pytensor.tensor.random import shared_rng

    from uvs.decoding.model import build_sampler, init_params
    from uvs.decoding.search import gen_sample, gen_sample_batch
    from uvs.utils import init_tparams

    tparams = init_tparams(init_params(options, rng=np.random.RandomState(1)))
    f_init, f_next = build_sampler(tparams, options, shared_rng(seed=1))
    plain_init, plain_next = build_sampler(tparams, options, shared_rng(seed=1), rowwise_ops=False)
    C = rng.randn(args.captions, DIMCTX).astype("float32")
    gen_sample_batch(tparams, f_init, f_next, C[:2], options, k=5, maxlen=16)  # warm up
    t = time.perf_counter()
    batched = gen_sample_batch(tparams, f_init, f_next, C, options, k=5, maxlen=16)
    tb = time.perf_counter() - t
    m = args.loop_sample if 0 < args.loop_sample < len(C) else len(C)
    how = "measured" if m == len(C) else f"measured on the first {m}, extrapolated"
    for name, (fi, fn) in (("same sampler", (f_init, f_next)),
                           ("original's graph", (plain_init, plain_next))):
        t = time.perf_counter()
        loop = [gen_sample(tparams, fi, fn, C[i:i + 1], options, k=5, maxlen=16,
                           stochastic=False) for i in range(m)]
        tl = (time.perf_counter() - t) * len(C) / m
        agree = sum(same(a, b) for a, b in zip(batched[:m], loop, strict=True))
        best = sum(a[0][int(np.argmin(a[1]))] == b[0][int(np.argmin(b[1]))]
                   for a, b in zip(batched[:m], loop, strict=True))
        print(f"beam-5 generation of {len(C)} captions (maxlen 16, V {V}): batched {tb:.2f} s; "
              f"one at a time, {name} ({how}) {tl:.2f} s; speed-up {tl / tb:.1f}x; "
              f"identical beams {agree}/{m}, same best caption {best}/{m}")


def products() -> None:
    import pytensor.tensor as pt

    from uvs import backend
    from uvs.rowwise import invariant_dot

    a, b = pt.matrix(dtype="float32"), pt.matrix(dtype="float32")
    f_inv = backend.function([a, b], invariant_dot(a, b))
    f_blas = backend.function([a, b], pt.dot(a, b))
    rng = np.random.RandomState(2)
    w = rng.randn(D, V).astype("float32")
    for n in (640, 5):
        x = rng.randn(n, D).astype("float32")
        f_inv(x, w), f_blas(x, w)
        reps = 20 if n > 5 else 200
        ti = best_of(functools.partial(f_inv, x, w), reps)
        tb = best_of(functools.partial(f_blas, x, w), reps)
        print(f"product ({n}, {D}) x ({D}, {V}), best of {reps}: batch-invariant "
              f"{ti * 1e3:.2f} ms, BLAS (pt.dot) {tb * 1e3:.2f} ms; invariant/BLAS = "
              f"{ti / tb:.2f}")


if __name__ == "__main__":
    main()
