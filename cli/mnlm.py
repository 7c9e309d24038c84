"""`uvs mnlm train`: Kiros's multimodal log-bilinear language models and the SC-NLM."""

from __future__ import annotations

import click

from uvs.cli.common import json_option, overwrite_option, quiet_option, run_trainer, table_options
from uvs.mnlm.options import OPTIONS
from uvs.mnlm.train import trainer


@click.group()
def mnlm():
    """Multimodal log-bilinear language models (MLBL, MLBL-F) and the SC-NLM."""


@mnlm.command("train", context_settings={"max_content_width": 100})
@table_options(OPTIONS)
@overwrite_option
@json_option
@quiet_option
def train(overwrite, as_json, quiet, **options):
    """Train an MLBL (--type add), MLBL-F (mul) or SC-NLM (scnlm) on a data set's captions;
    the best dev BLEU-4 is saved at SAVETO, with a last checkpoint and log.

    Ctrl-C or SIGTERM writes the last checkpoint and prints the command that resumes it.
    """

    run_trainer(lambda: trainer(overwrite=overwrite, **options), ["uvs", "mnlm", "train"],
                quiet, as_json, line=bleu_line)


def bleu_line(result: dict) -> str:
    return (f"best dev BLEU-4 {100 * result['best_dev_bleu4']:.1f} after {result['updates']} "
            f"updates; model: {result['saveto']}")


def register(group: click.Group) -> None:
    group.add_command(mnlm)
