"""`uvs`: the command-line entry point; each command lives in its own module."""

from __future__ import annotations

import click

from uvs import __version__
from uvs.cli.common import Group


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="uvs")
def main() -> None:
    """Visual-semantic embeddings: train, evaluate, encode, search, caption, align, report."""


def _register() -> None:
    from uvs.cli import models, train

    models.register(main)
    main.add_command(train.train)
    from uvs.cli import images
    images.register(main)
    from uvs.cli import align
    align.register(main)
    from uvs.cli import report
    main.add_command(report.report)
    from uvs.cli import decoder
    decoder.register(main)
    from uvs.cli import store
    main.add_command(store.store)


_register()
