"""The options of `uvs align train`, each declared once (uvs.options), kept apart from the
trainer so that the command line builds its flags without importing PyTensor."""

from __future__ import annotations

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

OPTIMIZERS = ("adam", "adam_textbook")  # uvs.optim.OPTIMIZERS


def _check_options(o: dict) -> None:
    if o["saveto"] is not None and not str(o["saveto"]).endswith(".npz"):
        bad(f"saveto must name a .npz file (got {o['saveto']!r})")


OPTIONS = OptionTable([
    Option("data", str, "f8k", "Data set name: f8k, f30k, coco, sample, ...", SHAPE),
    Option("data_dir", str, None, "Folder holding the data sets (default: $UVS_DATA, "
           "else ./data).", SCHEDULE, path="dir"),
    Option("regions", str, None, "Region features (uvs features --regions); '{split}' in "
           "the path stands for train and dev. Default DIR/DATA/DATA_{split}_regions.npz.",
           SCHEDULE),
    Option("margin", float, 1.0, "Margin of the structured objective (the paper's 1).",
           check=NON_NEGATIVE),
    Option("dim", int, 1000, "Joint space and BRNN state size (the paper's h).", SHAPE,
           check=POSITIVE),
    Option("dim_word", int, 300, "Word vector size.", SHAPE, check=POSITIVE),
    Option("max_epochs", int, 15, "Epochs to train for.", SCHEDULE, check=POSITIVE),
    Option("dispFreq", int, 10, "Updates between progress lines.", SCHEDULE,
           check=POSITIVE),
    Option("grad_clip", float, 2.0, "Global gradient norm limit (0: none).",
           check=NON_NEGATIVE),
    Option("maxlen_w", int, 100, "Drop captions this many words long or longer.",
           check=POSITIVE),
    Option("optimizer", str, "adam", "adam: as released in uvs.optim; adam_textbook: "
           "Kingma & Ba.", choices=OPTIMIZERS),
    Option("batch_size", int, 100, "Image-sentence pairs per update (one caption per image).",
           check=Check(lambda v: v >= 2, "at least 2 for a contrastive loss")),
    Option("saveto", str, None, "Best model path (.npz); default models/DATA.align.npz.",
           SCHEDULE, path="file"),
    Option("validFreq", int, 100, "Updates between dev evaluations.", SCHEDULE,
           check=POSITIVE),
    Option("lrate", float, 0.0002, "Learning rate.", SCHEDULE, check=POSITIVE_NUMBER),
    Option("reload_", bool, False, "Resume from SAVETO's last checkpoint.", SCHEDULE),
    Option("seed", int, 1234, "Random seed (initialisation and batch order)."),
], check=_check_options)


def resolve_options(**kw) -> OrderedDict:
    options = OPTIONS.resolve(kw)
    if options["saveto"] is None:
        options["saveto"] = f"models/{options['data']}.align.npz"
    return options
