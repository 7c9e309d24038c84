"""Using a decoder: load it, generate text conditioned on a vector."""

from __future__ import annotations

import os

import numpy as np
from pytensor.tensor.random import shared_rng

from uvs import retrieval, vgg, vocab
from uvs.decoding.files import read_decoder
from uvs.decoding.model import build_sampler
from uvs.decoding.search import gen_sample, gen_sample_batch
from uvs.errors import UVSError
from uvs.features import feature_rows
from uvs.modelfile import shown
from uvs.tools import check_features, encode_images
from uvs.tools import load_model as load_vse
from uvs.utils import init_tparams


def load_model(path_to_model: str | os.PathLike,
               path_to_dictionary: str | os.PathLike | None = None, seed: int = 1234,
               mode: str | None = None) -> dict:
    """Load a trained decoder and compile its sampler (in PyTensor `mode`, default
    `uvs.backend.mode()`; `seed` seeds the sampler's draws).

    Returns a dict with 'options', 'trng', 'worddict', 'word_idict', 'tparams', 'f_init',
    'f_next' (as the original), plus 'params', 'layout', 'path' and 'extra'.
    """
    mf = read_decoder(path_to_model, path_to_dictionary)
    word_idict = vocab.inverse(mf.worddict)
    tparams = init_tparams(mf.params)
    trng = shared_rng(seed=seed, name="trng")
    f_init, f_next = build_sampler(tparams, mf.options, trng, mode)
    return {"options": mf.options, "trng": trng, "worddict": mf.worddict,
            "word_idict": word_idict, "tparams": tparams, "f_init": f_init, "f_next": f_next,
            "params": mf.params, "layout": mf.layout, "path": mf.path, "extra": mf.extra}


def check_context(dec: dict, c, path: str | None = None) -> np.ndarray:
    """c as a float32 (n, dimctx) array, or a UVSError naming `path` and the width expected."""
    c = np.asarray(c, dtype="float32")
    if c.ndim == 1:
        c = c[None]
    dimctx = dec["options"]["dimctx"]
    if c.ndim != 2 or c.shape[1] != dimctx:
        raise UVSError(path or dec["path"], f"the decoder is conditioned on {dimctx}-d "
                       f"vectors; got shape {tuple(np.shape(c))}")
    if not np.isfinite(c).all():
        raise UVSError(path or dec["path"], "the conditioning vector holds NaN or Inf")
    return c


def words(dec: dict, sample) -> str:
    """Word indices as text, without the last index (the original's `c[:-1]`: the `<eos>` of
    a finished sample, but a real word of one that stopped at `maxlen`)."""
    return vocab.text(dec["word_idict"], sample[:-1], eos=False)


def run_sampler(dec: dict, c, beam_width: int = 1, stochastic: bool = False,
                use_unk: bool = False, maxlen: int = 1000) -> list[str]:
    """Text conditioned on c: (dimctx,). Beam search gives the beam's sentences in the order
    they finished; `stochastic` one sampled sentence."""
    c = check_context(dec, c)
    sample, _score = gen_sample(dec["tparams"], dec["f_init"], dec["f_next"],
                                c.reshape(1, dec["options"]["dimctx"]), dec["options"],
                                trng=dec["trng"], k=beam_width, maxlen=maxlen,
                                stochastic=stochastic, use_unk=use_unk)
    if stochastic:
        sample = [sample]
    return [words(dec, s) for s in sample]


def generate(dec: dict, C, beam_width: int = 1, use_unk: bool = False, maxlen: int = 30,
             n: int = 1) -> list[list[tuple[str, float]]]:
    """Beam search for each row of C: (m, dimctx), batched; the n best (text, cost) per row.

    Best = lowest cost (−Σ log p) among the beam's hypotheses; text drops the final `<eos>`
    only (a hypothesis cut at maxlen keeps its last word, unlike run_sampler's `c[:-1]`).
    """
    C = check_context(dec, C)
    out = []
    for sample, score in gen_sample_batch(dec["tparams"], dec["f_init"], dec["f_next"], C,
                                          dec["options"], k=beam_width, maxlen=maxlen,
                                          use_unk=use_unk):
        order = np.argsort(np.asarray(score, dtype="float64"), kind="stable")[:n]
        out.append([(vocab.text(dec["word_idict"], sample[i]), float(score[i])) for i in order])
    return out


def load_encoder(dec: dict, model: str | os.PathLike | None = None) -> dict | None:
    """The uvs model whose joint space an `embedding` decoder decodes (None for `features`).

    `model` wins over the path the decoder was trained with; its width must be dimctx.
    """
    if dec["options"].get("condition", "embedding") == "features":
        return None
    path = model or trained_model_path(dec)
    if not path:
        raise UVSError(dec["path"], "this decoder decodes a joint space: give the uvs model "
                       "with --model")
    vse = load_vse(path)
    if vse["options"]["dim"] != dec["options"]["dimctx"]:
        raise UVSError(vse["path"], f"its joint space is {vse['options']['dim']}-d; the decoder "
                       f"{dec['path']} is conditioned on {dec['options']['dimctx']}-d vectors")
    return vse


def query_features(dec: dict, vse: dict | None, image: str | None = None,
                   image_features: str | None = None, row: int = 0,
                   weights: str = "torchvision", crops: int = 1, device: str | None = None
                   ) -> tuple[np.ndarray | None, str | None]:
    """(features (1, width), where they came from) of a photo (VGG-19 `weights`) or of row
    `row` of a feature file, as wide as `vse` takes (dim_image) or, without one, as the
    decoder's ctx; (None, None) for neither."""
    want = vse["options"]["dim_image"] if vse is not None else dec["options"]["dimctx"]
    if image is not None:
        net = vgg.build_convnet(weights, device=device)
        vgg.check_width(net, want, vse["path"] if vse is not None else dec["path"])
        return vgg.compute_features(net, [image], crops=crops), image
    if image_features is not None:
        return feature_rows(image_features, row, want), image_features
    return None, None


def trained_model_path(dec: dict) -> str | None:
    """The uvs model a decoder was trained on, as its options name it: absolute (uvs stores
    it so), else relative to the decoder's folder, else to the current one; UVSError naming
    the missing file when none exists."""
    stored = dec["options"].get("model")
    if not stored:
        return None
    if os.path.isabs(stored):
        candidates = [stored]
    else:
        candidates = [os.path.join(os.path.dirname(os.path.abspath(dec["path"])), stored),
                      stored]
    for path in candidates:
        if os.path.lexists(path) or os.path.lexists(path + ".npz"):
            return path
    raise UVSError(dec["path"], f"the uvs model it was trained on, {shown(candidates[0])}, "
                   "is not there: give it with --model")


def context(dec: dict, vse: dict | None, features: np.ndarray | None = None,
            text: str | None = None, minus=(), plus=(), where: str | None = None) -> np.ndarray:
    """ctx (1, dimctx) for image features (1, dim_image) or a sentence, with arithmetic.

    `embedding` decoders: the features' or sentence's vector in the joint space, then
    − Σ minus + Σ plus, renormalised; `features` decoders: the feature row itself.
    """
    if vse is None:
        if text is not None or minus or plus:
            raise UVSError(dec["path"], "this decoder is conditioned on CNN features: "
                           "--text, --minus and --plus need an embedding decoder")
        return check_context(dec, features, where)
    if text is not None:
        vec = retrieval.embed_text(vse, text)
    else:
        vec = encode_images(vse, check_features(vse, features, where))[0]
    if minus or plus:
        vec = retrieval.arithmetic(vse, vec, minus, plus)
    return check_context(dec, vec, where)


def sample_sentences(dec: dict, c, n: int = 1, maxlen: int = 30, use_unk: bool = False
                     ) -> list[tuple[str, float]]:
    """n sentences drawn from the decoder given c (the original's stochastic mode); the
    score is the original's sum of the drawn words' probabilities."""
    c = check_context(dec, c)
    out = []
    for _ in range(n):
        sample, score = gen_sample(dec["tparams"], dec["f_init"], dec["f_next"], c,
                                   dec["options"], trng=dec["trng"], k=1, maxlen=maxlen,
                                   stochastic=True, use_unk=use_unk)
        out.append((vocab.text(dec["word_idict"], sample), float(score)))
    return out
