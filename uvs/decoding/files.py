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

from uvs.decoding.options import CONDITIONS, INJECTIONS
from uvs.errors import UVSError
from uvs.legacy import load_pickle, load_pickles
from uvs.modelfile import (
    ModelFile,
    ModelKind,
    OptionSpec,
    read_model,
    register_kind,
    shown,
    write_model,
)

KIND = "decoder"
_DIM = MAX_DIM = 2**16  # dim, dim_word
MAX_LEN = 10**6  # maxlen_w


def expected_shapes(o: dict) -> dict:
    """Parameter name -> shape that the options imply, in `init_params`' order."""
    dim, dw, n = o["dim"], o["dim_word"], o["n_words"]
    state = dim if o.get("inject", "init") == "init" else dw
    shapes = {"Wemb": (n, dw), "ff_state_W": (o["dimctx"], state), "ff_state_b": (state,),
              "decoder_W": (dw, 2 * dim), "decoder_b": (2 * dim,), "decoder_U": (dim, 2 * dim),
              "decoder_Wx": (dw, dim), "decoder_Ux": (dim, dim), "decoder_bx": (dim,)}
    if o.get("doutput"):
        shapes.update({"ff_hid_W": (dim, dw), "ff_hid_b": (dw,), "ff_logit_W": (dw, n),
                       "ff_logit_b": (n,)})
    else:
        shapes.update({"ff_logit_W": (dim, n), "ff_logit_b": (n,)})
    return shapes


def read_dictionary(path: str) -> OrderedDict:
    """The worddict of a skip-thoughts dictionary file (two pickles: worddict, wordcount)."""
    worddict, _wordcount = load_pickles(path, 2, "worddict then wordcount, as "
                                        "vocab.save_dictionary writes them")
    if not isinstance(worddict, dict):
        raise UVSError(path, "the first pickle is not a word dictionary")
    return OrderedDict(worddict)


def read_embeddings(path: str) -> dict:
    """The {word: vector} pickle of `embeddings`, each vector checked (a flat list or array
    of finite numbers, all of one length ≤ the decoder's dim_word limit) but not converted."""
    embed_map = load_pickle(path, allow_numpy=True)
    if not isinstance(embed_map, dict) or not embed_map:
        raise UVSError(path, "expected a non-empty pickle of {word: vector}")
    dim_word = None
    for w, v in embed_map.items():
        if isinstance(v, np.ndarray):
            ok, size = v.dtype.kind in "biuf", v.size
        elif type(v) in (list, tuple):
            ok, size = all(type(x) in (int, float) for x in v), len(v)
        else:
            ok, size = False, 0
        if not ok:
            raise UVSError(path, f"the vector of {shown(w)!r} is not a list or array of "
                           f"numbers ({type(v).__name__})")
        if dim_word is None:
            dim_word = size
        if size != dim_word:
            raise UVSError(path, f"word vectors of different lengths ({dim_word} and {size}, "
                           f"at {shown(w)!r})")
        if not 1 <= size <= MAX_DIM:
            raise UVSError(path, f"word vectors of {size} values (1 to {MAX_DIM} allowed)")
    checked: set[int] = set()  # a vector shared by many words is checked once
    for w, v in embed_map.items():
        if id(v) not in checked and not _finite32(v):
            raise UVSError(path, f"the vector of {shown(w)!r} holds NaN, Inf or values beyond "
                           "float32")
        checked.add(id(v))
    return embed_map


def _finite32(v) -> bool:
    """Whether a flat list or numeric array holds only finite values within float32."""
    limit = float(np.finfo("float32").max)
    if isinstance(v, np.ndarray):
        return bool(v.size == 0 or (np.isfinite(v).all() and np.abs(v).max() <= limit))
    return all(abs(x) <= limit for x in v)  # NaN compares false; ints of any size are fine


def read_decoder(path: str | os.PathLike, dictionary: str | os.PathLike | None = None
                 ) -> ModelFile:
    """Read a decoder (released layout or uvs format), checked against the decoder kind.

    Parameters come back in `init_params`' order; the released layout is named
    'skip-thoughts', its `history_errs` ignored.
    """
    mf = read_model(path, kind=KIND, dictionary=dictionary)
    mf.options.setdefault("decoder", "gru")
    mf.options.setdefault("doutput", False)
    mf.params = OrderedDict((k, mf.params[k]) for k in expected_shapes(mf.options))
    return mf


def write_decoder(path: str | os.PathLike, params: dict, options: dict, worddict: dict,
                  extra_meta: dict | None = None, extra_arrays: dict | None = None) -> None:
    """A decoder in the uvs format (one .npz with JSON metadata, `kind: decoder`), atomically."""
    write_model(path, params, options, worddict, extra_meta={"kind": KIND, **(extra_meta or {})},
                extra_arrays=extra_arrays)




def check_use_options(o: dict) -> str | None:
    """What `caption` and `evalcap` take from a decoder's options besides its shapes: `model`,
    `data` and `cnn` text (or absent), `maxlen_w` a whole number ≥ 1; the problem, or None."""
    for name in ("model", "data", "cnn"):
        value = o.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            what = ("a mapping" if isinstance(value, dict) else "a list"
                    if isinstance(value, (list, tuple)) else
                    f"{type(value).__name__} {shown(repr(value))[:40]}")
            return f"option '{name}' is {what}, not a name or path"
    value = o.get("maxlen_w")
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_LEN):
        return (f"option 'maxlen_w' is {shown(repr(value))[:40]}, not a number of words "
                f"from 1 to {MAX_LEN}")
    return None


register_kind(ModelKind(
    name=KIND,
    options={"dimctx": OptionSpec(int, low=1, high=2**20),
             "dim_word": OptionSpec(int, low=1, high=_DIM),
             "dim": OptionSpec(int, low=1, high=_DIM),
             "n_words": OptionSpec(int, low=1, high=2**26),
             "decoder": OptionSpec(str, required=False, choices=("gru",)),
             "doutput": OptionSpec(bool, required=False),
             "inject": OptionSpec(str, required=False, choices=INJECTIONS),
             "condition": OptionSpec(str, required=False, choices=CONDITIONS)},
    shapes=expected_shapes, check=check_use_options, released_extras=("history_errs",),
    released_key="dimctx",
    released_dictionary=read_dictionary, released_layout="skip-thoughts",
    usage="a generator: use it with `uvs caption` or `uvs evalcap`"))
