"""Words tied to regions: the MRF's phrases for one photo and one sentence, and a picture.

`align_sentence` scores every word against every region (v_iᵀ s_t), solves the phrase MRF
(uvs.align.mrf) and returns the phrases, each with its box; `draw` puts the boxes and their
phrases on the photo with Pillow, as the paper's figures do.
"""

from __future__ import annotations

import io
import os

import numpy as np

from uvs import vgg
from uvs.align import features
from uvs.align.evaluation import encode_regions, encode_words
from uvs.align.mrf import mrf_align, phrases
from uvs.errors import UVSError
from uvs.fileio import atomic_path
from uvs.photos import load_image, need
from uvs.regions import Regions
from uvs.report.alignment import alignment_page
from uvs.vocab import tokenize

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40)]
PICTURE_TYPES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".html": None, ".htm": None}


def check_picture_type(output: str) -> str:
    """The output's extension if `draw` writes it (.png, .jpg/.jpeg, .html/.htm), else refuse."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in PICTURE_TYPES:
        raise UVSError(output, f"cannot write {ext or 'a file without an extension'}: give "
                       f"an output ending in {', '.join(PICTURE_TYPES)}")
    return ext


def align_sentence(model: dict, features: np.ndarray, boxes: np.ndarray, text: str,
                   beta: float = 0.1) -> dict:
    """Phrases of `text` on the regions (features (R, dim_image), boxes (R, 4)) of one photo.

    Returns {'words', 'region' (per word), 'unary' (words x regions), 'phrases':
    [{'text', 'first', 'last', 'region', 'box', 'score'}], 'energy', 'beta'}.
    """
    words = tokenize(text)
    if not words:
        raise UVSError(None, "the text has no words")
    w, _ = encode_words(model, [text])
    v = encode_regions(model, features)
    unary = w.astype(np.float64) @ v.astype(np.float64).T
    a, e = mrf_align(unary, beta)
    out = []
    for first, end, region in phrases(a):
        out.append({"text": " ".join(words[first:end]), "first": first, "last": end - 1,
                    "region": region, "box": [float(b) for b in boxes[region]],
                    "score": float(unary[np.arange(first, end), region].sum())})
    return {"words": words, "region": [int(r) for r in a], "unary": unary.tolist(),
            "phrases": out, "energy": e, "beta": beta}


def photo_regions(model: dict, net: vgg.ConvNet, image: str, boxes: str = "grid",
                  max_regions: int = 19) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (R, dim_image), boxes (R, 4), pixels (H, W, 3) uint8) of a photo's regions
    (`uvs.align.features.region_features`), the network checked against the model."""
    vgg.check_width(net, model["options"]["dim_image"], model.get("path") or "the model")
    found = features.region_features(net, [image], boxes, max_regions, strict=True)
    return found["features"], found["boxes"], load_image(image)


def regions_row(regions: Regions, row: int, dim_image: int, pixels: bool = True
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(features, boxes, pixels) of photo `row` of a regions file, checked against the
    model's dim_image; pixels (when asked) from the photo on disk, else a grey canvas of the
    whole image's size (the sample has no photos)."""
    if row >= len(regions):
        raise UVSError(regions.path, f"row {row} asked, the file has {len(regions)} photos")
    if regions.features.shape[1] != dim_image:
        raise UVSError(regions.path, f"region features are {regions.features.shape[1]} wide; "
                       f"the model takes {dim_image}")
    feats, boxes = regions.of(row)
    if not pixels:
        return feats, boxes, None
    if os.path.isfile(regions.paths[row]):
        return feats, boxes, load_image(regions.paths[row])
    w, h = (max(1, int(round(c))) for c in boxes[0][2:])
    return feats, boxes, np.full((h, w, 3), 200, np.uint8)


def summary(result: dict) -> dict:
    """`align_sentence`'s result as `--json` gives it: without the word x region scores."""
    return {k: v for k, v in result.items() if k != "unary"}


def draw(pixels: np.ndarray, result: dict, output: str) -> None:
    """The photo with each phrase's box and text; `.png` (or any Pillow format) or `.html`."""
    Image = need("PIL.Image")
    ImageDraw = need("PIL.ImageDraw")
    img = Image.fromarray(pixels).convert("RGB")
    scale = max(1.0, 480 / max(img.size))
    if scale > 1:
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)))
    canvas = ImageDraw.Draw(img)
    by_region: dict[int, list[str]] = {}
    for p in result["phrases"]:
        by_region.setdefault(p["region"], []).append(p["text"])
    for n, (region, texts) in enumerate(by_region.items()):
        colour = PALETTE[n % len(PALETTE)]
        x0, y0, x1, y1 = (c * scale for c in next(p["box"] for p in result["phrases"]
                                                 if p["region"] == region))
        canvas.rectangle([x0, y0, x1 - 1, y1 - 1], outline=colour, width=3)
        label = " | ".join(texts)
        tx0, ty0, tx1, ty1 = canvas.textbbox((x0 + 3, y0 + 3), label)
        canvas.rectangle([tx0 - 2, ty0 - 2, tx1 + 2, ty1 + 2], fill=colour)
        canvas.text((x0 + 3, y0 + 3), label, fill=(255, 255, 255))
    ext = check_picture_type(output)
    if ext in (".html", ".htm"):
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        colour = {region: "#{:02x}{:02x}{:02x}".format(*PALETTE[n % len(PALETTE)])
                  for n, region in enumerate(by_region)}
        alignment_page(output, buf.getvalue(), result,
                       [colour[p["region"]] for p in result["phrases"]])
        return
    fmt = PICTURE_TYPES[ext]
    with atomic_path(output, suffix=ext) as tmp:
        img.save(tmp, format=fmt)
