"""Training a decoder: skip-thoughts/decoding's `trainer`, on the captions of a data set.

Options: `uvs.decoding.options.OPTIONS` (every option of the original, under its name). A
run, as `trainer` tells it: resolve the options, open the run (lock, no silent overwrite,
signals, NaN stop, checkpoints; `uvs.runs`), resume or initialise, compute every image's
ctx, compile, then epochs of updates with a dev score (negative log-likelihood per word)
every `validFreq` updates or each epoch, the best decoder at `saveto` (lowest dev cost), a
last checkpoint for exact resume and a JSON-lines log.

Original behaviour kept: the released Adam with lr0 = 0.0002 (the original passed
`lrate = 0.01`, which its `adam` ignored), global-norm clipping, length-homogeneous batches,
captions of `maxlen_w` words or more dropped, `Truth`/`Sample` pairs every `sampleFreq`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytensor.tensor as tensor

from uvs import backend, runs
from uvs.datasets import Split, load_split
from uvs.decoding.files import KIND, expected_shapes
from uvs.decoding.model import build_model, build_sampler, init_params
from uvs.decoding.options import OPTIONS, RECIPES, resolve_options  # noqa: F401 (re-exported)
from uvs.decoding.search import gen_sample
from uvs.errors import UVSError
from uvs.gru_op import gru_impl
from uvs.homogeneous_data import epoch_rng, homogeneous_batches, prepare_data
from uvs.modelfile import shown
from uvs.optim import OPTIMIZERS, clip_global_norm
from uvs.runs import TrainState, optimizer_state
from uvs.utils import init_tparams, itemlist, norm_weight, unzip
from uvs.vocab import build_dictionary

log = logging.getLogger("uvs.decoder")


@dataclass
class Data:
    """The train and dev splits and the ctx of their images: (n_images, dimctx) float32."""

    train: Split
    dev: Split
    ctx_train: np.ndarray
    ctx_dev: np.ndarray


@dataclass
class Compiled:
    """The compiled run: shared parameters, update and scoring functions, the sampler."""

    options: dict
    worddict: dict
    tparams: OrderedDict
    f_grad_shared: Callable
    f_update: Callable
    opt_state: OrderedDict
    f_log_probs: Callable
    f_init: Callable
    f_next: Callable
    trng: object


def trainer(progress: Callable[[dict], None] | None = None, overwrite: bool = False,
            mode: str | None = None, gru: str | None = None, **kw) -> dict:
    """Train a decoder; returns the best dev cost per word, the paths and the update count.

    Options: see `OPTIONS`. `progress` receives each log record; human-readable lines
    (progress, Truth/Sample pairs) go to the `uvs.decoder` logger. Refuses to replace
    another run's files unless `overwrite`; SIGINT/SIGTERM raise `runs.Interrupted` after
    writing the checkpoint; a NaN/Inf cost stops the run with a `UVSError`. mode, gru: the
    PyTensor mode and GRU implementation (defaults: `uvs.backend.mode()`, `gru_impl()`).
    """
    if kw.get("model"):  # stored absolute: the decoder finds it from any folder
        kw = {**kw, "model": os.path.abspath(kw["model"])}
    options = resolve_options(**kw)
    inputs = None if options["reload_"] else read_inputs(options)
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log, kind=KIND) as run:
        if run.resuming:
            ckpt, state = run.load_last()
            options = runs.resume_options(OPTIONS, ckpt, state, kw, run)
            worddict = ckpt.worddict
            params = OrderedDict((k, ckpt.params[k]) for k in expected_shapes(ckpt.options))
            saved = runs.saved_score(run.paths.best, "dev_cost_per_word", KIND)
            if runs.better(saved, state.best, lower=True):
                state.best = saved
        else:
            options["reload_"] = False
            OPTIONS.check(options)
        data = load_data(options, mode, gru)
        if not run.resuming:
            worddict, params = initialise(options, data, inputs)
            state = TrainState()
        run.preflight(runs.checkpoint_bytes(sum(p.nbytes for p in params.values())))
        c = compile_run(params, options, worddict, mode, gru)
        if run.resuming:
            run.restore(c.opt_state, ckpt)
        run.start(options, kind=KIND, n_train=len(data.train.caps), n_words=options["n_words"])
        # without validFreq, the dev score comes after each epoch; at least one is made
        each_epoch = None if options["validFreq"] else (lambda: validate(c, data, state, run))
        runs.run_epochs(run, state, options["max_epochs"],
                        lambda: train_epoch(c, data, state, run),
                        lambda: runs.checkpoint(c, state, run), after_epoch=each_epoch)
        if state.best < 0:
            validate(c, data, state, run)
            runs.checkpoint(c, state, run)
        return run.finish(state, "best_dev_cost_per_word")


def load_data(options: dict, mode: str | None = None, gru: str | None = None) -> Data:
    """The splits and their images' ctx; sets options['dimctx'] (checked when given)."""
    vse = None
    if options["condition"] == "embedding":
        from uvs.tools import load_model as load_vse

        vse = load_vse(options["model"], mode=mode, gru=gru)
    train, dev = (load_split(options["data"], name, options.get("data_dir"), options["cnn"])
                  for name in ("train", "dev"))
    data = Data(train, dev, contexts(options, train, vse), contexts(options, dev, vse))
    width = int(data.ctx_train.shape[1])
    if options.get("dimctx") not in (None, width):
        where = options["model"] if vse is not None else train.ims_path
        raise UVSError(where, f"gives {width}-d contexts, but the decoder has dimctx = "
                       f"{options['dimctx']}")
    options["dimctx"] = width
    return data


def read_inputs(options: dict) -> dict:
    """The `dictionary` and `embeddings` files a fresh run starts from, read and checked
    before anything is written: {'dictionary': worddict or None, 'embeddings': map or None}."""
    from uvs.decoding.files import read_dictionary

    return {"dictionary": read_dictionary(options["dictionary"]) if options["dictionary"]
            else None,
            "embeddings": read_embeddings(options["embeddings"]) if options["embeddings"]
            else None}


def initialise(options: dict, data: Data, inputs: dict | None = None
               ) -> tuple[OrderedDict, OrderedDict]:
    """(dictionary, fresh parameters); sets options['n_words'] (and dim_word from
    `embeddings`). `inputs`: `read_inputs(options)` when already read."""
    rng = np.random.RandomState(options["seed"])
    inputs = read_inputs(options) if inputs is None else inputs
    if inputs["dictionary"] is not None:
        worddict = inputs["dictionary"]
    else:
        worddict = build_dictionary(data.train.caps)[0]
    # the original's Wemb had n_words rows whatever the vocabulary; no more rows than used
    options["n_words"] = min(options["n_words"], len(worddict) + 2)
    preemb = None
    if options["embeddings"]:
        preemb = load_embeddings(options["embeddings"], worddict, options["n_words"], rng,
                                 inputs["embeddings"])
        options["dim_word"] = int(preemb.shape[1])
    return worddict, init_params(options, preemb=preemb, rng=rng)


def compile_run(params: dict, options: dict, worddict: dict, mode: str | None = None,
                gru: str | None = None) -> Compiled:
    """Shared parameters, the loss and its update (weight decay, global-norm clipping, the
    optimizer), the dev scorer and the sampler, compiled."""
    log.info(f"compiling the decoder ({backend.mode(mode)} mode; the compile cache makes "
             "later starts fast)")
    t0 = time.time()
    tparams = init_tparams(params)
    trng, inps, cost = build_model(tparams, options, gru_impl(gru, mode), mode)
    f_init, f_next = build_sampler(tparams, options, trng, mode)
    f_log_probs = backend.function(inps, cost, mode=mode, name="f_log_probs")
    if options["decay_c"] > 0.0:
        cost = cost + np.float32(options["decay_c"]) * sum((vv ** 2).sum()
                                                            for vv in tparams.values())
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    if options["grad_clip"] > 0.0:
        grads = clip_global_norm(grads, np.float32(options["grad_clip"]))
    lr = tensor.scalar(name="lr", dtype="float32")
    f_grad_shared, f_update = OPTIMIZERS[options["optimizer"]](lr, tparams, grads, inps, cost,
                                                               mode=mode)
    log.info(f"compiled in {time.time() - t0:.1f} s")
    return Compiled(options, worddict, tparams, f_grad_shared, f_update,
                    optimizer_state(f_update, tparams), f_log_probs, f_init, f_next, trng)


def train_epoch(c: Compiled, data: Data, state: TrainState, run: runs.Run) -> None:
    """The rest of epoch `state.epoch` from batch `state.batch`: updates, progress, samples,
    checkpoints and validation."""
    o = c.options
    batches = homogeneous_batches(data.train.caps, o["batch_size"], o["maxlen_w"],
                                  epoch_rng(o["seed"], state.epoch))
    lrate = np.float32(o["lrate"])
    run.restart_clock()
    while state.batch < len(batches):
        run.stop_point()
        caps = batches[state.batch]
        x, mask, ctx = prepare_data([data.train.caps[i] for i in caps],
                                    data.ctx_train[caps // 5], c.worddict,
                                    maxlen=o["maxlen_w"], n_words=o["n_words"])
        state.batch += 1
        if x is None:
            continue
        state.uidx += 1
        cost = float(c.f_grad_shared(x, mask, ctx))
        run.step(state, cost, lambda: c.f_update(lrate), len(batches), o["max_epochs"],
                 o["dispFreq"])
        if state.uidx % o["saveFreq"] == 0:
            runs.checkpoint(c, state, run)
        if state.uidx % o["sampleFreq"] == 0:
            show_samples(c, x, ctx, run)
        if o["validFreq"] and state.uidx % o["validFreq"] == 0:
            validate(c, data, state, run)
            runs.checkpoint(c, state, run)
            run.restart_clock()


def show_samples(c: Compiled, x: np.ndarray, ctx: np.ndarray, run: runs.Run) -> None:
    """The original's `Truth`/`Sample` pairs: the batch's first ten captions, greedy decodes."""
    word_idict = {vv: kk for kk, vv in c.worddict.items()}
    word_idict[0], word_idict[1] = "<eos>", "UNK"
    for jj in range(min(10, x.shape[1])):
        sample, _ = gen_sample(c.tparams, c.f_init, c.f_next, ctx[jj:jj + 1], c.options,
                               trng=c.trng, k=1, maxlen=100, stochastic=False, use_unk=False)
        run.say(f"Truth {jj}: {shown(_text(word_idict, x[:, jj]))}")
        run.say(f"Sample (0) {jj}: {shown(_text(word_idict, sample[0]))}")


def validate(c: Compiled, data: Data, state: TrainState, run: runs.Run) -> None:
    """Dev cost per word; the decoder is saved at `saveto` when it is the lowest so far."""
    score = dev_cost(c.f_log_probs, data.dev.caps, data.ctx_dev, c.worddict, c.options)
    if not np.isfinite(score["cost_per_word"]):
        run.diverged("the dev cost is NaN or Inf", state)
    improved = runs.better(score["cost_per_word"], state.best, lower=True)
    if improved:
        state.best, state.best_metrics = score["cost_per_word"], score
        run.save_best(unzip(c.tparams), c.options, c.worddict,
                      dev_cost_per_word=score["cost_per_word"], dev=score)
    run.event("valid", update=state.uidx, epoch=state.epoch, best=improved,
              dev_cost_per_word=score["cost_per_word"], dev_perplexity=score["perplexity"],
              text=(f"  dev  cost/word {score['cost_per_word']:.4f}  perplexity "
                    f"{score['perplexity']:.2f}{'  (best, saved)' if improved else ''}"))


def contexts(options: dict, split: Split, vse: dict | None) -> np.ndarray:
    """ctx of every image of a split: (len(caps) // 5, dimctx) float32; caption i has row i // 5.

    `embedding`: the image's vector in the joint space of the uvs model `vse`;
    `features`: the image's CNN feature row.
    """
    images = split.image_rows()
    if options["condition"] == "features":
        return np.asarray(images, dtype="float32")
    from uvs.tools import check_features, encode_images

    return encode_images(vse, check_features(vse, images, split.ims_path))


MAX_WEMB_VALUES = 2**28  # Wemb from `embeddings`: n_words x dim_word float32 values (1 GiB)


def read_embeddings(path: str) -> dict:
    """The {word: vector} pickle of `embeddings`, each vector checked (a flat list or array
    of finite numbers, all of one length ≤ the decoder's dim_word limit) but not converted."""
    from uvs.decoding.files import MAX_DIM
    from uvs.legacy import load_pickle

    embed_map = load_pickle(path, allow_numpy=True)
    if not isinstance(embed_map, dict) or not embed_map:
        raise UVSError(path, "expected a non-empty pickle of {word: vector}")
    dim_word = None
    for w, v in embed_map.items():
        if isinstance(v, np.ndarray):
            ok, size = v.dtype.kind in "biuf", v.size
        elif type(v) in (list, tuple):
            ok, size = all(type(x) in (int, float) for x in v), len(v)
        else:
            ok, size = False, 0
        if not ok:
            raise UVSError(path, f"the vector of {shown(w)!r} is not a list or array of "
                           f"numbers ({type(v).__name__})")
        if dim_word is None:
            dim_word = size
        if size != dim_word:
            raise UVSError(path, f"word vectors of different lengths ({dim_word} and {size}, "
                           f"at {shown(w)!r})")
        if not 1 <= size <= MAX_DIM:
            raise UVSError(path, f"word vectors of {size} values (1 to {MAX_DIM} allowed)")
    checked: set[int] = set()  # a vector shared by many words is checked once
    for w, v in embed_map.items():
        if id(v) not in checked and not _finite32(v):
            raise UVSError(path, f"the vector of {shown(w)!r} holds NaN, Inf or values beyond "
                           "float32")
        checked.add(id(v))
    return embed_map


def _finite32(v) -> bool:
    """Whether a flat list or numeric array holds only finite values within float32."""
    limit = float(np.finfo("float32").max)
    if isinstance(v, np.ndarray):
        return bool(v.size == 0 or (np.isfinite(v).all() and np.abs(v).max() <= limit))
    return all(abs(x) <= limit for x in v)  # NaN compares false; ints of any size are fine


def load_embeddings(path: str, worddict: dict, n_words: int, rng,
                    embed_map: dict | None = None) -> np.ndarray:
    """Wemb from a pickle of word → vector (`embeddings`), the rest random, as the original;
    `embed_map`: that pickle already read by `read_embeddings`."""
    embed_map = read_embeddings(path) if embed_map is None else embed_map
    v0 = next(iter(embed_map.values()))
    dim_word = int(v0.size if isinstance(v0, np.ndarray) else len(v0))
    if n_words * dim_word > MAX_WEMB_VALUES:
        raise UVSError(path, f"a {n_words} x {dim_word} Wemb is more than {MAX_WEMB_VALUES} "
                       "values")
    preemb = norm_weight(n_words, dim_word, rng=rng)
    done: dict[int, np.ndarray] = {}  # a vector shared by many words is converted once
    for w in list(worddict)[:n_words - 2]:
        if w in embed_map:
            v = embed_map[w]
            if id(v) not in done:
                done[id(v)] = np.asarray(v, dtype="float64").ravel().astype("float32")
            preemb[worddict[w]] = done[id(v)]
    return preemb


def _text(word_idict: dict, seq) -> str:
    out = []
    for vv in seq:
        if vv == 0:
            break
        out.append(word_idict.get(int(vv), "UNK"))
    return " ".join(out)


def dev_cost(f_log_probs, caps: list[str], ctx: np.ndarray, worddict: dict, options: dict,
             batch_size: int = 256) -> dict:
    """Summed −log p over a split's words (each caption's `<eos>` included), per word.

    Returns {'cost_per_word', 'perplexity', 'words'}; captions of maxlen_w words or more are
    left out as in training.
    """
    from uvs.vocab import tokenize

    order = np.argsort([len(tokenize(c)) for c in caps], kind="stable")
    ctx = ctx[np.arange(len(caps)) // 5]
    total, words = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        x, mask, cx = prepare_data([caps[i] for i in idx], ctx[idx], worddict,
                                   maxlen=options["maxlen_w"], n_words=options["n_words"])
        if x is None:
            continue
        total += float(f_log_probs(x, mask, cx))
        words += int(mask.sum())
    per_word = total / max(words, 1)
    return {"cost_per_word": per_word, "perplexity": float(np.exp(per_word)), "words": words}
