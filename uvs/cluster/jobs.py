"""The batch jobs, client side: their inputs, fingerprint and store; run; what they made.

Every path given to workers is made absolute here; the fingerprint holds the hash of the model
(weights file, or the model's parameters), of the inputs (written into the store) and the
options that decide the results, so that a store is never extended by a different job.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from uvs import vgg
from uvs.align.features import detector_weights_path, load_detector
from uvs.cluster import run as crun
from uvs.cluster.store import create_or_open
from uvs.corpus import content_sha256, file_sha256, vse_hash
from uvs.decoding.files import read_decoder
from uvs.decoding.tools import trained_model_path
from uvs.errors import UVSError, os_reason
from uvs.features import read_image_features
from uvs.fileio import atomic_path
from uvs.modelfile import read_model
from uvs.regions import write_regions
from uvs.stores import OK, Store

CHUNK_ROWS = {"features": 256, "regions": 32, "sentences": 20000, "images": 65536,
              "captions": 64}


def iter_lines(path: str) -> Iterator[str]:
    """A UTF-8 file's lines, streamed, with `uvs.fileio.read_lines`'s checks (no empty line)."""
    try:
        f = open(path, "rb")
    except OSError as err:
        raise UVSError(path, "file not found" if isinstance(err, FileNotFoundError)
                       else f"cannot read: {os_reason(err)}") from None
    with f:
        n = 0
        for n, raw in enumerate(f, 1):
            if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8").rstrip("\n").removesuffix("\r")
            except UnicodeDecodeError:
                raise UVSError(path, f"line {n} is not UTF-8 text") from None
            if not line.strip():
                raise UVSError(path, f"line {n} is empty")
            yield line
        if n == 0:
            raise UVSError(path, "the file is empty")


def _chunk(kind: str, chunk_rows: int | None) -> int:
    return chunk_rows or CHUNK_ROWS[kind]


def _spec(kind: str, store: Store, **fields) -> dict:
    return {"kind": kind, "store": os.path.abspath(store.path), "meta": store.meta, **fields}


def weights_file(weights: str) -> str:
    """The file of VGG-19 `weights` ('torchvision': torch's cache), checked to exist here."""
    if weights in (None, "random"):
        raise UVSError(None, "random VGG-19 weights differ on every worker: give a weights file")
    path = vgg.torchvision_weights_path() if weights == "torchvision" else weights
    if not os.path.isfile(path):
        vgg.build_convnet(weights, device="cpu")  # its own one-line error
    return os.path.abspath(path)


def features_job(output: str, paths: Iterable[str], weights: str, crops: int, batch_size: int,
                 strict: bool, root: str | None, device: str | None,
                 chunk_rows: int | None = None) -> tuple[Store, dict]:
    """VGG-19 fc7 of photos (paths relative to `root`) into a store of `features`."""
    wfile = weights_file(weights)
    digest = file_sha256(wfile)
    dim = vgg.build_convnet(weights, device="cpu").dim
    fingerprint = {"kind": "features", "model": digest,
                   "options": {"crops": crops, "batch_size": batch_size, "device": device}}
    store = create_or_open(output, "features", paths, _chunk("features", chunk_rows),
                           fingerprint, {"features": dim})
    return store, _spec("features", store, weights=wfile if weights != "torchvision" else
                        weights, weights_file=wfile, model_hash=digest, device=device,
                        crops=crops, batch_size=batch_size, strict=strict,
                        root=os.path.abspath(root) if root else None)


def regions_job(output: str, paths: Iterable[str], weights: str, boxes: str, max_regions: int,
                strict: bool, root: str | None, device: str | None,
                chunk_rows: int | None = None) -> tuple[Store, dict]:
    """Region features (whole image + `max_regions` boxes from 'grid' or 'detector') of
    photos, into REGIONS.npz through a job store of fixed slots per photo."""
    if boxes not in ("grid", "detector"):
        raise UVSError(boxes, "a job of chunks takes --regions grid or detector; a file of "
                       "boxes runs in one process (-o REGIONS.npz without cluster flags)")
    if not output.endswith(".npz"):
        raise UVSError(output, "region features go to a .npz file")
    wfile = weights_file(weights)
    digest = file_sha256(wfile)
    detector = None
    if boxes == "detector":
        load_detector("cpu")  # its one-line error when the weights are not in torch's cache
        detector = file_sha256(detector_weights_path())
    dim = vgg.build_convnet(weights, device="cpu").dim
    slots = max_regions + 1
    fingerprint = {"kind": "regions", "model": digest, "detector": detector,
                   "options": {"boxes": boxes, "max_regions": max_regions, "device": device}}
    store = create_or_open(job_store_path(output), "regions", paths,
                           _chunk("regions", chunk_rows), fingerprint,
                           {"regions": slots * dim, "boxes": slots * 4})
    return store, _spec("regions", store, weights=wfile if weights != "torchvision" else
                        weights, weights_file=wfile, model_hash=digest, device=device,
                        boxes=boxes, max_regions=max_regions, strict=strict,
                        root=os.path.abspath(root) if root else None)


def assemble_regions(store: Store, output: str) -> None:
    """A complete regions job's rows as one REGIONS.npz (`uvs.regions`), atomically."""
    store.check_complete()
    slots = store.meta["arrays"]["boxes"] // 4
    dim = store.meta["arrays"]["regions"] // slots
    status = store.status()
    feats, boxes, counts = [], [], []  # counts: regions of each photo read
    regions, box_rows = store.array("regions"), store.array("boxes")
    for k in range(store.chunks):
        a, b = store.chunk_range(k)
        r, bx = regions[a:b], box_rows[a:b]
        for i in np.flatnonzero(status[a:b] == OK):
            bi = bx[i].reshape(slots, 4)
            n = int((~np.isnan(bi[:, 0])).sum())
            feats.append(r[i].reshape(slots, dim)[:n])
            boxes.append(bi[:n])
            counts.append(n)
    if not feats:
        raise UVSError(store.path, f"none of the {store.rows} photos could be read")
    write_regions(output, np.concatenate(feats), np.repeat(np.arange(len(counts)), counts),
                  np.concatenate(boxes), store.names(status))


def sentences_job(output: str, model: str, textfile: str, batch_size: int,
                  chunk_rows: int | None = None) -> tuple[Store, dict]:
    """Sentence embeddings of a text file (one a line) into a store of `embeddings`."""
    dim = read_model(model, kind="vse").options["dim"]
    digest = vse_hash(model)
    fingerprint = {"kind": "sentences", "model": digest, "options": {"batch_size": batch_size}}
    store = create_or_open(output, "sentences", iter_lines(textfile),
                           _chunk("sentences", chunk_rows), fingerprint, {"embeddings": dim})
    return store, _spec("sentences", store, model=os.path.abspath(model), model_hash=digest,
                        batch_size=batch_size)


def _feature_source(path: str, want: int) -> tuple[list[str], str]:
    _, names = read_image_features(path, want)
    return names, content_sha256(path)


def images_job(output: str, model: str, features: str,
               chunk_rows: int | None = None) -> tuple[Store, dict]:
    """Image embeddings of a feature file's rows (.npy or a store) into a store."""
    options = read_model(model, kind="vse").options
    names, source = _feature_source(features, options["dim_image"])
    digest = vse_hash(model)
    fingerprint = {"kind": "images", "model": digest, "source": source, "options": {}}
    store = create_or_open(output, "images", names, _chunk("images", chunk_rows), fingerprint,
                           {"embeddings": options["dim"]})
    return store, _spec("images", store, model=os.path.abspath(model), model_hash=digest,
                        source=os.path.abspath(features), source_hash=source)


def parse_rows(text: str, count: int, where: str) -> tuple[int, int]:
    """'all' or 'A:B' (0-based, B excluded) as a row range within `count` rows."""
    if text == "all":
        return 0, count
    try:
        a, b = (int(v) if v else d for v, d in zip(text.split(":"), (0, count), strict=True))
    except ValueError:
        raise UVSError(None, f"--rows {text!r}: expected 'all' or A:B") from None
    if not 0 <= a < b <= count:
        raise UVSError(where, f"rows {a}:{b} are not within the file's {count} rows")
    return a, b


def caption_setup(decoder: str, dictionary: str | None, vse_model: str | None) -> dict:
    """What a caption job needs to know of its decoder, read without compiling it."""
    mf = read_decoder(decoder, dictionary)
    vse = None
    if mf.options.get("condition", "embedding") != "features":
        vse = vse_model or trained_model_path({"options": mf.options, "path": mf.path})
        if not vse:
            raise UVSError(decoder, "this decoder decodes a joint space: give the uvs model "
                           "with --model")
    want = read_model(vse, kind="vse").options["dim_image"] if vse else mf.options["dimctx"]
    return {"decoder": os.path.abspath(decoder), "model_hash": file_sha256(decoder),
            "dictionary": os.path.abspath(dictionary) if dictionary else None,
            "vse": os.path.abspath(vse) if vse else None,
            "vse_hash": vse_hash(vse) if vse else None, "dim_image": want}


def captions_job(output: str, setup: dict, features: str, rows: tuple[int, int],
                 options: dict, chunk_rows: int | None = None) -> tuple[Store, dict]:
    """Beam-search captions of a feature file's rows, into OUTPUT.jsonl via a job store."""
    names, source = _feature_source(features, setup["dim_image"])
    a, b = rows
    fingerprint = {"kind": "captions", "model": setup["model_hash"], "encoder":
                   setup["vse_hash"], "source": source, "options": {**options, "rows": [a, b]}}
    store = create_or_open(job_store_path(output), "captions", names[a:b],
                           _chunk("captions", chunk_rows), fingerprint, {}, text=True)
    return store, _spec("captions", store, **setup, **options, source=os.path.abspath(features),
                        source_hash=source, first_row=a)


def job_store_path(output: str) -> str:
    """Where a job whose result is a text file keeps its chunks: OUTPUT.job.zarr."""
    return output + ".job.zarr"


def assemble_text(store: Store, output: str) -> None:
    """A complete text job's parts, in order, into `output` (atomically)."""
    store.check_complete()
    with atomic_path(output) as tmp, open(tmp, "wb") as out:
        for k in range(store.chunks):
            with open(store.part_path(k), "rb") as part:
                out.write(part.read())


def run_job(store: Store, spec: dict, where: crun.Where, quiet: bool = False,
            output: str | None = None, on_result=None) -> dict:
    """Run a job's missing chunks (of its shard) and say what the store holds now.

    Tasks that failed for good (after Dask's retries) are a UVSError naming how many, once
    the others have finished: their chunks stay unwritten for a rerun.
    """
    outcome = crun.execute(store, spec, where, quiet, on_result)
    if outcome.failed:
        k, why = outcome.failed[0]
        tried = outcome.shard_chunks - outcome.already
        raise UVSError(store.path, f"{len(outcome.failed)} of {tried} tasks failed (chunk {k}: "
                       f"{why}); the chunks written are kept: rerun the same command to "
                       "retry the rest")
    skipped, warnings = [], []
    for marker in store.markers():
        skipped += marker.get("skipped", [])
        warnings += marker.get("warnings", [])
    if outcome.complete and output and spec["kind"] == "captions":
        assemble_text(store, output)
    if outcome.complete and output and spec["kind"] == "regions":
        assemble_regions(store, output)
    return {"output": output or store.path, "store": store.path, "kind": spec["kind"],
            "rows": store.rows, "chunks": store.chunks, "chunk_rows": store.chunk_rows,
            "shard": list(where.shard) if where.shard else None,
            "shard_chunks": outcome.shard_chunks, "ran": outcome.ran,
            "already": outcome.already, "complete": outcome.complete,
            "missing_chunks": len(store.missing()),
            "kept": store.rows - sum(1 for s in skipped if s.get("box") is None)
            if outcome.complete else None,
            "skipped": skipped, "warnings": warnings,
            "seconds": round(outcome.seconds, 3)}
