"""Training the alignment model: options, batches of regions and words, checkpoints, resume.

The run plumbing (lock, no silent overwrite, log, best and last checkpoints, signals, NaN
stop) is `uvs.runs`, as for `uvs.train`; dev recall ranked by S_kl goes into `valid` events.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as tensor

from uvs import backend, runs
from uvs.align.evaluation import compile_model, prepare_words, rank_scores, sentence_ids
from uvs.align.evaluation import split_regions as _split_regions
from uvs.align.model import KIND, build_model, init_params
from uvs.align.options import OPTIONS, resolve_options
from uvs.align.regions import Regions
from uvs.datasets import layout, load_split
from uvs.homogeneous_data import epoch_rng, random_batches
from uvs.optim import OPTIMIZERS, clip_global_norm
from uvs.runs import Compiled, TrainState, optimizer_state
from uvs.utils import init_tparams, itemlist, unzip
from uvs.vocab import build_dictionary

log = logging.getLogger("uvs.train")


def compile_update(tparams: dict, options: dict):
    """(f_grad_shared(x, mask, regions, rmask) -> cost, f_update(lr)) for the objective."""
    inps, cost = build_model(tparams, options)
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    if float(options.get("grad_clip", 0.0)) > 0.0:
        grads = clip_global_norm(grads, np.float32(options["grad_clip"]))
    lr = tensor.scalar(name="lr", dtype="float32")
    return OPTIMIZERS[options.get("optimizer", "adam")](lr, tparams, grads, inps, cost)


def region_batch(regions: Regions, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (B, R, dim_image), rmask (B, R)) of photos `images`, padded to the most."""
    off = regions.offsets
    counts = off[images + 1] - off[images]
    feats = np.zeros((len(images), counts.max(), regions.features.shape[1]), np.float32)
    rmask = np.zeros((len(images), counts.max()), np.float32)
    for j, k in enumerate(images):
        feats[j, :counts[j]] = regions.features[off[k]:off[k + 1]]
        rmask[j, :counts[j]] = 1.0
    return feats, rmask


@dataclass
class Data:
    """Train and dev captions with their regions; train_ids: the train captions as word ids;
    ties: the data set's tie rule for dev recall."""

    train_caps: list[str]
    train_regions: Regions
    dev_caps: list[str]
    dev_regions: Regions
    train_ids: list | None = None
    ties: str = "first"


def trainer(progress: Callable[[dict], None] | None = None, overwrite: bool = False,
            **kw) -> dict:
    """Train an alignment model; the best on dev (R@1+R@5+R@10 both ways, by S_kl) is saved
    at `saveto` (kind 'align'), with a last checkpoint and a JSON-lines log beside it."""
    options = resolve_options(**kw)
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log, kind=KIND) as run:
        if run.resuming:
            ckpt, state = run.load_last()
            options = runs.resume_options(OPTIONS, ckpt, state, kw, run)
            worddict, params = ckpt.worddict, ckpt.params
            state.best = max(state.best, runs.saved_score(run.paths.best, "dev_rsum", KIND))
        data = load_data(options)
        if not run.resuming:
            worddict, params, state = initialise(options, data)
        run.preflight(runs.checkpoint_bytes(sum(p.nbytes for p in params.values())))
        c = compile_run(params, options, worddict)
        if run.resuming:
            run.restore(c.opt_state, ckpt)
        data.train_ids = sentence_ids(c.model, data.train_caps, "the train captions")
        run.start(options, n_train=len(data.train_ids), n_words=options["n_words"])
        runs.run_epochs(run, state, options["max_epochs"],
                        lambda: train_epoch(c, data, state, run),
                        lambda: runs.checkpoint(c, state, run))
        if runs.unvalidated(state, options["validFreq"]):
            validate(c, data, state, run)
            runs.checkpoint(c, state, run)
        return run.finish(state)


def load_data(options: dict) -> Data:
    """Train and dev captions with their regions, matched and as wide as each other; sets
    options['dim_image'] from the regions when not given."""
    out = []
    for split in ("train", "dev"):
        ds = load_split(options["data"], split, options.get("data_dir"))
        regions = _split_regions(options.get("regions"), options["data"], split,
                                 len(ds.caps) // 5, options.get("data_dir"),
                                 options.get("dim_image"))
        options.setdefault("dim_image", int(regions.features.shape[1]))
        out += [ds.caps, regions]
    ties = "last" if layout(options["data"], options.get("data_dir")) == "vse" else "first"
    return Data(*out, ties=ties)


def initialise(options: dict, data: Data) -> tuple[OrderedDict, dict, TrainState]:
    """(dictionary, fresh parameters, state at update 0); sets options['n_words']."""
    worddict = build_dictionary(data.train_caps + data.dev_caps)[0]
    options["n_words"] = len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(options["seed"]))
    return worddict, params, TrainState()


def compile_run(params: dict, options: dict, worddict: dict) -> Compiled:
    """Shared parameters, the update functions and the scoring model, compiled."""
    log.info(f"compiling the training graph ({backend.mode()} mode)")
    t0 = time.time()
    tparams = init_tparams(params)
    f_grad_shared, f_update = compile_update(tparams, options)
    model = compile_model(params, options, worddict, tparams=tparams)
    log.info(f"compiled in {time.time() - t0:.1f} s")
    return Compiled(tparams, f_grad_shared, f_update, optimizer_state(f_update, tparams),
                    model)


def train_epoch(c: Compiled, data: Data, state: TrainState, run: runs.Run) -> None:
    """The rest of epoch `state.epoch` from batch `state.batch`: updates, progress, validation."""
    o = c.options
    regions, train_ids = data.train_regions, data.train_ids
    lrate = np.float32(o["lrate"])
    batches = random_batches(len(regions), o["batch_size"], epoch_rng(o["seed"], state.epoch))
    run.restart_clock()
    while state.batch < len(batches):
        run.stop_point()
        images, caps = batches[state.batch]
        state.batch += 1
        keep = [j for j, cap in enumerate(caps) if len(train_ids[cap]) < o["maxlen_w"]]
        if len(keep) < 2:
            continue
        x, mask = prepare_words([train_ids[caps[j]] for j in keep])
        feats, rmask = region_batch(regions, images[keep])
        state.uidx += 1
        cost = float(c.f_grad_shared(x, mask, feats, rmask))
        run.step(state, cost, lambda: c.f_update(lrate), len(batches), o["max_epochs"],
                 o["dispFreq"])
        if state.uidx % o["validFreq"] == 0:
            validate(c, data, state, run)
            runs.checkpoint(c, state, run)
            run.restart_clock()


def validate(c: Compiled, data: Data, state: TrainState, run: runs.Run) -> None:
    """Dev recall ranked by S_kl; the model is saved at `saveto` when R@1+R@5+R@10 improves."""
    metrics = rank_scores(c.model, data.dev_regions, data.dev_caps, data.ties)
    if metrics is None:
        run.diverged("the dev word or region vectors are NaN or Inf", state)
    runs.recall_validated(run, state, metrics, lambda m: run.save_best(
        unzip(c.tparams), c.options, c.worddict, dev_rsum=m["rsum"], dev_metrics=m))
