"""`uvs align train|show` and the region features of `uvs features --regions`."""

from __future__ import annotations

import os

import click

from uvs.align.options import OPTIONS
from uvs.cli.common import (
    Group,
    json_option,
    overwrite_option,
    print_json,
    progress_lines,
    quiet_option,
    run_trainer,
    table_options,
)
from uvs.errors import UVSError


def region_features(photos, list_file, root, output, weights, device, strict, boxes,
                    max_regions, as_json, quiet):
    """Whole image + boxes per photo, fc7 of each, into one REGIONS.npz."""
    from uvs import vgg
    from uvs.align import features, regions
    from uvs.cli.images import _bar, _photo_paths, check_photos_not_written
    from uvs.fileio import check_replaceable, npz_members

    if not output.endswith(".npz"):
        raise UVSError(output, "region features go to a .npz file")
    if boxes in ("grid", "detector") or photos or list_file:
        paths = _photo_paths(photos, list_file)
    else:
        paths = []
    check_photos_not_written(output, [], paths, root, list_file, weights, boxes)
    check_replaceable(output, lambda p: npz_members(p) == set(regions.KEYS), "a regions file")
    total = features.photos_to_do(paths, boxes)
    if boxes == "detector":
        features.detector_weights_path()
    net = vgg.build_convnet(weights, device=device)
    with _bar(total, "photos", quiet) as bar:
        out = features.region_features(net, paths, boxes, max_regions, root, strict,
                                       on_progress=bar.update)
    regions.write_regions(output, out["features"], out["image"], out["boxes"], out["paths"])
    summary = {"output": output, "photos": len(out["paths"]), "rows": len(out["features"]),
               "dim": int(out["features"].shape[1]), "boxes": boxes,
               "weights": net.weights, "skipped": out["skipped"]}
    if as_json:
        print_json(summary)
        return
    from uvs.modelfile import shown

    for item in out["skipped"]:
        what = item["path"] if item["box"] is None else f"{item['path']} box {item['box']}"
        click.echo(f"skipped {shown(what)}: {shown(item['problem'])}", err=True)
    click.echo(f"wrote {output}: {summary['rows']} regions of {summary['photos']} photos, "
               f"{summary['dim']}-d")


@click.group(cls=Group)
def align():
    """Karpathy & Fei-Fei's alignment model: train it, show words tied to regions."""


def register(group: click.Group) -> None:
    group.add_command(align)


@align.command("train", context_settings={"max_content_width": 100})
@table_options(OPTIONS)
@overwrite_option
@json_option
@quiet_option
def train(overwrite, as_json, quiet, **options):
    """Train an alignment model on a data set's captions and region features.

    The best model on dev is saved at SAVETO with a last checkpoint and a log beside it;
    Ctrl-C or SIGTERM writes the checkpoint and prints the command that resumes it.
    """
    from uvs.align.train import trainer

    run_trainer(lambda: trainer(overwrite=overwrite, **options), ["uvs", "align", "train"],
                quiet, as_json)


@align.command("show")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--text", required=True, help="The sentence (tokenised as in training).")
@click.option("--image", type=click.Path(dir_okay=False), help="The photo.")
@click.option("--boxes", default="grid", show_default=True,
              help="With --image: 'grid', 'detector' or a JSON-lines file of boxes.")
@click.option("--max-regions", type=click.IntRange(1), default=19, show_default=True)
@click.option("--weights", default="torchvision", show_default=True,
              help="VGG-19 weights: 'torchvision' (torch's cache) or Lasagne's vgg19.pkl.")
@click.option("--device", default=None, help="torch device (default: cuda if available).")
@click.option("--regions", type=click.Path(dir_okay=False),
              help="Instead of --image: a regions file (uvs features --regions) ...")
@click.option("--row", type=click.IntRange(0), default=0, show_default=True,
              help="... and the photo in it.")
@click.option("--beta", type=float, default=0.1, show_default=True,
              help="MRF bonus for neighbouring words on one region (larger: longer phrases; "
                   "negative: a cost, shorter phrases).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Picture to write: .png, .jpg (.jpeg) or .html (.htm).")
@json_option
@quiet_option
def show(model, text, image, boxes, max_regions, weights, device, regions, row, beta, output,
         as_json, quiet):
    """Tie the phrases of TEXT to regions of a photo (the paper's MRF) and draw them.

    Nothing is written without -o; with neither -o nor --json it refuses to start.
    """
    with progress_lines(quiet):
        _show(model, text, image, boxes, max_regions, weights, device, regions, row, beta,
              output, as_json)


def _show(model, text, image, boxes, max_regions, weights, device, regions, row, beta, output,
          as_json):
    import numpy as np

    from uvs.align import evaluation
    from uvs.align import show as align_show
    from uvs.align.regions import read_regions

    if bool(image) == bool(regions):
        raise click.UsageError("give --image PHOTO or --regions FILE (one of the two)")
    if not output and not as_json:
        raise click.UsageError("nothing to show: give -o PICTURE (.png, .jpg or .html) to "
                               "draw the phrases, --json to print them, or both")
    if row and not regions:
        raise click.UsageError("--row picks a photo of --regions")
    if output:
        from uvs.fileio import check_not_input

        align_show.check_picture_type(output)
        from uvs.extras import install_advice, missing

        if "Pillow" in missing("images"):  # before the model is read and the words aligned
            raise UVSError(None, f"Pillow is not installed (-o needs it to draw): "
                           f"{install_advice('images')}")
        check_not_input(output, (model, image, regions, boxes if image else None,
                                 weights if os.path.isfile(weights) else None))
    if image:
        from uvs.extras import require
        from uvs.photos import check_photo

        check_photo(image)  # a typo is not a missing extra
        require("images", "--image")
    if output and output.lower().endswith((".html", ".htm")):
        from uvs.report import need

        need("jinja2")  # the page is a report's: say so before the slow work
    m = evaluation.load_model(model)
    if image:
        from uvs import vgg
        from uvs.align import features
        from uvs.photos import load_image

        net = vgg.build_convnet(weights, device=device)
        if net.dim != m["options"]["dim_image"]:
            raise UVSError(model, f"the model takes {m['options']['dim_image']}-d region "
                           f"features; these weights give {net.dim}-d")
        found = features.region_features(net, [image], boxes, max_regions, strict=True)
        feats, box_rows, pixels = found["features"], found["boxes"], load_image(image)
    else:
        r = read_regions(regions)
        if row >= len(r):
            raise UVSError(regions, f"row {row} asked, the file has {len(r)} photos")
        if r.features.shape[1] != m["options"]["dim_image"]:
            raise UVSError(regions, f"region features are {r.features.shape[1]} wide; the "
                           f"model takes {m['options']['dim_image']}")
        feats, box_rows = r.of(row)
        pixels = None
        if output:
            from uvs.fileio import check_not_input

            check_not_input(output, (r.paths[row],))
            if os.path.isfile(r.paths[row]):
                from uvs.photos import load_image

                pixels = load_image(r.paths[row])
            else:  # no photo on disk (the sample): a grey canvas of the whole image's size
                w, h = (max(1, int(round(c))) for c in box_rows[0][2:])
                pixels = np.full((h, w, 3), 200, np.uint8)
    result = align_show.align_sentence(m, feats, box_rows, text, beta)
    if output:
        align_show.draw(pixels, result, output)
    if as_json:
        result = {k: v for k, v in result.items() if k != "unary"}
        print_json({**result, "output": output})
        return
    from uvs.modelfile import shown

    for p in result["phrases"]:
        click.echo(f"{shown(p['text']):<30} region {p['region']:>2}  box "
                   f"{' '.join(f'{c:.0f}' for c in p['box'])}  score {p['score']:.3f}")
    click.echo(f"wrote {output}")
