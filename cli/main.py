"""`uvs`: the command-line entry point; each command lives in its own module."""

from __future__ import annotations

import click

from uvs import __version__
from uvs.cli import align, decoder, images, mnlm, models, report, store, train
from uvs.cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uvs")
def main() -> None:
    """Visual-semantic embeddings: train, evaluate, encode, search, caption, align, report."""


def _register() -> None:
    models.register(main)
    main.add_command(train.train)
    images.register(main)
    align.register(main)
    main.add_command(report.report)
    decoder.register(main)
    main.add_command(store.store)
    mnlm.register(main)


_register()
