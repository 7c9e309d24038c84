"""`uvs align train|show` and the region features of `uvs features --regions`."""

from __future__ import annotations

import os

import click

from uvs import regions, vgg
from uvs.align import evaluation, features
from uvs.align import show as align_show
from uvs.align.options import OPTIONS
from uvs.align.train import trainer
from uvs.cli.common import (
    Group,
    check_photos_not_written,
    json_option,
    photo_paths,
    print_json,
    progress_bar,
    progress_lines,
    quiet_option,
    trainer_command,
)
from uvs.errors import UVSError
from uvs.extras import install_advice, missing, require
from uvs.fileio import check_not_input, check_replaceable, npz_members
from uvs.modelfile import shown
from uvs.photos import check_photo
from uvs.regions import read_regions
from uvs.report import need


def region_features(photos, list_file, root, output, weights, device, strict, boxes,
                    max_regions, as_json, quiet):
    """Whole image + boxes per photo, fc7 of each, into one REGIONS.npz."""

    if not output.endswith(".npz"):
        raise UVSError(output, "region features go to a .npz file")
    if boxes in ("grid", "detector") or photos or list_file:
        paths = photo_paths(photos, list_file)
    else:
        paths = []
    check_photos_not_written(output, [], paths, root, list_file, weights, boxes)
    check_replaceable(output, lambda p: npz_members(p) == set(regions.KEYS), "a regions file")
    total = features.photos_to_do(paths, boxes)
    if boxes == "detector":
        features.detector_weights_path()
    net = vgg.build_convnet(weights, device=device)
    with progress_bar(total, "photos", quiet) as bar:
        out = features.region_features(net, paths, boxes, max_regions, root, strict,
                                       on_progress=bar.update)
    regions.write_regions(output, out["features"], out["image"], out["boxes"], out["paths"])
    summary = {"output": output, "photos": len(out["paths"]), "rows": len(out["features"]),
               "dim": int(out["features"].shape[1]), "boxes": boxes,
               "weights": net.weights, "skipped": out["skipped"]}
    if as_json:
        print_json(summary)
        return

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


align.add_command(trainer_command(OPTIONS, trainer, ["uvs", "align", "train"], """Train an
alignment model on a data set's captions and region features.

The best model on dev is saved at SAVETO with a last checkpoint and a log beside it; Ctrl-C
or SIGTERM writes the checkpoint and prints the command that resumes it.
"""))


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


    if bool(image) == bool(regions):
        raise click.UsageError("give --image PHOTO or --regions FILE (one of the two)")
    if not output and not as_json:
        raise click.UsageError("nothing to show: give -o PICTURE (.png, .jpg or .html) to "
                               "draw the phrases, --json to print them, or both")
    if row and not regions:
        raise click.UsageError("--row picks a photo of --regions")
    if output:
        align_show.check_picture_type(output)

        if "Pillow" in missing("images"):  # before the model is read and the words aligned
            raise UVSError(None, f"Pillow is not installed (-o needs it to draw): "
                           f"{install_advice('images')}")
        check_not_input(output, (model, image, regions, boxes if image else None,
                                 weights if os.path.isfile(weights) else None))
    if image:
        check_photo(image)  # a typo is not a missing extra
        require("images", "--image")
    if output and output.lower().endswith((".html", ".htm")):
        need("jinja2")  # the page is a report's: say so before the slow work
    m = evaluation.load_model(model)
    if image:
        feats, box_rows, pixels = align_show.photo_regions(
            m, vgg.build_convnet(weights, device=device), image, boxes, max_regions)
    else:
        r = read_regions(regions)
        if output and row < len(r):
            check_not_input(output, (r.paths[row],))
        feats, box_rows, pixels = align_show.regions_row(r, row, m["options"]["dim_image"],
                                                         bool(output))
    result = align_show.align_sentence(m, feats, box_rows, text, beta)
    if output:
        align_show.draw(pixels, result, output)
    if as_json:
        print_json({**align_show.summary(result), "output": output})
        return

    for p in result["phrases"]:
        click.echo(f"{shown(p['text']):<30} region {p['region']:>2}  box "
                   f"{' '.join(f'{c:.0f}' for c in p['box'])}  score {p['score']:.3f}")
    click.echo(f"wrote {output}")
