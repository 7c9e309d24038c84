"""The options of `uvs train`, each declared once: the original trainers' names, the recipes.

Kept apart from `uvs.train` so that the command line can build its flags from the table
without importing PyTensor.
"""

from __future__ import annotations

import os
from collections import OrderedDict

from uvs.options import (
    NON_NEGATIVE,
    PAIRS,
    POSITIVE,
    SCHEDULE,
    SHAPE,
    Option,
    OptionTable,
    bad,
    check_saveto,
    common,
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
    check_saveto(o)


# The options of the original trainers, under their names there, each declared once.
OPTIONS = OptionTable([
    Option("recipe", str, "vse", "Preset of an original trainer; explicit options win.",
           choices=tuple(RECIPES)),
    common("data"),
    common("data_dir"),
    Option("margin", float, 0.2, "Ranking-loss margin.", check=NON_NEGATIVE),
    Option("dim", int, 1024, "Embedding (and GRU state) size.", SHAPE, check=POSITIVE),
    Option("dim_image", int, 4096, "Image feature width.", SHAPE, check=POSITIVE),
    common("dim_word"),
    Option("encoder", str, "gru", "Sentence encoder: a GRU or a bag of words.", SHAPE,
           choices=("gru", "bow")),
    common("max_epochs"),
    common("dispFreq"),
    common("decay_c"),
    Option("grad_clip", float, 2.0, "Gradient norm limit: global for vse, per tensor for "
           "the order-embedding recipes.", check=NON_NEGATIVE),
    common("maxlen_w"),
    common("optimizer"),
    Option("batch_size", int, 128, "Captions per update.", check=PAIRS),
    Option("saveto", str, None, "Best model path (.npz); default models/DATA.npz.",
           SCHEDULE, path="file"),
    common("validFreq"),
    common("lrate"),
    common("reload_"),
    Option("method", str, "cosine", "Similarity: cosine, or the order-embedding penalty.",
           choices=("cosine", "order")),
    Option("abs", bool, False, "Absolute values of the embeddings."),
    Option("max_violation", bool, False, "Hardest negative only (VSE++)."),
    common("seed"),
    common("cnn"),
], RECIPES, check=_check_options)


def resolve_options(**kw) -> OrderedDict:
    """Defaults, then the recipe's preset, then the options given (None = not given); checked."""
    options = OPTIONS.resolve(kw)
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.npz")
    return options
