"""Using a model: load it, embed sentences and images, score them."""

from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from uvs import backend
from uvs.datasets import check_finite
from uvs.errors import UVSError
from uvs.gru_op import gru_impl
from uvs.kernels import errors
from uvs.model import build_errors, build_image_encoder, build_sentence_encoder
from uvs.modelfile import read_model
from uvs.progress import progress
from uvs.utils import init_tparams
from uvs.vocab import inverse, tokenize, word_ids


def load_model(path: str | os.PathLike, mode: str | None = None,
               gru: str | None = None) -> dict:
    """Load a released or uvs model and compile its encoders.

    mode: the PyTensor mode (default `uvs.backend.mode()`); gru: 'scan' or 'fused' (default
    `uvs.gru_op.gru_impl()`). Returns a dict with 'options', 'worddict', 'word_idict',
    'f_senc', 'f_ienc', 'params' (NumPy), 'tparams' (shared variables), 'layout' and 'path'.
    """
    mf = read_model(path, kind="vse")
    params = mf.params
    tparams = init_tparams(params)
    word_idict = inverse(mf.worddict)
    [x, x_mask], sentences = build_sentence_encoder(tparams, mf.options,
                                                    gru_impl(gru, mode))
    f_senc = backend.function([x, x_mask], sentences, mode=mode, name="f_senc")
    [im], images = build_image_encoder(tparams, mf.options)
    f_ienc = backend.function([im], images, mode=mode, name="f_ienc")
    return {
        "options": mf.options,
        "worddict": mf.worddict,
        "word_idict": word_idict,
        "f_senc": f_senc,
        "f_ienc": f_ienc,
        "params": params,
        "tparams": tparams,
        "layout": mf.layout,
        "path": mf.path,
    }


def encode_sentences(model: dict, X: list[str], verbose: bool = False,
                     batch_size: int = 128) -> np.ndarray:
    """Embed sentences: (len(X), dim) float32, rows of unit norm.

    Sentences of equal length are encoded together in strided batches as the original did;
    k tokens make k + 1 steps, the last the `<eos>` index 0, all unmasked. A sentence that
    occurs several times is encoded once, so its copies get the very same vector (a batch
    product could otherwise round them differently, and identical captions would not tie).
    """
    unique = list(dict.fromkeys(X))
    if len(unique) < len(X):
        row = {s: i for i, s in enumerate(unique)}
        vectors = encode_sentences(model, unique, verbose, batch_size)
        return vectors[[row[s] for s in X]]
    options = model["options"]
    features = np.zeros((len(X), options["dim"]), dtype="float32")
    captions = [tokenize(s) for s in X]
    ds = defaultdict(list)
    for i, s in enumerate(captions):
        ds[len(s)].append(i)
    n_words = options["n_words"]
    worddict = model["worddict"]
    with progress(len(X), "encoding sentences", verbose) as bar:
        for k in sorted(ds):
            numbatches = len(ds[k]) // batch_size + 1
            for minibatch in range(numbatches):
                caps = ds[k][minibatch::numbatches]
                x = np.zeros((k + 1, len(caps)), dtype="int64")
                x_mask = np.ones((k + 1, len(caps)), dtype="float32")
                for idx, c in enumerate(caps):
                    x[:k, idx] = word_ids(captions[c], worddict, n_words)
                features[caps] = model["f_senc"](x, x_mask)
                bar.update(len(caps))
    return features


def check_features(model: dict, IM, path: str | None = None,
                   first_row: int | None = None) -> np.ndarray:
    """IM as float32 if it is (n, dim_image) and finite; else UVSError naming `path`.

    first_row: IM is a block of a larger array starting at that row (for the message).
    """
    IM = np.asarray(IM)
    dim_image = model["options"]["dim_image"]
    if IM.ndim != 2 or IM.shape[1] != dim_image:
        raise UVSError(path, f"image features have shape {IM.shape}; the model expects "
                       f"(n, {dim_image})")
    IM = IM.astype("float32", copy=False)
    check_finite(IM, path, first_row)  # as float32: values beyond its range are Inf
    return IM


def encode_images(model: dict, IM, batch_size: int = 4096) -> np.ndarray:
    """Embed image features IM: (n, dim_image) -> (n, dim) float32, rows of unit norm."""
    return embed_checked_images(model, check_features(model, IM), batch_size)


def embed_checked_images(model: dict, IM: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """`encode_images` of features already through `check_features`."""
    out = np.zeros((len(IM), model["options"]["dim"]), dtype="float32")
    for start in range(0, len(IM), batch_size):
        out[start:start + batch_size] = model["f_ienc"](IM[start:start + batch_size])
    return out


def compute_errors(model: dict, s: np.ndarray, im: np.ndarray) -> np.ndarray:
    """Errors between sentences s: (n_s, dim) and images im: (n_im, dim), lower is better.

    Cosine models: −s·imᵀ; order models: ‖max(0, s − im)‖² from a compiled loop
    (`uvs.kernels.errors`, checked against the graph of `uvs.model.build_errors`),
    never an (n_s, n_im, dim) tensor.
    """
    return errors(model["options"].get("method", "cosine"), s, im)


def compile_errors(options: dict):
    """The original `f_err(s, im)`: build_errors compiled by PyTensor (the reference path)."""
    inputs, errs = build_errors(options)
    return backend.function(inputs, errs, name="f_err")
