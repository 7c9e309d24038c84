"""Your own photos and sentences: VGG-19 fc7 features through torchvision, and retrieval both ways.

The seeds' `demo.py` on a maintained stack: `build_convnet`, `load_image`, `compute_features`,
`retrieve_captions`, `retrieve_images`, `regularities`, plus the corpus-embedding cache the CLI
uses. torch, torchvision and Pillow (the `[images]` extra) are imported only where needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from uvs.errors import UVSError
from uvs.fileio import atomic_path

LASAGNE_URL = "https://s3.amazonaws.com/lasagne/recipes/pretrained/imagenet/vgg19.pkl"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE, CROP = 256, 224
BLOCKS = (2, 2, 4, 4, 4)  # VGG-19: conv layers per block, a max-pool after each
CACHE_VERSION = 1
MAX_ASPECT = 32  # a thinner picture would be resized to millions of pixels along one side

_EXTRA = "pip install 'uvs[images]' (torch, torchvision, Pillow)"


def _need(module: str):
    """Import an optional dependency, or say which extra provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        name = "Pillow" if top == "PIL" else top
        raise UVSError(None, f"{name} is not installed: {_EXTRA}") from None


# --- reading photos -------------------------------------------------------------------------

@contextlib.contextmanager
def _truncated_ok(allow: bool):
    ImageFile = _need("PIL.ImageFile")
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = allow
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def _open(path: str, allow_truncated: bool):
    Image = _need("PIL.Image")
    with _truncated_ok(allow_truncated):
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
            raise UVSError(path, f"cannot read: {err.strerror}") from None
        except Image.UnidentifiedImageError:
            raise UVSError(path, "not an image Pillow can read") from None
        except Image.DecompressionBombError as err:
            raise UVSError(path, f"too large to decode safely ({_one_line(err)})") from None
        except (OSError, SyntaxError, ValueError) as err:
            raise UVSError(path, f"damaged image ({_one_line(err)})") from None


def _to_rgb(img) -> np.ndarray:
    """Any Pillow mode as (H, W, 3) uint8 RGB: 16-bit scaled, alpha over white, CMYK converted."""
    ImageOps = _need("PIL.ImageOps")
    Image = _need("PIL.Image")
    with contextlib.suppress(Exception):  # a broken EXIF block leaves the photo unrotated
        img = ImageOps.exif_transpose(img)
    if img.mode.startswith("I") or img.mode == "F":
        grey = np.asarray(img).astype(np.float64)
        if img.mode != "F":  # 16-bit integer samples
            grey = grey / 257.0
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _decode(path: str) -> tuple[np.ndarray, bool]:
    """(pixels, truncated): a truncated file is decoded as far as it goes."""
    try:
        pixels, truncated = _to_rgb(_open(path, allow_truncated=False)), False
    except UVSError as err:
        if "truncated" not in err.problem and "broken data stream" not in err.problem:
            raise
        pixels, truncated = _to_rgb(_open(path, allow_truncated=True)), True
    h, w = pixels.shape[:2]
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise UVSError(path, f"{w} x {h} pixels: too elongated for 224 x 224 crops")
    return pixels, truncated


def load_image(path: str | os.PathLike) -> np.ndarray:
    """A photo as (H, W, 3) uint8 RGB, EXIF-rotated; greyscale, alpha, CMYK, 16-bit handled."""
    return _decode(os.fspath(path))[0]


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
    torch = _need("torch")
    models = _need("torchvision.models")
    name = os.path.basename(models.VGG19_Weights.IMAGENET1K_V1.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", name)


def _fc7(features, fc6, fc7):
    nn = _need("torch.nn")
    return nn.Sequential(features, nn.AdaptiveAvgPool2d((7, 7)), nn.Flatten(1),
                         fc6, nn.ReLU(inplace=True), fc7, nn.ReLU(inplace=True))


def _torchvision_vgg(load: bool):
    torch = _need("torch")
    models = _need("torchvision.models")
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
            raise UVSError(path, f"not a torch checkpoint ({_one_line(err)})") from None
    vgg = models.vgg19(weights=None)
    if state is not None:
        try:
            vgg.load_state_dict(state)
        except errors as err:
            raise UVSError(path, f"not torchvision's VGG-19 weights ({_one_line(err)})") from None
    return _fc7(vgg.features, vgg.classifier[0], vgg.classifier[3])


def _one_line(err: Exception, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[:limit] + "..."


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
    torch = _need("torch")
    nn = _need("torch.nn")
    vgg = _need("torchvision.models.vgg")
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


def build_convnet(weights: str | os.PathLike | None = "torchvision",
                  device: str | None = None) -> ConvNet:
    """VGG-19 to fc7. `weights`: 'torchvision' (torch's cache), a Lasagne `vgg19.pkl`, or
    'random'/None (untrained, for tests). The Lasagne file gets the Caffe preprocessing.
    """
    torch = _need("torch")
    weights = "random" if weights is None else os.fspath(weights)
    if weights in ("torchvision", "random"):
        module, prep = _torchvision_vgg(load=weights == "torchvision"), "torchvision"
    else:
        from uvs.legacy import load_pickle

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
    torch = _need("torch")
    F = _need("torch.nn.functional")
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
    torch = _need("torch")
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
    torch = _need("torch")
    if net.preprocessing == "caffe":
        return x.flip(1) - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x / 255.0 - mean) / std


def _forward(net: ConvNet, batch: list[np.ndarray], crops: int) -> np.ndarray:
    """fc7 for (H, W, 3) uint8 photos, averaged over crops, rows L2-normalised."""
    torch = _need("torch")
    x = torch.cat([_crops(_resized(net, p), crops) for p in batch])
    with torch.inference_mode():
        out = net.module(_normalise(net, x).to(net.device)).float().cpu().numpy()
    out = out.reshape(len(batch), crops, -1).mean(axis=1)
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
            pixels, truncated = _decode(full)
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


def paths_file(features_path: str | os.PathLike) -> str:
    """The list of image paths written beside `FEATS.npy`: `FEATS.paths.txt`."""
    base = os.fspath(features_path)
    return (base[:-4] if base.endswith(".npy") else base) + ".paths.txt"


# --- scores and retrieval -------------------------------------------------------------------

def scores(method: str, s: np.ndarray, im: np.ndarray, chunk: int = 1 << 24) -> np.ndarray:
    """Higher is better, s: (n_s, dim), im: (n_im, dim) -> (n_s, n_im) float32.

    Cosine models: s·imᵀ; order models: −‖max(0, s − im)‖², computed in bounded memory.
    """
    s = np.asarray(s, dtype=np.float32)
    im = np.asarray(im, dtype=np.float32)
    if method != "order":
        return s @ im.T
    out = np.empty((len(s), len(im)), dtype=np.float32)
    step = max(1, chunk // max(1, s.shape[1] * len(s)))
    for j in range(0, len(im), step):
        diff = np.maximum(0.0, s[:, None, :] - im[None, j:j + step, :])
        out[:, j:j + step] = 0.0 - np.einsum("ijk,ijk->ij", diff, diff)  # 0, never -0
    return out


def model_method(model: dict) -> str:
    """'order' or 'cosine': how the model scores a sentence against an image."""
    return model["options"].get("method", "cosine")


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first; ties keep the lower index first."""
    k = min(k, len(row))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
    return part[np.lexsort((part, -row[part]))]


def rank_captions(model: dict, image_vec: np.ndarray, cvecs: np.ndarray,
                  k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Best k captions for one embedded image: (rows, scores)."""
    row = scores(model_method(model), cvecs, image_vec[None, :])[:, 0]
    idx = top_k(row, k)
    return idx, row[idx]


def rank_images(model: dict, query_vec: np.ndarray, imvecs: np.ndarray,
                k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Best k images for one embedded sentence (or arithmetic query): (rows, scores)."""
    row = scores(model_method(model), query_vec[None, :], imvecs)[0]
    idx = top_k(row, k)
    return idx, row[idx]


def embed_photo(model: dict, net: ConvNet, file_name: str, crops: int = 1) -> np.ndarray:
    """A photo in the joint space: (dim,) float32."""
    from uvs.tools import encode_images

    feats = compute_features(net, [file_name], crops=crops)
    return encode_images(model, feats)[0]


def embed_text(model: dict, text: str) -> np.ndarray:
    """A sentence in the joint space: (dim,) float32."""
    from uvs.tools import encode_sentences

    return encode_sentences(model, [text], verbose=False)[0]


def arithmetic(model: dict, vec: np.ndarray, minus: Sequence[str] = (),
               plus: Sequence[str] = ()) -> np.ndarray:
    """vec − Σ minus + Σ plus, renormalised (and made non-negative for `abs` models)."""
    from uvs.tools import encode_sentences

    out = np.asarray(vec, dtype=np.float32).copy()
    if minus:
        out -= encode_sentences(model, list(minus), verbose=False).sum(axis=0)
    if plus:
        out += encode_sentences(model, list(plus), verbose=False).sum(axis=0)
    out /= max(float(np.linalg.norm(out)), 1e-12)
    return np.abs(out) if model["options"].get("abs", False) else out


def rerank_by_mean(nearest: np.ndarray) -> np.ndarray:
    """Order of retrieved vectors nearest: (k, dim) by closeness to their mean (the seeds')."""
    return np.argsort(-(nearest @ nearest.mean(axis=0)), kind="stable")


def retrieve_captions(model: dict, net: ConvNet, captions: Sequence[str], cvecs: np.ndarray,
                      file_name: str, k: int = 5) -> list[str]:
    """The k captions that best describe the photo `file_name` (cvecs: (len(captions), dim))."""
    idx, _ = rank_captions(model, embed_photo(model, net, file_name), cvecs, k)
    return [captions[i] for i in idx]


def retrieve_images(model: dict, names: Sequence[str], imvecs: np.ndarray, text: str,
                    k: int = 5) -> list[str]:
    """The k images (by name) that `text` best describes (imvecs: embedded, (len(names), dim))."""
    idx, _ = rank_images(model, embed_text(model, text), imvecs, k)
    return [names[i] for i in idx]


def regularities(model: dict, net: ConvNet, captions: Sequence[str], imvecs: np.ndarray,
                 file_name: str, negword: str, posword: str, k: int = 5,
                 rerank: bool = False) -> list[str]:
    """Nearest images to `photo − negword + posword`, named by `captions` (one per imvecs row)."""
    query = arithmetic(model, embed_photo(model, net, file_name), [negword], [posword])
    idx, _ = rank_images(model, query, imvecs, k)
    if rerank:
        idx = idx[rerank_by_mean(imvecs[idx])]
    return [captions[i] for i in idx]


# --- the corpus-embedding cache -------------------------------------------------------------

def model_fingerprint(model: dict) -> str:
    """sha256 of what decides the embeddings: options, dictionary and parameters."""
    h = hashlib.sha256()
    options = {k: v for k, v in model["options"].items() if isinstance(v, (str, int, float, bool))}
    h.update(json.dumps(options, sort_keys=True, default=str).encode())
    h.update(json.dumps(list(model["worddict"].items()), ensure_ascii=False).encode())
    for name in sorted(model["params"]):
        arr = np.ascontiguousarray(model["params"][name], dtype=np.float32)
        h.update(f"{name}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as err:
        raise UVSError(path, f"cannot read: {err.strerror}") from None
    return h.hexdigest()


def cache_path(source: str, model_hash: str) -> str:
    """`CORPUS.txt.uvs-<model>.npz`, beside the corpus; one per corpus and model."""
    return f"{source}.uvs-{model_hash[:16]}.npz"


def cached_embeddings(source: str, model: dict, compute: Callable[[], np.ndarray],
                      model_hash: str | None = None) -> tuple[np.ndarray, str]:
    """Embeddings of the file `source`, reused while neither it nor the model changed.

    Returns (vectors, status), status 'hit', 'stored' or 'unwritable' (computed, not saved).
    """
    model_hash = model_hash or model_fingerprint(model)
    key = f"v{CACHE_VERSION}:{model_hash}:{file_sha256(source)}"
    path = cache_path(source, model_hash)
    if os.path.isfile(path):
        with contextlib.suppress(OSError, ValueError, KeyError, EOFError):
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return z["vectors"], "hit"
    vectors = compute()
    try:
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, vectors=vectors, key=np.array(key))
    except UVSError:
        return vectors, "unwritable"
    return vectors, "stored"


def read_image_features(path: str, dim_image: int | None = None) -> tuple[np.ndarray, list[str]]:
    """FEATS.npy (memory-mapped) and its row names from `FEATS.paths.txt` (else `#row`)."""
    try:
        feats = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise UVSError(path, "feature file not found") from None
    except (ValueError, OSError, EOFError) as err:
        raise UVSError(path, f"not a readable .npy array ({err})") from None
    if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.floating):
        raise UVSError(path, f"expected a 2-D float array of features, got {feats.dtype} "
                       f"{feats.shape}")
    if dim_image is not None and feats.shape[1] != dim_image:
        raise UVSError(path, f"features are {feats.shape[1]}-d; the model expects {dim_image}")
    listing = paths_file(path)
    if not os.path.isfile(listing):
        return feats, [f"#{i}" for i in range(len(feats))]
    with open(listing, encoding="utf-8") as f:
        names = f.read().splitlines()
    if len(names) != len(feats):
        raise UVSError(listing, f"{len(names)} paths for {len(feats)} feature rows in {path}")
    return feats, names


def feature_row(model: dict, path: str, row: int) -> np.ndarray:
    """Row `row` of FEATS.npy as a (1, dim_image) float32 query, checked."""
    feats, _ = read_image_features(path, model["options"]["dim_image"])
    if not 0 <= row < len(feats):
        raise UVSError(path, f"row {row} is out of range: the file has {len(feats)} rows")
    block = np.asarray(feats[row:row + 1], dtype=np.float32)
    if not np.isfinite(block).all():
        raise UVSError(path, f"row {row} holds NaN or Inf")
    return block


def embed_feature_file(model: dict, feats: np.ndarray, path: str = "",
                       chunk: int = 65536,
                       on_progress: Callable[[int], None] | None = None) -> np.ndarray:
    """encode_images over a (possibly memory-mapped) feature array in chunks, rows unit-normed."""
    from uvs.tools import encode_images

    out = np.zeros((len(feats), model["options"]["dim"]), dtype=np.float32)
    for start in range(0, len(feats), chunk):
        block = np.asarray(feats[start:start + chunk], dtype=np.float32)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any():
            raise UVSError(path, f"row {start + int(np.argmax(bad))} holds NaN or Inf")
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + len(block)] = encode_images(model, block / np.maximum(norms, 1e-12))
        if on_progress:
            on_progress(len(block))
    return out


def caption_collection(model: dict, path: str, show_progress: bool = False,
                       model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """A caption file (one a line) and its embeddings, cached: (captions, (n, dim), status)."""
    from uvs.fileio import read_lines
    from uvs.tools import encode_sentences

    captions = read_lines(path)
    vecs, status = cached_embeddings(
        path, model, lambda: encode_sentences(model, captions, verbose=show_progress), model_hash)
    return captions, vecs, status


def image_collection(model: dict, path: str, show_progress: bool = False,
                     model_hash: str | None = None) -> tuple[list[str], np.ndarray, str]:
    """FEATS.npy, its names and its embeddings, cached: (names, (n, dim), status)."""
    from uvs.progress import progress

    feats, names = read_image_features(path, model["options"]["dim_image"])

    def compute() -> np.ndarray:
        with progress(len(feats), "embedding images", show_progress) as bar:
            return embed_feature_file(model, feats, path, on_progress=bar.update)

    vecs, status = cached_embeddings(path, model, compute, model_hash)
    return names, vecs, status
