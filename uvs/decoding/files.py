"""Decoder files: skip-thoughts' released layout, read unchanged, and uvs's own format.

Released (skip-thoughts/decoding `train.py`): `X.npz` from `numpy.savez(saveto,
history_errs=[], **params)`, `X.npz.pkl` the options, and a dictionary file holding two
pickles in a row, `worddict` then `wordcount` (`vocab.save_dictionary`), found beside the
model as `X.npz.dictionary.pkl` unless given. uvs: one `X.npz` whose JSON metadata has
`kind: "decoder"`.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from uvs.errors import UVSError
from uvs.modelfile import ModelFile, _load_arrays, _load_meta, _shape, kind_of, locate, write_model

KIND = "decoder"
REQUIRED = ("dimctx", "dim_word", "dim", "n_words")
CONDITIONS = ("embedding", "features")


def expected_shapes(o: dict) -> dict:
    """Parameter name -> shape that the options imply (README, "Generation")."""
    dim, dw, n = o["dim"], o["dim_word"], o["n_words"]
    shapes = {"Wemb": (n, dw),
              "ff_state_W": (o["dimctx"], dim if o.get("inject", "init") == "init" else dw),
              "ff_state_b": (dim if o.get("inject", "init") == "init" else dw,),
              "decoder_W": (dw, 2 * dim), "decoder_b": (2 * dim,), "decoder_U": (dim, 2 * dim),
              "decoder_Wx": (dw, dim), "decoder_Ux": (dim, dim), "decoder_bx": (dim,)}
    if o.get("doutput"):
        shapes.update({"ff_hid_W": (dim, dw), "ff_hid_b": (dw,), "ff_logit_W": (dw, n),
                       "ff_logit_b": (n,)})
    else:
        shapes.update({"ff_logit_W": (dim, n), "ff_logit_b": (n,)})
    return shapes


def validate(mf: ModelFile) -> None:
    """Options, dictionary and parameter shapes of a decoder agree; UVSError if not."""
    o, p = mf.options, mf.params
    if "dimctx" not in o and ("dim_image" in o or "encoder" in o):
        raise UVSError(mf.path, "this is a visual-semantic embedding model, not a decoder "
                       "(give it with --model; train a decoder with `uvs decoder train`)")
    for key in REQUIRED:
        if not isinstance(o.get(key), int) or isinstance(o.get(key), bool) or o[key] < 1:
            raise UVSError(mf.path, f"decoder options lack a positive integer {key!r}")
    o.setdefault("decoder", "gru")
    o.setdefault("doutput", False)
    if o["decoder"] != "gru":
        raise UVSError(mf.path, f"unknown decoder layer {o['decoder']!r} (expected gru)")
    if o.get("inject", "init") not in ("init", "bias"):
        raise UVSError(mf.path, f"unknown inject {o['inject']!r} (expected init or bias)")
    if not isinstance(mf.worddict, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in mf.worddict.items()):
        raise UVSError(mf.path, "word dictionary is not a mapping of words to indices")
    for name, shape in expected_shapes(o).items():
        if name not in p:
            raise UVSError(mf.path, f"parameter {name} is missing")
        if _shape(p, name) != shape:
            raise UVSError(mf.path, f"parameter {name} has shape {_shape(p, name)}, options "
                           f"say {shape}")
        if not np.issubdtype(p[name].dtype, np.floating):
            raise UVSError(mf.path, f"parameter {name} is {p[name].dtype}, not floating point")


def read_dictionary(path: str) -> OrderedDict:
    """The worddict of a skip-thoughts dictionary file (two pickles: worddict, wordcount)."""
    from uvs.legacy import load_pickles

    worddict, _wordcount = load_pickles(path, 2, "worddict then wordcount, as "
                                        "vocab.save_dictionary writes them")
    if not isinstance(worddict, dict):
        raise UVSError(path, "the first pickle is not a word dictionary")
    return OrderedDict(worddict)


def read_decoder(path: str | os.PathLike, dictionary: str | os.PathLike | None = None
                 ) -> ModelFile:
    """Read a decoder (released layout or uvs format), validated."""
    layout, npz, pkl = locate(path)
    arrays = _load_arrays(npz)
    extra: dict = {}
    if layout == "vse":  # X.npz + X.npz.pkl: skip-thoughts' layout
        from uvs.legacy import load_pickle

        options = load_pickle(pkl)
        if not isinstance(options, dict):
            raise UVSError(pkl, "model options are not a dictionary")
        if kind_of(options, {}) == KIND:
            dictionary = os.fspath(dictionary or npz + ".dictionary.pkl")
            if not os.path.isfile(dictionary):
                raise UVSError(dictionary, f"word dictionary of {npz} not found (give it "
                               "with --dictionary)")
            worddict = read_dictionary(dictionary)
        else:
            worddict = OrderedDict()
        arrays.pop("history_errs", None)
        layout = "skip-thoughts"
    elif layout == "order":
        raise UVSError(npz, "this is an order-embedding model, not a decoder")
    else:
        options, worddict, extra = _load_meta(npz, arrays)
        kind = kind_of(options, extra)
        if kind not in (KIND, "vse"):
            raise UVSError(npz, f"this is a {kind} model, not a decoder")
    params = OrderedDict((k, np.asarray(v, dtype="float32")) for k, v in arrays.items())
    mf = ModelFile(npz, layout, params, dict(options), worddict, extra)
    validate(mf)
    mf.params = OrderedDict((k, params[k]) for k in expected_shapes(mf.options))  # init order
    return mf


def write_decoder(path: str | os.PathLike, params: dict, options: dict, worddict: dict,
                  extra_meta: dict | None = None, extra_arrays: dict | None = None) -> None:
    """A decoder in the uvs format (one .npz with JSON metadata, `kind: decoder`), atomically."""
    write_model(path, params, options, worddict, extra_meta={"kind": KIND, **(extra_meta or {})},
                extra_arrays=extra_arrays)
