"""Seconds per training update of uvs and of the same model in PyTorch, at the paper's sizes.

    python benchmarks/train_bench.py [--updates 5] [--threads N] [--gru fused,scan] [--no-cold]

One update = the VSE contrastive loss (images unnormalised, sentences L2-normalised, GRU
with the `<eos>` step), its gradient, global-norm clipping at 2 and the released Adam. uvs
runs `compile_update`'s `f_grad_shared` + `f_update` for each GRU implementation named in
`--gru` (`UVS_GRU`); PyTorch (optional) runs the same math from the same parameters. The
implementations take turns, so a noisy machine slows them alike. Also printed: the machine's
float32 matmul peak measured now, sentences/s of `uvs.tools.encode_sentences`, and compile
times cold (empty `base_compiledir`, in a subprocess) and warm (the same cache again).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=5, help="timed updates per implementation")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--threads", type=int, default=0,
                   help="BLAS/torch threads (default: as configured)")
    p.add_argument("--gru", default="fused,scan", help="uvs GRU implementations to time")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=12, help="words per caption, <eos> included")
    p.add_argument("--dim-word", type=int, default=300)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--dim-image", type=int, default=4096)
    p.add_argument("--n-words", type=int, default=10000)
    p.add_argument("--sentences", type=int, default=2000, help="sentences to encode")
    p.add_argument("--no-cold", action="store_true", help="skip the cold/warm compile runs")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    p.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def options_for(a: argparse.Namespace) -> dict:
    """A released-style VSE options dict at the benchmark's sizes."""
    return {"n_words": a.n_words, "dim_word": a.dim_word, "dim": a.dim,
            "dim_image": a.dim_image, "encoder": "gru", "margin": 0.2, "grad_clip": 2.0,
            "decay_c": 0.0, "optimizer": "adam", "lrate": 0.0002}


def update_flops(B: int, T: int, dw: int, d: int, di: int) -> float:
    """Matmul FLOPs of one update (forward + backward), as both implementations compute it."""
    image = 2 * B * di * d                  # im·W; backward: dW only (im is data)
    inputs = 2 * T * B * dw * 3 * d         # x·[W|Wx]; backward: dW and d(emb)
    recurrent = 2 * T * B * d * 3 * d       # h·[U|Ux]; backward: dh and dU
    scores = 2 * B * B * d                  # im·sᵀ; backward: both sides
    return float(2 * image + 3 * inputs + 3 * recurrent + 3 * scores)


def load_text() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def batch(a: argparse.Namespace, seed: int = 1):
    """x (T, B) int64 ending in <eos>, mask of ones, im (B, dim_image) float32 of unit rows."""
    import numpy as np

    rng = np.random.RandomState(seed)
    x = rng.randint(2, a.n_words, size=(a.steps, a.batch)).astype("int64")
    x[-1] = 0
    mask = np.ones((a.steps, a.batch), dtype="float32")
    im = rng.rand(a.batch, a.dim_image).astype("float32")
    im /= np.linalg.norm(im, axis=1, keepdims=True)
    return x, mask, im


def timed(fn: Callable[[], Any], settle: float = 0.3) -> float:
    """Seconds for one call, after a pause that lets the other thread pools go idle."""
    time.sleep(settle)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# ---------------------------------------------------------------- PyTorch, the same model

class TorchVSE:
    """The VSE model, loss, clipping and released Adam in PyTorch (plain autograd, CPU).

    Follows the options as uvs does: `encoder` gru or bow; `method` order (images
    normalised, the order penalty, each gradient clipped on its own) or cosine; `abs`.
    """

    def __init__(self, params: dict, options: dict):
        import torch

        self.torch = torch
        self.p = OrderedDict((k, torch.tensor(v, requires_grad=True)) for k, v in params.items())
        self.m = [torch.zeros_like(v) for v in self.p.values()]
        self.v = [torch.zeros_like(v) for v in self.p.values()]
        self.t = 0
        self.margin = float(options["margin"])
        self.clip = float(options["grad_clip"])
        self.bow = options.get("encoder", "gru") == "bow"
        self.order = options.get("method", "cosine") == "order"
        self.abs = bool(options.get("abs", False))

    def sentences(self, x, mask):
        """Last GRU state, L2-normalised: (B, dim)."""
        torch, p = self.torch, self.p
        emb = p["Wemb"][x]
        if self.bow:
            h = (emb * mask[:, :, None]).sum(0)
            return h / h.norm(dim=1, keepdim=True)
        d = p["encoder_Ux"].shape[0]
        xw = emb @ p["encoder_W"] + p["encoder_b"]
        xwx = emb @ p["encoder_Wx"] + p["encoder_bx"]
        h = emb.new_zeros((x.shape[1], d))
        for t in range(x.shape[0]):
            pre = h @ p["encoder_U"] + xw[t]
            r = torch.sigmoid(pre[:, :d])
            u = torch.sigmoid(pre[:, d:])
            ht = torch.tanh((h @ p["encoder_Ux"]) * r + xwx[t])
            hn = u * h + (1.0 - u) * ht
            m = mask[t][:, None]
            h = m * hn + (1.0 - m) * h
        return h / h.norm(dim=1, keepdim=True)

    def cost(self, x, mask, im):
        torch, p = self.torch, self.p
        s = self.sentences(x, mask)
        images = im @ p["ff_image_W"] + p["ff_image_b"]
        if self.order:
            images = images / images.norm(dim=1, keepdim=True)
        if self.abs:
            s, images = s.abs(), images.abs()
        if self.order:  # errors[i, j] = |max(0, s_i − im_j)|², as uvs; scores = −errors
            scores = -((s[:, None, :] - images[None, :, :]).clamp(min=0) ** 2).sum(2)
        else:
            scores = images @ s.T                  # errors = −scores
        diag = scores.diagonal()
        eye = torch.eye(len(scores), dtype=torch.bool)
        cost_s = (self.margin - diag[None, :] + scores).clamp(min=0).masked_fill(eye, 0)
        cost_im = (self.margin - diag[:, None] + scores).clamp(min=0).masked_fill(eye, 0)
        return cost_s.sum() + cost_im.sum()

    def update(self, x, mask, im, lr: float) -> float:
        """One step: cost, gradients, global-norm clipping, the released Adam."""
        torch = self.torch
        params = list(self.p.values())
        for q in params:
            q.grad = None
        cost = self.cost(x, mask, im)
        cost.backward()
        with torch.no_grad():
            grads = [q.grad for q in params]
            groups = [[g] for g in grads] if self.order else [grads]
            for group in groups:
                g2 = sum((g * g).sum(dtype=torch.float64) for g in group)
                if g2 > self.clip ** 2:
                    scale = float(self.clip / g2.sqrt())
                    for g in group:
                        g.mul_(scale)
            self.t += 1
            lr_t = lr * (1.0 - 0.001 ** self.t) ** 0.5 / (1.0 - 0.1 ** self.t)
            for q, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                m.mul_(0.9).add_(g, alpha=0.1)
                v.mul_(0.999).addcmul_(g, g, value=0.001)
                q.addcdiv_(m, v.sqrt().add_(1e-8), value=-lr_t)
        return cost.item()


# ---------------------------------------------------------------- measurements

def matmul_peak(torch_mod: Any) -> dict[str, float]:
    """Best float32 GFLOP/s of a 3072³ matmul: NumPy, uvs's BLAS (PyTensor Dot22), torch.

    Best of several: a busy machine only ever makes a matmul slower.
    """
    import numpy as np
    import pytensor.tensor as pt

    from uvs import backend

    n = 3072
    rng = np.random.RandomState(0)
    a = rng.rand(n, n).astype("float32")
    b = rng.rand(n, n).astype("float32")
    A, B = pt.matrix(dtype="float32"), pt.matrix(dtype="float32")
    f = backend.function([A, B], pt.dot(A, B))
    candidates = {"numpy": lambda: a @ b, "uvs BLAS": lambda: f(a, b)}
    if torch_mod is not None:
        ta, tb = torch_mod.from_numpy(a), torch_mod.from_numpy(b)
        candidates["torch"] = lambda: ta @ tb
    out = {}
    for name, fn in candidates.items():
        fn()
        out[name] = 2 * n ** 3 / min(timed(fn) for _ in range(5)) / 1e9
    return out


def compile_child(a: argparse.Namespace) -> None:
    """In a subprocess: time compiling the training update and the sentence encoder."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from uvs import backend
    from uvs.model import build_sentence_encoder, init_params
    from uvs.train import compile_update
    from uvs.utils import init_tparams

    options = options_for(a)
    tparams = init_tparams(init_params(options, rng=np.random.RandomState(0)))
    t = time.perf_counter()
    compile_update(tparams, options)
    t_update = time.perf_counter() - t
    t = time.perf_counter()
    inputs, sents = build_sentence_encoder(tparams, options)
    backend.function(inputs, sents, name="f_senc")
    t_enc = time.perf_counter() - t
    print(json.dumps({"update": t_update, "encoder": t_enc}))


def compile_times(a: argparse.Namespace) -> list[tuple[str, dict]]:
    """(label, {'update': s, 'encoder': s}) for a cold and then a warm compile cache."""
    cache = tempfile.mkdtemp(prefix="uvs-train-bench-")
    env = dict(os.environ)
    flags = env.get("PYTENSOR_FLAGS", "")
    env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={cache}") if f)
    argv = [sys.executable, os.path.abspath(__file__), "--compile-child",
            "--dim", str(a.dim), "--dim-word", str(a.dim_word), "--dim-image",
            str(a.dim_image), "--n-words", str(a.n_words)]
    out = []
    for label in ("cold", "warm"):
        run = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=ROOT)
        if run.returncode != 0:
            out.append((label, {"error": run.stderr.strip().splitlines()[-1:]}))
            continue
        out.append((label, json.loads(run.stdout.strip().splitlines()[-1])))
    return out


def sentences_for(a: argparse.Namespace, worddict: dict) -> list[str]:
    """Random captions of 6–16 words from the vocabulary (length-bucketed by the encoder)."""
    import numpy as np

    rng = np.random.RandomState(2)
    words = list(worddict)
    return [" ".join(words[i] for i in rng.randint(0, len(words), size=rng.randint(6, 17)))
            for _ in range(a.sentences)]


def torch_encode(model: TorchVSE, X: list[str], worddict: dict, batch_size: int = 128):
    """Sentence vectors with the same length-bucketed batches as encode_sentences."""
    import numpy as np

    torch = model.torch
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(X):
        by_len.setdefault(len(s.split()), []).append(i)
    out = np.zeros((len(X), model.p["encoder_Ux"].shape[0]), dtype="float32")
    with torch.no_grad():
        for k, idx in by_len.items():
            for start in range(0, len(idx), batch_size):
                caps = idx[start:start + batch_size]
                x = np.zeros((k + 1, len(caps)), dtype="int64")
                for j, c in enumerate(caps):
                    x[:k, j] = [worddict[w] for w in X[c].split()]
                mask = torch.ones(x.shape)
                out[caps] = model.sentences(torch.from_numpy(x), mask).numpy()
    return out


def main() -> None:
    a = parse_args()
    if a.threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(a.threads)
    if a.compile_child:
        compile_child(a)
        return
    sys.path.insert(0, ROOT)
    import numpy as np

    from uvs import backend, gru_op
    from uvs.model import build_sentence_encoder, init_params
    from uvs.tools import encode_sentences
    from uvs.train import compile_update
    from uvs.utils import init_tparams

    torch = None
    if not a.no_torch:
        try:
            import torch
        except ImportError as err:
            print(f"PyTorch not importable ({err}); its part is skipped "
                  "(pip install torch to compare)")
    if torch is not None and a.threads > 0:
        torch.set_num_threads(a.threads)

    info = backend.describe()
    print(f"cpu: {os.cpu_count()} cores, load average {load_text()}; numpy {np.__version__}")
    print("uvs.backend.describe(): " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"uvs BLAS threads: {backend.blas_threads()}; default GRU: {gru_op.gru_impl()}")
    if torch is not None:
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    options = options_for(a)
    gflop = update_flops(a.batch, a.steps, a.dim_word, a.dim, a.dim_image) / 1e9
    print(f"sizes: batch {a.batch}, {a.steps} words, dim_word {a.dim_word}, dim {a.dim}, "
          f"dim_image {a.dim_image}, vocabulary {a.n_words}, float32; "
          f"{gflop:.1f} GFLOP per update")

    peaks = matmul_peak(torch)
    print("float32 matmul peak (3072³, best of 5): "
          + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s")

    if not a.no_cold:
        for label, res in compile_times(a):
            if "error" in res:
                print(f"compile {label}: failed: {res['error']}")
            else:
                print(f"compile {label} (subprocess, GRU {gru_op.gru_impl()}): compile_update "
                      f"{res['update']:.1f} s, sentence encoder {res['encoder']:.1f} s")

    params = init_params(options, rng=np.random.RandomState(0))
    x, mask, im = batch(a)
    lr = np.float32(options["lrate"])
    runners: dict[str, Callable[[], float]] = {}
    encoders: dict[str, Any] = {}
    grads: dict[str, dict] = {}
    costs: dict[str, list[float]] = {}
    saved = os.environ.get("UVS_GRU")
    for impl in [s.strip() for s in a.gru.split(",") if s.strip()]:
        os.environ["UVS_GRU"] = impl
        tparams = init_tparams(OrderedDict((k, v.copy()) for k, v in params.items()))
        t = time.perf_counter()
        f_grad_shared, f_update = compile_update(tparams, options)
        inputs, sents = build_sentence_encoder(tparams, options)
        encoders[f"uvs ({impl})"] = backend.function(inputs, sents, name="f_senc")
        print(f"uvs ({impl}): compiled in this process in {time.perf_counter() - t:.1f} s")
        gshared = {v.name[:-5]: v for v in f_grad_shared.get_shared() if v.name.endswith("_grad")}
        name = f"uvs ({impl})"
        costs[name] = [float(f_grad_shared(x, mask, im))]
        grads[name] = {k: v.get_value().copy() for k, v in gshared.items()}
        f_update(lr)
        costs[name].append(float(f_grad_shared(x, mask, im)))
        f_update(lr)

        def run(f_grad_shared=f_grad_shared, f_update=f_update) -> float:
            cost = f_grad_shared(x, mask, im)
            f_update(lr)
            return float(cost)

        runners[name] = run
    if saved is None:
        os.environ.pop("UVS_GRU", None)
    else:
        os.environ["UVS_GRU"] = saved

    tmodel = None
    if torch is not None:
        tmodel = TorchVSE(params, options)
        tx, tmask, tim = torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(im)
        cost = tmodel.cost(tx, tmask, tim)
        cost.backward()
        g2 = sum(float((q.grad.double() ** 2).sum()) for q in tmodel.p.values())
        scale = min(1.0, options["grad_clip"] / g2 ** 0.5)
        grads["torch"] = {k: q.grad.numpy() * scale for k, q in tmodel.p.items()}
        costs["torch"] = [tmodel.update(tx, tmask, tim, float(lr))]
        costs["torch"].append(tmodel.update(tx, tmask, tim, float(lr)))
        runners["torch"] = lambda: tmodel.update(tx, tmask, tim, float(lr))
    report_agreement(grads, costs)

    times = time_updates(runners, a.updates, a.warmup)
    again = matmul_peak(torch)
    peak = max(*peaks.values(), *again.values())
    print("float32 matmul peak again, after the updates: "
          + ", ".join(f"{k} {v:.0f}" for k, v in again.items()) + f" GFLOP/s; peak {peak:.0f}")
    report_updates(times, gflop, peak, a.updates)

    worddict = {f"w{i}": i for i in range(2, a.n_words)}
    X = sentences_for(a, worddict)
    print(f"\nencode_sentences: {len(X)} sentences of 6-16 words, batches of 128 by length "
          "(best of 2):")
    encode: dict[str, Callable[[list[str]], Any]] = {}
    for name, f_senc in encoders.items():
        model = {"options": options, "worddict": worddict, "f_senc": f_senc}
        encode[name] = lambda X, model=model: encode_sentences(model, X)
    if tmodel is not None:
        encode["torch"] = lambda X: torch_encode(tmodel, X, worddict)
    for fn in encode.values():
        fn(X[:200])
    best = {name: float("inf") for name in encode}
    for _ in range(2):
        for name, fn in encode.items():
            best[name] = min(best[name], timed(lambda fn=fn: fn(X)))
    for name, t in best.items():
        print(f"  {name:<13} {len(X) / t:8.0f} sentences/s")


def report_agreement(grads: dict[str, dict], costs: dict[str, list[float]]) -> None:
    """Cost before and after one update, and gradient differences, against the first one."""
    import numpy as np

    ref = next(iter(grads))
    scale = max(float(np.abs(g).max()) for g in grads[ref].values())
    print(f"agreement (same parameters and batch; gradients after clipping, vs {ref}):")
    for name in grads:
        worst = max(float(np.abs(grads[name][k] - g).max()) for k, g in grads[ref].items())
        print(f"  {name:<13} cost {costs[name][0]:.5f} -> {costs[name][1]:.5f} after one "
              f"update; max |Δgrad| / max |grad| {worst / scale:.1e}")


def time_updates(runners: dict[str, Callable[[], float]], n: int,
                 warmup: int) -> dict[str, list[float]]:
    """Seconds of each update, the implementations taking turns."""
    for _ in range(max(0, warmup - 1)):  # each has already made two updates
        for fn in runners.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(n):
        for name, fn in runners.items():
            times[name].append(timed(fn))
    return times


def report_updates(times: dict[str, list[float]], gflop: float, peak: float, n: int) -> None:
    base = statistics.median(times["torch"]) if "torch" in times else None
    print(f"\nseconds per update (median of {n}, implementations taking turns; "
          f"load average now {load_text()}):")
    print(f"  {'':<13} {'median':>8} {'min':>8} {'GFLOP/s':>8} {'of peak':>8} {'x torch':>8}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{med / base:8.2f}" if base else f"{'-':>8}"
        print(f"  {name:<13} {med:8.3f} {min(ts):8.3f} {gflop / med:8.1f} "
              f"{gflop / med / peak:8.0%} {ratio}")
    if "uvs (fused)" in times and "uvs (scan)" in times:
        gain = statistics.median(times["uvs (scan)"]) / statistics.median(times["uvs (fused)"])
        print(f"  fused GRU vs scan GRU: {gain:.2f}x faster")


if __name__ == "__main__":
    main()
