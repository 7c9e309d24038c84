"""`uvs train`: every option of the original trainers (`uvs.train.OPTIONS`), recipes as presets."""

from __future__ import annotations

import click

from uvs.cli.common import (
    exit_interrupted,
    json_option,
    mode_option,
    overwrite_option,
    print_json,
    progress_lines,
    quiet_option,
    table_options,
)
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
    from uvs import runs
    from uvs.train import trainer

    with progress_lines(quiet):
        try:
            result = trainer(overwrite=overwrite, mode=mode, **options)
        except runs.Interrupted as stop:
            exit_interrupted(stop, ["uvs", "train", "--saveto", stop.saveto, "--reload"]
                             + (["--mode", mode] if mode else []))
    if as_json:
        print_json(result)
    else:
        click.echo(f"best dev rsum {result['best_rsum']:.1f} after {result['updates']} "
                   f"updates; model: {result['saveto']}")
