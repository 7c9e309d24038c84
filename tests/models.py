"""Tiny random models written in each of the three file layouts, for tests."""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np
from py2pickle import dumps_py2

from uvs.model import init_params
from uvs.modelfile import write_model

WORDS = ["a", "dog", "runs", "on", "the", "beach", "café", "naïve", "日本", "dog\u00a0runs",
         "cat", "sits", "red", "blue", "car", "grass"]


def tiny_options(encoder: str = "gru", method: str | None = None, abs_: bool = False,
                 dim: int = 8, dim_word: int = 6, dim_image: int = 10,
                 n_extra: int = 0) -> dict:
    """Options as the released trainers stored them (order-embedding adds method/abs/cnn)."""
    if encoder == "bow":
        dim_word = dim
    options = {"data": "tiny", "margin": 0.2, "dim": dim, "dim_image": dim_image,
               "dim_word": dim_word, "encoder": encoder, "max_epochs": 15, "dispFreq": 10,
               "decay_c": 0.0, "grad_clip": 2.0, "maxlen_w": 100, "optimizer": "adam",
               "batch_size": 128, "saveto": "/tmp/x.npz", "validFreq": 100,
               "lrate": 0.0002, "reload_": False}
    if method is not None:
        options.update({"method": method, "abs": abs_, "cnn": "10crop"})
    return options


def tiny_worddict(words=WORDS) -> OrderedDict:
    return OrderedDict((w, i + 2) for i, w in enumerate(words))


def write_tiny_model(folder, layout: str = "uvs", encoder: str = "gru",
                     method: str | None = None, abs_: bool = False, seed: int = 0,
                     name: str = "tiny", **dims) -> tuple[str, OrderedDict, dict, OrderedDict]:
    """Write a random model; returns (path to give load_model, params, options, worddict).

    n_words follows each original: len(worddict) for visual-semantic-embedding,
    len(worddict) + 2 for order-embedding (and for uvs files here).
    """
    worddict = tiny_worddict()
    options = tiny_options(encoder, method, abs_, **dims)
    options["n_words"] = len(worddict) if layout == "vse" else len(worddict) + 2
    params = init_params(options, rng=np.random.RandomState(seed))
    # non-zero biases so that every parameter is exercised
    rng = np.random.RandomState(seed + 1)
    for k in params:
        if k.endswith("_b") or k.endswith("_bx"):
            params[k] = rng.uniform(-0.1, 0.1, params[k].shape).astype("float32")
    base = os.path.join(os.fspath(folder), name)
    if layout == "uvs":
        write_model(base + ".npz", params, options, worddict)
        return base + ".npz", params, options, worddict
    np.savez(base + ".npz", **params)
    if layout == "vse":
        with open(base + ".npz.pkl", "wb") as f:
            f.write(dumps_py2(options))
        with open(base + ".npz.dictionary.pkl", "wb") as f:
            f.write(dumps_py2(worddict))
        return base + ".npz", params, options, worddict
    with open(base + ".pkl", "wb") as f:
        f.write(dumps_py2({"options": options, "worddict": worddict}))
    return base, params, options, worddict


def write_tiny_dataset(data_dir, name: str = "tiny", layout: str = "vse", n_images: int = 10,
                       dim_image: int = 10, seed: int = 0, cnn: str = "10crop") -> str:
    """A data set of random captions over WORDS and random unit features, all three splits."""
    rng = np.random.RandomState(seed)
    loc = os.path.join(os.fspath(data_dir), name)
    os.makedirs(loc, exist_ok=True)
    for split in ("train", "dev", "test"):
        caps = [" ".join(rng.choice(WORDS[:12], size=rng.randint(1, 6)))
                for _ in range(5 * n_images)]
        ims = rng.rand(n_images, dim_image).astype("float32")
        ims /= np.linalg.norm(ims, axis=1, keepdims=True)
        if layout == "vse":
            caps_path = os.path.join(loc, f"{name}_{split}_caps.txt")
            np.save(os.path.join(loc, f"{name}_{split}_ims.npy"), np.repeat(ims, 5, axis=0))
        else:
            fname = "val" if split == "dev" else split
            caps_path = os.path.join(loc, f"{fname}.txt")
            os.makedirs(os.path.join(loc, "images", cnn), exist_ok=True)
            np.save(os.path.join(loc, "images", cnn, f"{fname}.npy"), ims)
        with open(caps_path, "w", encoding="utf-8") as f:
            f.write("\n".join(caps) + "\n")
    return loc
