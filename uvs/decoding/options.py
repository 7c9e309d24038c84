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

import os
from collections import OrderedDict

from uvs.options import (
    NON_NEGATIVE,
    POSITIVE,
    POSITIVE_NUMBER,
    SCHEDULE,
    SHAPE,
    Check,
    Option,
    OptionTable,
    bad,
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
    if o["saveto"] is not None and not str(o["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {o['saveto']!r})")


OPTIONS = OptionTable([
    Option("data", str, "f8k", "Data set name: f8k, f30k, coco, sample, ...", SHAPE),
    Option("data_dir", str, None, "Folder holding the data sets (default: $UVS_DATA, "
           "else ./data).", SCHEDULE, path="dir"),
    Option("condition", str, "embedding", "ctx: the image's joint-space vector, or its CNN "
           "feature row.", SHAPE, choices=CONDITIONS),
    Option("inject", str, "init", "init: h0 = tanh(W·ctx + b) (Kiros); bias: ctx·W + b in "
           "place of the first word vector (Karpathy & Fei-Fei).", SHAPE, choices=INJECTIONS),
    Option("model", str, None, "uvs model whose joint space to decode (--condition "
           "embedding).", path="file"),
    Option("dimctx", int, None, "ctx width; implied by the condition (the model's dim or the "
           "features' width).", SHAPE, check=POSITIVE, cli=False),
    Option("dim_word", int, 620, "Word vector size.", SHAPE, check=POSITIVE),
    Option("dim", int, 1600, "GRU state size.", SHAPE, check=POSITIVE),
    Option("decoder", str, "gru", "Decoder layer (the original's only one).", SHAPE,
           choices=("gru",)),
    Option("doutput", bool, False, "Deep output layer (tanh) before the word scores.", SHAPE),
    Option("max_epochs", int, 5, "Epochs to train for.", SCHEDULE, check=POSITIVE),
    Option("dispFreq", int, 1, "Updates between progress lines.", SCHEDULE, check=POSITIVE),
    Option("decay_c", float, 0.0, "Weight decay (L2 on every parameter).", check=NON_NEGATIVE),
    Option("grad_clip", float, 5.0, "Global gradient norm limit.", check=NON_NEGATIVE),
    Option("n_words", int, 40000, "Vocabulary size limit (the rest is UNK).", SHAPE,
           check=Check(lambda v: v >= 3, "at least 3 (<eos>, UNK and one word)")),
    Option("maxlen_w", int, 100, "Drop captions this many words long or longer.",
           check=POSITIVE),
    Option("optimizer", str, "adam", "adam: as released (its bias correction included); "
           "adam_textbook: Kingma & Ba.", choices=("adam", "adam_textbook")),
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
    Option("reload_", bool, False, "Resume from SAVETO's last checkpoint.", SCHEDULE),
    Option("validFreq", int, None, "Updates between dev scores (default: each epoch).",
           SCHEDULE, check=POSITIVE),
    Option("lrate", float, 0.0002, "Learning rate.", SCHEDULE, check=POSITIVE_NUMBER),
    Option("seed", int, 1234, "Random seed (initialisation and batch order)."),
    Option("cnn", str, None, "Image features: the 1-crop files, or '10crop'.", cli=False),
], RECIPES, check=_check_options)


def resolve_options(**kw) -> OrderedDict:
    """Defaults, the data set's preset, then the options given (None = not given); checked."""
    options = OPTIONS.resolve(kw, recipe_key="data")
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.decoder.npz")
    return options
