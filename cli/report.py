"""`uvs report`: training runs side by side in one HTML file."""

from __future__ import annotations

import click

from uvs.cli.common import json_option, print_json, progress_lines, quiet_option
from uvs.modelfile import shown
from uvs.report.build import training_report


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (an older uvs report there is replaced).")
@click.option("--title", help="The page's title.")
@json_option
@quiet_option
def report(runs, output, title, as_json, quiet):
    """Training curves of RUNS (models or their .log.jsonl) overlaid in one HTML page."""
    with progress_lines(quiet):
        summary = training_report(list(runs), output, title=title)
    for note in summary["left_out"]:
        click.echo(f"uvs: left out of the page: {shown(note)}", err=True)
    if as_json:
        print_json(summary)
        return
    for run in summary["runs"]:
        best = run["best"]
        best = (f"best {best['metric']} {best['value']:.4g} at update {best['at']}" if best
                else "no dev score yet")
        click.echo(shown(f"{run['label']}: {run['updates']} updates, {best} ({run['status']})"))
    click.echo(f"wrote {output}")
