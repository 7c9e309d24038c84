"""`uvs align train|show` and the region features of `uvs features --regions`."""

from __future__ import annotations

import click

from uvs.cli.common import Group, print_json
from uvs.errors import UVSError


def region_features(photos, list_file, root, output, weights, device, strict, boxes,
                    max_regions, as_json, quiet):
    """Whole image + boxes per photo, fc7 of each, into one REGIONS.npz."""
    from uvs import vgg
    from uvs.align import features, regions
    from uvs.cli.images import _bar, _photo_paths

    if not output.endswith(".npz"):
        raise UVSError(output, "region features go to a .npz file")
    if boxes in ("grid", "detector") or photos or list_file:
        paths = _photo_paths(photos, list_file)
    else:
        paths = []
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
    for item in out["skipped"]:
        what = item["path"] if item["box"] is None else f"{item['path']} box {item['box']}"
        click.echo(f"skipped {what}: {item['problem']}", err=True)
    click.echo(f"wrote {output}: {summary['rows']} regions of {summary['photos']} photos, "
               f"{summary['dim']}-d")


@click.group(cls=Group)
def align():
    """Karpathy & Fei-Fei's alignment model: train it, show words tied to regions."""


def register(group: click.Group) -> None:
    group.add_command(align)
