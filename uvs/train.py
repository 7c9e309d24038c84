"""Training: the original recipes (`vse`, `order`, `symmetric`), checkpoints and exact resume."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import OrderedDict

import click
import numpy as np
import pytensor.tensor as tensor

from uvs import backend
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
from uvs.modelfile import read_model, write_model
from uvs.optim import OPTIMIZERS, clip_each_norm, clip_global_norm
from uvs.tools import encode_images, encode_sentences
from uvs.utils import init_tparams, itemlist, unzip
from uvs.vocab import build_dictionary

DEFAULTS = OrderedDict(
    data="f8k", margin=0.2, dim=1024, dim_image=4096, dim_word=300, encoder="gru",
    max_epochs=15, dispFreq=10, decay_c=0.0, grad_clip=2.0, maxlen_w=100, optimizer="adam",
    batch_size=128, saveto=None, validFreq=100, lrate=0.0002, reload_=False,
    method="cosine", abs=False, max_violation=False, recipe="vse", seed=1234, cnn=None,
    data_dir=None,
)
# The presets of the two original trainers; options given explicitly win over them.
RECIPES = {
    "vse": {"method": "cosine", "abs": False, "margin": 0.2, "lrate": 0.0002},
    "order": {"method": "order", "abs": True, "margin": 0.05, "lrate": 0.001,
              "cnn": "10crop"},
    "symmetric": {"method": "cosine", "abs": False, "margin": 0.2, "lrate": 0.001,
                  "cnn": "10crop"},
}


def resolve_options(**kw) -> OrderedDict:
    """Defaults, then the recipe's preset, then the options given (None = not given); checked."""
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise UVSError(None, f"unknown option(s): {', '.join(sorted(unknown))}")
    recipe = kw.get("recipe") or DEFAULTS["recipe"]
    if recipe not in RECIPES:
        raise UVSError(None, f"unknown recipe {recipe!r} (expected {', '.join(RECIPES)})")
    options = OrderedDict(DEFAULTS)
    options.update(RECIPES[recipe])
    options.update({k: v for k, v in kw.items() if v is not None})
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.npz")
    _check_options(options)
    return options


def _check_options(o: dict) -> None:
    def bad(problem):
        raise UVSError(None, f"bad option: {problem}")

    if o["encoder"] not in ("gru", "bow"):
        bad(f"encoder {o['encoder']!r} (expected gru or bow)")
    if o["encoder"] == "bow" and o["dim"] != o["dim_word"]:
        bad(f"the bow encoder needs dim == dim_word (got {o['dim']} and {o['dim_word']})")
    if o["method"] not in ("cosine", "order"):
        bad(f"method {o['method']!r} (expected cosine or order)")
    if o["optimizer"] not in OPTIMIZERS:
        bad(f"optimizer {o['optimizer']!r} (expected {', '.join(OPTIMIZERS)})")
    for key in ("dim", "dim_image", "dim_word", "max_epochs", "dispFreq", "validFreq",
                "maxlen_w"):
        if not isinstance(o[key], int) or o[key] < 1:
            bad(f"{key} must be a positive integer (got {o[key]!r})")
    if not isinstance(o["batch_size"], int) or o["batch_size"] < 2:
        bad(f"batch_size must be at least 2 for a contrastive loss (got {o['batch_size']!r})")
    for key in ("margin", "decay_c", "grad_clip"):
        if not np.isfinite(o[key]) or o[key] < 0:
            bad(f"{key} must be a finite number ≥ 0 (got {o[key]!r})")
    if not np.isfinite(o["lrate"]) or o["lrate"] <= 0:
        bad(f"lrate must be a positive number (got {o['lrate']!r})")
    if not str(o["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {o['saveto']!r})")


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


def optimizer_state(f_update, tparams: dict) -> OrderedDict:
    """The optimizer's own shared variables (moments, step count), by name."""
    own = {id(v) for v in tparams.values()}
    return OrderedDict((v.name, v) for v in f_update.get_shared() if id(v) not in own)


def checkpoint_paths(saveto: str) -> tuple[str, str]:
    """(last checkpoint, training log) beside the best model `saveto`."""
    stem = saveto[:-4]
    return stem + ".last.npz", stem + ".log.jsonl"


def _preflight(saveto: str, nbytes: int) -> None:
    """Fail now, not after an hour, if the models cannot be written."""
    folder = os.path.dirname(os.path.abspath(saveto))
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".uvs-write-test-{os.getpid()}")
        with open(probe, "wb") as f:
            f.write(b"0")
        os.unlink(probe)
    except OSError as err:
        raise UVSError(saveto, f"cannot write here: {err.strerror}") from None
    need = 6 * nbytes  # best + last (params, two moments), each briefly twice while renamed
    free = shutil.disk_usage(folder).free
    if free < need:
        raise UVSError(saveto, f"not enough disk space: checkpoints need about "
                       f"{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free")


class _Log:
    """JSON lines beside the model, and progress lines on stderr unless quiet."""

    def __init__(self, path: str, quiet: bool):
        self.path, self.quiet = path, quiet

    def event(self, **record) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def say(self, text: str) -> None:
        if not self.quiet:
            click.echo(text, err=True)


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


def _validate(model: dict, dev: Split) -> dict | None:
    """Dev metrics, or None when the embeddings are no longer finite."""
    s = encode_sentences(model, dev.caps)
    im = encode_images(model, dev.image_rows())
    if not (np.isfinite(s).all() and np.isfinite(im).all()):
        return None
    return rank_embeddings(model, im, s, ties="last" if dev.per_caption else "first")


def trainer(quiet: bool = False, **kw) -> dict:
    """Train a model as the original `train.trainer` did; returns the best dev metrics.

    Options: see `DEFAULTS` (names as in the originals, e.g. dispFreq, validFreq, reload_).
    Saves the best model (by R@1+R@5+R@10 summed over both directions on dev) at `saveto`
    in the uvs format, a `last` checkpoint for `reload_`, and a JSON-lines log.
    """
    options = resolve_options(**kw)
    saveto = options["saveto"]
    last_path, log_path = checkpoint_paths(saveto)
    log = _Log(log_path, quiet)
    if not options["reload_"] and os.path.exists(log_path):
        os.unlink(log_path)

    state = {"epoch": 0, "batch": 0, "uidx": 0, "best": -1.0, "best_metrics": None}
    resume = options["reload_"] and os.path.exists(last_path)
    if options["reload_"] and not resume:
        log.say(f"no checkpoint at {last_path}: starting afresh")
    if resume:
        ckpt = read_model(last_path)
        trained = dict(ckpt.options)
        for key in ("max_epochs", "dispFreq", "validFreq", "lrate", "saveto", "data_dir"):
            if kw.get(key) is not None:  # given again: may change on resume
                trained[key] = options[key]
        options, worddict, params = OrderedDict(trained), ckpt.worddict, ckpt.params
        state.update(ckpt.extra["train_state"])
        if os.path.exists(saveto):
            state["best"] = max(state["best"], read_model(saveto).extra.get("dev_rsum", -1.0))

    train = load_split(options["data"], "train", options.get("data_dir"), options["cnn"])
    dev = load_split(options["data"], "dev", options.get("data_dir"), options["cnn"])
    for split in (train, dev):
        if split.ims.shape[1] != options["dim_image"]:
            raise UVSError(split.ims_path, f"features are {split.ims.shape[1]} wide but "
                           f"dim_image = {options['dim_image']}")
    if not resume:
        worddict = build_dictionary(train.caps + dev.caps)[0]
        # as released: VSE sized Wemb by len(worddict), so its two rarest words are UNK
        options["n_words"] = len(worddict) + (2 if order_lineage(options) else 0)
        params = init_params(options, rng=np.random.RandomState(options["seed"]))

    nbytes = sum(p.nbytes for p in params.values())
    _preflight(saveto, nbytes)
    tparams = init_tparams(params)
    log.say(f"compiling the training graph ({backend.mode()} mode; the first time takes "
            "a minute or more, later starts use the compile cache)")
    t0 = time.time()
    f_grad_shared, f_update = compile_update(tparams, options)
    [x_, m_], sents = build_sentence_encoder(tparams, options)
    [im_], images = build_image_encoder(tparams, options)
    model = {"options": options, "worddict": worddict,
             "f_senc": backend.function([x_, m_], sents, name="f_senc"),
             "f_ienc": backend.function([im_], images, name="f_ienc")}
    opt_state = optimizer_state(f_update, tparams)
    if resume:
        for name, var in opt_state.items():
            var.set_value(ckpt.extra["arrays"][name])
    log.say(f"compiled in {time.time() - t0:.1f} s")
    log.event(event="start", resume=bool(resume), options=_plain(options),
              n_train=len(train.caps), n_words=options["n_words"])

    def save(path, **meta):
        write_model(path, unzip(tparams), options, worddict, extra_meta=meta,
                    extra_arrays=(OrderedDict((k, v.get_value()) for k, v in opt_state.items())
                                  if path == last_path else None))

    def checkpoint():
        save(last_path, train_state=dict(state))

    def diverged(what):
        log.event(event="diverged", update=state["uidx"], what=what)
        kept = f"best model kept at {saveto}" if state["best"] >= 0 else "nothing saved"
        raise UVSError(saveto, f"training diverged: {what} at update {state['uidx']} "
                       f"(epoch {state['epoch'] + 1}); {kept}; try a smaller --lrate")

    def validate():
        metrics = _validate(model, dev)
        if metrics is None:
            diverged("the dev embeddings are NaN or Inf")
        improved = metrics["rsum"] > state["best"]
        if improved:
            state["best"], state["best_metrics"] = metrics["rsum"], metrics
            save(saveto, dev_rsum=metrics["rsum"], dev_metrics=metrics)
        log.event(event="valid", update=state["uidx"], epoch=state["epoch"], best=improved,
                  **metrics)
        log.say(f"  dev  i2t {metrics['i2t']['r1']:.1f} {metrics['i2t']['r5']:.1f} "
                f"{metrics['i2t']['r10']:.1f}  t2i {metrics['t2i']['r1']:.1f} "
                f"{metrics['t2i']['r5']:.1f} {metrics['t2i']['r10']:.1f}  rsum "
                f"{metrics['rsum']:.1f}{'  (best, saved)' if improved else ''}")

    lrate = np.float32(options["lrate"])
    validated_at = -1
    while state["epoch"] < options["max_epochs"]:
        batches = _epoch_batches(options, train, state["epoch"])
        t_disp, n_disp = time.time(), 0
        while state["batch"] < len(batches):
            caps, rows = batches[state["batch"]]
            x, mask, im = prepare_data([train.caps[c] for c in caps], train.ims[rows],
                                       worddict, maxlen=options["maxlen_w"],
                                       n_words=options["n_words"])
            state["batch"] += 1
            if x is None:
                continue
            state["uidx"] += 1
            cost = float(f_grad_shared(x, mask, im))
            if not np.isfinite(cost):
                diverged(f"cost is {cost}")
            f_update(lrate)
            n_disp += 1
            if state["uidx"] % options["dispFreq"] == 0:
                spu = (time.time() - t_disp) / n_disp
                left = (len(batches) - state["batch"]
                        + (options["max_epochs"] - state["epoch"] - 1) * len(batches))
                log.event(event="update", update=state["uidx"], epoch=state["epoch"] + 1,
                          cost=cost, seconds_per_update=spu)
                log.say(f"epoch {state['epoch'] + 1}/{options['max_epochs']}  update "
                        f"{state['uidx']}  cost {cost:.4f}  {1 / spu:.2f} updates/s  "
                        f"ETA {_duration(left * spu)}")
                t_disp, n_disp = time.time(), 0
            if state["uidx"] % options["validFreq"] == 0:
                validate()
                validated_at = state["uidx"]
                checkpoint()
                t_disp, n_disp = time.time(), 0
        state["epoch"] += 1
        state["batch"] = 0
        checkpoint()
    if validated_at != state["uidx"] and state["uidx"] > 0:
        validate()
        checkpoint()
    log.event(event="end", update=state["uidx"], best=state["best"])
    return {"best_rsum": state["best"], "best_metrics": state["best_metrics"],
            "updates": state["uidx"], "saveto": saveto, "last": last_path, "log": log_path}


def _plain(options: dict) -> dict:
    return json.loads(json.dumps(options, default=str))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
