"""Your own photos and sentences: `uvs features`, `uvs search`, `uvs index build|info`."""

from __future__ import annotations

import click

from uvs import index as uindex
from uvs import search as usearch
from uvs import tools, vgg
from uvs.cli.align import region_features
from uvs.cli.common import (
    Group,
    check_photos_not_written,
    check_store_inputs,
    cluster_options,
    cluster_where,
    json_option,
    photo_paths,
    print_job,
    print_json,
    progress_bar,
    progress_lines,
    quiet_option,
    weights_option,
)
from uvs.cluster import jobs
from uvs.errors import UVSError
from uvs.extras import require
from uvs.features import paths_file, read_image_features
from uvs.fileio import check_not_input, check_replaceable, is_npy, save_npy, write_text
from uvs.modelfile import shown
from uvs.photos import check_photo
from uvs.report import build as report_build
from uvs.report import check_installed, gallery, page
from uvs.retrieval import model_method
from uvs.vocab import unknown_words


@click.command()
@click.argument("photos", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--list", "list_file", type=click.Path(dir_okay=False),
              help="A UTF-8 file of image paths, one a line.")
@click.option("--root", type=click.Path(file_okay=False),
              help="The folder that the paths are relative to.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="FEATS.npy to write (the image paths go to FEATS.paths.txt beside it), or "
                   "a FEATS.zarr store (a job of chunks: resumable, on a cluster).")
@weights_option
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--strict", is_flag=True, help="Fail on an unreadable image instead of skipping it.")
@click.option("--regions", "boxes", default=None,
              help="Region features for the alignment model into REGIONS.npz: boxes from "
                   "'grid', 'detector' (Faster R-CNN from torch's cache) or a JSON-lines file.")
@click.option("--max-regions", type=click.IntRange(1), default=19, show_default=True,
              help="With --regions: boxes per photo, besides the whole image.")
@cluster_options
@json_option
@quiet_option
def features(photos, list_file, root, output, weights, crops, device, batch_size, strict,
             boxes, max_regions, cluster, workers, shard, chunk_rows, as_json, quiet):
    """VGG-19 fc7 features (after ReLU, rows of unit norm) of PHOTOS into FEATS.npy."""

    if boxes is not None:
        where = cluster_where(cluster, workers, shard, output,
                              store=bool(cluster or workers or shard))
        if where is not None:
            return _regions_job(photos, list_file, root, output, weights, device, strict,
                                boxes, max_regions, chunk_rows, where, as_json, quiet)
    where = cluster_where(cluster, workers, shard, output)
    if where is not None:
        return _features_job(photos, list_file, root, output, weights, crops, device,
                             batch_size, strict, chunk_rows, where, as_json, quiet)
    if boxes is not None:
        return region_features(photos, list_file, root, output, weights, device, strict,
                               boxes, max_regions, as_json, quiet)
    paths = photo_paths(photos, list_file)
    check_photos_not_written(output, [paths_file(output)], paths, root, list_file, weights)
    check_replaceable(output, is_npy, "a .npy array of features")
    net = vgg.build_convnet(weights, device=device)
    with progress_bar(len(paths), "photos", quiet) as bar:
        run = vgg.features_from_files(net, paths, crops=int(crops), batch_size=batch_size,
                                      strict=strict, root=root, on_progress=bar.update)
    if not run.paths:
        raise UVSError(list_file or paths[0], f"none of the {len(paths)} images could be read")
    save_npy(output, run.features)
    listing = paths_file(output)
    write_text(listing, "".join(p + "\n" for p in run.paths))
    summary = {"output": output, "paths": listing, "rows": len(run.paths), "dim": net.dim,
               "crops": int(crops), "weights": net.weights, "preprocessing": net.preprocessing,
               "skipped": run.skipped, "warnings": run.warnings}
    if as_json:
        print_json(summary)
        return

    for item in run.skipped:
        click.echo(f"skipped {shown(item['path'])}: {shown(item['problem'])}", err=True)
    for item in run.warnings:
        click.echo(f"warning: {shown(item['path'])}: {shown(item['problem'])}", err=True)
    click.echo(f"wrote {output}: {len(run.paths)} x {net.dim} ({listing} names the rows)")


def _features_job(photos, list_file, root, output, weights, crops, device, batch_size, strict,
                  chunk_rows, where, as_json, quiet):
    """`uvs features -o FEATS.zarr`: a job of chunks, here or on a Dask cluster."""

    if bool(photos) == bool(list_file):
        raise click.UsageError("give photos as arguments or --list FILE (one of the two)")
    paths = photo_paths(photos, None) if photos else jobs.iter_lines(list_file)
    with progress_lines(quiet):
        store, spec = jobs.features_job(output, paths, weights, int(crops), batch_size, strict,
                                        root, device, chunk_rows)
        summary = jobs.run_job(store, spec, where, quiet)
    if summary["complete"] and len(summary["skipped"]) == summary["rows"]:
        raise UVSError(list_file or photos[0], f"none of the {summary['rows']} images could "
                       "be read")
    print_job(summary, as_json, "photos")


def _regions_job(photos, list_file, root, output, weights, device, strict, boxes, max_regions,
                 chunk_rows, where, as_json, quiet):
    """`uvs features --regions grid|detector -o REGIONS.npz --workers N`: a job of chunks in
    REGIONS.npz.job.zarr, assembled into REGIONS.npz when complete."""

    if bool(photos) == bool(list_file):
        raise click.UsageError("give photos as arguments or --list FILE (one of the two)")
    paths = photo_paths(photos, None) if photos else jobs.iter_lines(list_file)
    with progress_lines(quiet):
        store, spec = jobs.regions_job(output, paths, weights, boxes, max_regions, strict,
                                       root, device, chunk_rows)
        summary = jobs.run_job(store, spec, where, quiet, output=output)
    print_job(summary, as_json, "photos")


# --- uvs search -----------------------------------------------------------------------------

def _check_search(image, text, collections, minus, plus):
    if bool(image) == bool(text):
        raise click.UsageError("give one query: --image PHOTO, --image-features FEATS.npy "
                               "or --text SENTENCE")
    if len(collections) != 1:
        raise click.UsageError("search one collection: --captions FILE, --images FEATS.npy "
                               "or --index INDEX")
    if (minus or plus) and not image:
        raise click.UsageError("--minus/--plus change an --image query")
    if text and "captions" in collections:
        raise click.UsageError("--text finds photos: give --images FEATS.npy or an index of "
                               "images")


def _check_extras(image: str | None, index_path: str | None) -> None:
    """A missing photo, then a missing extra, before the model is loaded or anything embedded."""

    if image:
        check_photo(image)
        require("images", "--image")
    if index_path:
        require("index", "--index")


@click.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--image", type=click.Path(dir_okay=False), help="Query photo.")
@click.option("--image-features", type=click.Path(),
              help="Query by precomputed CNN features instead of a photo: a .npy (or .zarr "
                   "store) of rows ...")
@click.option("--row", type=click.IntRange(0), default=None,
              help="... and the row of it to use [default: 0].")
@click.option("--text", help="Query sentence (pre-tokenised, as the model's training text).")
@click.option("--captions", type=click.Path(dir_okay=False),
              help="Captions to search, one a line (embeddings cached beside it).")
@click.option("--images", "feats", type=click.Path(),
              help="FEATS.npy or FEATS.zarr from `uvs features` to search (embeddings cached "
                   "beside it).")
@click.option("--index", "index_path", type=click.Path(dir_okay=False),
              help="An index from `uvs index build` to search.")
@click.option("--minus", multiple=True, help="Word(s) to subtract from the --image query.")
@click.option("--plus", multiple=True, help="Word(s) to add to the --image query.")
@click.option("--rerank", is_flag=True, help="Reorder the photos found by closeness to their mean.")
@click.option("-k", type=click.IntRange(1), default=5, show_default=True, help="Results.")
@click.option("--all-duplicates", is_flag=True,
              help="Show identical captions (or identical image rows) one by one; by default "
                   "each is shown once, with how many it stands for.")
@weights_option
@click.option("--candidates", type=click.IntRange(1),
              help="Order models on an approximate index: candidates re-scored exactly "
                   "(default max(100, 10k)).")
@click.option("--nprobe", type=click.IntRange(1),
              help="Approximate index: inverted lists visited (default: the index's).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write the query and its results as an HTML page to this file.")
@json_option
@quiet_option
def search(model, image, image_features, row, text, captions, feats, index_path, minus, plus,
           rerank, k, all_duplicates, weights, crops, device, candidates, nprobe, report_path,
           as_json, quiet):
    """Captions for a photo, or photos for a sentence (or for photo − word + word)."""


    if report_path:
        check_installed()
        page.check_output(report_path, tuple(p for p in (model, image, image_features, captions,
                                                         feats, index_path) if p))
    check_store_inputs(image_features, feats)
    given = {"captions": captions, "images": feats, "index": index_path}
    collections = {name: path for name, path in given.items() if path}
    if image and image_features:
        raise click.UsageError("give --image or --image-features, not both")
    image_query = image or image_features
    _check_search(image_query, text, collections, minus, plus)
    if row is not None and not image_features:
        raise click.UsageError("--row picks a row of --image-features")
    row = row or 0
    _check_extras(image, index_path)
    m = tools.load_model(model)
    unknown = unknown_words([text] if text else [*minus, *plus], m["worddict"],
                            m["options"]["n_words"])
    if unknown:
        click.echo(f"note: {model} does not know {', '.join(map(repr, unknown))} "
                   "(read as UNK)", err=True)
    query = usearch.embed_query(m, text=text, photo=image, features=image_features, row=row,
                                weights=weights, crops=int(crops), device=device, minus=minus,
                                plus=plus)
    hits = usearch.search(m, query, usearch.finds(bool(image_query), minus, plus),
                          captions=captions, images=feats, index=index_path, k=k,
                          rerank=rerank, candidates=candidates, nprobe=nprobe,
                          show_progress=not quiet, distinct=not all_duplicates)
    collection = next(iter(collections.values()))
    results = hits.results()
    collapsed = sum(r["duplicates"] for r in results)
    if collapsed and hits.kind == "images" and feats and not quiet:
        click.echo(f"note: {feats} holds identical rows ({collapsed} folded into the results "
                   "shown): is it one row per caption? Search one row per photo (the sample's "
                   "*_photos.npy, or `uvs features`); --all-duplicates shows every row",
                   err=True)
    if report_path:
        _search_report(report_path, m, model, image, image_features, row, text, minus, plus,
                       hits.kind, collection, [r[hits.item] for r in results],
                       [r["score"] for r in results])
    if as_json:
        query = {"image": image, "image_features": image_features,
                 "row": row if image_features else None, "text": text, "minus": list(minus),
                 "plus": list(plus), "unknown_words": unknown}
        print_json({**hits.summary(model, m, query, collection, all_duplicates),
                    **({"report": report_path} if report_path else {})})
        return

    for r in results:
        more = f"  (+{r['duplicates']} identical)" if r["duplicates"] else ""
        click.echo(f"{r['rank']:>3}  {r['score']:8.4f}  {shown(r[hits.item])}{more}")
    if report_path:
        click.echo(f"wrote {report_path}")


def _search_report(path, m, model, image, image_features, row, text, minus, plus, kind,
                   collection, hits, scores):
    """The query and its hits as an HTML page (photos found by name are embedded)."""
    import os


    if text is not None:
        query = {"text": text}
    elif image:
        query = {"label": os.path.basename(image), "photo": image}
    else:
        _, names = read_image_features(image_features)
        folder = os.path.dirname(paths_file(image_features))
        query = {"label": names[row], "photo": gallery.photo_file(names[row], folder)}
    query.update(minus=list(minus), plus=list(plus))
    folder = os.path.dirname(paths_file(collection))  # image names are relative to it
    report_build.search_report(path, model_path=model, method=model_method(m), query=query,
                        kind=kind, hits=hits, scores=scores, names_folder=folder,
                        collection=collection)


# --- uvs index ------------------------------------------------------------------------------

@click.group(cls=Group)
def index():
    """Indexes for large collections of captions or photos (faiss)."""


@index.command("build")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--captions", type=click.Path(),
              help="Captions, one a line, or a store of their embeddings by MODEL (`uvs "
                   "encode sentences MODEL CAPTIONS -o X.zarr`).")
@click.option("--images", "feats", type=click.Path(),
              help="FEATS.npy from `uvs features`, or a FEATS.zarr store (read chunk by "
                   "chunk).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The index file to write.")
@click.option("--type", "index_type", type=click.Choice(["auto", "flat", "ivf"]),
              default="auto", show_default=True,
              help="flat: exact; ivf: approximate; auto: flat up to 100k vectors.")
@click.option("--nlist", type=click.IntRange(1), help="ivf: inverted lists (default ≈ √n).")
@click.option("--nprobe", type=click.IntRange(1),
              help="ivf: lists visited per query (default nlist/16, at least 8).")
@click.option("--on-disk", is_flag=True,
              help="ivf from a .zarr store: inverted lists in OUTPUT.ivfdata (memory-mapped, "
                   "need not fit in RAM) and OUTPUT.faiss beside OUTPUT.")
@click.option("--block-rows", type=click.IntRange(1), default=None,
              help="--on-disk: rows added in memory before a block is written [default: "
                   "1000000].")
@json_option
@quiet_option
def build(model, captions, feats, output, index_type, nlist, nprobe, on_disk, block_rows,
          as_json, quiet):
    """Embed a caption file or FEATS.npy with MODEL and index it in OUTPUT."""

    if bool(captions) == bool(feats):
        raise click.UsageError("index one collection: --captions FILE or --images FEATS.npy")
    check_store_inputs(captions, feats)
    check_not_input(output, (model, captions, feats))
    check_replaceable(output, uindex.is_index, "an index")
    require("index", "uvs index build")  # before the collection is embedded
    built, cache = uindex.build_collection(tools.load_model(model), captions=captions,
                                           images=feats, model_path=model,
                                           index_type=index_type, nlist=nlist, nprobe=nprobe,
                                           show_progress=not quiet,
                                           on_disk=output if on_disk else None,
                                           block_rows=block_rows)
    uindex.save(built, output)
    if as_json:
        print_json({"index": output, **built.meta, "cache": cache})
        return
    how = "exact" if built.meta["type"] == "flat" else \
        f"approximate, nlist {built.meta['nlist']}, nprobe {built.meta['nprobe']}"
    click.echo(f"indexed {len(built.names)} {built.meta['kind']} in {output} "
               f"({built.meta['type']}: {how})")


@index.command("info")
@click.argument("path", type=click.Path(dir_okay=False))
@json_option
def info(path, as_json):
    """What an index holds: kind, model, count, type."""

    meta = uindex.read_info(path)
    if as_json:
        print_json({"index": path, **meta})
        return

    for key, value in meta.items():
        click.echo(f"{shown(key)}: {shown(value)}")


def register(group: click.Group) -> None:
    """Add `features`, `search` and `index` to the `uvs` group."""
    group.add_command(features)
    group.add_command(search)
    group.add_command(index)

