"""Files of the log-bilinear models: the original's pickles, read unchanged, and uvs's format.

Original: `pickle.dump(net)` under Python 2 of an `lm.mlbl.MLBL` or `lm.mlblf.MLBLF`
instance, read by `uvs.legacy.load_pickle` with exactly those classes admitted as plain
attribute holders. uvs: one `.npz` (`uvs.modelfile.write_model`) with `kind: mlbl | mlblf |
scnlm`, the hyper-parameters and schedule state as options, the momentum buffers as
`optim:` arrays.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from uvs.errors import UVSError, os_reason
from uvs.legacy import MNLM_CLASSES, LegacyObject, load_pickle
from uvs.mnlm.mlbl import MLBL
from uvs.mnlm.mlblf import MLBLF
from uvs.mnlm.scnlm import SCNLM
from uvs.modelfile import (
    ModelFile,
    ModelKind,
    OptionSpec,
    check_options,
    model_kind,
    read_model,
    register_kind,
    write_model,
)

KINDS = ("mlbl", "mlblf", "scnlm")
CLASSES = {"lm.mlbl.MLBL": "mlbl", "lm.mlblf.MLBLF": "mlblf"}
USAGE = "a multimodal log-bilinear language model: use it with `uvs caption` or `uvs evalcap`"

_SIZE = OptionSpec(int, low=1, high=2**26)
_INT, _FLOAT = OptionSpec(int, required=False), OptionSpec(float, required=False)
_TEXT = OptionSpec(str, required=False)
OPTIONS = {"V": _SIZE, "K": _SIZE, "D": _SIZE, "h": _SIZE,
           "context": OptionSpec(int, low=1, high=1024), "name": _TEXT, "loc": _TEXT,
           "seed": _INT, "dropout": OptionSpec(float, required=False, low=0.0, high=1.0),
           "k": _INT, "batchsize": OptionSpec(int, required=False, low=1),
           "maxepoch": OptionSpec(int, required=False, low=0), "gamma_r": _FLOAT,
           "gamma_c": _FLOAT, "f": _FLOAT, "p_i": _FLOAT, "p_f": _FLOAT, "T": _FLOAT,
           "verbose": _INT, "eta_t": _FLOAT, "p_t": _FLOAT,
           "step": OptionSpec(int, required=False, low=0)}
FACTORED = {**OPTIONS, "factors": _SIZE}
STRUCTURED = {**FACTORED, "n_tags": _SIZE, "structure_context": OptionSpec(int, low=0, high=64)}


def param_shapes(kind: str, o: dict) -> dict[str, tuple]:
    """Parameter name -> shape, in the original's order."""
    V, K, D, h, c = o["V"], o["K"], o.get("D"), o["h"], o["context"]
    if kind == "mlbl":
        return {"C": (c, K, K), "R": (K, V), "bw": (1, V), "M": (h, K), "J": (D, h),
                "bj": (1, h)}
    F = o["factors"]
    shapes = {"C": (c, K, K), "bw": (1, V), "M": (h, K), "J": (D, h), "bj": (1, h),
              "Whf": (F, V), "Wfv": (h, F), "Wfx": (K, F)}
    if kind == "scnlm":
        del shapes["J"]
        shapes.update({"Tt": (o["n_tags"], K), "Ct": (o["structure_context"] + 1, K, h),
                       "Cm": (D, h)})
    return shapes


def model_class(kind: str):
    """The uvs class of a kind."""
    return {"mlbl": MLBL, "mlblf": MLBLF, "scnlm": SCNLM}[kind]


def kind_of(net) -> str:
    """'mlbl', 'mlblf' or 'scnlm' for a model object."""
    return {"MLBL": "mlbl", "MLBLF": "mlblf", "SCNLM": "scnlm"}[type(net).__name__]


def _options(net) -> dict:
    out = {}
    for name in net.HYPER + net.STATE:
        value = getattr(net, name, None)
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None:
            out[name] = value
    return out


def write_mnlm(path: str | os.PathLike, net) -> None:
    """`net` in the uvs format, atomically: parameters, momentum buffers, options, state."""
    params = OrderedDict((p, getattr(net, p)) for p in net.PARAMS)
    deltas = {d: getattr(net, d) for d in net.PARAMS.values()}
    meta = {"kind": kind_of(net)}
    if getattr(net, "tag_dict", None):
        meta["tags"] = sorted(net.tag_dict, key=net.tag_dict.get)
    write_model(path, params, _options(net), getattr(net, "word_dict", None) or {},
                extra_meta=meta, extra_arrays=deltas)


def net_from_file(mf: ModelFile, dtype: str = "float32"):
    """A model object from a checked ModelFile of an mnlm kind (parameters, buffers, state)."""
    cls = model_class(mf.kind)
    o = mf.options
    hyper = {k: o[k] for k in cls.HYPER if k in o}
    net = cls(**hyper, dtype=dtype)
    for name in cls.STATE:
        if name in o:
            setattr(net, name, o[name])
    deltas = mf.extra.get("arrays", {})
    for p, d in cls.PARAMS.items():
        setattr(net, p, mf.params[p])
        value = deltas.get(d)
        if value is None:
            value = np.zeros_like(mf.params[p])
        elif value.shape != mf.params[p].shape:
            raise UVSError(mf.path, f"momentum buffer {d} has shape {value.shape}, its "
                           f"parameter {p} {mf.params[p].shape}")
        setattr(net, d, value)
    net.word_dict = dict(mf.worddict) or None
    net.options = dict(o)
    if mf.kind == "scnlm":
        tags = mf.extra.get("tags")
        if not isinstance(tags, list) or len(tags) != o["n_tags"] or not all(
                isinstance(t, str) for t in tags):
            raise UVSError(mf.path, f"the tag list is missing or does not name {o['n_tags']} "
                           "tags")
        net.tag_dict = {t: i for i, t in enumerate(tags)}
    return net


# --- the original's pickles --------------------------------------------------------------

def _number(where: str, attrs: dict, name: str, kind: type, required: bool = True):
    value = attrs.get(name)
    if isinstance(value, np.generic):
        value = value.item()
    if value is None and not required:
        return None
    ok = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok):
        raise UVSError(where, f"attribute {name} is {type(value).__name__}, not "
                       f"{kind.__name__}")
    return value


def file_from_legacy(where: str, obj) -> ModelFile:
    """A ModelFile (layout 'mnlm-pickle') from an unpickled `LegacyObject`, checked."""

    if not isinstance(obj, LegacyObject) or obj.class_name not in CLASSES:
        raise UVSError(where, "not a pickled lm.mlbl.MLBL or lm.mlblf.MLBLF model")
    kind = CLASSES[obj.class_name]
    a = obj.attrs
    options: dict = {}
    spec = model_kind(kind)
    for name, opt in spec.options.items():
        value = a.get(name)
        if isinstance(value, np.generic):
            value = value.item()
        if value is None:
            continue
        if opt.type is str and not isinstance(value, str):
            continue
        if opt.type in (int, float):
            value = _number(where, a, name, opt.type)
        options[name] = value
    if "step" not in options:
        options["step"] = 0
    options = check_options(where, spec, options)
    params, arrays = OrderedDict(), {}
    cls = model_class(kind)
    for name, shape in param_shapes(kind, options).items():
        for key, out in ((name, params), (cls.PARAMS[name], arrays)):
            value = a.get(key)
            if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
                raise UVSError(where, f"attribute {key} is missing or not a float array")
            if value.shape != shape and not (key.startswith("delta") and value.size
                                              == int(np.prod(shape))):
                raise UVSError(where, f"attribute {key} has shape {value.shape}, the model's "
                               f"sizes say {shape}")
            if not np.isfinite(value).all():
                raise UVSError(where, f"attribute {key} holds NaN or Inf")
            out[key] = value.reshape(shape)
    return ModelFile(where, "mnlm-pickle", params, options, OrderedDict(),
                     {"arrays": arrays}, kind)


def read_pickled(path: str | os.PathLike) -> ModelFile:
    """The original's pickle of a model, read without running any of its code."""

    where = os.fspath(path)
    return file_from_legacy(where, load_pickle(where, allow_numpy=True, objects=MNLM_CLASSES))


def is_zip(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError as err:
        raise UVSError(path, f"cannot read ({os_reason(err)})") from None


def read_mnlm_file(path: str | os.PathLike) -> ModelFile:
    """A log-bilinear model file of either layout, checked; UVSError for any other model."""
    where = os.fspath(path)
    if os.path.isfile(where) and not is_zip(where):
        return read_pickled(where)
    mf = read_model(where)
    if mf.kind not in KINDS:
        article = "an" if mf.kind[:1] in "aeiou" else "a"
        raise UVSError(mf.path, f"this is {article} {mf.kind} model, not a multimodal "
                       "log-bilinear model (MLBL, MLBL-F or SC-NLM)")
    return mf


def read_mnlm(path: str | os.PathLike, dtype: str = "float32"):
    """The model object of `read_mnlm_file(path)`."""
    return net_from_file(read_mnlm_file(path), dtype=dtype)


for _kind, _options_spec in (("mlbl", OPTIONS), ("mlblf", FACTORED), ("scnlm", STRUCTURED)):
    register_kind(ModelKind(
        name=_kind, options=_options_spec,
        shapes=lambda o, k=_kind: param_shapes(k, o), vocabulary=None, usage=USAGE,
        read_pickled=read_pickled))
