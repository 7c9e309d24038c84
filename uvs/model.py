"""The model as PyTensor graphs: parameters, training loss, sentence and image encoders, errors."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as tensor
from pytensor.tensor.extra_ops import fill_diagonal

from uvs.bag_of_words import bag_of_words
from uvs.gru_op import gru_impl
from uvs.layers import get_layer
from uvs.modelfile import ModelKind, OptionSpec, Shape, register_kind
from uvs.order_op import order_errors_op
from uvs.utils import l2norm, linear, norm_weight


def init_params(options: dict, rng=np.random) -> OrderedDict:
    """Random parameters: `Wemb`, the sentence encoder's `encoder_*`, the image map `ff_image_*`."""
    params = OrderedDict()
    params["Wemb"] = norm_weight(options["n_words"], options["dim_word"], rng=rng)
    params = get_layer(options["encoder"])[0](options, params, prefix="encoder",
                                              nin=options["dim_word"], dim=options["dim"],
                                              rng=rng)
    params = get_layer("ff")[0](options, params, prefix="ff_image",
                                nin=options["dim_image"], nout=options["dim"], rng=rng)
    return params


def order_lineage(options: dict) -> bool:
    """True for the order-embedding recipes (`order`, `symmetric`), False for the original VSE.

    Released VSE options carry no `method`; order-embedding's always do; uvs's name a `recipe`.
    """
    return options.get("recipe", "order" if "method" in options else "vse") != "vse"


def order_violations(s, im, options):
    """Elementwise violation of the order `s ≥ im`: max(0, s − im)²."""
    return tensor.pow(tensor.maximum(0, s - im), 2)


def contrastive_loss(s, im, options, fused: bool = False):
    """Pairwise hinge loss over the batch: sentences s: (B, dim), images im: (B, dim).

    errors[i, j] is −im_i·s_j (cosine) or the order error of s_i and im_j; each positive
    pair on the diagonal must beat every contrastive pair in its row and column by `margin`.
    With `max_violation` only the hardest contrastive term of each row and column counts.
    fused: the order errors as `uvs.order_op`'s one pass (float32), not the original graph.
    """
    margin = options["margin"]
    if options.get("method", "cosine") == "order" and fused and s.dtype == im.dtype == "float32":
        errors = order_errors_op(s, im)
    elif options.get("method", "cosine") == "order":
        errors = order_violations(s.dimshuffle(0, "x", 1), im.dimshuffle("x", 0, 1),
                                  options).sum(axis=2)
    else:
        errors = -tensor.dot(im, s.T)
    diagonal = errors.diagonal()
    cost_s = tensor.maximum(0, margin - errors + diagonal)
    cost_im = tensor.maximum(0, margin - errors + diagonal.reshape((-1, 1)))
    cost_s = fill_diagonal(cost_s, 0)
    cost_im = fill_diagonal(cost_im, 0)
    if options.get("max_violation", False):
        return cost_s.max(axis=0).sum() + cost_im.max(axis=1).sum()
    return cost_s.sum() + cost_im.sum()


def _embed_words(tparams, x, options):
    """Word vectors for x: (T, B) int64 -> (T, B, dim_word)."""
    n_timesteps, n_samples = x.shape[0], x.shape[1]
    return tparams["Wemb"][x.flatten()].reshape([n_timesteps, n_samples, options["dim_word"]])


def _encode_sentences(tparams, x, mask, options, gru=None):
    """Sentence vectors (B, dim), L2-normalised: the GRU's last state or the bag of words
    (`uvs.bag_of_words`'s C where the GRU is fused, the original's graph under `scan`)."""
    if options["encoder"] == "bow" and gru_impl(gru) == "fused":
        sents = bag_of_words(tparams["Wemb"], x, mask)
        if sents is not None:
            return l2norm(sents)
    emb = _embed_words(tparams, x, options)
    proj = get_layer(options["encoder"])[1](tparams, emb, None, options, prefix="encoder",
                                            mask=mask, impl=gru)
    sents = proj[0] if options["encoder"] == "bow" else proj[0][-1]
    return l2norm(sents)


def _encode_images(tparams, im, options):
    """im · W + b: (B, dim), not yet normalised."""
    return get_layer("ff")[1](tparams, im, options, prefix="ff_image", activ=linear)


def build_model(tparams, options, gru=None):
    """The training loss: returns ([x, mask, im], cost).

    x: (T, B) int64 word indices, mask: (T, B) float32, im: (B, dim_image) float32.
    gru: the GRU implementation, 'scan' or 'fused' (default `uvs.gru_op.gru_impl()`); 'fused'
    also computes the order errors in one pass (`uvs.order_op`), 'scan' as the original.
    The visual-semantic-embedding recipe leaves the image side unnormalised in the loss;
    order-embedding (`method` given) normalises both sides. `abs`, if asked, applies to both
    sides under every recipe, as the encoders apply it at evaluation.
    """
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("mask", dtype="float32")
    im = tensor.matrix("im", dtype="float32")
    gru = gru_impl(gru)
    sents = _encode_sentences(tparams, x, mask, options, gru)
    images = _encode_images(tparams, im, options)
    if order_lineage(options):
        images = l2norm(images)
    if options.get("abs", False):
        images = abs(images)
        sents = abs(sents)
    cost = contrastive_loss(sents, images, options, fused=gru == "fused")
    return [x, mask, im], cost


def build_sentence_encoder(tparams, options, gru=None):
    """Sentence embeddings: returns ([x, mask], sents) with sents: (B, dim); `gru` as in
    `build_model`."""
    x = tensor.matrix("x", dtype="int64")
    mask = tensor.matrix("x_mask", dtype="float32")
    sents = _encode_sentences(tparams, x, mask, options, gru)
    if options.get("abs", False):
        sents = abs(sents)
    return [x, mask], sents


def build_image_encoder(tparams, options):
    """Image embeddings: returns ([im], images) with images: (B, dim), L2-normalised."""
    im = tensor.matrix("im", dtype="float32")
    images = l2norm(_encode_images(tparams, im, options))
    if options.get("abs", False):
        images = abs(images)
    return [im], images


def build_errors(options):
    """Errors between sentence and image embeddings, lower is better: ([s_emb, im_emb], errs).

    errs: (n_s, n_im) — the order error ‖max(0, s − im)‖² for `method == 'order'`, else −s·imᵀ.
    The order error is a map over sentences, so memory is (n_im, dim) per step, never n_s·n_im·dim.
    """
    s_emb = tensor.matrix("s_emb", dtype="float32")
    im_emb = tensor.matrix("im_emb", dtype="float32")
    if options.get("method", "cosine") == "order":
        errs = pytensor.map(
            lambda s, im: order_violations(s, im, options).sum(axis=1),
            sequences=[s_emb],
            non_sequences=[im_emb],
            return_updates=False,
        )
    else:
        errs = -tensor.dot(s_emb, im_emb.T)
    return [s_emb, im_emb], errs


# -- the file format's kind 'vse' (`uvs.modelfile`): options and the parameter shapes --------
ENCODERS = ("gru", "bow")
_DIM = 2**16


def _vse_shapes(o: dict) -> dict[str, Shape]:
    dim, dw, di = o["dim"], o["dim_word"], o["dim_image"]
    shapes = {"Wemb": (None, dw), "ff_image_W": (di, dim), "ff_image_b": (dim,)}
    if o["encoder"] == "gru":
        shapes.update({"encoder_W": (dw, 2 * dim), "encoder_b": (2 * dim,),
                       "encoder_U": (dim, 2 * dim), "encoder_Wx": (dw, dim),
                       "encoder_Ux": (dim, dim), "encoder_bx": (dim,)})
    return shapes


def _vse_check(o: dict) -> str | None:
    if o["encoder"] == "bow" and o["dim"] != o["dim_word"]:
        return f"a bag-of-words model needs dim == dim_word ({o['dim']} != {o['dim_word']})"
    return None


register_kind(ModelKind(
    name="vse",
    options={"dim": OptionSpec(int, low=1, high=_DIM),
             "dim_word": OptionSpec(int, low=1, high=_DIM),
             "dim_image": OptionSpec(int, low=1, high=2**20),
             "encoder": OptionSpec(str, choices=ENCODERS),
             "n_words": OptionSpec(int, required=False, low=1, high=2**26),
             "method": OptionSpec(str, required=False, choices=("cosine", "order")),
             "abs": OptionSpec(bool, required=False),
             "max_violation": OptionSpec(bool, required=False)},
    shapes=_vse_shapes, check=_vse_check, usage="a visual-semantic embedding model"))
