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
from functools import partial

import numpy as np

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
from uvs.optim import build_optimizer
from uvs.runs import Compiled
from uvs.tools import encode_images, encode_sentences
from uvs.train_options import OPTIONS, RECIPES, resolve_options  # noqa: F401 (re-exported)
from uvs.utils import init_tparams
from uvs.vocab import build_dictionary

log = logging.getLogger("uvs.train")


def compile_update(tparams: dict, options: dict, mode: str | None = None,
                   gru: str | None = None):
    """(f_grad_shared(x, mask, im) -> cost, f_update(lr)) for the model's loss (`build_optimizer`:
    gradients clipped by their global norm for VSE, each tensor for order-embedding).
    mode, gru: the PyTensor mode and GRU implementation (defaults: `uvs.backend.mode()`,
    `uvs.gru_op.gru_impl()`)."""
    inps, cost = build_model(tparams, options, gru_impl(gru, mode))
    return build_optimizer(tparams, inps, cost, options,
                           clip="each" if order_lineage(options) else "global", mode=mode)


def _feature_row(split: Split, caption: np.ndarray) -> np.ndarray:
    return caption if split.per_caption else caption // 5


def epoch_batches(options, train: Split, epoch: int) -> list[tuple[np.ndarray, np.ndarray]]:
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
        o, ckpt = run.resume(OPTIONS, options, kw)
        train, dev = load_data(o)
        worddict, params = (ckpt.worddict, ckpt.params) if ckpt else initialise(o, train, dev)
        run.preflight(params)
        c = run.start(compile_run(params, o, worddict, mode, gru), n_train=len(train.caps),
                      n_words=o["n_words"])
        lrate = np.float32(o["lrate"])
        for batch in run.batches(partial(epoch_batches, o, train), o):
            if batch is runs.VALIDATE:
                validate(c, dev, run)
                continue
            caps, rows = batch
            x, mask, im = prepare_data([train.caps[i] for i in caps], train.ims[rows],
                                       worddict, maxlen=o["maxlen_w"], n_words=o["n_words"])
            if x is None:
                continue
            run.cost(c.f_grad_shared(x, mask, im))
            c.f_update(lrate)
        return run.finish()


def load_data(options: dict) -> tuple[Split, Split]:
    """The train and dev splits, their features as wide as dim_image."""
    splits = tuple(load_split(options["data"], name, options.get("data_dir"), options["cnn"])
                   for name in ("train", "dev"))
    for split in splits:
        if split.ims.shape[1] != options["dim_image"]:
            raise UVSError(split.ims_path, f"features are {split.ims.shape[1]} wide but "
                           f"dim_image = {options['dim_image']}")
    return splits


def initialise(options: dict, train: Split, dev: Split) -> tuple[OrderedDict, dict]:
    """(dictionary, fresh parameters); sets options['n_words']."""
    worddict = build_dictionary(train.caps + dev.caps)[0]
    # as released: VSE sized Wemb by len(worddict), so its two rarest words are UNK
    options["n_words"] = len(worddict) + (2 if order_lineage(options) else 0)
    params = init_params(options, rng=np.random.RandomState(options["seed"]))
    return worddict, params


def compile_run(params: dict, options: dict, worddict: dict, mode: str | None = None,
                gru: str | None = None) -> Compiled:
    """Shared parameters, the update functions and the two encoders, compiled."""
    log.info(f"compiling the training graph ({backend.mode(mode)} mode; the first time takes "
             "a quarter of a minute or more, later starts use the compile cache)")
    t0 = time.time()
    tparams = init_tparams(params)
    f_grad_shared, f_update = compile_update(tparams, options, mode, gru)
    [x_, m_], sents = build_sentence_encoder(tparams, options, gru_impl(gru, mode))
    [im_], images = build_image_encoder(tparams, options)
    model = {"options": options, "worddict": worddict,
             "f_senc": backend.function([x_, m_], sents, mode=mode, name="f_senc"),
             "f_ienc": backend.function([im_], images, mode=mode, name="f_ienc")}
    log.info(f"compiled in {time.time() - t0:.1f} s")
    return Compiled(tparams, f_grad_shared, f_update, model)


def validate(c: Compiled, dev: Split, run: runs.Run) -> None:
    """Dev recall; the model is saved at `saveto` when R@1+R@5+R@10 improves."""
    metrics = dev_metrics(c.model, dev)
    if metrics is None:
        run.diverged("the dev embeddings are NaN or Inf")
    run.recall(metrics)


def dev_metrics(model: dict, dev: Split) -> dict | None:
    """Dev metrics, or None when the embeddings are no longer finite."""
    s = encode_sentences(model, dev.caps)
    im = encode_images(model, dev.image_rows())
    if not (np.isfinite(s).all() and np.isfinite(im).all()):
        return None
    return rank_embeddings(model, im, s, ties="last" if dev.per_caption else "first")
