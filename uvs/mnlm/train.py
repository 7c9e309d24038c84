"""Training MLBL, MLBL-F or the SC-NLM: the original `trainer.py` + `coco_proc.py` + the
classes' `train`, on uvs's run plumbing (`uvs.runs`: lock, no silent overwrite, exact resume,
SIGINT/SIGTERM checkpoint, NaN stop, JSON-lines log).

Kept from the original: n-grams of `<start>`×context + caption + `<end>`, words seen fewer
than `min_count` times in train become `unk`, batches `inds[minibatch::numbatches]` of an
order shuffled in place by RandomState(seed + epoch + 1) each epoch, the schedule stepped
every `update` points and at each epoch's end, sample captions every `samples` points, dev
BLEU every `bleu` points with patience 10. Changed: captions are split on whitespace (uvs's
data sets are tokenised), the vocabulary is ordered (`<start>`, `<end>`, `unk`, then by
count) instead of Python 2's set order, BLEU comes from pycocoevalcap (as `uvs evalcap`)
instead of the Perl script, and dropout masks are drawn from RandomState((seed, update)) so
that a resumed run is exact.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.random import RandomState

from uvs import runs, tools
from uvs.datasets import Split, load_split
from uvs.decoding.evaluation import caption_scores
from uvs.errors import UVSError
from uvs.mnlm import lm_tools
from uvs.mnlm.files import model_class, param_shapes
from uvs.mnlm.options import OPTIONS, TYPES, resolve_options
from uvs.mnlm.scnlm import END_TAG, tag_windows
from uvs.mnlm.tags import load_tags
from uvs.runs import Compiled

log = logging.getLogger("uvs.mnlm")
PATIENCE = 10
START, END, UNK = "<start>", "<end>", "unk"


@dataclass
class Corpus:
    """One split as the model sees it: n-gram contexts X (N, context), next words y (N,),
    the caption of each (N,), per-image content (n_images, D), and for the SC-NLM the tag
    windows (N, k + 1) and each caption's tag indices."""

    split: Split
    X: np.ndarray
    y: np.ndarray
    caption: np.ndarray
    content: np.ndarray
    windows: np.ndarray | None = None
    tags: list | None = None


def tokens_of(caps: list[str], context: int, topwords: set) -> list[list[str]]:
    """`<start>`×context + words (unknown as `unk`) + `<end>` (coco_proc.tokenize)."""
    return [[START] * context + [w if w in topwords else UNK for w in c.split()] + [END]
            for c in caps]


def build_vocabulary(caps: list[str], min_count: int) -> tuple[set, dict]:
    """(topwords, word_dict): words seen min_count times or more, plus `unk`; indices
    `<start>` 0, `<end>` 1, `unk` 2, then by decreasing count (ties alphabetical)."""
    counts = Counter(w for c in caps for w in c.split())
    top = {w for w, n in counts.items() if n >= min_count}
    ordered = sorted(top - {START, END, UNK}, key=lambda w: (-counts[w], w))
    return top | {UNK}, {w: i for i, w in enumerate([START, END, UNK] + ordered)}


def corpus(split: Split, content: np.ndarray, o: dict, topwords: set, word_dict: dict,
           tag_dict: dict | None) -> Corpus:
    """The n-gram instances of a split (lm_tools.get_ngrams / model_inputs)."""
    ctx = o["context"]
    toks = tokens_of(split.caps, ctx, topwords)
    inst, index = lm_tools.model_inputs(lm_tools.get_ngrams(toks, ctx), word_dict,
                                        context=ctx, include_index=True)
    c = Corpus(split, inst[:, :-1], inst[:, -1], index[:, 0].astype(int), content)
    if tag_dict is not None:

        tags = load_tags(split.caps_path, split.caps)
        unknown = {t for ts in tags for t in ts} - set(tag_dict)
        if unknown:  # dev tags the model never saw: the end tag stands in
            log.info(f"{len(unknown)} tags of {split.caps_path} not in train's: "
                     f"{', '.join(sorted(unknown)[:5])}")
        c.tags = [[tag_dict.get(t, 0) for t in ts] for ts in tags]
        k = o["structure_context"]
        c.windows = np.concatenate([tag_windows(t, len(t), k, tag_dict[END_TAG])
                                    for t in c.tags]).reshape(-1, k + 1)
    return c


def image_content(split: Split, vse: dict | None) -> np.ndarray:
    """Per image: its joint-space vector under `vse`, else its CNN feature row."""
    rows = split.image_rows()
    if vse is None:
        return np.asarray(rows, dtype=np.float32)

    return tools.encode_images(vse, rows)


def load_data(o: dict) -> tuple[Corpus, Corpus, dict, dict | None]:
    """(train, dev, word_dict, tag_dict) for the options."""
    vse = None
    if o.get("model"):

        vse = tools.load_model(o["model"])
    train, dev = (load_split(o["data"], name, o.get("data_dir"), o.get("cnn"))
                  for name in ("train", "dev"))
    topwords, word_dict = build_vocabulary(train.caps, o["min_count"])
    if len(word_dict) > o["V_limit"]:
        raise UVSError(train.caps_path, f"{len(word_dict)} words, above V_limit")
    tag_dict = None
    if o["type"] == "scnlm":

        seen = sorted({t for ts in load_tags(train.caps_path, train.caps) for t in ts})
        tag_dict = {t: i for i, t in enumerate([END_TAG] + [t for t in seen if t != END_TAG])}
    args = (o, topwords, word_dict, tag_dict)
    return (corpus(train, image_content(train, vse), *args),
            corpus(dev, image_content(dev, vse), *args), word_dict, tag_dict)


def make_net(o: dict, V: int, D: int, n_tags: int | None):
    """The model object with the trainer's hyper-parameters (trainer.py's mapping)."""
    kw = dict(name=o["saveto"], loc=o["saveto"], seed=o["seed"], dropout=o["dropout"], V=V,
              K=o["K"], D=D, h=o["hidden_size"], context=o["context"],
              batchsize=o["batch_size"], maxepoch=o["maxepoch"], eta_t=o["learning_rate"],
              gamma_r=o["word_decay"], gamma_c=o["context_decay"], f=o["f"],
              p_i=o["momentum"], p_f=o["momentum"], T=o["T"], verbose=1)
    if o["type"] != "add":
        kw["factors"] = o["factors"]
    if o["type"] == "scnlm":
        kw.update(n_tags=n_tags, structure_context=o["structure_context"])
    return model_class(TYPES[o["type"]])(**kw)


def epoch_order(seed: int, n: int, epoch: int) -> np.ndarray:
    """The instance order of `epoch`: np.arange(n) shuffled in place by RandomState(seed +
    e + 1) for e = 0..epoch, as the original's one `inds` array."""
    inds = np.arange(n)
    for e in range(epoch + 1):
        RandomState(seed + e + 1).shuffle(inds)
    return inds


def epoch_batches(seed: int, n: int, batch_size: int, epoch: int) -> list[np.ndarray]:
    """`inds[minibatch::numbatches]` for minibatch in range(numbatches)."""
    inds = epoch_order(seed, n, epoch)
    numbatches = n // batch_size
    return [inds[m::numbatches] for m in range(numbatches)]


def _sync(net, options: dict) -> None:
    """The schedule's state into the options written with each checkpoint."""
    options.update(eta_t=net.eta_t, p_t=net.p_t, step=net.step)


def trainer(progress: Callable[[dict], None] | None = None, overwrite: bool = False,
            **kw) -> dict:
    """Train an MNLM; returns the best dev BLEU-4, the paths and the update count."""
    try:
        return _train(progress, overwrite, **kw)
    except UVSError as err:
        if "--lrate" not in err.problem:
            raise
        raise UVSError(err.path, err.problem.replace("--lrate", "--learning-rate")) from None


def _train(progress, overwrite, **kw) -> dict:
    options = resolve_options(**kw)
    kind = TYPES[options["type"]]
    with runs.Run(options["saveto"], reload=options["reload_"], overwrite=overwrite,
                  on_event=progress, logger=log, kind=kind, score="dev_bleu4") as run:
        o, ckpt = run.resume(OPTIONS, options, kw)
        train, dev, word_dict, tag_dict = load_data(o)
        V, D = len(word_dict), int(train.content.shape[1])
        net = make_net(o, V, D, None if tag_dict is None else len(tag_dict))
        net.word_dict, net.tag_dict = word_dict, tag_dict
        if ckpt is not None:
            for p in net.PARAMS:
                setattr(net, p, ckpt.params[p])
                setattr(net, net.PARAMS[p], np.zeros_like(ckpt.params[p]))  # restored below
            net.eta_t, net.p_t, net.step = (ckpt.options[k] for k in ("eta_t", "p_t", "step"))
        else:
            net.init_params()
            net.step = 0
        o.update({k: getattr(net, k) for k in net.HYPER if k not in ("name", "loc")})
        o.setdefault("patience_count", 0)
        _sync(net, o)
        params = OrderedDict((p, net._tp[p]) for p in net.PARAMS)
        run.preflight({p: v.get_value() for p, v in params.items()})
        step_fn = net.compile()
        model = {"options": o, "worddict": word_dict, "net": net}
        extra = {"tags": sorted(tag_dict, key=tag_dict.get)} if tag_dict else {}
        c = run.start(Compiled(params, step_fn, step_fn, model), n_train=len(train.X),
                      n_words=V, **extra)
        bs = o["batch_size"]
        schedule = lambda epoch: epoch_batches(o["seed"], len(train.X), bs, epoch)  # noqa: E731
        numbatches = len(train.X) // bs
        # the original validates every `bleu` points of an epoch, not every validFreq updates:
        # batches() is asked only for the one dev score at the end when there is none yet
        plan = {"max_epochs": o["maxepoch"], "dispFreq": max(1, o["details"] // bs),
                "validFreq": math.inf}
        for rows in run.batches(schedule, plan, last="unscored"):
            if rows is runs.VALIDATE:
                validate(c, dev, train, run)
                continue
            minibatch = run.state.batch - 1
            net.mask_rng = RandomState([o["seed"], run.state.uidx])
            Y = np.zeros((len(rows), V), dtype=net.dtype)
            Y[np.arange(len(rows)), train.y[rows]] = 1
            extra_in = {} if train.windows is None else {"tags": train.windows[rows]}
            obj, nan = net.train_step(train.X[rows], train.content[train.caption[rows] // 5],
                                      Y, **extra_in)
            if nan:
                run.diverged("NaNs in the predicted representations (acts)")
            run.cost(obj)
            pts = minibatch * bs
            if minibatch > 0 and pts % o["samples"] == 0:
                for line in generate(net, dev, k=3, n=5):
                    run.say(f"sample: {line}")
            if minibatch > 0 and pts % o["update"] == 0:
                net.update_hyperparams()
                net.step += 1
                _sync(net, o)
                run.say(f"learning rate: {net.eta_t:.4f}, momentum: {net.p_t:.4f}")
            stop = False
            if minibatch > 0 and pts % o["bleu"] == 0:
                stop = validate(c, dev, train, run)
                run.restart_clock()
            if run.state.batch == numbatches or stop:  # the epoch's end, before its checkpoint
                net.update_hyperparams()
                net.step += 1
                _sync(net, o)
            if stop:
                break
        run.checkpoint()  # also after a stop for patience, which leaves the loop early
        return run.finish("best_dev_bleu4")


def templates_for(net, queries: np.ndarray, train: Corpus) -> list[list[int]]:
    """SC-NLM structure for each query: the tags of the first caption of the training image
    nearest to it in the content space (cosine)."""
    a = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    b = train.content / np.maximum(np.linalg.norm(train.content, axis=1, keepdims=True), 1e-12)
    nearest = np.argmax(a @ b.T, axis=1)
    return [train.tags[5 * i] for i in nearest]


def generate(net, dev: Corpus, k: int = 3, n: int = 5, train: Corpus | None = None,
             num: int = 50) -> list[str]:
    """Best beam caption of the first n dev images (SC-NLM: templates from `train`, else from
    the dev image's own first caption)."""
    index_dict = {i: w for w, i in net.word_dict.items()}
    content = dev.content[:n]
    templates = None
    if dev.tags is not None:
        templates = (templates_for(net, content, train) if train is not None
                     else [dev.tags[5 * i] for i in range(len(content))])
    beams = lm_tools.beam_search_batch(net, net.word_dict, index_dict, num, content, k=k,
                                       templates=templates)
    return [" ".join(b[0]) for b in beams]


def validate(c: Compiled, dev: Corpus, train: Corpus, run: runs.Run) -> bool:
    """Dev BLEU-4 (pycocoevalcap) of the first `neval` images; saved when the best; whether
    patience ran out."""

    o, net = c.options, c.model["net"]
    n = min(o["neval"], len(dev.content))
    captions = generate(net, dev, k=3, n=n, train=train)
    refs = [dev.split.caps[5 * i:5 * i + 5] for i in range(n)]
    scores, _ = caption_scores(captions, refs)
    bleu4 = scores["bleu4"]
    improved = run.improved(bleu4, scores, dev_bleu4=bleu4, dev=scores,
                            **({"tags": sorted(net.tag_dict, key=net.tag_dict.get)}
                               if net.tag_dict else {}))
    o["patience_count"] = 0 if improved else o["patience_count"] + 1
    run.valid(improved, "  dev  BLEU " + "/".join(f"{100 * scores[f'bleu{i}']:.1f}"
                                                  for i in range(1, 5)), dev_bleu4=bleu4)
    return o["patience_count"] >= PATIENCE


def expected(o: dict) -> dict:
    """Parameter shapes of a trained model's options."""
    return param_shapes(TYPES[o["type"]], o)
