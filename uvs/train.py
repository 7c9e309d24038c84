"""Training: the original recipes (`vse`, `order`, `symmetric`), checkpoints and exact resume.

A run, as `trainer` tells it: resolve the options, open the run (lock, no silent overwrite,
signals; `uvs.runs`), resume or initialise, load the data, compile, then epochs of updates
with a dev validation every `validFreq` updates, the best model and a last checkpoint beside
it, and a JSON-lines log.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytensor.tensor as tensor

from uvs import backend, runs
from uvs.datasets import Split, load_split
from uvs.errors import UVSError
from uvs.evaluation import rank_embeddings
from uvs.gru_op import gru_impl
from uvs.homogeneous_data import epoch_rng, homogeneous_batches, prepare_data, random_batches
from uvs.model import (
    build_image_encoder,
    build_model,
    build_sentence_encoder,
    init_params,
    order_lineage,
)
from uvs.optim import OPTIMIZERS, clip_each_norm, clip_global_norm
from uvs.runs import Compiled, TrainState, optimizer_state
from uvs.tools import encode_images, encode_sentences
from uvs.train_options import OPTIONS, RECIPES, resolve_options  # noqa: F401 (re-exported)
from uvs.utils import init_tparams, itemlist, unzip
from uvs.vocab import build_dictionary

log = logging.getLogger("uvs.train")


def compile_update(tparams: dict, options: dict, mode: str | None = None,
                   gru: str | None = None):
    """(f_grad_shared(x, mask, im) -> cost, f_update(lr)) for the model's loss.

    Adds weight decay when decay_c > 0, clips gradients (global norm for the
    visual-semantic-embedding recipe, each tensor for order-embedding) and applies the
    optimizer named in options ('adam' as released by default). mode: the PyTensor mode;
    gru: 'scan' or 'fused' (defaults: `uvs.backend.mode()`, `uvs.gru_op.gru_impl()`).
    """
    inps, cost = build_model(tparams, options, gru_impl(gru, mode))
    decay_c = float(options.get("decay_c", 0.0))
    if decay_c > 0.0:
        weight_decay = sum((vv ** 2).sum() for vv in tparams.values())
        cost = cost + np.float32(decay_c) * weight_decay
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    grad_clip = float(options.get("grad_clip", 0.0))
    if grad_clip > 0.0:
        clip = clip_each_norm if order_lineage(options) else clip_global_norm
        grads = clip(grads, np.float32(grad_clip))
    lr = tensor.scalar(name="lr", dtype="float32")
    return OPTIMIZERS[options.get("optimizer", "adam")](lr, tparams, grads, inps, cost, mode=mode)


def _feature_row(split: Split, caption: np.ndarray) -> np.ndarray:
    return caption if split.per_caption else caption // 5


def _epoch_batches(options, train: Split, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(caption indices, feature rows)] of one epoch, fixed by (seed, epoch)."""
    rng = epoch_rng(options["seed"], epoch)
    if order_lineage(options):
        n_images = len(train.caps) // 5
        out = []
        for images, caps in random_batches(n_images, options["batch_size"], rng):
            out.append((caps, caps if train.per_caption else images))
        return out
    return [(c, _feature_row(train, c)) for c in
            homogeneous_batches(train.caps, options["batch_size"], options["maxlen_w"], rng)]



def trainer(progress: Callable[[dict], None] | None = None, overwrite: bool = False,
            mode: str | None = None, gru: str | None = None, **kw) -> dict:
    """Train a model as the original `train.trainer` did; returns the best dev metrics.

    Options: see `OPTIONS` (names as in the originals, e.g. dispFreq, validFreq, reload_).
    Saves the best model (by R@1+R@5+R@10 summed over both directions on dev) at `saveto`
    in the uvs format, a `last` checkpoint for `reload_`, and a JSON-lines log. `progress`
    receives each log record; human-readable lines go to the `uvs.train` logger. Refuses to
    replace another run's files unless `overwrite`; SIGINT/SIGTERM raise `runs.Interrupted`
    after writing the checkpoint. mode, gru: the PyTensor mode and GRU implementation
    (defaults: `uvs.backend.mode()`, `uvs.gru_op.gru_impl()`).
    """
    options = resolve_options(**kw)
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log, kind="vse") as run:
        if run.resuming:
            ckpt, state = run.load_last()
            options = runs.resume_options(OPTIONS, ckpt, state, kw, run)
            worddict, params = ckpt.worddict, ckpt.params
            state.best = max(state.best, runs.saved_score(run.paths.best, "dev_rsum"))
        train, dev = load_data(options)
        if not run.resuming:
            worddict, params, state = initialise(options, train, dev)
        run.preflight(runs.checkpoint_bytes(sum(p.nbytes for p in params.values())))
        c = compile_run(params, options, worddict, mode, gru)
        if run.resuming:
            run.restore(c.opt_state, ckpt)
        run.start(options, n_train=len(train.caps), n_words=options["n_words"])
        runs.run_epochs(run, state, options["max_epochs"],
                        lambda: train_epoch(c, train, dev, state, run),
                        lambda: runs.checkpoint(c, state, run))
        if runs.unvalidated(state, options["validFreq"]):
            validate(c, dev, state, run)
            runs.checkpoint(c, state, run)
        return run.finish(state)


def load_data(options: dict) -> tuple[Split, Split]:
    """The train and dev splits, their features as wide as dim_image."""
    splits = tuple(load_split(options["data"], name, options.get("data_dir"), options["cnn"])
                   for name in ("train", "dev"))
    for split in splits:
        if split.ims.shape[1] != options["dim_image"]:
            raise UVSError(split.ims_path, f"features are {split.ims.shape[1]} wide but "
                           f"dim_image = {options['dim_image']}")
    return splits


def initialise(options: dict, train: Split, dev: Split) -> tuple[OrderedDict, dict, TrainState]:
    """(dictionary, fresh parameters, state at update 0); sets options['n_words']."""
    worddict = build_dictionary(train.caps + dev.caps)[0]
    # as released: VSE sized Wemb by len(worddict), so its two rarest words are UNK
    options["n_words"] = len(worddict) + (2 if order_lineage(options) else 0)
    params = init_params(options, rng=np.random.RandomState(options["seed"]))
    return worddict, params, TrainState()


def compile_run(params: dict, options: dict, worddict: dict, mode: str | None = None,
                gru: str | None = None) -> Compiled:
    """Shared parameters, the update functions and the two encoders, compiled."""
    log.info(f"compiling the training graph ({backend.mode(mode)} mode; the first time takes "
             "a minute or more, later starts use the compile cache)")
    t0 = time.time()
    tparams = init_tparams(params)
    f_grad_shared, f_update = compile_update(tparams, options, mode, gru)
    [x_, m_], sents = build_sentence_encoder(tparams, options, gru_impl(gru, mode))
    [im_], images = build_image_encoder(tparams, options)
    model = {"options": options, "worddict": worddict,
             "f_senc": backend.function([x_, m_], sents, mode=mode, name="f_senc"),
             "f_ienc": backend.function([im_], images, mode=mode, name="f_ienc")}
    log.info(f"compiled in {time.time() - t0:.1f} s")
    return Compiled(tparams, f_grad_shared, f_update, optimizer_state(f_update, tparams), model)


def train_epoch(c: Compiled, train: Split, dev: Split, state: TrainState,
                run: runs.Run) -> None:
    """The rest of epoch `state.epoch` from batch `state.batch`: updates, progress, validation."""
    o = c.options
    batches = _epoch_batches(o, train, state.epoch)
    lrate = np.float32(o["lrate"])
    run.restart_clock()
    while state.batch < len(batches):
        run.stop_point()
        caps, rows = batches[state.batch]
        x, mask, im = prepare_data([train.caps[i] for i in caps], train.ims[rows],
                                   c.worddict, maxlen=o["maxlen_w"], n_words=o["n_words"])
        state.batch += 1
        if x is None:
            continue
        state.uidx += 1
        cost = float(c.f_grad_shared(x, mask, im))
        run.step(state, cost, lambda: c.f_update(lrate), len(batches), o["max_epochs"],
                 o["dispFreq"])
        if state.uidx % o["validFreq"] == 0:
            validate(c, dev, state, run)
            runs.checkpoint(c, state, run)
            run.restart_clock()


def validate(c: Compiled, dev: Split, state: TrainState, run: runs.Run) -> None:
    """Dev recall; the model is saved at `saveto` when R@1+R@5+R@10 improves."""
    metrics = dev_metrics(c.model, dev)
    if metrics is None:
        run.diverged("the dev embeddings are NaN or Inf", state)
    runs.recall_validated(run, state, metrics, lambda m: run.save_best(
        unzip(c.tparams), c.options, c.worddict, dev_rsum=m["rsum"], dev_metrics=m))


def dev_metrics(model: dict, dev: Split) -> dict | None:
    """Dev metrics, or None when the embeddings are no longer finite."""
    s = encode_sentences(model, dev.caps)
    im = encode_images(model, dev.image_rows())
    if not (np.isfinite(s).all() and np.isfinite(im).all()):
        return None
    return rank_embeddings(model, im, s, ties="last" if dev.per_caption else "first")
