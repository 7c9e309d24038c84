"""What each change of issue 18's second to fifth passes gives: every update built with it
and without it in one process, taking turns (these machines are shared and noisy).

    python benchmarks/second_pass_bench.py [--only vse-bow,decoder-init,...] [--rounds 6]
                                           [--small] [--variants no-axis-sums,...]

Variants, each against the update as uvs builds it ("all"):
  every update  no-axis-sums (PyTensor's own one-chain sums along an axis: the
                `uvs_axis_sums` rewrite excluded); but for mlbl and mlbl-f, no-clip-in-adam
                (the clipping's own pass over every gradient, `ClipScale`, stored for Adam)
  vse-bow       no-bag-of-words (the original's gather, mask and sum), no-clip-scale
                (PyTensor's `switch`), no-row-gradients (the word table's gradient stored whole,
                zeroed where it lies and added into: `uvs.row_grads` off); with it off too,
                no-zero-fill (a fresh zero table per update: `uvs_zero_into_update` excluded)
                and no-sparse-rows (the clipping's norm and rescaling over the whole 40 MB
                table: `uvs_sparse_rows` excluded)
  vse-gru, order-gru  no-row-gradients; no-sparse-rows (with it off)
  decoder-*     no-bias-in-loss (the bias added by its own node, `softmax_nll` after it),
                no-fused-gradient (the loss and its gradient as two passes: the
                `uvs_softmax_nll_bias_fused` rewrite excluded), no-row-gradients,
                no-sparse-rows (with it off)
  mlbl, mlbl-f  no-xent (the loss as elementwise nodes), no-momentum-op (the step as three),
                no-columns (the context words as PyTensor's `R.T[X]` and its gradient),
                no-fused-xent (the loss and its gradient as two passes: the
                `uvs_softmax_xent_fused` rewrite excluded), no-label-buffer (the labels made
                dense in float64 and cast each update, as `to_dense`)
libgomp's spin count (`GOMP_SPINCOUNT`) is read once per process: compare it across
processes (`roofline.py --no-torch` with the variable set), not here.
Prints each variant's best update time (ms, best of --rounds turns of 0.3 s of calls) and
its ratio to "all" (> 1: the change helps).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import roofline  # noqa: E402  (benchmarks/ on the path first)


@contextlib.contextmanager
def patched(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def variants(name: str) -> dict[str, contextlib.AbstractContextManager]:
    """name -> a context in which the update is built without one change."""
    from pytensor.compile.mode import get_mode

    import uvs.optim as optim
    from uvs import backend

    compile_ = backend.function

    def excluding(rewrite: str) -> contextlib.AbstractContextManager:
        """uvs's functions compiled without one of its rewrites."""
        def function(inputs, outputs=None, mode=None, **kwargs):
            mode = get_mode(backend._mode(mode) if mode is None or isinstance(mode, str)
                            else mode).excluding(rewrite)
            return compile_(inputs, outputs, mode=mode, **kwargs)
        return patched(backend, "function", function)

    @contextlib.contextmanager
    def whole_table(*more: contextlib.AbstractContextManager):
        """The lookup gradient stored whole (`uvs.row_grads` off), and `more` changes off."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(patched(optim, "stored_rows", lambda *a, **k: None))
            for ctx in more:
                stack.enter_context(ctx)
            yield

    common = {"no-axis-sums": excluding("uvs_axis_sums")}
    if not name.startswith("mlbl"):
        common["no-clip-in-adam"] = patched(optim, "_unclipped", lambda g: None)
    return {**common, **_own_variants(name, excluding, whole_table)}


def _own_variants(name: str, excluding, whole_table) -> dict:
    """The variants of one kind of update, beside the common ones."""
    import pytensor.tensor as pt

    import uvs.mnlm.lbl as lbl
    import uvs.mnlm.mlbl as mlbl
    import uvs.mnlm.mlblf as mlblf
    import uvs.model as model
    import uvs.optim as optim
    from uvs import rowwise

    if name == "vse-bow":
        def switch(g, g2, limit, mode=None):
            return pt.switch(g2 > limit ** 2, g / pt.sqrt(g2) * limit, g)
        return {"no-bag-of-words": patched(model, "bag_of_words", lambda *a, **k: None),
                "no-clip-scale": patched(optim, "clip_scale", switch),
                "no-row-gradients": whole_table(),
                "no-zero-fill": whole_table(excluding("uvs_zero_into_update")),
                "no-sparse-rows": whole_table(excluding("uvs_sparse_rows"))}
    if name in ("vse-gru", "order-gru"):
        return {"no-row-gradients": whole_table(),
                "no-sparse-rows": whole_table(excluding("uvs_sparse_rows"))}
    if name.startswith("decoder"):
        return {"no-bias-in-loss": patched(
            rowwise, "softmax_nll_bias",
            lambda x, b, y, mode=None: rowwise.softmax_nll(x + b, y, mode)),
                "no-fused-gradient": excluding("uvs_softmax_nll_bias_fused"),
                "no-row-gradients": whole_table(),
                "no-sparse-rows": whole_table(excluding("uvs_sparse_rows"))}
    if name.startswith("mlbl"):
        module = mlblf if name == "mlbl-f" else mlbl
        return {"no-xent": patched(lbl, "available", lambda *a, **k: False),
                "no-momentum-op": patched(lbl, "momentum_step", lambda *a, **k: None),
                "no-columns": patched(module, "take_columns", lambda w, i, mode=None: w.T[i]),
                "no-fused-xent": excluding("uvs_softmax_xent_fused"),
                "no-label-buffer": patched(lbl.LBL, "_dense_labels", lambda self, Y: lbl.to_dense(
                    Y, self.V).astype(self.dtype, copy=False))}
    return {}


def build(name: str, sizes: dict):
    w = roofline.make_work(name, sizes, False, False)
    w.uvs()  # the log-bilinear models compile in their first call: inside the variant's context
    return w.uvs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="vse-bow,decoder-init,decoder-bias,mlbl,mlbl-f")
    ap.add_argument("--rounds", type=int, default=6, help="turns per variant (best of them)")
    ap.add_argument("--small", action="store_true", help="tiny sizes: a quick check")
    ap.add_argument("--variants", default="", help="only these variants (default: all)")
    a = ap.parse_args(argv)
    wanted = {v.strip() for v in a.variants.split(",") if v.strip()}
    from threadpoolctl import threadpool_limits

    from uvs import backend

    backend.configure()
    threads = backend.blas_threads() or os.cpu_count() or 1
    sizes = roofline.SMALL if a.small else roofline.PAPER
    print(f"machine: {roofline.machine_text(threads)}; best of {a.rounds} turns")
    with threadpool_limits(limits=threads, user_api="blas"):
        for name in [n.strip() for n in a.only.split(",") if n.strip()]:
            fns = {"all": build(name, sizes)}
            for label, ctx in variants(name).items():
                if wanted and label not in wanted:
                    continue
                with ctx:
                    fns[label] = build(name, sizes)
            tries = {k: roofline.tries_for(roofline.best_time(f, float("inf")))
                     for k, f in fns.items()}
            best = {k: float("inf") for k in fns}
            for _ in range(a.rounds):
                for k, f in fns.items():
                    best[k] = roofline.best_time(f, best[k], tries[k])
            line = ", ".join(f"{k} {1e3 * t:.2f} ms" + ("" if k == "all" else
                                                          f" ({t / best['all']:.2f})")
                             for k, t in best.items())
            print(f"{name:<13} {line}")


if __name__ == "__main__":
    main()
