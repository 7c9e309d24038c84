"""Commands on models: `evalrank`, `encode sentences|images`, `info`, `convert`."""

from __future__ import annotations

import click

from uvs import queries, tools
from uvs.align import evaluation as align_eval
from uvs.backend import describe
from uvs.cli.common import (
    check_store_inputs,
    cluster_options,
    cluster_where,
    data_dir_option,
    json_option,
    print_job,
    print_json,
    progress_lines,
    quiet_option,
)
from uvs.cluster import jobs
from uvs.datasets import open_features
from uvs.features import read_image_features
from uvs.fileio import check_not_input, check_replaceable, is_npy, read_lines, save_npy
from uvs.mnlm.files import net_from_file, write_mnlm
from uvs.modelfile import read_model, shown, write_model
from uvs.progress import progress
from uvs.report import build, check_installed, page
from uvs.stores import is_store

dictionary_option = click.option(
    "--dictionary", type=click.Path(dir_okay=False),
    help="Word dictionary of a released model (default: MODEL.npz.dictionary.pkl).")



def _table(results: dict) -> str:
    rows = ["         R@1    R@5   R@10   medr   meanr"]
    for direction, label in (("i2t", "i2t"), ("t2i", "t2i")):
        m = results[direction]
        rows.append(f"{label:<5} {m['r1']:6.1f} {m['r5']:6.1f} {m['r10']:6.1f} "
                    f"{m['medr']:6.0f} {m['meanr']:7.1f}")
    rows.append(f"rsum  {results['rsum']:.1f}")
    return "\n".join(rows)


@click.command()
@click.argument("model", type=click.Path())
@click.option("--data", default=None, help="Data set name (default: the model's own).")
@data_dir_option
@click.option("--split", type=click.Choice(["dev", "test"]), default="dev", show_default=True)
@click.option("--fold5", is_flag=True, help="Mean over 5 equal folds (COCO 1K protocol).")
@click.option("--regions", type=click.Path(dir_okay=False), default=None,
              help="Alignment models: the split's region features (uvs features --regions; "
                   "default DIR/DATA/DATA_SPLIT_regions.npz).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write an HTML report (curves, ranks, every query) to this file.")
@click.option("--photos", "photos_list", type=click.Path(dir_okay=False),
              help="For --report: one name or photo path per image of the split (default: "
                   "the features' .paths.txt when there is one).")
@json_option
@quiet_option
def evalrank(model, data, data_dir, split, fold5, regions, report_path, photos_list, as_json,
             quiet):
    """Score image-to-text and text-to-image retrieval of MODEL on a data split.

    An alignment model (uvs align train) ranks by S_kl over the regions of each image, with
    --report too.
    """
    if photos_list and not report_path:
        raise click.UsageError("--photos names the images of a --report")
    if report_path:
        mf = read_model(model)
        if mf.kind != "align" and regions is not None:
            raise click.ClickException(f"{mf.path}: --regions is for alignment models; this "
                                       f"is a {mf.kind} model")
        align = ((align_eval.compile_model(mf.params, mf.options, mf.worddict, mf.path),
                  regions) if mf.kind == "align" else None)
        results = _evalrank_report(model, data, data_dir, split, fold5, report_path,
                                   photos_list, quiet, align=align)
    else:
        results = align_eval.evalrank_file(model, regions, data=data, split=split,
                                           data_dir=data_dir, fold5=fold5, verbose=not quiet)
    if as_json:
        print_json({**results, "report": report_path} if report_path else results)
        return
    if fold5:
        click.echo("mean of 5 folds:")
    click.echo(_table(results))
    if report_path:
        click.echo(f"wrote {report_path}")


def _evalrank_report(model, data, data_dir, split, fold5, report_path, photos_list, quiet,
                     align=None):
    """evalrank's metrics, with the HTML report of every query written on the way.

    align: (compiled alignment model, --regions) for an alignment model, ranked by S_kl."""

    check_installed()
    page.check_output(report_path, (model, photos_list, align and align[1]))
    inputs = ()
    if align is not None:
        m, regions = align
        results, found, ds, regions_path = align_eval.evalrank_queries(
            m, regions, data=data, split=split, data_dir=data_dir, fold5=fold5,
            verbose=not quiet)
        method, inputs = "align", (regions_path,)
    else:
        m = tools.load_model(model)
        results, found, ds = queries.evalrank_queries(m, data=data, split=split,
                                                      data_dir=data_dir, fold5=fold5,
                                                      verbose=not quiet)
        method = m["options"].get("method", "cosine")
    with progress(len(found.i2t_ranks), "report: images", not quiet) as bar:
        build.retrieval_report(report_path, results, found, ds, model_path=model,
                               data=data or m["options"].get("data"), split_name=split,
                               fold5=fold5, method=method, names_file=photos_list,
                               inputs=inputs, on_progress=bar.update)
    return results


@click.group()
def encode():
    """Embed sentences or image features with a model."""


@encode.command("sentences")
@click.argument("model", type=click.Path())
@click.argument("textfile", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output .npy file, or a .zarr store (a job of chunks, resumable).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@cluster_options
@json_option
@quiet_option
def encode_sentences(model, textfile, output, batch_size, cluster, workers, shard, chunk_rows,
                     as_json, quiet):
    """Embed TEXTFILE (UTF-8, one sentence per line) into OUTPUT, one row per line."""

    check_not_input(output, (model, textfile))
    where = cluster_where(cluster, workers, shard, output)
    if where is not None:
        with progress_lines(quiet):
            store, spec = jobs.sentences_job(output, model, textfile, batch_size, chunk_rows)
            print_job(jobs.run_job(store, spec, where, quiet), as_json, "sentences")
        return
    check_replaceable(output, is_npy, "a .npy array")
    sentences = read_lines(textfile)
    vectors = tools.encode_sentences(tools.load_model(model), sentences, verbose=not quiet,
                                     batch_size=batch_size)
    save_npy(output, vectors)
    if as_json:
        print_json({"output": output, "rows": vectors.shape[0], "dim": vectors.shape[1]})
    elif not quiet:
        click.echo(f"wrote {output}: {vectors.shape[0]} x {vectors.shape[1]}", err=True)


@encode.command("images")
@click.argument("model", type=click.Path())
@click.argument("features", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output .npy file, or a .zarr store (a job of chunks, resumable).")
@cluster_options
@json_option
@quiet_option
def encode_images(model, features, output, cluster, workers, shard, chunk_rows, as_json,
                  quiet):
    """Embed FEATURES (.npy or a .zarr store, one row of CNN features per image) into OUTPUT."""

    check_store_inputs(features)
    check_not_input(output, (model, features))
    where = cluster_where(cluster, workers, shard, output)
    if where is not None:
        with progress_lines(quiet):
            store, spec = jobs.images_job(output, model, features, chunk_rows)
            print_job(jobs.run_job(store, spec, where, quiet), as_json, "images")
        return
    check_replaceable(output, is_npy, "a .npy array")
    if is_store(features):
        ims = read_image_features(features)[0]
    else:
        ims = open_features(features)
    m = tools.load_model(model)
    vectors = tools.encode_images(m, tools.check_features(m, ims, features))
    save_npy(output, vectors)
    if as_json:
        print_json({"output": output, "rows": vectors.shape[0], "dim": vectors.shape[1]})
    elif not quiet:
        click.echo(f"wrote {output}: {vectors.shape[0]} x {vectors.shape[1]}", err=True)


@click.command()
@click.argument("model", type=click.Path(), required=False)
@click.option("--backend", is_flag=True, help="Show PyTensor's mode and BLAS instead.")
@dictionary_option
@json_option
def info(model, backend, dictionary, as_json):
    """Show MODEL's kind, layout, options, vocabulary size and parameter shapes."""

    if backend:
        found = describe()
        if as_json:
            print_json(found)
        else:
            for k, v in found.items():
                click.echo(f"{k:<9} {v}")
        return
    if model is None:
        raise click.UsageError("give a MODEL (or --backend)")
    mf = read_model(model, dictionary=dictionary, arrays=False)  # headers: shapes, not data
    summary = {"path": mf.path, "layout": mf.layout, "kind": mf.kind, "options": mf.options,
               "vocabulary": len(mf.worddict),
               "parameters": {k: list(v.shape) for k, v in mf.params.items()}}
    if as_json:
        print_json(summary)
        return
    click.echo(f"{mf.path}  ({mf.kind} model, {mf.layout} layout, {len(mf.worddict)} words)")
    click.echo("options:")
    for k, v in mf.options.items():
        click.echo(f"  {shown(k):<14} {v!r}")
    click.echo("parameters:")
    for k, v in mf.params.items():
        click.echo(f"  {k:<14} {' x '.join(map(str, v.shape))}")


@click.command()
@click.argument("model", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The new model file (.npz, uvs format).")
@dictionary_option
def convert(model, output, dictionary):
    """Rewrite MODEL in the uvs format (one .npz, no pickle), keeping its kind."""

    check_not_input(output, (model, dictionary))
    mf = read_model(model, dictionary=dictionary)
    if mf.kind in ("mlbl", "mlblf", "scnlm"):  # with momentum buffers and schedule state

        write_mnlm(output, net_from_file(mf, dtype="float64"))
    else:
        write_model(output, mf.params, mf.options, mf.worddict,
                    extra_meta=None if mf.kind == "vse" else {"kind": mf.kind})
    click.echo(f"wrote {output} ({mf.layout} layout -> uvs)", err=True)


def register(group: click.Group) -> None:
    for command in (evalrank, encode, info, convert):
        group.add_command(command)
