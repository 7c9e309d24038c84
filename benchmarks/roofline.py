"""Each training update against this machine's matmul roofline, uvs and PyTorch side by side.

    python benchmarks/roofline.py [--small] [--only vse-gru,align] [--repeats 5] [--threads N]
                                  [--no-torch] [--no-phases] [--json] [--score-images N]
                                  [--beam N] [--coco5k]

For every update (VSE with a GRU and with a bag of words, the order-embedding loss, the
decoder with `init` and `bias` injection, the alignment model, the log-bilinear MLBL and
MLBL-F, whose reference is the original's NumPy code) the FLOPs are counted from its
matrix products, and the same products are timed as plain NumPy float32 matmuls (sgemm) in
this run, at their own shapes, with the same BLAS threads as uvs (threadpoolctl): their
summed time is the update's *floor*, and FLOPs / floor the *achievable* rate. uvs (the
update its trainer compiles) and the PyTorch reference (imported from train_bench.py,
decoder_bench.py, align_bench.py; timed in a child process, under libgomp's default rather
than uvs's `GOMP_SPINCOUNT`) are timed taking turns with the floor, best of
--repeats each (--threads also sets OMP_NUM_THREADS for the OpenMP of uvs.rowwise). With
phases (default), profiled copies of the uvs graphs split its update
into forward, backward, clipping, optimiser and the Python cost of the two calls, and name
the Ops that take the most time. Elementwise work (activations, the order penalty, Adam)
is not counted in the FLOPs: it is what separates an update from its floor. Beside it, a
memory floor: the bytes the optimiser must move (every parameter read and written as the
update's math does; the originals' Adam touches every row of every table each update, but
reads no gradient of a word table's rows the batch does not name) at the
bandwidth of a threaded NumPy `a += b` measured before and after the timed turns (not
between them: it leaves the caches cold); "% roof" counts both floors. --beam N times
the beam search of N captions against its output layer's products; --score-images N the
alignment scoring of N images against its products (--coco5k: 5 000 x 25 000).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

WORKS = ("vse-gru", "vse-bow", "order-gru", "decoder-init", "decoder-bias", "align", "mlbl",
         "mlbl-f")

# (batch, words, dim_word, dim, dim_image or dimctx, vocabulary[, regions])
PAPER = {"vse": dict(B=128, T=12, dw=300, d=1024, di=4096, V=10000),
         "bow": dict(B=128, T=12, dw=1024, d=1024, di=4096, V=10000),
         "decoder": dict(B=128, T=16, dw=512, d=512, di=1024, V=10000),
         "align": dict(B=100, T=12, dw=300, d=1000, di=4096, V=10000, R=20),
         # the log-bilinear trainer's: batch, vocabulary, K, hidden, context, image, factors
         "mnlm": dict(B=40, V=10000, K=100, h=441, c=5, D=4096, F=50)}
SMALL = {"vse": dict(B=32, T=8, dw=64, d=128, di=256, V=1000),
         "bow": dict(B=32, T=8, dw=128, d=128, di=256, V=1000),
         "decoder": dict(B=32, T=8, dw=64, d=128, di=128, V=2000),
         "align": dict(B=20, T=8, dw=64, d=128, di=256, V=1000, R=8),
         "mnlm": dict(B=10, V=500, K=20, h=30, c=3, D=64, F=8)}


# ---------------------------------------------------------------- FLOPs from the products

def gru_products(B: int, T: int, nin: int, d: int) -> list[tuple[int, int, int, int]]:
    """(m, k, n, count) of a GRU layer's forward and backward as uvs's fused GRU runs them:
    input projections and weight gradients over all T·B rows at once, recurrences per step."""
    return [(T * B, nin, 2 * d, 1), (T * B, nin, d, 1),          # x·W, x·Wx
            (B, d, 2 * d, T), (B, d, d, T),                        # h·U, h·Ux per step
            (B, 2 * d, d, T), (B, d, d, T),                        # dh per step
            (d, T * B, 2 * d, 1), (d, T * B, d, 1),                # dU, dUx
            (nin, T * B, 2 * d, 1), (nin, T * B, d, 1),            # dW, dWx
            (T * B, 2 * d, nin, 1), (T * B, d, nin, 1)]            # dx


def vse_products(s: dict, bow: bool) -> list[tuple[int, int, int, int]]:
    B, T, dw, d, di = s["B"], s["T"], s["dw"], s["d"], s["di"]
    out = [(B, di, d, 1), (di, B, d, 1),                           # im·W, dW
           (B, d, B, 1), (B, B, d, 2)]                             # scores and both gradients
    return out if bow else out + gru_products(B, T, dw, d)


def decoder_products(s: dict, init: bool) -> list[tuple[int, int, int, int]]:
    B, T, dw, d, dc, V = s["B"], s["T"], s["dw"], s["d"], s["di"], s["V"]
    w = d if init else dw
    return [(B, dc, w, 1), (dc, B, w, 1),                          # ctx·W, dW
            (T * B, d, V, 1), (d, T * B, V, 1), (T * B, V, d, 1),  # logits, dW, dstates
            *gru_products(B, T, dw, d)]


def align_products(s: dict) -> list[tuple[int, int, int, int]]:
    B, T, dw, d, di, R = s["B"], s["T"], s["dw"], s["d"], s["di"], s["R"]
    TB, BR = T * B, B * R
    return [(TB, dw, d, 1), (dw, TB, d, 1), (TB, d, dw, 1),       # e = x·We, dWe, dx
            (B, d, d, 2 * T), (B, d, d, 2 * T), (d, TB, d, 2),     # both recurrences, dh, dW
            (TB, d, d, 1), (d, TB, d, 1), (TB, d, d, 1),           # s = h·Wd, dWd, dh
            (BR, di, d, 1), (di, BR, d, 1),                        # v = r·Wm, dWm
            (BR, d, TB, 1), (BR, TB, d, 1), (TB, BR, d, 1)]        # region-word dots, dv, ds


def mnlm_products(s: dict, factored: bool) -> list[tuple[int, int, int, int]]:
    B, V, K, h, c, D, F = s["B"], s["V"], s["K"], s["h"], s["c"], s["D"], s["F"]
    out = [(B, D, h, 1), (D, B, h, 1),                          # IF = Im·J, dJ
           (B, c * K, K, 1), (c * K, B, K, 1), (B, K, c * K, 1),  # acts += words·C, dC, dwords
           (B, h, K, 1), (h, B, K, 1), (B, K, h, 1)]              # acts += IF·M, dM, dIF
    if not factored:
        return out + [(B, K, V, 1), (K, B, V, 1), (B, V, K, 1)]  # logits acts·R, dR, dacts
    return out + [(B * c, F, K, 1), (F, B * c, K, 1), (B * c, K, F, 1),  # words = Whf cols·Wfxᵀ
                  (B, K, F, 1), (K, B, F, 1), (B, F, K, 1),              # acts·Wfx
                  (B, h, F, 1), (h, B, F, 1), (B, F, h, 1),              # IF·Wfv
                  (B, F, V, 1), (F, B, V, 1), (B, V, F, 1)]              # logits F·Whf


def flops(products) -> float:
    return float(sum(2 * m * k * n * c for m, k, n, c in products))


# ---------------------------------------------------------------- the updates

@dataclass
class Work:
    name: str
    sizes: dict
    products: list
    uvs: Callable[[], None]
    torch: Callable[[], None] | None = None  # the reference: PyTorch, or `ref`
    ref: str = "PyTorch"
    phases: dict = field(default_factory=dict)  # name -> (profiled function, its args)
    values: int = 0  # float32 values the optimiser updates (every parameter, every row)
    accesses: int = 7  # float32 reads and writes per value: Adam reads p, g, m, v, writes p, m, v
    unread: int = 0  # values whose gradient is not read: a word table's, stored as its rows


def _phase_fns(tparams, inps, cost, clip, clip_value, optimizer, args, lr):
    """Profiled functions: forward, gradient, gradient + clipping (= f_grad_shared), update."""
    import pytensor
    import pytensor.tensor as tensor
    from pytensor.compile.debug.profiling import ProfileStats

    from uvs import backend
    from uvs.utils import itemlist

    def prof(name):
        return ProfileStats(atexit_print=False, message=name)

    grads = tensor.grad(cost, wrt=itemlist(tparams))
    gsh = [pytensor.shared(np.zeros_like(p.get_value())) for p in itemlist(tparams)]
    f_fwd = backend.function(inps, cost, profile=prof("forward"))
    f_grad = backend.function(inps, cost, updates=list(zip(gsh, grads, strict=True)),
                              profile=prof("gradient"))
    with pytensor.config.change_flags(profile=True):
        from pytensor.compile.debug import profiling

        n = len(profiling._atexit_print_list)
        f_gs, f_upd = optimizer(tensor.scalar("lr", dtype="float32"), tparams,
                                clip(grads, np.float32(clip_value)), inps, cost)
        del profiling._atexit_print_list[n:]
    return {"forward": (f_fwd, args), "gradient": (f_grad, args),
            "gradient+clip": (f_gs, args), "update": (f_upd, (lr,))}


def vse_work(name: str, s: dict, want_torch: bool, phases: bool) -> Work:
    from train_bench import TorchVSE

    from uvs.model import build_model, init_params, order_lineage
    from uvs.optim import OPTIMIZERS, clip_each_norm, clip_global_norm
    from uvs.train import compile_update
    from uvs.utils import init_tparams

    o = {"n_words": s["V"], "dim_word": s["dw"], "dim": s["d"], "dim_image": s["di"],
         "encoder": "bow" if name == "vse-bow" else "gru", "margin": 0.2, "grad_clip": 2.0,
         "decay_c": 0.0, "optimizer": "adam", "lrate": 0.0002}
    if name == "order-gru":
        o.update(method="order", abs=True, margin=0.05, lrate=0.001)
    rng = np.random.RandomState(1)
    x = rng.randint(2, s["V"], size=(s["T"], s["B"])).astype("int64")
    x[-1] = 0
    mask = np.ones(x.shape, "float32")
    im = rng.rand(s["B"], s["di"]).astype("float32")
    im /= np.linalg.norm(im, axis=1, keepdims=True)
    lr = np.float32(o["lrate"])
    params = init_params(o, rng=np.random.RandomState(0))
    f_gs, f_upd = compile_update(init_tparams(OrderedDict((k, v.copy())
                                                          for k, v in params.items())), o)

    def uvs_step():
        f_gs(x, mask, im)
        f_upd(lr)

    w = Work(name, s, vse_products(s, name == "vse-bow"), uvs_step,
             values=sum(v.size for v in params.values()), unread=params["Wemb"].size)
    if want_torch:
        import torch

        t = TorchVSE(params, o)
        tx, tm, ti = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(im)
        w.torch = lambda: t.update(tx, tm, ti, float(lr))
    if phases:
        tp = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        inps, cost = build_model(tp, o)
        clip = clip_each_norm if order_lineage(o) else clip_global_norm
        w.phases = _phase_fns(tp, inps, cost, clip, o["grad_clip"], OPTIMIZERS[o["optimizer"]],
                              (x, mask, im), lr)
    return w


def decoder_work(name: str, s: dict, want_torch: bool, phases: bool) -> Work:
    from decoder_bench import torch_update, uvs_update

    from uvs.decoding.model import build_model, init_params
    from uvs.optim import adam, clip_global_norm
    from uvs.utils import init_tparams

    init = name == "decoder-init"
    o = {"n_words": s["V"], "dim_word": s["dw"], "dim": s["d"], "dimctx": s["di"],
         "decoder": "gru", "doutput": False, "inject": "init" if init else "bias"}
    rng = np.random.RandomState(0)
    x = rng.randint(2, s["V"], size=(s["T"], s["B"])).astype("int64")
    x[-1] = 0
    mask = np.ones(x.shape, "float32")
    ctx = rng.randn(s["B"], s["di"]).astype("float32")
    params = init_params(o, rng=np.random.RandomState(0))
    w = Work(name, s, decoder_products(s, init), uvs_update(o, x, mask, ctx),
             values=sum(v.size for v in params.values()), unread=params["Wemb"].size)
    if want_torch:
        w.torch = torch_update(x, mask, ctx, o)
    if phases:
        tp = init_tparams(init_params(o, rng=np.random.RandomState(0)))
        _, inps, cost = build_model(tp, o)
        w.phases = _phase_fns(tp, inps, cost, clip_global_norm, 5.0, adam, (x, mask, ctx),
                              np.float32(0.0002))
    return w


def align_work(name: str, s: dict, want_torch: bool, phases: bool) -> Work:
    from align_bench import torch_update

    from uvs.align.model import build_model, init_params
    from uvs.align.train import compile_update
    from uvs.optim import OPTIMIZERS, clip_global_norm
    from uvs.utils import init_tparams

    o = {"n_words": s["V"], "dim_word": s["dw"], "dim": s["d"], "dim_image": s["di"],
         "margin": 1.0, "grad_clip": 2.0, "optimizer": "adam_textbook"}
    rng = np.random.RandomState(0)
    params = init_params(o, rng=rng)
    B, T, R = s["B"], s["T"], s["R"]
    x = rng.randint(2, s["V"], size=(T, B)).astype(np.int64)
    mask = np.ones((T, B), np.float32)
    feats = np.abs(rng.randn(B, R, s["di"])).astype(np.float32) / 64
    rmask = np.ones((B, R), np.float32)
    lr = np.float32(2e-4)
    f_gs, f_upd = compile_update(init_tparams(OrderedDict((k, v.copy())
                                                          for k, v in params.items())), o)

    def uvs_step():
        f_gs(x, mask, feats, rmask)
        f_upd(lr)

    w = Work(name, s, align_products(s), uvs_step, values=sum(v.size for v in params.values()),
             unread=params["Wemb"].size)
    if want_torch:
        step = torch_update(params, o)
        w.torch = lambda: step(x, mask, feats, rmask)
    if phases:
        tp = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        inps, cost = build_model(tp, o)
        w.phases = _phase_fns(tp, inps, cost, clip_global_norm, 2.0,
                              OPTIMIZERS[o["optimizer"]], (x, mask, feats, rmask), lr)
    return w


def mnlm_work(name: str, s: dict, want_ref: bool) -> Work:
    """The log-bilinear update (`train_step`, float32) against the original's NumPy
    forward/backward/update_params in float64 (tests/mnlm_reference.py): no PyTorch exists."""
    import scipy.sparse as sp

    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from mnlm_reference import RefMLBL, RefMLBLF

    from uvs.mnlm.mlbl import MLBL
    from uvs.mnlm.mlblf import MLBLF

    B, V = s["B"], s["V"]
    kw = dict(V=V, K=s["K"], D=s["D"], h=s["h"], context=s["c"], batchsize=B, eta_t=0.43,
              gamma_r=3e-7, gamma_c=1e-8, f=0.99, p_i=0.23, p_f=0.23, T=20.0, dropout=0.15)
    extra = {"factors": s["F"]} if name == "mlbl-f" else {}
    net = (MLBLF if extra else MLBL)(**kw, **extra)
    net.init_params()
    rng = np.random.RandomState(0)
    X = rng.randint(0, V, size=(B, s["c"]))
    Im = np.abs(rng.randn(B, s["D"])).astype(np.float32)
    Y = sp.csr_matrix((np.ones(B), (np.arange(B), rng.randint(0, V, B))), shape=(B, V))
    # momentum SGD: reads p, g, the step; writes p and the step
    w = Work(name, s, mnlm_products(s, bool(extra)), lambda: net.train_step(X, Im, Y),
             ref="original NumPy (float64)", accesses=5,
             values=sum(net._tp[n].get_value().size for n in net.PARAMS))
    if want_ref:
        ref = (RefMLBLF if extra else RefMLBL)(**kw, **extra)
        ref.init_params(None, None)
        Im64 = Im.astype(np.float64)
        w.torch = lambda: ref.step_once(X, Im64, Y)
    return w


def make_work(name: str, sizes: dict, want_torch: bool, phases: bool) -> Work:
    if name.startswith("mlbl"):
        return mnlm_work(name, sizes["mnlm"], want_torch)
    if name.startswith("decoder"):
        return decoder_work(name, sizes["decoder"], want_torch, phases)
    if name == "align":
        return align_work(name, sizes["align"], want_torch, phases)
    return vse_work(name, sizes["bow" if name == "vse-bow" else "vse"], want_torch, phases)


# ---------------------------------------------------------------- timing

class Floor:
    """The update's products as NumPy float32 matmuls into preallocated outputs."""

    def __init__(self, products):
        rng = np.random.RandomState(3)
        self.cases = []
        for m, k, n, c in products:
            a = rng.rand(m, k).astype("float32")
            b = rng.rand(k, n).astype("float32")
            self.cases.append((a, b, np.empty((m, n), "float32"), c))
        self.best = [float("inf")] * len(self.cases)

    def run(self) -> None:
        """Each product once, keeping its best time."""
        for i, (a, b, out, _) in enumerate(self.cases):
            t = time.perf_counter()
            np.dot(a, b, out=out)
            self.best[i] = min(self.best[i], time.perf_counter() - t)

    def seconds(self) -> float:
        return sum(t * c for t, (_, _, _, c) in zip(self.best, self.cases, strict=True))


def stream_bandwidth(values: int, threads: int, tries: int = 5) -> float:
    """The memory floor's rate, bytes per second: the best of `tries` `a += b` over as many
    float32 values as the optimiser updates (at least 64 MiB, beyond the caches), split over
    the threads. Run apart from the timed turns: it leaves the caches cold for whatever
    follows (it doubled the MLBL update's time when it ran just before it)."""
    n = max(values, 1 << 24)
    a, b = np.ones(n, "float32"), np.ones(n, "float32")
    parts = [slice(i * n // threads, (i + 1) * n // threads) for i in range(threads)]
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        time.sleep(SETTLE)
        for _ in range(tries):
            t = time.perf_counter()
            list(pool.map(lambda s: np.add(a[s], b[s], out=a[s]), parts))
            best = min(best, time.perf_counter() - t)
    return 12 * n / best  # two reads and a write of 4 bytes


SETTLE = 0.2  # s: OpenBLAS threads spin ~0.1 s after a product (NumPy's copy by default)


def best_time(fn: Callable[[], object], best: float, tries: int = 1) -> float:
    """The best of `best` and `tries` calls of fn, after a pause in which the threads of
    whatever ran before (the floor's NumPy BLAS, torch's OpenMP) stop spinning: each side
    starts on idle cores, as in its own training loop."""
    time.sleep(SETTLE)
    for _ in range(tries):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def tries_for(seconds: float) -> int:
    """Calls per turn: enough that a short update gets ~0.3 s of tries, at most 40. After the
    pause the cores take ~0.1 s to come up to speed: the MLBL update took 14-32 ms in its first
    calls after a 0.2 s pause, 8-9 ms from the sixth on (00:20 UTC); the best call of a turn
    is the update as a training loop runs it, back to back."""
    return max(1, min(40, int(0.3 / max(seconds, 1e-6))))


class Reference:
    """The reference of one update, timed in a child process on request, so that it runs
    under its own OpenMP settings: a process has one libgomp, shared by PyTorch and uvs's C
    Ops, and `uvs.backend.configure` sets `GOMP_SPINCOUNT=1000` for uvs (its threads then
    sleep between loops); PyTorch is timed with libgomp's default, as its users run it (it
    was up to 1.2x slower under uvs's setting, alignment at 00:32 UTC). The two processes
    take turns: only one runs at a time."""

    def __init__(self, name: str, small: bool, threads: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        mine = os.environ.pop("GOMP_SPINCOUNT", None)  # the child starts with the default
        try:
            self.proc = ctx.Process(target=_reference_child, args=(child, name, small, threads),
                                    daemon=True)
            self.proc.start()
        finally:
            if mine is not None:
                os.environ["GOMP_SPINCOUNT"] = mine
        self.label = self.conn.recv()  # built and called once: ready

    def best(self, tries: int) -> float:
        """The best of `tries` calls after the pause, as `best_time` in this process."""
        self.conn.send(tries)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(30)


def _reference_child(conn, name: str, small: bool, threads: int) -> None:
    try:
        import torch  # first: its libgomp loads before anything of uvs's sets GOMP_SPINCOUNT

        torch.set_num_threads(threads)
        label = f"torch {torch.__version__}"
    except ImportError:
        label = "no torch"
    from threadpoolctl import threadpool_limits

    from uvs import backend

    backend.configure()
    backend.blas_threads(threads)
    with threadpool_limits(limits=threads, user_api="blas"):
        w = make_work(name, SMALL if small else PAPER, True, False)
        w.torch()  # untimed: first-call costs
        conn.send(label)
        while (tries := conn.recv()) is not None:
            conn.send(best_time(w.torch, float("inf"), tries))


def optimiser_bytes(w: Work) -> int:
    """The bytes the optimiser must move: `accesses` float32 per value, one less for each value
    of a word table (its gradient is stored as the batch's words' rows; zeros elsewhere are not
    read; those few rows' reads are left out)."""
    return 4 * (w.accesses * w.values - w.unread)


def measure(w: Work, repeats: int, threads: int, ref: Reference | None = None) -> dict:
    """Floor, uvs and the reference (in its process) taking turns; best of `repeats` turns
    each (after a warm-up), a short update tried several times per turn. The memory floor:
    the optimiser's bytes (`accesses` x 4 per value) at `stream_bandwidth`, measured before
    and after the turns."""
    floor = Floor(w.products)
    floor.run()
    bandwidth = stream_bandwidth(w.values, threads)
    w.uvs()  # a first call, untimed: the log-bilinear models compile their update in it
    n_uvs = tries_for(best_time(w.uvs, float("inf")))
    n_ref = tries_for(ref.best(1)) if ref else 0
    t_uvs = t_torch = float("inf")
    for _ in range(repeats):
        for _ in range(3):  # small products are noisy: three tries per turn
            floor.run()
        t_uvs = best_time(w.uvs, t_uvs, n_uvs)
        if ref:
            t_torch = min(t_torch, ref.best(n_ref))
    bandwidth = max(bandwidth, stream_bandwidth(w.values, threads))  # before and after the turns
    out = {"gflop": flops(w.products) / 1e9, "floor_s": floor.seconds(), "uvs_s": t_uvs,
           "optimiser_mb": optimiser_bytes(w) / 1e6, "stream_gbs": bandwidth / 1e9,
           "memory_s": optimiser_bytes(w) / bandwidth}
    if ref:
        out["torch_s"] = t_torch
    return out


def measure_phases(w: Work, repeats: int) -> dict:
    """Best VM seconds of each profiled function and of the two calls' Python overhead; the
    update's phases from their differences, and the Ops taking most time in the update."""
    vm = {k: float("inf") for k in w.phases}
    call = dict(vm)
    for f, args in w.phases.values():
        f(*args)
    for _ in range(repeats):
        for k, (f, args) in w.phases.items():
            p = f.profile
            for _ in range(tries_for(vm[k] if vm[k] < float("inf") else 1.0)):
                v0, c0 = p.vm_call_time, p.fct_call_time
                f(*args)
                vm[k] = min(vm[k], p.vm_call_time - v0)
                call[k] = min(call[k], (p.fct_call_time - c0) - (p.vm_call_time - v0))
    ph = {"forward": vm["forward"], "backward": vm["gradient"] - vm["forward"],
          "clipping": vm["gradient+clip"] - vm["gradient"], "optimiser": vm["update"],
          "calls": call["gradient+clip"] + call["update"]}
    ops: dict[str, float] = {}
    calls = 0
    for k in ("gradient+clip", "update"):
        p = w.phases[k][0].profile
        calls = p.fct_callcount
        for op, t in p.class_time().items():
            ops[op.__name__] = ops.get(op.__name__, 0.0) + t / max(p.fct_callcount, 1)
    total = sum(ops.values())
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:5]
    ph["top_ops"] = [(name, t, t / total if total else 0.0) for name, t in top]
    ph["profiled_calls"] = calls
    return ph


# ---------------------------------------------------------------- alignment scoring

def scoring(n: int, dim: int, repeats: int, old: bool, R: int = 20, T: int = 12) -> dict:
    """S_kl of n images (R regions) x 5n sentences (T words) at `dim`: the products' sgemm
    floor at the kernel's own block shapes, the kernel (`score_matrix`), the kernel it
    replaced (`old`), and ranking both ways (`rank_alignment`); best of `repeats` each."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from uvs.align.evaluation import (
        BLOCK_ROWS,
        CHUNK_BYTES,
        TILE_WORDS,
        rank_alignment,
        score_matrix,
    )

    rng = np.random.RandomState(4)
    v = rng.randn(n * R, dim).astype(np.float32)
    w = rng.randn(5 * n * T, dim).astype(np.float32)
    roff, woff = np.arange(n + 1) * R, np.arange(5 * n + 1) * T
    col = np.arange(5 * n)
    # the kernel's own blocks: images of at least BLOCK_ROWS regions, sentences in tiles
    rows = min(len(v), max(CHUNK_BYTES // (4 * len(w)), BLOCK_ROWS) // R * R)
    tile = max(TILE_WORDS, CHUNK_BYTES // 4 // rows) // T * T
    buf = np.empty(rows * min(tile, len(w)), np.float32)

    def floor():
        for a in range(0, len(v), rows):
            r = len(v[a:a + rows])
            for c in range(0, len(w), tile):
                t = len(w[c:c + tile])
                np.dot(v[a:a + r], w[c:c + t].T, out=buf[:r * t].reshape(r, t))

    def kernel():
        for _ in score_matrix(v, roff, w, woff):
            pass

    runs = {"floor (sgemm)": floor, "kernel": kernel}
    if old:
        from align_reference import reduceat_scores
        runs["old kernel"] = lambda: reduceat_scores(v, roff, w, woff, CHUNK_BYTES)
    runs["ranking"] = lambda: rank_alignment(v, roff, w, woff, col)
    best = {k: float("inf") for k in runs}
    for _ in range(repeats):
        for k, f in runs.items():
            best[k] = best_time(f, best[k])
    return {"images": n, "sentences": 5 * n, "regions": R, "words": T, "dim": dim,
            "gflop": 2.0 * n * R * len(w) * dim / 1e9, "seconds": best}


def print_scoring(r: dict, estimate_n: int = 5000) -> None:
    g, t = r["gflop"], r["seconds"]
    fl = t["floor (sgemm)"]
    print(f"\nalignment scoring, {r['images']} images x {r['sentences']} sentences "
          f"({r['regions']} regions, {r['words']} words, dim {r['dim']}; {g:.1f} GFLOP):")
    print(f"  {'':<14} {'seconds':>8} {'GFLOP/s':>8} {'x floor':>8}")
    for k, s in t.items():
        print(f"  {k:<14} {s:8.3f} {g / s:8.1f} {s / fl:8.2f}")
    if r["images"] != estimate_n:
        scale = (estimate_n / r["images"]) ** 2
        print(f"  ESTIMATE (not measured) for {estimate_n} x {5 * estimate_n}: the products "
              f"grow as images², so ranking ~ {t['ranking'] * scale:.0f} s, its floor "
              f"~ {fl * scale:.0f} s ({g * scale / 1000:.1f} TFLOP)")


# ---------------------------------------------------------------- beam search

def beam_search(n: int, s: dict, repeats: int, k: int = 5, maxlen: int = 16) -> dict:
    """Beam-k captions of n random contexts by `gen_sample_batch` (an untrained decoder at
    `s`'s sizes): seconds per caption against its floor, the output layer's products
    (live rows × dim · dim × V) as NumPy sgemm at the row counts each `f_next` call had."""
    from pytensor.tensor.random import shared_rng

    from uvs.decoding.model import build_sampler, init_params
    from uvs.decoding.search import gen_sample_batch
    from uvs.utils import init_tparams

    o = {"n_words": s["V"], "dim_word": s["dw"], "dim": s["d"], "dimctx": s["di"],
         "decoder": "gru", "doutput": False, "inject": "init"}
    tparams = init_tparams(init_params(o, rng=np.random.RandomState(1)))
    f_init, f_next = build_sampler(tparams, o, shared_rng(seed=1))
    ctx = np.random.RandomState(5).randn(n, s["di"]).astype(np.float32)
    rows: list[int] = []

    def counted(words, state):
        rows.append(len(words))
        return f_next(words, state)

    gen_sample_batch(tparams, f_init, counted, ctx, o, k=k, maxlen=maxlen)
    W = tparams["ff_logit_W"].get_value()
    a = np.random.RandomState(6).randn(max(rows), W.shape[0]).astype(np.float32)
    buf = np.empty((max(rows), W.shape[1]), np.float32)

    def floor():
        for r in rows:
            np.dot(a[:r], W, out=buf[:r])

    runs = {"floor (sgemm)": floor,
            "beam search": lambda: gen_sample_batch(tparams, f_init, f_next, ctx, o, k=k,
                                                    maxlen=maxlen)}
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, f in runs.items():
            best[name] = best_time(f, best[name])
    return {"captions": n, "beam": k, "maxlen": maxlen, "f_next calls": len(rows),
            "rows": int(sum(rows)), "gflop": 2.0 * sum(rows) * W.shape[0] * W.shape[1] / 1e9,
            "seconds": best}


def print_beam(r: dict) -> None:
    t, n = r["seconds"], r["captions"]
    print(f"\nbeam search, {n} captions, beam {r['beam']}, maxlen {r['maxlen']}: "
          f"{r['f_next calls']} f_next calls, {r['rows']} hypothesis rows, output layer "
          f"{r['gflop']:.1f} GFLOP")
    for name, sec in t.items():
        print(f"  {name:<14} {sec:8.3f} s, {1000 * sec / n:7.2f} ms per caption, "
              f"{sec / t['floor (sgemm)']:6.2f} x floor")


# ---------------------------------------------------------------- report

def machine_text(threads: int) -> str:
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    return (f"{os.cpu_count()} cores, load average {load}, {threads} BLAS threads; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def print_table(rows: dict) -> None:
    head = (f"{'update':<13} {'GFLOP':>6} {'floor s':>8} {'GFLOP/s':>8} | {'uvs s':>7} "
            f"{'GFLOP/s':>8} {'% ach.':>6} | {'ref s':>7} {'GFLOP/s':>8} {'% ach.':>6} | "
            f"{'uvs/ref':>9} | {'optim. MB':>9} {'GB/s':>5} {'mem. s':>7} {'% roof':>6}")
    print(head)
    print("-" * len(head))
    for name, r in rows.items():
        g, fl = r["gflop"], r["floor_s"]
        line = (f"{name:<13} {g:6.2f} {fl:8.4f} {g / fl:8.1f} | {r['uvs_s']:7.4f} "
                f"{g / r['uvs_s']:8.1f} {fl / r['uvs_s']:6.0%} | ")
        if "torch_s" in r:
            line += (f"{r['torch_s']:7.4f} {g / r['torch_s']:8.1f} {fl / r['torch_s']:6.0%} | "
                     f"{r['uvs_s'] / r['torch_s']:9.2f}")
        else:
            line += f"{'-':>7} {'-':>8} {'-':>6} | {'-':>9}"
        roof = fl + r["memory_s"]
        line += (f" | {r['optimiser_mb']:9.0f} {r['stream_gbs']:5.1f} {r['memory_s']:7.4f} "
                 f"{roof / r['uvs_s']:6.0%}")
        print(line)


def print_phases(rows: dict) -> None:
    print("\nuvs update by phase (profiled copies, best of the repeats; seconds):")
    head = (f"{'update':<13} {'forward':>8} {'backward':>8} {'clipping':>8} {'optimiser':>9} "
            f"{'calls':>7} {'sum':>7}  top Ops of the update (share of its Op time)")
    print(head)
    for name, r in rows.items():
        p = r.get("phases")
        if not p:
            continue
        total = sum(p[k] for k in ("forward", "backward", "clipping", "optimiser", "calls"))
        ops = ", ".join(f"{n} {s:.0%}" for n, _, s in p["top_ops"][:4])
        print(f"{name:<13} {p['forward']:8.4f} {p['backward']:8.4f} {p['clipping']:8.4f} "
              f"{p['optimiser']:9.4f} {p['calls']:7.4f} {total:7.4f}  {ops}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny sizes: a quick check")
    ap.add_argument("--only", default=",".join(WORKS),
                    help="comma-separated: " + ", ".join(WORKS) + "; '' for none")
    ap.add_argument("--repeats", type=int, default=5, help="timed turns (best of them)")
    ap.add_argument("--threads", type=int, default=0, help="BLAS/torch threads (default: uvs's)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-phases", action="store_true")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    ap.add_argument("--score-images", type=int, default=None,
                    help="alignment scoring: images (x5 sentences); default 300, 60 with "
                         "--small; 0 skips")
    ap.add_argument("--beam", type=int, default=0,
                    help="beam-5 search of this many captions against its output-layer floor")
    ap.add_argument("--coco5k", action="store_true",
                    help="alignment scoring at COCO 5K size (5000 x 25000): ~60 TFLOP")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKS]
    if unknown:
        ap.error(f"unknown update(s) {', '.join(unknown)}; choose from {', '.join(WORKS)}")
    if a.threads:  # OpenMP (uvs.rowwise's C, torch) reads this when it first loads
        os.environ["OMP_NUM_THREADS"] = str(a.threads)
    from threadpoolctl import threadpool_limits

    from uvs import backend

    backend.configure()
    threads = a.threads or backend.blas_threads() or os.cpu_count() or 1
    backend.blas_threads(threads)
    torch_version = None
    if not a.no_torch:
        from importlib.metadata import PackageNotFoundError, version

        try:
            torch_version = version("torch")  # imported in the reference's process only
        except PackageNotFoundError:
            ap.error("PyTorch is not installed: pip install torch, or --no-torch")
    sizes = SMALL if a.small else PAPER
    rows: dict[str, dict] = {}
    n_score = 5000 if a.coco5k else a.score_images
    if n_score is None:
        n_score = 60 if a.small else 300
    score = None
    with threadpool_limits(limits=threads, user_api="blas"):
        if n_score > 0:
            score = scoring(n_score, 256 if a.small else 1000, a.repeats, n_score <= 1000)
        for name in names:
            t = time.perf_counter()
            w = make_work(name, sizes, False, not a.no_phases)
            ref = None if a.no_torch else Reference(name, a.small, threads)
            print(f"{name}: built and compiled in {time.perf_counter() - t:.1f} s",
                  file=sys.stderr)
            try:
                rows[name] = {"sizes": w.sizes, "reference": w.ref,
                              **measure(w, a.repeats, threads, ref)}
            finally:
                if ref:
                    ref.close()
            if w.phases:
                rows[name]["phases"] = measure_phases(w, a.repeats)
        beam = beam_search(a.beam, sizes["decoder"], a.repeats) if a.beam > 0 else None
    info = {"machine": machine_text(threads), "sizes": "small" if a.small else "paper",
            "repeats": a.repeats, "torch": torch_version}
    if a.json:
        print(json.dumps({**info, "updates": rows, "scoring": score, "beam": beam}))
        return
    print(f"machine: {info['machine']}; sizes {info['sizes']}; best of {a.repeats}; "
          f"torch {info['torch']}")
    print("floor = the update's matrix products as NumPy sgemm at their shapes, this run; "
          "% ach. = floor / time; ref = PyTorch, but for mlbl and mlbl-f the original's NumPy "
          "code (float64), for which no PyTorch exists; mem. s = the optimiser's bytes (every "
          "value read and written as the update's math does: Adam 7 x 4 bytes, 6 x 4 for a word "
          "table, whose zero gradient rows are not read; momentum 5 x 4) "
          "at the GB/s of a threaded a += b this run, apart from the timed turns; "
          "% roof = (floor + mem. s) / uvs s\n")
    if rows:
        print_table(rows)
    if rows and not a.no_phases:
        print_phases(rows)
    if beam:
        print_beam(beam)
    if score:
        print_scoring(score)


if __name__ == "__main__":
    main()
