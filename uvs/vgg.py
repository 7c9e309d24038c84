"""VGG-19 up to fc7 through torchvision: torchvision's or Lasagne's weights, and photo features.

torch and torchvision (the `[images]` extra) are imported only inside the functions.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from uvs.errors import UVSError, one_line
from uvs.legacy import load_pickle
from uvs.photos import decode, load_image, need

LASAGNE_URL = "https://s3.amazonaws.com/lasagne/recipes/pretrained/imagenet/vgg19.pkl"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224
BLOCKS = (2, 2, 4, 4, 4)  # VGG-19: conv layers per block, a max-pool after each


# --- the convnet ----------------------------------------------------------------------------

@dataclass
class ConvNet:
    """VGG-19 up to fc7 after its ReLU, and how photos are prepared for it."""

    module: object  # torch.nn.Module: (B, 3, 224, 224) -> (B, dim)
    preprocessing: str  # 'caffe' (BGR, 0-255, mean subtracted) or 'torchvision' (RGB, 0-1, std)
    weights: str  # 'torchvision', 'random' or the path of a Lasagne pickle
    dim: int
    device: str = "cpu"


def torchvision_weights_path() -> str:
    """Where torchvision's VGG-19 ImageNet weights live in torch's cache ($TORCH_HOME)."""
    torch = need("torch")
    models = need("torchvision.models")
    name = os.path.basename(models.VGG19_Weights.IMAGENET1K_V1.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def _fc7(features, fc6, fc7):
    nn = need("torch.nn")
    return nn.Sequential(features, nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(1),
                         fc6, nn.ReLU(inplace=True), fc7, nn.ReLU(inplace=True))


def _torchvision_vgg(load: bool):
    torch = need("torch")
    models = need("torchvision.models")
    state, path = None, torchvision_weights_path()
    if load and not os.path.isfile(path):
        raise UVSError(path, "torchvision's VGG-19 weights are not in torch's cache and are "
                       f"never downloaded by uvs: fetch {models.VGG19_Weights.IMAGENET1K_V1.url} "
                       "to this path (or set $TORCH_HOME), or use --weights vgg19.pkl "
                       f"(from {LASAGNE_URL})")
    errors = (RuntimeError, OSError, EOFError, ValueError, KeyError, TypeError,
              pickle.UnpicklingError)
    if load:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except errors as err:
            raise UVSError(path, f"not a torch checkpoint ({one_line(err)})") from None
    vgg = models.vgg19(weights=None)
    if state is not None:
        try:
            vgg.load_state_dict(state)
        except errors as err:
            raise UVSError(path, f"not torchvision's VGG-19 weights ({one_line(err)})") from None
    return _fc7(vgg.features, vgg.classifier[0], vgg.classifier[3])


def _check_lasagne(path: str, values) -> None:
    if not isinstance(values, list) or len(values) != 38:
        raise UVSError(path, "'param values' should be a list of 38 arrays (VGG-19: 16 conv "
                       "and 3 dense layers, weights and biases)")
    for i, v in enumerate(values):
        if not isinstance(v, np.ndarray) or not np.issubdtype(v.dtype, np.floating):
            raise UVSError(path, f"param values[{i}] is not a floating-point array")
        if not np.isfinite(v).all():
            raise UVSError(path, f"param values[{i}] holds NaN or Inf")
    channels = 3
    for i in range(16):
        W, b = values[2 * i], values[2 * i + 1]
        if W.ndim != 4 or W.shape[1:] != (channels, 3, 3) or b.shape != (W.shape[0],):
            raise UVSError(path, f"conv layer {i + 1}: weights {W.shape}, biases {b.shape}; "
                           f"expected (out, {channels}, 3, 3) and (out,)")
        channels = W.shape[0]
    width = channels * 49
    for i in range(3):
        W, b = values[32 + 2 * i], values[33 + 2 * i]
        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
            raise UVSError(path, f"dense layer fc{6 + i}: weights {W.shape}, biases {b.shape}; "
                           f"expected ({width}, out) and (out,)")
        width = W.shape[1]


def lasagne_vgg(path: str, values: list[np.ndarray]):
    """torchvision's VGG-19 layers (any widths) holding the Lasagne/Caffe `param values`.

    Conv weights (out, in, 3, 3) are cross-correlation kernels as torch's; dense weights
    (in, out) are transposed into `nn.Linear`.
    """
    torch = need("torch")
    nn = need("torch.nn")
    vgg = need("torchvision.models.vgg")
    _check_lasagne(path, values)
    cfg, k = [], 0
    for n in BLOCKS:
        cfg += [int(values[2 * (k + j)].shape[0]) for j in range(n)] + ["M"]
        k += n
    features = vgg.make_layers(cfg)
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    dense = [nn.Linear(*values[32 + 2 * i].shape) for i in range(2)]
    with torch.no_grad():
        for i, layer in enumerate(convs + dense):
            W, b = values[2 * i], values[2 * i + 1]
            W = W if i < 16 else W.T
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W, dtype=np.float32)))
            layer.bias.copy_(torch.from_numpy(np.asarray(b, dtype=np.float32)))
    return _fc7(features, dense[0], dense[1])


def check_width(net: ConvNet, want: int, what: str) -> None:
    """UVSError naming the weights unless the network gives `want`-d features (`what` takes
    them)."""
    if net.dim != want:
        raise UVSError(net.weights, f"these VGG weights give {net.dim}-d features; {what} "
                       f"takes {want}-d")


def build_convnet(weights: str | os.PathLike | None = "torchvision",
                  device: str | None = None) -> ConvNet:
    """VGG-19 to fc7. `weights`: 'torchvision' (torch's cache), a Lasagne `vgg19.pkl`, or
    'random'/None (untrained, for tests). The Lasagne file gets the Caffe preprocessing.
    """
    torch = need("torch")
    weights = "random" if weights is None else os.fspath(weights)
    if weights in ("torchvision", "random"):
        module, prep = _torchvision_vgg(load=weights == "torchvision"), "torchvision"
    else:
        if not os.path.isfile(weights):
            raise UVSError(weights, "VGG-19 weights not found; download the Lasagne file "
                           f"{LASAGNE_URL} and give its path, or use --weights torchvision")
        blob = load_pickle(weights, allow_numpy=True)
        if not isinstance(blob, dict) or "param values" not in blob:
            raise UVSError(weights, "not a Lasagne model pickle (no 'param values')")
        module, prep = lasagne_vgg(weights, blob["param values"]), "caffe"
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    module = module.to(device).eval()
    return ConvNet(module, prep, weights, int(module[-2].out_features), device)


# --- features -------------------------------------------------------------------------------

def _resized(net: ConvNet, pixels: np.ndarray):
    """Shortest side to 256, bilinear: (3, H', W') float 0-255 RGB.

    Caffe-style features skip antialiasing, as skimage's resize in the original demo did.
    """
    torch = need("torch")
    F = need("torch.nn.functional")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise UVSError(None, f"a photo array must be (H, W, 3) uint8, not {pixels.dtype} "
                       f"{pixels.shape}")
    x = torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1).float()
    h, w = x.shape[1:]
    size = (RESIZE, w * RESIZE // h) if h < w else (h * RESIZE // w, RESIZE)
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False,
                      antialias=net.preprocessing == "torchvision")[0]
    return x.clamp_(0, 255)


def _crops(x, crops: int):
    """Centre crop, or the 10 crops: 4 corners + centre and their mirror images."""
    torch = need("torch")
    h, w = x.shape[1:]
    ch, cw = h // 2 - CROP // 2, w // 2 - CROP // 2
    corners = [(ch, cw)]
    if crops == 10:
        corners += [(0, 0), (0, w - CROP), (h - CROP, 0), (h - CROP, w - CROP)]
    out = [x[:, i:i + CROP, j:j + CROP] for i, j in corners]
    if crops == 10:
        out += [c.flip(-1) for c in out]
    return torch.stack(out)


def _normalise(net: ConvNet, x):
    torch = need("torch")
    if net.preprocessing == "caffe":
        return x.flip(1) - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def _forward(net: ConvNet, batch: list[np.ndarray], crops: int) -> np.ndarray:
    """fc7 for (H, W, 3) uint8 photos, averaged over crops, rows L2-normalised."""
    torch = need("torch")
    x = torch.cat([_crops(_resized(net, p), crops) for p in batch])
    with torch.inference_mode():
        out = net.module(_normalise(net, x).to(net.device)).float().cpu().numpy()
    out = out.reshape(len(batch), crops, -1).mean(axis=1)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def box_features(net: ConvNet, pixels: np.ndarray, boxes) -> np.ndarray:
    """fc7 of each box (x0, y0, x1, y1 in pixels, checked by the caller) of an (H, W, 3)
    uint8 photo, its crop warped to 224 x 224 as R-CNN did: (len(boxes), dim), unit rows."""
    torch = need("torch")
    F = need("torch.nn.functional")
    x = torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1).float()
    crops = []
    for x0, y0, x1, y1 in boxes:
        c = x[:, int(np.floor(y0)):int(np.ceil(y1)), int(np.floor(x0)):int(np.ceil(x1))]
        crops.append(F.interpolate(c[None], size=(CROP, CROP), mode="bilinear",
                                   align_corners=False,
                                   antialias=net.preprocessing == "torchvision")[0])
    with torch.inference_mode():
        out = net.module(_normalise(net, torch.stack(crops).clamp_(0, 255)).to(net.device))
    out = out.float().cpu().numpy()
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.maximum(norms, 1e-12)).astype(np.float32)


def _check_crops(crops: int) -> None:
    if crops not in (1, 10):
        raise UVSError(None, f"crops must be 1 or 10, not {crops}")


def compute_features(net: ConvNet, images: Sequence, crops: int = 1,
                     batch_size: int = 16) -> np.ndarray:
    """fc7 features (N, dim) float32, unit rows, for photos given as paths or (H, W, 3) uint8."""
    _check_crops(crops)
    out = np.zeros((len(images), net.dim), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        pixels = [p if isinstance(p, np.ndarray) else load_image(p) for p in chunk]
        out[start:start + len(chunk)] = _forward(net, pixels, crops)
    return out


@dataclass
class FeatureRun:
    """What `features_from_files` made: rows for `paths`, and what it skipped or warned about."""

    features: np.ndarray  # (len(paths), dim) float32
    paths: list[str]
    skipped: list[dict] = field(default_factory=list)  # {'path', 'problem'}
    warnings: list[dict] = field(default_factory=list)


def features_from_files(net: ConvNet, paths: Sequence[str], crops: int = 1,
                        batch_size: int = 16, strict: bool = False, root: str | None = None,
                        on_progress: Callable[[int], None] | None = None) -> FeatureRun:
    """fc7 for image files; unreadable ones are skipped and reported, or raise when `strict`.

    `paths` are reported as given; `root`, when set, is the folder they are relative to.
    """
    _check_crops(crops)
    run = FeatureRun(np.zeros((0, net.dim), np.float32), [])
    rows, batch, names = [], [], []

    def flush():
        if batch:
            rows.append(_forward(net, batch, crops))
            run.paths.extend(names)
            if on_progress:
                on_progress(len(batch))
            batch.clear()
            names.clear()

    for name in paths:
        full = os.path.join(root, name) if root else name
        try:
            pixels, truncated = decode(full)
        except UVSError as err:
            if strict:
                raise
            run.skipped.append({"path": name, "problem": err.problem})
            if on_progress:
                on_progress(1)
            continue
        if truncated:
            if strict:
                raise UVSError(full, "truncated image file")
            run.warnings.append({"path": name, "problem": "truncated; decoded as far as it goes"})
        batch.append(pixels)
        names.append(name)
        if len(batch) == batch_size:
            flush()
    flush()
    if rows:
        run.features = np.concatenate(rows)
    return run
