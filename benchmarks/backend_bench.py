"""Time uvs's GRU sentence encoder (forward, and forward + gradient) under each PyTensor mode.

    python benchmarks/backend_bench.py [--modes CVM,NUMBA,JAX] [--repeat 10] [--cold]

The encoder is the GRU of uvs/layers.py (word embeddings looked up in `Wemb`, `scan`
over time, last state L2-normalised) at the paper's sizes; the gradient is taken
w.r.t. all seven weights, as in training. `--cold` compiles into a fresh
temporary `base_compiledir` to show first-compile times ("compile" includes
the first call, where Numba and JAX do their compiling). Modes take turns in
each round; the best time is the one to compare on a shared machine. `UVS_BLAS` picks the
BLAS as in `uvs.backend`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="", help="comma-separated; default CVM,NUMBA(,JAX)")
    p.add_argument("--repeat", type=int, default=10, help="timed rounds (each mode once per round)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--dim-word", type=int, default=300)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--n-words", type=int, default=10000)
    p.add_argument("--cold", action="store_true", help="compile into an empty cache")
    return p.parse_args()


def gru_graph(
    n_words: int, dim_word: int, dim: int, shape: tuple[int | None, int | None] = (None, None)
) -> tuple[list, Any, list]:
    """Inputs `[x, mask]`, the sentence vectors, and the shared weights of a GRU encoder.

    `shape` fixes (steps, batch) statically, which the JAX backend needs for `scan`.
    """
    warnings.filterwarnings("ignore", module="jax")
    import pytensor
    import pytensor.tensor as pt

    rng = np.random.default_rng(0)

    def shared(name: str, *shape: int, scale: float = 0.1) -> Any:
        value = (scale * rng.standard_normal(shape)).astype("float32")
        return pytensor.shared(value, name=name)

    Wemb = shared("Wemb", n_words, dim_word)
    W = shared("encoder_W", dim_word, 2 * dim)
    b = shared("encoder_b", 2 * dim, scale=0.0)
    U = shared("encoder_U", dim, 2 * dim, scale=0.03)
    Wx = shared("encoder_Wx", dim_word, dim)
    bx = shared("encoder_bx", dim, scale=0.0)
    Ux = shared("encoder_Ux", dim, dim, scale=0.03)

    x = pt.tensor("x", dtype="int64", shape=shape)
    mask = pt.tensor("mask", dtype="float32", shape=shape)
    n_steps, n_samples = x.shape[0], x.shape[1]
    emb = Wemb[x.flatten()].reshape([n_steps, n_samples, dim_word])
    state_below_ = pt.dot(emb, W) + b
    state_belowx = pt.dot(emb, Wx) + bx

    def step(m_, x_, xx_, h_, U, Ux):
        preact = pt.dot(h_, U) + x_
        r = pt.sigmoid(preact[:, :dim])
        u = pt.sigmoid(preact[:, dim:])
        h_tilde = pt.tanh(pt.dot(h_, Ux) * r + xx_)
        h = u * h_ + (1.0 - u) * h_tilde
        return m_[:, None] * h + (1.0 - m_)[:, None] * h_

    h0 = pt.zeros((n_samples, dim), dtype="float32")
    hs = pytensor.scan(
        step,
        sequences=[mask, state_below_, state_belowx],
        outputs_info=[h0],
        non_sequences=[U, Ux],
        n_steps=n_steps,
        strict=True,
        return_updates=False,
    )
    last = hs[-1]
    sent = last / pt.sqrt((last**2).sum(axis=1, keepdims=True) + 1e-8)
    return [x, mask], sent, [Wemb, W, b, U, Wx, bx, Ux]


def flops(batch: int, steps: int, dim_word: int, dim: int) -> float:
    """Matmul FLOPs of one forward pass (the backward pass costs about twice that)."""
    outside = 2 * steps * batch * dim_word * 3 * dim
    inside = 2 * steps * batch * dim * 3 * dim
    return float(outside + inside)


def _ready(out: Any) -> Any:
    """Outputs as NumPy arrays (JAX returns before it has finished)."""
    return [np.asarray(o) for o in out] if isinstance(out, list | tuple) else np.asarray(out)


def seconds(fn: Callable[[], Any]) -> float:
    """Wall time of one call, outputs ready."""
    t = time.perf_counter()
    _ready(fn())
    return time.perf_counter() - t


def main() -> None:
    args = parse_args()
    if args.cold:
        cache = tempfile.mkdtemp(prefix="uvs-bench-cache-")
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={cache}") if f)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    warnings.filterwarnings("ignore", module="jax")
    import pytensor
    import pytensor.tensor as pt

    from uvs import backend

    modes = [m.strip().upper() for m in args.modes.split(",") if m.strip()]
    if not modes:
        modes = ["CVM", "NUMBA"] + (["JAX"] if importlib.util.find_spec("jax") else [])

    info = backend.describe()
    print(f"pytensor {info['pytensor']}, floatX {info['floatX']}, uvs default mode {info['mode']}")
    print(f"BLAS (CVM): {info['blas']}")
    print(f"compile cache: {pytensor.config.compiledir}{' (fresh)' if args.cold else ''}")
    print(f"cpu cores: {os.cpu_count()}, numpy {np.__version__}")
    print(
        f"GRU encoder: batch {args.batch}, steps {args.steps}, dim_word {args.dim_word}, "
        f"dim {args.dim}, n_words {args.n_words}, float32; {args.repeat} rounds"
    )

    rng = np.random.default_rng(1)
    x = rng.integers(2, args.n_words, size=(args.steps, args.batch)).astype("int64")
    x[-1] = 0
    mask = np.ones((args.steps, args.batch), dtype="float32")
    gf = flops(args.batch, args.steps, args.dim_word, args.dim) / 1e9

    compiled = {}
    reference = None
    for mode in modes:
        shape = (args.steps, args.batch) if mode == "JAX" else (None, None)
        inputs, sent, weights = gru_graph(args.n_words, args.dim_word, args.dim, shape)
        cost = sent.sum()
        grads = pt.grad(cost, weights)
        try:
            t = time.perf_counter()
            f_enc = backend.function(inputs, sent, mode=mode)
            out = _ready(f_enc(x, mask))
            c_fwd = time.perf_counter() - t
            t = time.perf_counter()
            f_grad = backend.function(inputs, [cost, *grads], mode=mode)
            _ready(f_grad(x, mask))
            c_grad = time.perf_counter() - t
        except Exception as e:  # a mode that fails here is reported, not fatal
            print(f"{mode}: failed: {type(e).__name__}: {e}".splitlines()[0])
            continue
        reference = out if reference is None else reference
        err = float(np.abs(out - reference).max())
        compiled[mode] = (f_enc, f_grad, c_fwd, c_grad, err)
    if not compiled:
        return

    # Modes take turns, so that a busy machine slows them alike.
    times: dict[str, tuple[list[float], list[float]]] = {m: ([], []) for m in compiled}
    for _ in range(args.repeat):
        for mode, (f_enc, f_grad, *_) in compiled.items():
            times[mode][0].append(seconds(lambda f=f_enc: f(x, mask)))
            times[mode][1].append(seconds(lambda f=f_grad: f(x, mask)))

    rows = []
    for mode, (_, _, c_fwd, c_grad, err) in compiled.items():
        fwd, grad = times[mode]
        rows.append(
            (
                mode,
                c_fwd,
                c_grad,
                min(fwd),
                statistics.median(fwd),
                min(grad),
                statistics.median(grad),
                err,
            )
        )
    best_fwd = min(r[3] for r in rows)
    best_grad = min(r[5] for r in rows)
    print()
    print(
        f"{'mode':<6} {'compile':>7} {'compile':>7} | {'forward ms':>15} {'GFLOP/s':>7} "
        f"{'x best':>6} | {'fwd+grad ms':>15} {'GFLOP/s':>7} {'x best':>6} | {'max':>7}"
    )
    print(
        f"{'':<6} {'fwd s':>7} {'grad s':>7} | {'best (median)':>15} {'':>7} {'':>6}"
        f" | {'best (median)':>15} {'':>7} {'':>6} | {'|diff|':>7}"
    )
    for mode, c_fwd, c_grad, fwd, fwd_med, grad, grad_med, err in rows:
        print(
            f"{mode:<6} {c_fwd:>7.1f} {c_grad:>7.1f} | {fwd * 1e3:>6.0f} ({fwd_med * 1e3:>6.0f}) "
            f"{gf / fwd:>7.1f} {fwd / best_fwd:>6.2f} | "
            f"{grad * 1e3:>6.0f} ({grad_med * 1e3:>6.0f}) {3 * gf / grad:>7.1f} "
            f"{grad / best_grad:>6.2f} | {err:>7.1e}"
        )
    print(
        f"fastest (best times): forward {min(rows, key=lambda r: r[3])[0]}, "
        f"forward+grad {min(rows, key=lambda r: r[5])[0]}"
    )
    print(f"(GFLOP/s counts matmuls only: {gf:.1f} GFLOP forward, ~{3 * gf:.1f} forward+grad)")


if __name__ == "__main__":
    main()
