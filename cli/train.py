"""`uvs train`: every option of the original trainers (`uvs.train.OPTIONS`), recipes as presets."""

from __future__ import annotations

import logging
import os
import shlex
import sys

import click

from uvs.cli.common import json_option, print_json, quiet_option, table_options
from uvs.train import OPTIONS


@click.command(context_settings={"max_content_width": 100})
@table_options(OPTIONS)
@click.option("--overwrite", is_flag=True,
              help="Replace another run's model, checkpoint and log at SAVETO.")
@click.option("--mode", type=click.Choice(["CVM", "NUMBA", "JAX", "FAST_RUN"],
                                          case_sensitive=False), default=None,
              help="PyTensor backend [default: $UVS_MODE, else the fastest tested].")
@json_option
@quiet_option
def train(overwrite, mode, as_json, quiet, **options):
    """Train a model; the best one on dev is saved at SAVETO, with a last checkpoint and log.

    Ctrl-C or SIGTERM writes the last checkpoint and prints the command that resumes it.
    """
    if mode:
        os.environ["UVS_MODE"] = mode.upper()
    from uvs import runs
    from uvs.train import trainer

    handler = _show_progress(quiet)
    try:
        result = trainer(overwrite=overwrite, **options)
    except runs.Interrupted as stop:
        resume = ["uvs", "train", "--saveto", stop.saveto, "--reload"]
        if mode:
            resume += ["--mode", mode.upper()]
        click.echo(f"{stop}; resume with: {shlex.join(resume)}", err=True)
        sys.exit(stop.exit_status)
    finally:
        logging.getLogger("uvs").removeHandler(handler)
    if as_json:
        print_json(result)
    else:
        click.echo(f"best dev rsum {result['best_rsum']:.1f} after {result['updates']} "
                   f"updates; model: {result['saveto']}")


def _show_progress(quiet: bool) -> logging.Handler:
    """Progress and notices of the `uvs` loggers as plain lines on stderr, unless quiet."""
    handler = logging.StreamHandler(click.get_text_stream("stderr"))
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger("uvs")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
