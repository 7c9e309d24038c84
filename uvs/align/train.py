"""Training the alignment model: options, batches of regions and words, checkpoints, resume.

The run plumbing (lock, no silent overwrite, log, best and last checkpoints, signals, NaN
stop) is `uvs.runs`, as for `uvs.train`; dev recall ranked by S_kl goes into `valid` events.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict

import numpy as np
import pytensor.tensor as tensor

from uvs import backend, runs
from uvs.align.evaluation import compile_model, prepare_words, rank_scores, sentence_ids
from uvs.align.evaluation import split_regions as _split_regions
from uvs.align.model import KIND, build_model, init_params
from uvs.align.options import OPTIONS, resolve_options
from uvs.align.regions import Regions
from uvs.datasets import layout, load_split
from uvs.errors import UVSError
from uvs.homogeneous_data import epoch_rng, random_batches
from uvs.optim import OPTIMIZERS, clip_global_norm
from uvs.runs import TrainState, optimizer_state
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


def load_data(options: dict) -> dict:
    """Train and dev captions with their regions, matched and as wide as each other."""
    out = {}
    for split in ("train", "dev"):
        ds = load_split(options["data"], split, options.get("data_dir"))
        regions = _split_regions(options.get("regions"), options["data"], split,
                                 len(ds.caps) // 5, options.get("data_dir"),
                                 options.get("dim_image"))
        options.setdefault("dim_image", int(regions.features.shape[1]))
        out[split] = (ds.caps, regions)
    return out


def trainer(progress=None, overwrite: bool = False, **kw) -> dict:
    """Train an alignment model; the best on dev (R@1+R@5+R@10 both ways, by S_kl) is saved
    at `saveto` (kind 'align'), with a last checkpoint and a JSON-lines log beside it."""
    options = resolve_options(**kw)
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log) as run:
        if run.resuming:
            ckpt, state = run.load_last()
            if ckpt.kind != KIND:
                raise UVSError(ckpt.path, f"this is a {ckpt.kind} model's checkpoint, not an "
                               "alignment model's")
            options = _resume_options(ckpt, state, kw, run)
            worddict, params = ckpt.worddict, ckpt.params
            state.best = max(state.best, _best_saved(run.paths.best))
        data = load_data(options)
        if not run.resuming:
            caps = data["train"][0] + data["dev"][0]
            worddict = build_dictionary(caps)[0]
            options["n_words"] = len(worddict) + 2
            params = init_params(options, rng=np.random.RandomState(options["seed"]))
            state = TrainState()
        run.preflight(runs.checkpoint_bytes(sum(p.nbytes for p in params.values())))
        log.info(f"compiling the training graph ({backend.mode()} mode)")
        t0 = time.time()
        tparams = init_tparams(params)
        f_grad_shared, f_update = compile_update(tparams, options)
        model = compile_model(params, options, worddict, tparams=tparams)
        opt_state = optimizer_state(f_update, tparams)
        if run.resuming:
            for name, var in opt_state.items():
                var.set_value(ckpt.extra["arrays"][name])
        log.info(f"compiled in {time.time() - t0:.1f} s")
        train_ids = sentence_ids(model, data["train"][0], "the train captions")
        ties = "last" if layout(options["data"], options.get("data_dir")) == "vse" else "first"
        run.event("start", resume=run.resuming, options=_plain(options),
                  n_train=len(train_ids), n_words=options["n_words"])

        def checkpoint():
            run.save_last(unzip(tparams), options, worddict, state,
                          OrderedDict((k, v.get_value()) for k, v in opt_state.items()),
                          kind=KIND)

        def validate():
            caps, regions = data["dev"]
            metrics = rank_scores(model, regions, caps, ties)
            if metrics is None:
                run.diverged("the dev word or region vectors are NaN or Inf", state)
            improved = metrics["rsum"] > state.best
            if improved:
                state.best, state.best_metrics = metrics["rsum"], metrics
                run.save_best(unzip(tparams), options, worddict, kind=KIND,
                              dev_rsum=metrics["rsum"], dev_metrics=metrics)
            i2t, t2i = metrics["i2t"], metrics["t2i"]
            run.event("valid", update=state.uidx, epoch=state.epoch, best=improved, **metrics,
                      text=(f"  dev  i2t {i2t['r1']:.1f} {i2t['r5']:.1f} {i2t['r10']:.1f}  "
                            f"t2i {t2i['r1']:.1f} {t2i['r5']:.1f} {t2i['r10']:.1f}  rsum "
                            f"{metrics['rsum']:.1f}{'  (best, saved)' if improved else ''}"))

        try:
            regions = data["train"][1]
            lrate = np.float32(options["lrate"])
            while state.epoch < options["max_epochs"]:
                rng = epoch_rng(options["seed"], state.epoch)
                batches = random_batches(len(regions), options["batch_size"], rng)
                run.restart_clock()
                while state.batch < len(batches):
                    run.stop_point()
                    images, caps = batches[state.batch]
                    state.batch += 1
                    keep = [j for j, c in enumerate(caps)
                            if len(train_ids[c]) < options["maxlen_w"]]
                    if len(keep) < 2:
                        continue
                    x, mask = prepare_words([train_ids[caps[j]] for j in keep])
                    feats, rmask = region_batch(regions, images[keep])
                    state.uidx += 1
                    cost = float(f_grad_shared(x, mask, feats, rmask))
                    if not np.isfinite(cost):
                        run.diverged(f"cost is {cost}", state)
                    f_update(lrate)
                    run.tick()
                    if state.uidx % options["dispFreq"] == 0:
                        left = (len(batches) - state.batch
                                + (options["max_epochs"] - state.epoch - 1) * len(batches))
                        run.progress(state, options["max_epochs"], left, cost=cost)
                    if state.uidx % options["validFreq"] == 0:
                        validate()
                        checkpoint()
                        run.restart_clock()
                state.epoch += 1
                state.batch = 0
                checkpoint()
            if state.uidx > 0 and state.uidx % options["validFreq"] != 0:
                validate()
                checkpoint()
        except runs.Interrupted as stop:
            checkpoint()
            raise run.interrupted(stop, state) from None
        run.event("end", update=state.uidx, best=state.best)
    return {"best_rsum": state.best, "best_metrics": state.best_metrics,
            "updates": state.uidx, "saveto": run.paths.best, "last": run.paths.last,
            "log": run.paths.log}


def _resume_options(ckpt, state, kw, run) -> OrderedDict:
    given = OPTIONS.given(kw)
    given.pop("reload_", None)
    given.setdefault("saveto", run.paths.best)
    options = OrderedDict(ckpt.options)
    changes, conflicts = OPTIONS.on_resume(options, given)
    if conflicts:
        raise UVSError(ckpt.path, f"options contradict the checkpoint: {', '.join(conflicts)}; "
                       "drop them to resume, or start afresh under another --saveto")
    options.update((name, now) for name, (was, now) in changes.items())
    run.resumed(state, changes)
    return options


def _best_saved(saveto: str) -> float:
    import os

    from uvs.modelfile import read_model

    if not os.path.exists(saveto):
        return -1.0
    return read_model(saveto, kind=KIND).extra.get("dev_rsum", -1.0)


def _plain(options: dict) -> dict:
    return json.loads(json.dumps(options, default=str))
