"""Training a decoder: skip-thoughts/decoding's `trainer`, on the captions of a data set.

Every option of the original (`dimctx dim_word dim decoder doutput max_epochs dispFreq decay_c
grad_clip n_words maxlen_w optimizer batch_size saveto dictionary embeddings saveFreq
sampleFreq reload_`), what the ctx is (`condition`: the image's embedding by a uvs model, or
its CNN feature row), how it enters (`inject`), and what `uvs train` gives: a dev score
(negative log-likelihood per word) every `validFreq` updates, the best model at `saveto`, a
last checkpoint for exact resume, a JSON-lines log, a NaN stop and progress with an ETA.

Original behaviour kept: the released Adam with lr0 = 0.0002 (the original passed
`lrate = 0.01`, which its `adam` ignored), global-norm clipping, length-homogeneous batches,
captions of `maxlen_w` words or more dropped, `Truth`/`Sample` pairs every `sampleFreq`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import pytensor.tensor as tensor

from uvs import backend
from uvs.datasets import Split, load_split
from uvs.decoding.files import CONDITIONS, read_decoder, write_decoder
from uvs.decoding.model import INJECTIONS, build_model, build_sampler, init_params
from uvs.decoding.search import gen_sample
from uvs.errors import UVSError
from uvs.homogeneous_data import epoch_rng, homogeneous_batches, prepare_data
from uvs.optim import OPTIMIZERS, clip_global_norm
from uvs.utils import init_tparams, itemlist, norm_weight, unzip
from uvs.vocab import build_dictionary

# The original trainer's defaults (its `dimctx` is implied by the condition here).
DEFAULTS = OrderedDict(
    data="f8k", data_dir=None, condition="embedding", inject="init", model=None, cnn=None,
    dim_word=620, dim=1600, decoder="gru", doutput=False, max_epochs=5, dispFreq=1,
    decay_c=0.0, grad_clip=5.0, n_words=40000, maxlen_w=100, optimizer="adam", batch_size=16,
    saveto=None, dictionary=None, embeddings=None, saveFreq=1000, sampleFreq=100,
    reload_=False, validFreq=None, lrate=0.0002, seed=1234, overwrite=False,
)
# Small enough for two CPU cores in a minute or two; explicit options win.
SAMPLE_PRESET = {"dim_word": 64, "dim": 128, "batch_size": 64, "max_epochs": 8,
                 "dispFreq": 20, "sampleFreq": 200, "lrate": 0.002}
# May change on --reload (the rest fix shapes or data and are refused if different).
SCHEDULE = ("max_epochs", "dispFreq", "saveFreq", "sampleFreq", "validFreq", "lrate",
            "data_dir", "saveto")


class Interrupted(UVSError):
    """Training stopped by a signal after writing its checkpoint."""


def resolve_options(**kw) -> OrderedDict:
    """Defaults, the sample preset when `data == 'sample'`, then the options given; checked."""
    unknown = set(kw) - set(DEFAULTS)
    if unknown:
        raise UVSError(None, f"unknown option(s): {', '.join(sorted(unknown))}")
    o = OrderedDict(DEFAULTS)
    if (kw.get("data") or o["data"]) == "sample":
        o.update(SAMPLE_PRESET)
    o.update({k: v for k, v in kw.items() if v is not None})
    if o["saveto"] is None:
        o["saveto"] = os.path.join("models", f"{o['data']}.decoder.npz")

    def bad(problem):
        raise UVSError(None, f"bad option: {problem}")

    if o["condition"] not in CONDITIONS:
        bad(f"condition {o['condition']!r} (expected embedding or features)")
    if o["inject"] not in INJECTIONS:
        bad(f"inject {o['inject']!r} (expected init or bias)")
    if o["condition"] == "embedding" and not o["model"]:
        bad("--condition embedding needs --model VSE.npz (the joint space to decode)")
    if o["decoder"] != "gru":
        bad(f"decoder {o['decoder']!r} (only gru, as the original)")
    if o["optimizer"] not in OPTIMIZERS:
        bad(f"optimizer {o['optimizer']!r} (expected {', '.join(OPTIMIZERS)})")
    for key in ("dim_word", "dim", "max_epochs", "dispFreq", "saveFreq", "sampleFreq",
                "maxlen_w", "batch_size", "n_words"):
        if not isinstance(o[key], int) or o[key] < 1:
            bad(f"{key} must be a positive integer (got {o[key]!r})")
    if o["n_words"] < 3:
        bad("n_words must be at least 3 (<eos>, UNK and one word)")
    if o["validFreq"] is not None and (not isinstance(o["validFreq"], int) or o["validFreq"] < 1):
        bad(f"validFreq must be a positive integer (got {o['validFreq']!r})")
    for key in ("decay_c", "grad_clip"):
        if not np.isfinite(o[key]) or o[key] < 0:
            bad(f"{key} must be a finite number ≥ 0 (got {o[key]!r})")
    if not np.isfinite(o["lrate"]) or o["lrate"] <= 0:
        bad(f"lrate must be a positive number (got {o['lrate']!r})")
    if not str(o["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {o['saveto']!r})")
    return o


def checkpoint_paths(saveto: str) -> tuple[str, str]:
    """(last checkpoint, training log) beside the best decoder `saveto`."""
    stem = saveto[:-4]
    return stem + ".last.npz", stem + ".log.jsonl"


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


def load_embeddings(path: str, worddict: dict, n_words: int, rng) -> np.ndarray:
    """Wemb from a pickle of word → vector (`embeddings`), the rest random, as the original."""
    from uvs.legacy import load_pickle

    embed_map = load_pickle(path, allow_numpy=True)
    if not isinstance(embed_map, dict) or not embed_map:
        raise UVSError(path, "expected a non-empty pickle of {word: vector}")
    vecs = {w: np.asarray(v, dtype="float32").ravel() for w, v in embed_map.items()}
    dim_word = len(next(iter(vecs.values())))
    if any(len(v) != dim_word for v in vecs.values()):
        raise UVSError(path, "word vectors of different lengths")
    preemb = norm_weight(n_words, dim_word, rng=rng)
    for w in list(worddict)[:n_words - 2]:
        if w in vecs:
            preemb[worddict[w]] = vecs[w]
    return preemb


def _stderr(event: dict) -> None:
    if event.get("say"):
        sys.stderr.write(event["say"] + "\n")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _text(word_idict: dict, seq) -> str:
    out = []
    for vv in seq:
        if vv == 0:
            break
        out.append(word_idict.get(int(vv), "UNK"))
    return " ".join(out)


def trainer(quiet: bool = False, on_event: Callable[[dict], None] | None = None, **kw) -> dict:
    """Train a decoder; returns the best dev cost per word, the paths and the update count.

    Progress goes to `on_event(dict)` (default: lines on stderr, none when `quiet`); events
    with a `say` key carry a line to show.
    """
    options = resolve_options(**kw)
    emit = (lambda e: None) if quiet else (on_event or _stderr)
    saveto = options["saveto"]
    last_path, log_path = checkpoint_paths(saveto)
    resume = options["reload_"] and os.path.exists(last_path)
    if not options["reload_"] and not options["overwrite"]:
        for p in (saveto, last_path):
            if os.path.exists(p):
                raise UVSError(p, "exists: another run's decoder; resume it with --reload or "
                               "replace it with --overwrite")
    if not resume and os.path.lexists(log_path):
        os.unlink(log_path)

    state = {"epoch": 0, "batch": 0, "uidx": 0, "best": None}
    if resume:
        ckpt = read_decoder(last_path)
        trained = OrderedDict(ckpt.options)
        for key in ("condition", "inject", "dim_word", "dim", "doutput", "data"):
            if kw.get(key) is not None and kw[key] != trained.get(key):
                raise UVSError(last_path, f"--reload with {key} = {kw[key]!r}, but the run "
                               f"was trained with {trained.get(key)!r}")
        for key in SCHEDULE:
            if kw.get(key) is not None:
                trained[key] = options[key]
        options, worddict, params = trained, ckpt.worddict, ckpt.params
        state.update(ckpt.extra["train_state"])

    vse = None
    if options["condition"] == "embedding":
        from uvs.tools import load_model as load_vse

        vse = load_vse(options["model"])
    train = load_split(options["data"], "train", options.get("data_dir"), options["cnn"])
    dev = load_split(options["data"], "dev", options.get("data_dir"), options["cnn"])
    ctx_train, ctx_dev = contexts(options, train, vse), contexts(options, dev, vse)
    options["dimctx"] = int(ctx_train.shape[1])
    if not resume:
        rng = np.random.RandomState(options["seed"])
        if options["dictionary"]:
            from uvs.decoding.files import read_dictionary

            worddict = read_dictionary(options["dictionary"])
        else:
            worddict = build_dictionary(train.caps)[0]
        # the original's Wemb had n_words rows whatever the vocabulary; no more rows than used
        options["n_words"] = min(options["n_words"], len(worddict) + 2)
        preemb = None
        if options["embeddings"]:
            preemb = load_embeddings(options["embeddings"], worddict, options["n_words"], rng)
            options["dim_word"] = int(preemb.shape[1])
        params = init_params(options, preemb=preemb, rng=rng)
    word_idict = {vv: kk for kk, vv in worddict.items()}
    word_idict[0], word_idict[1] = "<eos>", "UNK"

    _preflight(saveto, sum(p.nbytes for p in params.values()))
    tparams = init_tparams(params)
    emit({"say": f"compiling the decoder ({backend.mode()} mode; the compile cache makes "
                 "later starts fast)"})
    t0 = time.time()
    trng, inps, cost = build_model(tparams, options)
    f_init, f_next = build_sampler(tparams, options, trng)
    f_log_probs = backend.function(inps, cost, name="f_log_probs")
    if options["decay_c"] > 0.0:
        cost = cost + np.float32(options["decay_c"]) * sum((vv ** 2).sum()
                                                            for vv in tparams.values())
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    if options["grad_clip"] > 0.0:
        grads = clip_global_norm(grads, np.float32(options["grad_clip"]))
    lr = tensor.scalar(name="lr", dtype="float32")
    f_grad_shared, f_update = OPTIMIZERS[options["optimizer"]](lr, tparams, grads, inps, cost)
    own = {id(v) for v in tparams.values()}
    opt_state = OrderedDict((v.name, v) for v in f_update.get_shared() if id(v) not in own)
    if resume:
        for name, var in opt_state.items():
            var.set_value(ckpt.extra["arrays"][name])
        if os.path.exists(saveto):
            state["best"] = read_decoder(saveto).extra.get("dev_cost_per_word", state["best"])
    emit({"say": f"compiled in {time.time() - t0:.1f} s"})

    def log(**record):
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    log(event="start", resume=bool(resume), options=json.loads(json.dumps(options, default=str)),
        n_train=len(train.caps), n_words=options["n_words"], kind="decoder")

    def save(path, **meta):
        arrays = OrderedDict((k, v.get_value()) for k, v in opt_state.items()) \
            if path == last_path else None
        write_decoder(path, unzip(tparams), options, worddict, extra_meta=meta,
                      extra_arrays=arrays)

    def checkpoint():
        save(last_path, train_state=dict(state))

    def diverged(what):
        log(event="diverged", update=state["uidx"], what=what)
        kept = f"best decoder kept at {saveto}" if state["best"] is not None else "nothing saved"
        raise UVSError(saveto, f"training diverged: {what} at update {state['uidx']} "
                       f"(epoch {state['epoch'] + 1}); {kept}; try a smaller --lrate")

    def validate():
        score = dev_cost(f_log_probs, dev.caps, ctx_dev, worddict, options)
        if not np.isfinite(score["cost_per_word"]):
            diverged("the dev cost is NaN or Inf")
        improved = state["best"] is None or score["cost_per_word"] < state["best"]
        if improved:
            state["best"] = score["cost_per_word"]
            save(saveto, dev_cost_per_word=score["cost_per_word"], dev=score)
        log(event="valid", update=state["uidx"], epoch=state["epoch"], best=improved,
            dev_cost_per_word=score["cost_per_word"], dev_perplexity=score["perplexity"])
        emit({"event": "valid", "say": f"  dev  cost/word {score['cost_per_word']:.4f}  "
              f"perplexity {score['perplexity']:.2f}{'  (best, saved)' if improved else ''}"})

    lrate = np.float32(options["lrate"])
    valid_freq = options["validFreq"]
    try:
        while state["epoch"] < options["max_epochs"]:
            rng = epoch_rng(options["seed"], state["epoch"])
            batches = homogeneous_batches(train.caps, options["batch_size"],
                                          options["maxlen_w"], rng)
            t_disp, n_disp = time.time(), 0
            while state["batch"] < len(batches):
                caps = batches[state["batch"]]
                x, mask, ctx = prepare_data([train.caps[c] for c in caps], ctx_train[caps // 5],
                                            worddict, maxlen=options["maxlen_w"],
                                            n_words=options["n_words"])
                state["batch"] += 1
                if x is None:
                    continue
                state["uidx"] += 1
                ud_start = time.time()
                c = float(f_grad_shared(x, mask, ctx))
                if not np.isfinite(c):
                    diverged(f"cost is {c}")
                f_update(lrate)
                ud = time.time() - ud_start
                n_disp += 1
                if state["uidx"] % options["dispFreq"] == 0:
                    spu = (time.time() - t_disp) / n_disp
                    left = (len(batches) - state["batch"]
                            + (options["max_epochs"] - state["epoch"] - 1) * len(batches))
                    log(event="update", update=state["uidx"], epoch=state["epoch"] + 1,
                        cost=c, seconds_per_update=spu)
                    emit({"event": "update", "say": f"Epoch {state['epoch']} Update "
                          f"{state['uidx']} Cost {c:.4f} UD {ud:.3f}  ETA "
                          f"{_duration(left * spu)}"})
                    t_disp, n_disp = time.time(), 0
                if state["uidx"] % options["saveFreq"] == 0:
                    checkpoint()
                if state["uidx"] % options["sampleFreq"] == 0:
                    for jj in range(min(10, x.shape[1])):
                        sample, _ = gen_sample(tparams, f_init, f_next, ctx[jj:jj + 1],
                                               options, trng=trng, k=1, maxlen=100,
                                               stochastic=False, use_unk=False)
                        emit({"event": "sample",
                              "say": f"Truth {jj}: {_text(word_idict, x[:, jj])}\n"
                                     f"Sample (0) {jj}: {_text(word_idict, sample[0])}"})
                if valid_freq and state["uidx"] % valid_freq == 0:
                    validate()
                    checkpoint()
            state["epoch"] += 1
            state["batch"] = 0
            if not valid_freq:
                validate()
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        log(event="interrupted", update=state["uidx"])
        raise Interrupted(last_path, f"interrupted at update {state['uidx']}; checkpoint "
                          f"written; resume with --reload --saveto {saveto}") from None
    if state["best"] is None:
        validate()
    log(event="end", update=state["uidx"], best=state["best"])
    return {"best_dev_cost_per_word": state["best"], "updates": state["uidx"],
            "saveto": saveto, "last": last_path, "log": log_path}


def _preflight(saveto: str, nbytes: int) -> None:
    from uvs.train import _preflight as preflight

    preflight(saveto, nbytes)


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
