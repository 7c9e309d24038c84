"""What every command shares: one-line errors, JSON output, the quiet flag."""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator

import click

from uvs import runs
from uvs.cluster.run import Where, check_available, parse_shard
from uvs.errors import UVSError, os_reason
from uvs.fileio import check_not_input, has_line_break, read_lines
from uvs.modelfile import shown
from uvs.progress import progress
from uvs.stores import is_store, zarr_module


class Group(click.Group):
    """A click group that turns library errors into one line on stderr and exit status 1."""
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UVSError as err:
            raise click.ClickException(str(err)) from None
        except OSError as err:
            where = err.filename if err.filename is not None else "uvs"
            raise click.ClickException(f"{where}: {os_reason(err)}") from None


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


def table_options(table, skip: tuple = ()):
    """Click options derived from a `uvs.options.OptionTable`, each under its table name.

    Defaults are None (not given) so the library can layer recipe presets; --help shows the
    table's default and what each recipe changes it to. Booleans a recipe changes get
    `--x/--no-x`, the others a plain flag.
    """
    def decorate(f):
        for o in reversed([o for o in table if o.cli and o.name not in skip]):
            flag = o.flag
            if o.type is bool and table.recipes_changing(o.name):
                flag = f"{flag}/--no-{flag[2:]}"
            shown = o.default is not None or table.recipes_changing(o.name)
            kwargs = {"default": None, "help": o.help + (
                f" [default: {table.describe_default(o.name)}]" if shown else "")}
            if o.type is bool and "/" not in flag:
                kwargs["is_flag"] = True
            elif o.choices is not None:
                kwargs["type"] = click.Choice([str(c) for c in o.choices])
            elif o.path:
                kwargs["type"] = click.Path(dir_okay=o.path == "dir", file_okay=o.path == "file")
            elif o.type is not bool:
                kwargs["type"] = o.type
            f = click.option(flag, o.name, **kwargs)(f)
        return f
    return decorate


def mode_option(f):
    """--mode: the PyTensor backend, upper-cased (None when not given)."""
    return click.option(
        "--mode", type=click.Choice(["CVM", "NUMBA", "JAX", "FAST_RUN"], case_sensitive=False),
        default=None, callback=lambda ctx, param, value: value and value.upper(),
        help="PyTensor backend [default: $UVS_MODE, else the fastest tested].")(f)


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True,
                        help="Replace another run's model, checkpoint and log at SAVETO.")(f)


@contextlib.contextmanager
def progress_lines(quiet: bool) -> Iterator[None]:
    """Lines logged by the library (`uvs.*` loggers, INFO and up) on stderr, unless quiet."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    logger = logging.getLogger("uvs")
    level = logger.level
    logger.addHandler(handler)
    if level == logging.NOTSET or level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def exit_interrupted(stop, resume: list[str]):
    """One line for a run stopped by a signal (`uvs.runs.Interrupted`), then exit 130/143."""
    click.echo(f"{stop}; resume with: {shlex.join(resume)}", err=True)
    sys.exit(stop.exit_status)


def rsum_line(result: dict) -> str:
    return (f"best dev rsum {result['best_rsum']:.1f} after {result['updates']} updates; "
            f"model: {result['saveto']}")


def run_trainer(train: Callable[[], dict], command: list[str], quiet: bool, as_json: bool,
                extra: list[str] = (), line: Callable[[dict], str] = rsum_line) -> None:
    """Run `train()` with progress lines; print its result as JSON or as `line(result)`.

    SIGINT/SIGTERM: one line with the command that resumes the run (`command --saveto SAVETO
    --reload` then `extra`), then exit 130/143.
    """
    with progress_lines(quiet):
        try:
            result = train()
        except runs.Interrupted as stop:
            exit_interrupted(stop, [*command, "--saveto", stop.saveto, "--reload", *extra])
    if as_json:
        print_json(result)
    else:
        click.echo(line(result))


WEIGHTS_HELP = ("VGG-19 weights: 'torchvision' (ImageNet weights from torch's cache) or the "
                "path of Lasagne's vgg19.pkl (Caffe weights, as the released features).")


def weights_option(f):
    """--weights, --crops and --device of the commands that run VGG-19 on photos."""
    f = click.option("--device", default=None,
                     help="torch device (default: cuda if available, else cpu).")(f)
    f = click.option("--crops", type=click.Choice(["1", "10"]), default="1", show_default=True,
                     help="Centre crop, or the mean over 10 crops.")(f)
    return click.option("--weights", default="torchvision", show_default=True,
                        help=WEIGHTS_HELP)(f)


def progress_bar(total: int, label: str, quiet: bool):
    """A progress bar on stderr (none when quiet)."""
    return progress(total, label, not quiet)


def photo_paths(photos: tuple[str, ...], list_file: str | None) -> list[str]:
    """The photos given as arguments or in a list file (one of the two), each on one line."""
    if bool(photos) == bool(list_file):
        raise click.UsageError("give photos as arguments or --list FILE (one of the two)")
    paths = list(photos) if photos else read_lines(list_file)
    for p in paths:
        if has_line_break(p) or not p.strip():
            raise UVSError(shown(p), "a path with a line break or separator (such as U+2028, "
                           "VT, FF, NEL) cannot go into the list of paths")
    return paths


def trainer_command(table, trainer: Callable[..., dict], command: list[str], help: str,
                    line: Callable[[dict], str] = rsum_line) -> click.Command:
    """The `train` command of a trainer (`command`: the words that call it): the options of
    its `table`, --overwrite, --mode, --json and -q; `trainer(overwrite=, mode=, **options)`
    runs under `run_trainer` (a signal prints the line that resumes it)."""
    @click.command(command[-1], help=help, context_settings={"max_content_width": 100})
    @table_options(table)
    @overwrite_option
    @mode_option
    @json_option
    @quiet_option
    def train(overwrite, mode, as_json, quiet, **options):
        run_trainer(lambda: trainer(overwrite=overwrite, mode=mode, **options), command,
                    quiet, as_json, ["--mode", mode] if mode else [], line=line)

    return train


def cluster_options(f):
    """--cluster, --workers, --shard, --chunk-rows: run a batch command as a job of chunks
    into a Zarr store (`uvs.cluster`); read them with `cluster_where`."""
    f = click.option("--chunk-rows", type=click.IntRange(1), default=None,
                     help="Rows per task (one chunk of the store) [default: per command].")(f)
    f = click.option("--shard", default=None, metavar="I/N",
                     help="Run only piece I of N (1-based) of the job's chunks; pieces that "
                          "write one store path make the whole ([cluster] extra).")(f)
    f = click.option("--workers", type=click.IntRange(1), default=None,
                     help="Run on a local Dask cluster of N worker processes, one thread "
                          "each ([cluster] extra).")(f)
    return click.option("--cluster", default=None, metavar="ADDRESS",
                        help="Run on the Dask scheduler at ADDRESS, e.g. tcp://host:8786 "
                             "([cluster] extra).")(f)


def cluster_where(cluster, workers, shard, output: str, store: bool | None = None):
    """The `uvs.cluster.run.Where` of a batch command, or None for a plain one-process run.

    A job runs when a cluster flag is given or OUTPUT is a .zarr store (`store` overrides);
    a missing [cluster] extra is one line here, before any slow work.
    """

    store = is_store(output) if store is None else store
    if not (cluster or workers or shard or store):
        return None
    if cluster and workers:
        raise click.UsageError("give --cluster ADDRESS or --workers N, not both")
    if not store:
        raise click.UsageError("--cluster, --workers and --shard write a store: give "
                               "-o NAME.zarr")

    where = Where(cluster, workers, parse_shard(shard))
    check_available(where, output)
    return where


def print_job(summary: dict, as_json: bool, unit: str = "rows") -> None:
    """A job's outcome: one JSON object, or what it skipped and one line on what it wrote."""
    if as_json:
        print_json(summary)
        return
    for item in summary["skipped"]:
        what = item["path"] if item.get("box") is None else f"{item['path']} box {item['box']}"
        click.echo(f"skipped {what}: {item['problem']}", err=True)
    for item in summary["warnings"]:
        click.echo(f"warning: {item['path']}: {item['problem']}", err=True)
    ran = f"{summary['ran']} chunks run, {summary['already']} already written"
    if summary["complete"]:
        click.echo(f"wrote {summary['output']}: {summary['kept']} {unit} in "
                   f"{summary['chunks']} chunks ({ran})")
    else:
        click.echo(f"{summary['store']}: {ran}; {summary['missing_chunks']} of "
                   f"{summary['chunks']} chunks still to write (other shards, or a rerun)")


def check_store_inputs(*paths) -> None:
    """A one-line error before any slow work when a .zarr input is given without zarr."""

    if any(p and is_store(p) for p in paths):
        zarr_module()


def check_photos_not_written(output: str, writes: list[str], paths: list[str], root, list_file,
                             *more) -> None:
    """`uvs features` never writes over a photo, the list, the weights or a boxes file."""
    import os


    photos = [p if root is None or os.path.isabs(p) else os.path.join(root, p) for p in paths]
    check_not_input(output, [list_file, *(m for m in more if m and os.path.isfile(m))], writes,
                    plain=photos)
