"""The options of `uvs align train`, each declared once (uvs.options), kept apart from the
trainer so that the command line builds its flags without importing PyTensor."""

from __future__ import annotations

from collections import OrderedDict

from uvs.options import (
    NON_NEGATIVE,
    PAIRS,
    POSITIVE,
    SCHEDULE,
    SHAPE,
    Option,
    OptionTable,
    check_saveto,
    common,
)

OPTIONS = OptionTable([
    common("data"),
    common("data_dir"),
    Option("regions", str, None, "Region features (uvs features --regions); '{split}' in "
           "the path stands for train and dev. Default DIR/DATA/DATA_{split}_regions.npz.",
           SCHEDULE),
    Option("margin", float, 1.0, "Margin of the structured objective (the paper's 1).",
           check=NON_NEGATIVE),
    Option("dim", int, 1000, "Joint space and BRNN state size (the paper's h).", SHAPE,
           check=POSITIVE),
    common("dim_word"),
    common("max_epochs"),
    common("dispFreq"),
    Option("grad_clip", float, 2.0, "Global gradient norm limit (0: none).",
           check=NON_NEGATIVE),
    common("maxlen_w"),
    common("optimizer"),
    Option("batch_size", int, 100, "Image-sentence pairs per update (one caption per image).",
           check=PAIRS),
    Option("saveto", str, None, "Best model path (.npz); default models/DATA.align.npz.",
           SCHEDULE, path="file"),
    common("validFreq"),
    common("lrate"),
    common("reload_"),
    common("seed"),
], check=check_saveto)


def resolve_options(**kw) -> OrderedDict:
    options = OPTIONS.resolve(kw)
    if options["saveto"] is None:
        options["saveto"] = f"models/{options['data']}.align.npz"
    return options
