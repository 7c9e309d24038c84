"""What every command shares: one-line errors, JSON output, the quiet flag."""

from __future__ import annotations

import json

import click

from uvs.errors import UVSError


class Group(click.Group):
    """A click group that turns library errors into one line on stderr and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UVSError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            where = err.filename if err.filename is not None else "uvs"
            raise click.ClickException(f"{where}: {err.strerror or err}") from None


def print_json(obj) -> None:
    """Exactly one JSON object on stdout."""
    click.echo(json.dumps(obj, sort_keys=False))


def data_dir_option(f):
    return click.option(
        "--data-dir", type=click.Path(file_okay=False), default=None,
        help="Folder holding the data sets (default: $UVS_DATA, else ./data).")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True,
                        help="Print one JSON object on stdout instead of a table.")(f)


def quiet_option(f):
    return click.option("-q", "--quiet", is_flag=True, help="No progress output.")(f)
