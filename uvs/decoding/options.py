"""The options of `uvs decoder train`, each declared once: skip-thoughts/decoding's trainer.

Every option of the original (`dimctx dim_word dim decoder doutput max_epochs dispFreq
decay_c grad_clip n_words maxlen_w optimizer batch_size saveto dictionary embeddings saveFreq
sampleFreq reload_`) under its name there, plus what the ctx is (`condition`, `model`), how
it enters (`inject`) and what `uvs train` has (data, validFreq, lrate, seed). The `sample`
data set brings a preset small enough for two CPU cores (the table's recipe, keyed by
`data`). Kept apart from `uvs.decoding.train` so that the command line builds its flags
without importing PyTensor.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

from uvs.modelfile import read_model
from uvs.options import (
    NON_NEGATIVE,
    POSITIVE,
    SCHEDULE,
    SHAPE,
    Check,
    Option,
    OptionTable,
    bad,
    check_saveto,
    common,
)

CONDITIONS = ("embedding", "features")
INJECTIONS = ("init", "bias")

# Presets keyed by the data set; options given explicitly win over them.
RECIPES = {"sample": {"dim_word": 64, "dim": 128, "batch_size": 64, "max_epochs": 8,
                      "dispFreq": 20, "sampleFreq": 200, "lrate": 0.002}}


def _check_options(o: dict) -> None:
    """What involves several options at once (a resume has its checkpoint's model)."""
    if o["condition"] == "embedding" and not o["model"] and not o["reload_"]:
        bad("--condition embedding needs --model VSE.npz (the joint space to decode)")
    check_saveto(o)


OPTIONS = OptionTable([
    common("data", help="Data set name [default: the --model's own, else f8k]."),
    common("data_dir"),
    Option("condition", str, "embedding", "ctx: the image's joint-space vector, or its CNN "
           "feature row.", SHAPE, choices=CONDITIONS),
    Option("inject", str, "init", "init: h0 = tanh(W·ctx + b) (Kiros); bias: ctx·W + b in "
           "place of the first word vector (Karpathy & Fei-Fei).", SHAPE, choices=INJECTIONS),
    Option("model", str, None, "uvs model whose joint space to decode (--condition "
           "embedding).", path="file"),
    Option("dimctx", int, None, "ctx width; implied by the condition (the model's dim or the "
           "features' width).", SHAPE, check=POSITIVE, cli=False),
    common("dim_word", default=620),
    Option("dim", int, 1600, "GRU state size.", SHAPE, check=POSITIVE),
    Option("decoder", str, "gru", "Decoder layer (the original's only one).", SHAPE,
           choices=("gru",)),
    Option("doutput", bool, False, "Deep output layer (tanh) before the word scores.", SHAPE),
    common("max_epochs", default=5),
    common("dispFreq", default=1),
    common("decay_c"),
    Option("grad_clip", float, 5.0, "Global gradient norm limit.", check=NON_NEGATIVE),
    Option("n_words", int, 40000, "Vocabulary size limit (the rest is UNK).", SHAPE,
           check=Check(lambda v: v >= 3, "at least 3 (<eos>, UNK and one word)")),
    common("maxlen_w"),
    common("optimizer"),
    Option("batch_size", int, 16, "Captions per update.", check=POSITIVE),
    Option("saveto", str, None, "Best decoder path (.npz); default models/DATA.decoder.npz.",
           SCHEDULE, path="file"),
    Option("dictionary", str, None, "A skip-thoughts dictionary file (worddict, wordcount "
           "pickles) to use instead of one built from the captions.", SHAPE, path="file"),
    Option("embeddings", str, None, "Pickle of {word: vector} to initialise Wemb.", SHAPE,
           path="file"),
    Option("saveFreq", int, 1000, "Updates between checkpoints.", SCHEDULE, check=POSITIVE),
    Option("sampleFreq", int, 100, "Updates between Truth/Sample pairs.", SCHEDULE,
           check=POSITIVE),
    common("reload_"),
    common("validFreq", default=None, help="Updates between dev scores (default: each "
           "epoch)."),
    common("lrate"),
    common("seed"),
    common("cnn"),
], RECIPES, check=_check_options)


def model_data(path: str) -> str | None:
    """The data set the uvs model at `path` was trained on (its `data` option), if it says."""

    data = read_model(path).options.get("data")
    return data if isinstance(data, str) and data else None


def resolve_options(**kw) -> OrderedDict:
    """Defaults, the data set's preset, then the options given (None = not given); checked.

    Without --data, a decoder of a model's joint space trains on that model's data set.
    """
    if kw.get("data") is None and kw.get("model") and kw.get("condition") != "features":
        own = model_data(kw["model"])
        if own:
            kw = {**kw, "data": own}
            logging.getLogger("uvs.decoder").info(
                f"data: {own}, the data set {kw['model']} was trained on (--data to change)")
    options = OPTIONS.resolve(kw, recipe_key="data")
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.decoder.npz")
    return options
