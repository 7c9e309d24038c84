"""`uvs train`: every option of the original trainers (`uvs.train.OPTIONS`), recipes as presets."""

from __future__ import annotations

import click

from uvs.cli.common import (
    json_option,
    mode_option,
    overwrite_option,
    quiet_option,
    run_trainer,
    table_options,
)
from uvs.train import trainer
from uvs.train_options import OPTIONS


@click.command(context_settings={"max_content_width": 100})
@table_options(OPTIONS)
@overwrite_option
@mode_option
@json_option
@quiet_option
def train(overwrite, mode, as_json, quiet, **options):
    """Train a model; the best one on dev is saved at SAVETO, with a last checkpoint and log.

    Ctrl-C or SIGTERM writes the last checkpoint and prints the command that resumes it.
    """
    run_trainer(lambda: trainer(overwrite=overwrite, mode=mode, **options), ["uvs", "train"],
                quiet, as_json, ["--mode", mode] if mode else [])
