"""The options of `uvs mnlm train`: the original `trainer.py`'s dictionary `d` (and `prog`),
under its names and defaults, plus what uvs adds (data, the VSE model whose joint space is
the content, the SC-NLM's structure context). Kept apart from `uvs.mnlm.train` so that the
command line builds its flags without importing PyTensor.
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
    check_saveto,
    common,
)

TYPES = {"add": "mlbl", "mul": "mlblf", "scnlm": "scnlm"}
PROBABILITY = Check(lambda v: 0 <= v < 1, "in [0, 1)")


def _check_options(o: dict) -> None:
    if o["type"] == "scnlm" and o["structure_context"] < 0:
        bad("structure_context must be ≥ 0")
    if o["factors"] >= o["V_limit"] and o["type"] != "add":
        bad("factors must be below the vocabulary size")
    check_saveto(o)


OPTIONS = OptionTable([
    Option("type", str, "add", "add: MLBL (additive); mul: MLBL-F (factored, "
           "multiplicative); scnlm: the structure-content model.", SHAPE,
           choices=tuple(TYPES)),
    common("data"),
    common("data_dir"),
    Option("model", str, None, "uvs VSE model: condition on its joint-space image vectors "
           "(default: the CNN feature rows).", SHAPE, path="file"),
    Option("context", int, 5, "Words of context.", SHAPE, check=POSITIVE),
    Option("learning_rate", float, 0.43, "Initial learning rate (eta_t).", SCHEDULE,
           check=POSITIVE_NUMBER),
    Option("momentum", float, 0.23, "Momentum (p_i = p_f).", check=PROBABILITY),
    Option("batch_size", int, 40, "n-grams per update.", check=POSITIVE),
    Option("maxepoch", int, 10, "Epochs to train for.", SCHEDULE, check=POSITIVE),
    Option("hidden_size", int, 441, "Size of the image (conditioning) layer h.", SHAPE,
           check=POSITIVE),
    Option("dropout", float, 0.15, "Dropout on the image layer.", check=PROBABILITY),
    Option("word_decay", float, 3e-7, "Weight decay on word representations and factors "
           "(gamma_r).", check=NON_NEGATIVE),
    Option("context_decay", float, 1e-8, "Weight decay on context matrices (gamma_c).",
           check=NON_NEGATIVE),
    Option("factors", int, 50, "Factors of MLBL-F and the SC-NLM.", SHAPE, check=POSITIVE),
    Option("K", int, 100, "Word representation size.", SHAPE, check=POSITIVE),
    Option("f", float, 0.99, "Learning-rate factor per schedule step.", check=POSITIVE_NUMBER),
    Option("T", float, 20.0, "Schedule steps until the final momentum (trainer.py's 20.0).",
           check=POSITIVE_NUMBER),
    Option("structure_context", int, 3, "SC-NLM: tags of the next k words besides the "
           "current one.", SHAPE, check=NON_NEGATIVE),
    Option("min_count", int, 5, "Words seen fewer times in train become 'unk'.", SHAPE,
           check=POSITIVE),
    Option("V_limit", int, 10**6, "Vocabulary size limit.", SHAPE, check=POSITIVE, cli=False),
    Option("details", int, 1000, "Points (n-grams) between progress lines (prog['_details']).",
           SCHEDULE, check=POSITIVE),
    Option("samples", int, 10000, "Points between sample captions.", SCHEDULE, check=POSITIVE),
    Option("update", int, 100000, "Points between schedule steps.", check=POSITIVE),
    Option("bleu", int, 1000000, "Points between dev BLEU scores (patience 10).", SCHEDULE,
           check=POSITIVE),
    Option("neval", int, 500, "Dev images scored for BLEU.", SCHEDULE, check=POSITIVE),
    Option("saveto", str, None, "Best model path (.npz); default models/DATA.TYPE.npz.",
           SCHEDULE, path="file"),
    common("reload_"),
    common("seed"),
    common("cnn"),
], {}, check=_check_options)


def resolve_options(**kw) -> OrderedDict:
    """Defaults, then the options given (None = not given); checked."""
    options = OPTIONS.resolve(kw)
    if options["saveto"] is None:
        options["saveto"] = os.path.join("models", f"{options['data']}.{options['type']}.npz")
    return options
