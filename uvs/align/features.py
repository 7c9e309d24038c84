"""Region features of photos: boxes from a file, the grid or a detector; VGG-19 fc7 of each."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from uvs.errors import UVSError, one_line
from uvs.photos import decode, need
from uvs.regions import DEFAULT_BOXES, box_problem, grid_boxes, read_box_list
from uvs.vgg import box_features


def detector_weights_path() -> str:
    """Where torchvision's Faster R-CNN (ResNet-50 FPN, COCO) weights live in torch's cache."""
    torch = need("torch")
    det = need("torchvision.models.detection")
    url = det.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def load_detector(device: str = "cpu"):
    """torchvision's Faster R-CNN from torch's cache; never downloads."""
    torch = need("torch")
    det = need("torchvision.models.detection")
    path = detector_weights_path()
    if not os.path.isfile(path):
        url = det.FasterRCNN_ResNet50_FPN_Weights.COCO_V1.url
        raise UVSError(path, f"Faster R-CNN weights are not in torch's cache and uvs never "
                       f"downloads them: fetch {url} to this path (or set $TORCH_HOME), or "
                       "give --regions grid or a JSON-lines file of boxes")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = det.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
        model.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, TypeError) as err:
        raise UVSError(path, f"not torchvision's Faster R-CNN weights ({one_line(err)})") \
            from None
    return model.to(device).eval()


def detect(model, pixels: np.ndarray, count: int) -> list[list[float]]:
    """The `count` highest-scoring detections of an (H, W, 3) uint8 photo, in pixels."""
    torch = need("torch")
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 255.0
    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model([x.to(device)])[0]
    order = torch.argsort(out["scores"], descending=True)[:count]
    return out["boxes"][order].cpu().numpy().astype(float).tolist()


def region_features(net, photos: Sequence[str], boxes: str = "grid",
                    count: int = DEFAULT_BOXES, root: str | None = None, strict: bool = False,
                    on_progress: Callable[[int], None] | None = None, detector=None) -> dict:
    """Whole image + up to `count` boxes per photo, fc7 of each.

    boxes: 'grid', 'detector' or the path of a JSON-lines file (then `photos` may be empty:
    the file names them). Unreadable photos and bad boxes are skipped and reported
    ({'path', 'box', 'problem'}), or raise when `strict`. Returns the regions file's arrays
    plus 'skipped'. `detector`: a loaded `load_detector()` to use (else loaded here).
    """
    if boxes in ("grid", "detector"):
        todo = [(p, None) for p in photos]
        if boxes == "detector" and detector is None:
            detector = load_detector(net.device)
    else:
        listed = read_box_list(boxes)
        wanted = set(photos)
        todo = [(p, b) for p, b in listed if not wanted or p in wanted]
        detector = None
    feats, image, out_boxes, paths, skipped = [], [], [], [], []
    for name, given in todo:
        full = os.path.join(root, name) if root else name
        try:
            pixels, _ = decode(full)
        except UVSError as err:
            if strict:
                raise
            skipped.append({"path": name, "box": None, "problem": err.problem})
            if on_progress:
                on_progress(1)
            continue
        h, w = pixels.shape[:2]
        if given is None:
            given = grid_boxes(w, h, count) if detector is None else detect(detector, pixels,
                                                                             count)
        good = []
        for k, box in enumerate(given[:count]):
            problem = box_problem(box, w, h)
            if problem is None:
                good.append([float(v) for v in box])
                continue
            if strict:
                raise UVSError(full, f"box {k} {box}: {problem}")
            skipped.append({"path": name, "box": k, "problem": f"box {box} {problem}"})
        rows = [[0.0, 0.0, float(w), float(h)]] + good
        feats.append(box_features(net, pixels, rows))
        out_boxes += rows
        image += [len(paths)] * len(rows)
        paths.append(name)
        if on_progress:
            on_progress(1)
    if not paths:
        where = photos[0] if boxes in ("grid", "detector") and photos else boxes
        raise UVSError(where, f"none of the {len(todo)} photos could be read")
    return {"features": np.concatenate(feats), "image": np.array(image, np.int64),
            "boxes": np.array(out_boxes, np.float32), "paths": paths, "skipped": skipped,
            "n_todo": len(todo)}


def photos_to_do(photos: Sequence[str], boxes: str) -> int:
    """How many photos a run will visit (for the progress bar)."""
    if boxes in ("grid", "detector"):
        return len(photos)
    listed = read_box_list(boxes)
    wanted = set(photos)
    return sum(1 for p, _ in listed if not wanted or p in wanted)
