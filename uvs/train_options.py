"""The options of `uvs train`, each declared once: the original trainers' names, the recipes.

Kept apart from `uvs.train` so that the command line can build its flags from the table
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

# The presets of the two original trainers; options given explicitly win over them.
RECIPES = {
    "vse": {"method": "cosine", "abs": False, "margin": 0.2, "lrate": 0.0002},
    "order": {"method": "order", "abs": True, "margin": 0.05, "lrate": 0.001,
              "cnn": "10crop"},
    "symmetric": {"method": "cosine", "abs": False, "margin": 0.2, "lrate": 0.001,
                  "cnn": "10crop"},
}


def _check_options(o: dict) -> None:
    """What involves several options at once."""
    if o["encoder"] == "bow" and o["dim"] != o["dim_word"]:
        bad(f"the bow encoder needs dim == dim_word (got {o['dim']} and {o['dim_word']})")
    if o["saveto"] is not None and not str(o["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {o['saveto']!r})")


# The options of the original trainers, under their names there, each declared once.
OPTIONS = OptionTable([
    Option("recipe", str, "vse", "Preset of an original trainer; explicit options win.",
           choices=tuple(RECIPES)),
    Option("data", str, "f8k", "Data set name: f8k, f30k, coco, sample, ...", SHAPE),
    Option("data_dir", str, None, "Folder holding the data sets (default: $UVS_DATA, "
           "else ./data).", SCHEDULE, path="dir"),
    Option("margin", float, 0.2, "Ranking-loss margin.", check=NON_NEGATIVE),
    Option("dim", int, 1024, "Embedding (and GRU state) size.", SHAPE, check=POSITIVE),
    Option("dim_image", int, 4096, "Image feature width.", SHAPE, check=POSITIVE),
    Option("dim_word", int, 300, "Word vector size.", SHAPE, check=POSITIVE),
    Option("encoder", str, "gru", "Sentence encoder: a GRU or a bag of words.", SHAPE,
           choices=("gru", "bow")),
    Option("max_epochs", int, 15, "Epochs to train for.", SCHEDULE, check=POSITIVE),
    Option("dispFreq", int, 10, "Updates between progress lines.", SCHEDULE,
           check=POSITIVE),
    Option("decay_c", float, 0.0, "Weight decay (L2 on every parameter).",
           check=NON_NEGATIVE),
    Option("grad_clip", float, 2.0, "Gradient norm limit: global for vse, per tensor for "
           "the order-embedding recipes.", check=NON_NEGATIVE),
    Option("maxlen_w", int, 100, "Drop captions this many words long or longer.",
           check=POSITIVE),
    Option("optimizer", str, "adam", "adam: as released (its bias correction included); "
           "adam_textbook: Kingma & Ba.", choices=("adam", "adam_textbook")),
    Option("batch_size", int, 128, "Captions per update.",
           check=Check(lambda v: v >= 2, "at least 2 for a contrastive loss")),
    Option("saveto", str, None, "Best model path (.npz); default models/DATA.npz.",
           SCHEDULE, path="file"),
    Option("validFreq", int, 100, "Updates between dev evaluations.", SCHEDULE,
           check=POSITIVE),
    Option("lrate", float, 0.0002, "Learning rate.", SCHEDULE, check=POSITIVE_NUMBER),
    Option("reload_", bool, False, "Resume from SAVETO's last checkpoint.", SCHEDULE),
    Option("method", str, "cosine", "Similarity: cosine, or the order-embedding penalty.",
           choices=("cosine", "order")),
    Option("abs", bool, False, "Absolute values of the embeddings."),
    Option("max_violation", bool, False, "Hardest negative only (VSE++)."),
    Option("seed", int, 1234, "Random seed (initialisation and batch order)."),
    Option("cnn", str, None, "Image features: the 1-crop files, or '10crop'.", cli=False),
], RECIPES, check=_check_options)


def resolve_options(**kw) -> OrderedDict:
    """Defaults, then the recipe's preset, then the options given (None = not given); checked."""
    options = OPTIONS.resolve(kw)
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.npz")
    return options
