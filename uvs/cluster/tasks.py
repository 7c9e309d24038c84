"""What one task does on a worker: load the model (once per worker process), compute a chunk,
write it into the store, then its completion marker.

A task is `run_chunk(spec, k)`: `spec` is the job (a small dict: paths, options, hashes),
never the model; a worker loads each model once and keeps it in `_LOADED`, keyed by its path
and hash, for every later task of any job that uses it.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable

import numpy as np

from uvs import tools, vgg
from uvs.align.features import load_detector, region_features
from uvs.corpus import file_sha256, vse_hash
from uvs.decoding import tools as dtools
from uvs.errors import UVSError
from uvs.features import read_image_features
from uvs.photos import decode
from uvs.stores import OK, SKIPPED, TRUNCATED, Store

_LOADED: dict = {}


def where() -> str:
    """This worker's address, or the host name outside a Dask worker."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return socket.gethostname()


def readable(path: str, what: str) -> None:
    """UVSError unless this process can read the file `path`."""
    if not (os.path.isfile(path) and os.access(path, os.R_OK)):
        raise UVSError(path, f"{what} cannot be read on {where()}: the path must name the same "
                       "file on every worker (a shared file system)")


def cached(key: tuple, load: Callable[[], object]):
    """The object `load()` made for `key` in this process; loaded on first use only."""
    if key not in _LOADED:
        _LOADED[key] = load()
    return _LOADED[key]


def _threads(spec: dict) -> None:
    n = spec.get("threads")
    if n:
        import torch

        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def _same(path: str, digest: str, found: str) -> None:
    if found != digest:
        raise UVSError(path, f"differs on {where()} from the file the job was started with "
                       "(model hash mismatch): every worker must read the same weights")


# --- the kinds of task ----------------------------------------------------------------------

def _convnet(spec: dict):
    def load():
        path = spec["weights_file"]
        if spec["weights"] == "torchvision":  # this worker's torch cache
            path = vgg.torchvision_weights_path()
        readable(path, "the VGG-19 weights")
        _same(path, spec["model_hash"], file_sha256(path))
        return vgg.build_convnet(spec["weights"], device=spec.get("device") or "cpu")

    return cached(("vgg", spec["weights_file"], spec["model_hash"], spec.get("device")), load)


def _vse(spec: dict):
    def load():
        readable(spec["model"], "the model")
        _same(spec["model"], spec["model_hash"], vse_hash(spec["model"]))
        return tools.load_model(spec["model"])

    return cached(("vse", spec["model"], spec["model_hash"]), load)


def _decoder(spec: dict):
    def load():
        readable(spec["decoder"], "the decoder")
        _same(spec["decoder"], spec["model_hash"], file_sha256(spec["decoder"]))
        dec = dtools.load_model(spec["decoder"], spec.get("dictionary"), seed=spec["seed"])
        vse = _vse({**spec, "model": spec["vse"], "model_hash": spec["vse_hash"]}) \
            if spec.get("vse") else None
        return dec, vse

    return cached(("decoder", spec["decoder"], spec["model_hash"], spec.get("vse")), load)


def _source(spec: dict):
    """The feature rows a job reads (a .npy memory-mapped, or a store), opened once."""
    def load():
        if not os.path.exists(spec["source"]):
            raise UVSError(spec["source"], f"cannot be read on {where()}: the path must name "
                           "the same file on every worker (a shared file system)")
        return read_image_features(spec["source"])[0]

    return cached(("source", spec["source"], spec["source_hash"]), load)


def feature_chunk(spec: dict, store: Store, k: int) -> dict:
    """fc7 rows of chunk k's photos; unreadable photos get status SKIPPED and a zero row."""
    net = _convnet(spec)
    paths = store.chunk_inputs(k)
    run = vgg.features_from_files(net, paths, crops=spec["crops"], batch_size=spec["batch_size"],
                              strict=spec["strict"], root=spec.get("root"))
    feats = np.zeros((len(paths), net.dim), np.float32)
    status = np.zeros(len(paths), np.int8)
    skipped, warned, row, si, wi = run.skipped, run.warnings, 0, 0, 0
    for i, p in enumerate(paths):
        if si < len(skipped) and skipped[si]["path"] == p:
            status[i], si = SKIPPED, si + 1
            continue
        feats[i], row = run.features[row], row + 1
        status[i] = OK
        if wi < len(warned) and warned[wi]["path"] == p:
            status[i], wi = TRUNCATED, wi + 1
    store.write_chunk(k, {"features": feats}, status,
                      {"skipped": skipped, "warnings": warned})
    return {"rows": len(paths), "skipped": len(skipped)}


def region_chunk(spec: dict, store: Store, k: int) -> dict:
    """Whole image + boxes of each of chunk k's photos, fc7 of each, in fixed slots: a row
    holds `slots` features (unused slots zero) and `slots` boxes (unused ones NaN)."""
    net = _convnet(spec)
    detector = None
    if spec["boxes"] == "detector":
        detector = cached(("detector", net.device), lambda: load_detector(net.device))
    paths, slots = store.chunk_inputs(k), spec["max_regions"] + 1
    feats = np.zeros((len(paths), slots * net.dim), np.float32)
    boxes = np.full((len(paths), slots * 4), np.nan, np.float32)
    status = np.zeros(len(paths), np.int8)
    skipped = []
    for i, p in enumerate(paths):
        try:
            out = region_features(net, [p], spec["boxes"], spec["max_regions"], spec.get("root"),
                                  spec["strict"], detector=detector)
        except UVSError as err:
            if spec["strict"] or "could be read" not in err.problem:
                raise
            skipped.append({"path": p, "box": None, "problem": out_problem(spec, p)})
            status[i] = SKIPPED
            continue
        n = len(out["features"])
        feats[i, :n * net.dim] = out["features"].reshape(-1)
        boxes[i, :n * 4] = out["boxes"].reshape(-1)
        skipped += out["skipped"]
        status[i] = OK
    store.write_chunk(k, {"regions": feats, "boxes": boxes}, status, {"skipped": skipped})
    return {"rows": len(paths), "skipped": int((status == SKIPPED).sum())}


def out_problem(spec: dict, name: str) -> str:
    """Why the photo `name` could not be read (decoded again, for the message)."""
    full = os.path.join(spec["root"], name) if spec.get("root") else name
    try:
        decode(full)
    except UVSError as err:
        return err.problem
    return "could not be read"


def sentence_chunk(spec: dict, store: Store, k: int) -> dict:
    """Embeddings of chunk k's sentences."""
    m = _vse(spec)
    lines = store.chunk_inputs(k)
    vecs = tools.encode_sentences(m, lines, batch_size=spec["batch_size"])
    store.write_chunk(k, {"embeddings": vecs}, np.full(len(lines), OK, np.int8), {})
    return {"rows": len(lines), "skipped": 0}


def image_chunk(spec: dict, store: Store, k: int) -> dict:
    """Embeddings of chunk k's rows of image features (as `uvs encode images`)."""
    m = _vse(spec)
    a, b = store.chunk_range(k)
    feats = tools.check_features(m, _source(spec)[a:b], spec["source"], first_row=a)
    vecs = tools.encode_images(m, feats)
    store.write_chunk(k, {"embeddings": vecs}, np.full(b - a, OK, np.int8), {})
    return {"rows": b - a, "skipped": 0}


def caption_rows(dec: dict, vse: dict | None, feats: np.ndarray, options: dict,
                 where_: str | None = None) -> list[list[tuple[str, float]]]:
    """The n best beam-search sentences for each row of feats: (m, dim_image)."""
    if vse is None:
        c = dtools.check_context(dec, feats, where_)
    else:
        c = tools.encode_images(vse, tools.check_features(vse, feats, where_))
    return dtools.generate(dec, c, beam_width=options["beam"], use_unk=options["use_unk"],
                           maxlen=options["maxlen"], n=options["n"])


def caption_lines(first: int, names: list[str], found) -> str:
    """JSON lines {"row", "name", "sentences": [{"text", "score"}]}, one per row."""
    return "".join(json.dumps({"row": first + i, "name": name,
                               "sentences": [{"text": t, "score": s} for t, s in best]},
                              ensure_ascii=False) + "\n"
                   for i, (name, best) in enumerate(zip(names, found, strict=True)))


def caption_chunk(spec: dict, store: Store, k: int) -> dict:
    """Sentences for chunk k's rows of image features, as JSON lines."""
    dec, vse = _decoder(spec)
    a, b = store.chunk_range(k)
    first = spec["first_row"] + a
    found = caption_rows(dec, vse, _source(spec)[first:first + b - a], spec, spec["source"])
    text = caption_lines(first, store.chunk_inputs(k), found)
    store.write_chunk(k, {}, np.full(b - a, OK, np.int8), {}, text=text)
    return {"rows": b - a, "skipped": 0}


KINDS = {"features": feature_chunk, "regions": region_chunk, "sentences": sentence_chunk,
         "images": image_chunk, "captions": caption_chunk}


def run_chunk(spec: dict, k: int) -> dict:
    """One task: chunk k of the job `spec`, unless its marker says it is written already.

    A UVSError (bad input, unreadable weights) comes back as {'error': line}: the client stops
    the job with it; anything else raises, and Dask retries the task.
    """
    store = Store(spec["store"], spec["meta"])
    if os.path.exists(store.marker_path(k)):
        return {"chunk": k, "rows": 0, "skipped": 0, "already": True}
    start = time.perf_counter()
    try:
        _threads(spec)
        report = KINDS[spec["kind"]](spec, store, k)
    except UVSError as err:
        return {"chunk": k, "error": str(err)}
    return {"chunk": k, **report, "seconds": time.perf_counter() - start, "worker": where()}
