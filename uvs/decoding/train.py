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
from functools import partial

import numpy as np

from uvs import backend, runs, vocab
from uvs.datasets import Split, load_split
from uvs.decoding.evaluation import contexts, dev_cost
from uvs.decoding.files import KIND, expected_shapes, read_dictionary, read_embeddings
from uvs.decoding.model import build_model, build_sampler, init_params
from uvs.decoding.options import OPTIONS, RECIPES, resolve_options  # noqa: F401 (re-exported)
from uvs.decoding.search import gen_sample
from uvs.errors import UVSError
from uvs.gru_op import gru_impl
from uvs.homogeneous_data import epoch_rng, homogeneous_batches, prepare_data
from uvs.modelfile import shown
from uvs.optim import build_optimizer
from uvs.runs import Compiled
from uvs.tools import load_model as load_vse
from uvs.utils import init_tparams, norm_weight

log = logging.getLogger("uvs.decoder")


@dataclass
class Data:
    """The train and dev splits and the ctx of their images: (n_images, dimctx) float32."""

    train: Split
    dev: Split
    ctx_train: np.ndarray
    ctx_dev: np.ndarray


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
                  on_event=progress, logger=log, kind=KIND, score="dev_cost_per_word",
                  lower=True) as run:
        o, ckpt = run.resume(OPTIONS, options, kw)
        data = load_data(o, mode, gru)
        if ckpt:
            worddict = ckpt.worddict
            params = OrderedDict((k, ckpt.params[k]) for k in expected_shapes(ckpt.options))
        else:
            worddict, params = initialise(o, data, inputs)
        run.preflight(params)
        c = run.start(compile_run(params, o, worddict, mode, gru),
                      n_train=len(data.train.caps), n_words=o["n_words"])
        lrate = np.float32(o["lrate"])
        # without validFreq, the dev score comes after each epoch; at least one is made
        for caps in run.batches(partial(epoch_batches, o, data.train), o, last="unscored"):
            if caps is runs.VALIDATE:
                validate(c, data, run)
                continue
            x, mask, ctx = prepare_data([data.train.caps[i] for i in caps],
                                        data.ctx_train[caps // 5], worddict,
                                        maxlen=o["maxlen_w"], n_words=o["n_words"])
            if x is None:
                continue
            run.cost(c.f_grad_shared(x, mask, ctx))
            c.f_update(lrate)
            if run.every(o["saveFreq"]):
                run.checkpoint()
            if run.every(o["sampleFreq"]):
                show_samples(c.model, x, ctx, run)
        return run.finish("best_dev_cost_per_word")


def epoch_batches(options: dict, train: Split, epoch: int) -> list[np.ndarray]:
    """The caption indices of each batch of one epoch, fixed by (seed, epoch)."""
    return homogeneous_batches(train.caps, options["batch_size"], options["maxlen_w"],
                               epoch_rng(options["seed"], epoch))


def load_data(options: dict, mode: str | None = None, gru: str | None = None) -> Data:
    """The splits and their images' ctx; sets options['dimctx'] (checked when given)."""
    vse = None
    if options["condition"] == "embedding":
        vse = load_vse(options["model"], mode=mode, gru=gru)
    train, dev = (load_split(options["data"], name, options.get("data_dir"), options["cnn"])
                  for name in ("train", "dev"))
    data = Data(train, dev, contexts(train, vse), contexts(dev, vse))
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
        worddict = vocab.build_dictionary(data.train.caps)[0]
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
    """Shared parameters, the loss and its update (`build_optimizer`: weight decay,
    global-norm clipping, the optimizer), the dev scorer and the sampler, compiled; the
    model holds what `uvs.decoding.tools` uses (tparams, f_init, f_next, trng, word_idict)."""
    log.info(f"compiling the decoder ({backend.mode(mode)} mode; the compile cache makes "
             "later starts fast)")
    t0 = time.time()
    tparams = init_tparams(params)
    trng, inps, cost = build_model(tparams, options, gru_impl(gru, mode), mode)
    f_init, f_next = build_sampler(tparams, options, trng, mode)
    f_log_probs = backend.function(inps, cost, mode=mode, name="f_log_probs")
    f_grad_shared, f_update = build_optimizer(tparams, inps, cost, options, mode=mode)
    log.info(f"compiled in {time.time() - t0:.1f} s")
    model = {"options": options, "worddict": worddict, "word_idict": vocab.inverse(worddict),
             "tparams": tparams, "f_init": f_init, "f_next": f_next, "trng": trng,
             "f_log_probs": f_log_probs}
    return Compiled(tparams, f_grad_shared, f_update, model)


def show_samples(dec: dict, x: np.ndarray, ctx: np.ndarray, run: runs.Run) -> None:
    """The original's `Truth`/`Sample` pairs: the batch's first ten captions, greedy decodes."""
    for jj in range(min(10, x.shape[1])):
        sample, _ = gen_sample(dec["tparams"], dec["f_init"], dec["f_next"], ctx[jj:jj + 1],
                               dec["options"], trng=dec["trng"], k=1, maxlen=100,
                               stochastic=False, use_unk=False)
        run.say(f"Truth {jj}: {shown(vocab.text(dec['word_idict'], x[:, jj]))}")
        run.say(f"Sample (0) {jj}: {shown(vocab.text(dec['word_idict'], sample[0]))}")


def validate(c: Compiled, data: Data, run: runs.Run) -> None:
    """Dev cost per word; the decoder is saved at `saveto` when it is the lowest so far."""
    o = c.options
    score = dev_cost(c.model["f_log_probs"], data.dev.caps, data.ctx_dev, c.worddict,
                     o["maxlen_w"], o["n_words"])
    if not np.isfinite(score["cost_per_word"]):
        run.diverged("the dev cost is NaN or Inf")
    improved = run.improved(score["cost_per_word"], score,
                            dev_cost_per_word=score["cost_per_word"], dev=score)
    run.valid(improved, f"  dev  cost/word {score['cost_per_word']:.4f}  perplexity "
              f"{score['perplexity']:.2f}", dev_cost_per_word=score["cost_per_word"],
              dev_perplexity=score["perplexity"])


MAX_WEMB_VALUES = 2**28  # Wemb from `embeddings`: n_words x dim_word float32 values (1 GiB)


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
