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
from functools import partial

import numpy as np

from uvs import backend, runs
from uvs.align.evaluation import compile_model, prepare_words, rank_scores, sentence_ids
from uvs.align.evaluation import split_regions as _split_regions
from uvs.align.model import KIND, build_model, init_params
from uvs.align.options import OPTIONS, resolve_options
from uvs.datasets import layout, load_split
from uvs.homogeneous_data import epoch_rng, random_batches
from uvs.metrics import tie_rule
from uvs.optim import build_optimizer
from uvs.regions import Regions
from uvs.runs import Compiled
from uvs.utils import init_tparams
from uvs.vocab import build_dictionary

log = logging.getLogger("uvs.align")


def compile_update(tparams: dict, options: dict, mode: str | None = None):
    """(f_grad_shared(x, mask, regions, rmask) -> cost, f_update(lr)) for the objective
    (`build_optimizer`: gradients clipped by their global norm), in PyTensor `mode`."""
    inps, cost = build_model(tparams, options)
    return build_optimizer(tparams, inps, cost, options, mode=mode)


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
    """Train and dev captions with their regions; ties: the data set's tie rule for dev
    recall."""

    train_caps: list[str]
    train_regions: Regions
    dev_caps: list[str]
    dev_regions: Regions
    ties: str = "first"


def trainer(progress: Callable[[dict], None] | None = None, overwrite: bool = False,
            mode: str | None = None, **kw) -> dict:
    """Train an alignment model; the best on dev (R@1+R@5+R@10 both ways, by S_kl) is saved
    at `saveto` (kind 'align'), with a last checkpoint and a JSON-lines log beside it.
    Human-readable lines go to the `uvs.align` logger; mode: the PyTensor mode (default
    `uvs.backend.mode()`; the BRNN has no GRU to choose)."""
    options = resolve_options(**kw)
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log, kind=KIND) as run:
        o, ckpt = run.resume(OPTIONS, options, kw)
        data = load_data(o)
        worddict, params = (ckpt.worddict, ckpt.params) if ckpt else initialise(o, data)
        run.preflight(params)
        c = compile_run(params, o, worddict, mode)
        train_ids = sentence_ids(c.model, data.train_caps, "the train captions")
        run.start(c, n_train=len(train_ids), n_words=o["n_words"])
        regions, lrate = data.train_regions, np.float32(o["lrate"])
        for batch in run.batches(partial(epoch_batches, o, regions), o):
            if batch is runs.VALIDATE:
                validate(c, data, run)
                continue
            images, caps = batch
            keep = [j for j, cap in enumerate(caps) if len(train_ids[cap]) < o["maxlen_w"]]
            if len(keep) < 2:
                continue
            x, mask = prepare_words([train_ids[caps[j]] for j in keep])
            feats, rmask = region_batch(regions, images[keep])
            run.cost(c.f_grad_shared(x, mask, feats, rmask))
            c.f_update(lrate)
        return run.finish()


def epoch_batches(options: dict, regions: Regions, epoch: int) -> list:
    """[(photo indices, caption indices)] of one epoch, fixed by (seed, epoch)."""
    return random_batches(len(regions), options["batch_size"],
                          epoch_rng(options["seed"], epoch))


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
    ties = tie_rule(layout(options["data"], options.get("data_dir")))
    return Data(*out, ties=ties)


def initialise(options: dict, data: Data) -> tuple[OrderedDict, dict]:
    """(dictionary, fresh parameters); sets options['n_words']."""
    worddict = build_dictionary(data.train_caps + data.dev_caps)[0]
    options["n_words"] = len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(options["seed"]))
    return worddict, params


def compile_run(params: dict, options: dict, worddict: dict,
                mode: str | None = None) -> Compiled:
    """Shared parameters, the update functions and the scoring model, compiled."""
    log.info(f"compiling the training graph ({backend.mode(mode)} mode)")
    t0 = time.time()
    tparams = init_tparams(params)
    f_grad_shared, f_update = compile_update(tparams, options, mode)
    model = compile_model(params, options, worddict, tparams=tparams, mode=mode)
    log.info(f"compiled in {time.time() - t0:.1f} s")
    return Compiled(tparams, f_grad_shared, f_update, model)


def validate(c: Compiled, data: Data, run: runs.Run) -> None:
    """Dev recall ranked by S_kl; the model is saved at `saveto` when R@1+R@5+R@10
    improves."""
    metrics = rank_scores(c.model, data.dev_regions, data.dev_caps, data.ties)
    if metrics is None:
        run.diverged("the dev word or region vectors are NaN or Inf")
    run.recall(metrics)
