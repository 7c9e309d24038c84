"""Optimisers as the originals compiled them: `f_grad_shared` stores gradients, `f_update` steps.

`adam` is the released one, whose constants b1 = 0.1, b2 = 0.001 are the *complements* of the
usual β₁, β₂ while its bias correction uses them as if they were β₁, β₂; reproducing a released
run needs exactly that. `adam_textbook` is Kingma & Ba's algorithm. A word table's gradient is
stored as the rows its words name (`uvs.row_grads`), the others being zeros; every row steps.
A clipped gradient is stored as computed, beside its squared norm: Adam's step rescales it as
it reads it (`AdamStep`'s limit), the same floats without a pass of its own over every value.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as tensor

from uvs import backend
from uvs.adam_op import adam_step
from uvs.cop import available
from uvs.norms import ClipScale, clip_scale, clipped, squared_norm
from uvs.row_grads import stored_rows
from uvs.utils import itemlist


def build_optimizer(tparams: dict, inps: list, cost, options: dict, clip: str = "global",
                    mode: str | None = None):
    """(f_grad_shared(*inps) -> cost, f_update(lr)) of every trainer, from the model's `cost`.

    Adds weight decay when options['decay_c'] > 0, clips the gradients when
    options['grad_clip'] > 0 (clip: 'global' norm, or 'each' tensor on its own) and applies
    options['optimizer'] ('adam' as released by default). mode: the PyTensor mode.
    """
    decay_c = float(options.get("decay_c", 0.0))
    if decay_c > 0.0:
        weight_decay = sum((vv ** 2).sum() for vv in tparams.values())
        cost = cost + np.float32(decay_c) * weight_decay
    grads = tensor.grad(cost, wrt=itemlist(tparams))
    grad_clip = float(options.get("grad_clip", 0.0))
    if grad_clip > 0.0:
        grads = CLIPS[clip](grads, np.float32(grad_clip), mode)
    lr = tensor.scalar(name="lr", dtype="float32")
    return OPTIMIZERS[options.get("optimizer", "adam")](lr, tparams, grads, inps, cost, mode=mode)


def optimizer_state(f_update, tparams: dict) -> OrderedDict:
    """The optimizer's own shared variables (moments, step count) of `f_update`, by name: not
    the parameters, nor the gradients `f_grad_shared` stores for it (each update makes them
    anew)."""
    own = {id(v) for v in tparams.values()}
    return OrderedDict((v.name, v) for v in f_update.get_shared()
                       if id(v) not in own and not hasattr(v.tag, "gradient_of")
                       and not hasattr(v.tag, "norm_of_gradients"))


def stored_gradients(f_grad_shared) -> OrderedDict:
    """The gradients `f_grad_shared` stored at its last call, as the update applies them
    (clipped), by parameter name, as arrays of the parameters' shapes (a lookup table's from its
    stored rows: zeros elsewhere)."""
    parts: dict = {}
    for v in f_grad_shared.get_shared():
        if hasattr(v.tag, "gradient_of"):
            name, part, shape = v.tag.gradient_of
            got = parts.setdefault(name, {"shape": shape})
            got[part] = _clipped_value(v.get_value(), getattr(v.tag, "clip", None))
    out = OrderedDict()
    for name, got in parts.items():
        if "dense" in got:
            out[name] = got["dense"]
        else:
            out[name] = np.zeros(got["shape"], np.float32)
            out[name][got["rows"]] = got["values"]
    return out


def _clipped_value(g: np.ndarray, clip) -> np.ndarray:
    """g as the update applies it; clip: None, or (the shared squared norm g2, limit)."""
    if clip is None or g.dtype == np.int64:
        return g
    return clipped(g, clip[0].get_value(), clip[1])


def _shared_like(p, name):
    return pytensor.shared(np.zeros_like(p.get_value()), name=name)


def _gradient_store(k, part, value, shape, clip=None):
    """A shared variable holding (part of) parameter k's stored gradient: 'dense', 'rows' or
    'values'; tagged for `stored_gradients` (k, part, the parameter's shape; its clip)."""
    var = pytensor.shared(value, name=f"{k}_grad" if part == "dense" else f"{k}_grad_{part}")
    var.tag.gradient_of = (k, part, shape)
    if clip is not None:
        var.tag.clip = clip
    return var


def _unclipped(g):
    """(g before its clipping, its squared norm g2, the limit) when g is a `ClipScale`, else
    None."""
    node = g.owner
    if node is None or not isinstance(node.op, ClipScale) or node.op.rows or node.op.inplace:
        return None
    return node.inputs[0], node.inputs[1], node.op.limit


def _grad_shared(tparams, grads, inps, cost, mode, keep_clip=False):
    """(stored, clips, f_grad_shared): each parameter's gradient stored as `f_grad_shared`
    computes it, a shared table — or, for a lookup table (`uvs.row_grads`), (rows, values)
    shared. keep_clip: a clipped gradient is stored before its rescaling, and its squared norm
    in a shared scalar (one per norm); clips[i] is then (that scalar, the limit), else None."""
    stored, clips, updates = [], [], []
    norms: dict = {}  # a squared norm's variable -> the shared scalar storing it
    for (k, p), g in zip(tparams.items(), grads, strict=True):
        value = p.get_value()
        clip = _unclipped(g) if keep_clip and value.dtype == np.float32 else None
        if clip is not None:
            g, g2, limit = clip
            if g2 not in norms:
                norms[g2] = pytensor.shared(np.float32(0.0), name=f"{k}_grad_norm2")
                norms[g2].tag.norm_of_gradients = True
                updates.append((norms[g2], g2))
            clip = (norms[g2], limit)
        clips.append(clip)
        rows = stored_rows(g, mode) if value.ndim == 2 else None
        if rows is None:
            gs = _gradient_store(k, "dense", np.zeros_like(value), value.shape, clip)
            stored.append(gs)
            updates.append((gs, g))
        else:
            pair = (_gradient_store(k, "rows", np.zeros(0, np.int64), value.shape),
                    _gradient_store(k, "values", np.zeros((0, value.shape[1]), value.dtype),
                                    value.shape, clip))
            stored.append(pair)
            updates += list(zip(pair, rows, strict=True))
    # called once per batch: its intermediates keep their memory, so that NumPy's huge pages
    # are not returned and faulted in again on every call (a tenth of a decoder update)
    f_grad_shared = backend.function(inps, cost, updates=updates, mode=mode,
                                     name="f_grad_shared", keep_buffers=True)
    return stored, clips, f_grad_shared


def _adam(lr, tparams, grads, inps, cost, b1, b2, e, released, mode):
    gshared, clips, f_grad_shared = _grad_shared(tparams, grads, inps, cost, mode,
                                                  keep_clip=available(mode))
    updates = []
    i = pytensor.shared(np.float32(0.0), name="adam_t")
    i_t = i + 1.0
    if released:
        fix1 = 1.0 - b1 ** i_t
        fix2 = 1.0 - b2 ** i_t
    else:
        fix1 = 1.0 - (1.0 - b1) ** i_t
        fix2 = 1.0 - (1.0 - b2) ** i_t
    lr_t = lr * tensor.sqrt(fix2) / fix1
    for (k, p), g, clip in zip(tparams.items(), gshared, clips, strict=True):
        m = _shared_like(p, f"{k}_adam_m")
        v = _shared_like(p, f"{k}_adam_v")
        rows = None
        if isinstance(g, tuple):  # a lookup table's gradient: its rows, zeros elsewhere
            rows, g = g
        fused = adam_step(p, g, m, v, lr_t, b1, b2, e, mode, rows=rows, clip=clip)  # one pass
        if fused is None and clip is not None:
            g = clip_scale(g, clip[0], np.float32(clip[1]), mode)
        if fused is None and rows is not None:
            g = tensor.set_subtensor(tensor.zeros_like(p)[rows], g)
        if fused is not None:
            p_t, m_t, v_t = fused
        else:
            m_t = (b1 * g) + ((1.0 - b1) * m)
            v_t = (b2 * tensor.sqr(g)) + ((1.0 - b2) * v)
            g_t = m_t / (tensor.sqrt(v_t) + e)
            p_t = p - (lr_t * g_t)
        updates += [(m, m_t), (v, v_t), (p, p_t)]
    updates.append((i, i_t))
    f_update = backend.function([pytensor.In(lr, allow_downcast=True)], [], updates=updates,
                                on_unused_input="ignore", mode=mode, name="f_update",
                                keep_buffers=True)
    return f_grad_shared, f_update


def adam(lr, tparams, grads, inps, cost, mode=None):
    """The released Adam: m ← b1·g + (1−b1)·m, v ← b2·g² + (1−b2)·v, b1 = 0.1, b2 = 0.001.

    mode: the PyTensor mode both functions compile in (default `uvs.backend.mode()`).
    """
    return _adam(lr, tparams, grads, inps, cost, 0.1, 0.001, 1e-8, released=True, mode=mode)


def adam_textbook(lr, tparams, grads, inps, cost, mode=None):
    """Kingma & Ba's Adam (β₁ = 0.9, β₂ = 0.999), same update form with correct bias terms."""
    return _adam(lr, tparams, grads, inps, cost, 0.1, 0.001, 1e-8, released=False, mode=mode)


OPTIMIZERS = {"adam": adam, "adam_textbook": adam_textbook}


def clip_global_norm(grads, grad_clip: float, mode=None):
    """Rescale all gradients together when their joint norm exceeds grad_clip (VSE).

    mode: the PyTensor mode they compile in (`uvs.norms.squared_norm` where it runs)."""
    g2 = squared_norm(grads, mode)
    return [clip_scale(g, g2, grad_clip, mode) for g in grads]


def clip_each_norm(grads, grad_clip: float, mode=None):
    """Rescale each gradient tensor to norm ≤ grad_clip on its own (order-embedding)."""
    out = []
    for g in grads:
        out.append(clip_scale(g, squared_norm([g], mode), grad_clip, mode))
    return out


CLIPS = {"global": clip_global_norm, "each": clip_each_norm}
