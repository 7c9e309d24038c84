"""`uvs store info|merge`: the Zarr stores that batch jobs write."""

from __future__ import annotations

import click

from uvs.cli.common import Group, json_option, print_json
from uvs.cluster import jobs
from uvs.cluster.merge import describe
from uvs.cluster.merge import merge as run
from uvs.stores import open_store


@click.group(cls=Group)
def store():
    """Stores written by batch jobs (-o NAME.zarr): what they hold, merging shards."""


@store.command("info")
@click.argument("path", type=click.Path())
@json_option
def info(path, as_json):
    """Kind, rows, chunks written and missing, and the job's fingerprint."""
    found = describe(path)
    if as_json:
        print_json(found)
        return
    for key, value in found.items():
        click.echo(f"{key}: {value}")


@store.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The store to write (or to complete: it must belong to the same job).")
@json_option
def merge(sources, output, as_json):
    """Combine the stores of shards of one job (run apart) into OUTPUT.

    OUTPUT named X.job.zarr (a captions or regions job): X is written too once complete.
    """
    found = run(sources, output)
    final = output[:-len(".job.zarr")] if output.endswith(".job.zarr") else None
    merged = open_store(output)
    if found["complete"] and final and merged.meta["kind"] in ("captions", "regions"):
        assemble = jobs.assemble_text if merged.meta["kind"] == "captions" else \
            jobs.assemble_regions
        assemble(merged, final)
        found["assembled"] = final
    if as_json:
        print_json(found)
        return
    state = "complete" if found["complete"] else \
        f"{found['missing_chunks']} of {found['chunks']} chunks still missing"
    click.echo(f"merged {found['copied']} chunks into {output} ({state})")
