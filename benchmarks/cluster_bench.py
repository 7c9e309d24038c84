"""Benchmark batch jobs on Dask: `uvs features` with 1 vs 2 workers, `uvs index build` from a
large store with its peak memory.

    python benchmarks/cluster_bench.py features [--photos 2000] [--width full] [--workers 1 2]
    python benchmarks/cluster_bench.py index [--rows 10000000] [--dim 128] [--type ivf]

features: `--photos` painted photos (smooth random colour fields, 240 x 320 JPEGs, written
once into --folder), VGG-19 fc7 through `uvs features -o FEATS.zarr --workers N` for each N
of --workers, each worker one process with one BLAS/torch thread; the weights are
`--weights PATH` (a Lasagne vgg19.pkl) or random ones of VGG-19's widths (`--width full`,
548 MB, written once) or of the tests' narrow net (`--width narrow`: measures overheads
only). Prints wall seconds and photos/s per N, and the speed-up over the first N; the stores
are checked to be identical, bit for bit.

index: a features store of --rows random unit rows, --dim wide (written chunk by chunk, never
held whole), and a random model mapping them to --embed-dim; then `uvs index build MODEL
--images STORE` in a child process, whose peak resident memory (getrusage ru_maxrss) is
printed beside the sizes it must hold: the index (rows x embed-dim x 4 bytes, + 16 bytes a
row for ids and the direct map) and the names; the baseline is the same command on a
1000-row store (interpreter, PyTensor, faiss). `--on-disk` measures the index whose lists
are merged into INDEX.ivfdata instead (built one million rows at a time).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "tests"))  # py2pickle: a Lasagne-style weights file

UVS = [sys.executable, "-c", "from uvs.cli.main import main; main()"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    f = sub.add_parser("features")
    f.add_argument("--photos", type=int, default=2000)
    f.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    f.add_argument("--weights", help="a Lasagne vgg19.pkl (default: random weights)")
    f.add_argument("--width", choices=["full", "narrow"], default="full")
    f.add_argument("--chunk-rows", type=int, default=50)
    f.add_argument("--folder", default="cluster_bench_work")
    i = sub.add_parser("index")
    i.add_argument("--rows", type=int, default=10_000_000)
    i.add_argument("--dim", type=int, default=128, help="width of the stored features")
    i.add_argument("--embed-dim", type=int, default=128, help="width of the joint space")
    i.add_argument("--chunk-rows", type=int, default=100_000)
    i.add_argument("--type", default="auto", choices=["auto", "flat", "ivf"])
    i.add_argument("--on-disk", action="store_true",
                   help="uvs index build --on-disk (lists in INDEX.ivfdata, memory-mapped)")
    i.add_argument("--block-rows", type=int, default=1_000_000, help="with --on-disk")
    i.add_argument("--folder", default="cluster_bench_work")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p.parse_args()


# --- features -------------------------------------------------------------------------------

def paint(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    planes = [np.sin(6 * x * rng.random() + 4 * y * rng.random() + rng.random() * 6)
              for _ in range(3)]
    return ((np.stack(planes, -1) * 0.45 + 0.5) * 255).astype(np.uint8)


def write_photos(folder: str, n: int) -> str:
    from PIL import Image

    listing = os.path.join(folder, f"photos{n}.txt")
    if not os.path.exists(listing):
        names = []
        for k in range(n):
            name = f"photo{k:06d}.jpg"
            path = os.path.join(folder, name)
            if not os.path.exists(path):
                Image.fromarray(paint(240, 320, k)).save(path, quality=90)
            names.append(name)
        with open(listing, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in names))
    return listing


def write_weights(folder: str, width: str) -> str:
    """Random VGG-19 weights (He init) as a Lasagne pickle: full widths or the tests' narrow."""
    from py2pickle import dumps_py2

    path = os.path.join(folder, f"vgg19-random-{width}.pkl")
    if os.path.exists(path):
        return path
    widths, dense = ((64, 128, 256, 512, 512), (4096, 4096, 1000)) if width == "full" else \
        ((4, 4, 8, 8, 8), (16, 12, 10))
    rng = np.random.default_rng(0)
    values, cin = [], 3
    for w, n in zip(widths, (2, 2, 4, 4, 4), strict=True):
        for _ in range(n):
            values += [(rng.standard_normal((w, cin, 3, 3), np.float32)
                        * np.float32(np.sqrt(2 / (cin * 9)))),
                       np.zeros(w, np.float32)]
            cin = w
    nin = cin * 49
    for nout in dense:
        values += [rng.standard_normal((nin, nout), np.float32) * np.float32(np.sqrt(2 / nin)),
                   np.full(nout, 0.01, np.float32)]
        nin = nout
    with open(path + ".tmp", "wb") as f:
        f.write(dumps_py2({"param values": values}, protocol=2))
    os.replace(path + ".tmp", path)
    return path


def bench_features(args) -> dict:
    import shutil

    import zarr

    os.makedirs(args.folder, exist_ok=True)
    listing = write_photos(args.folder, args.photos)
    weights = args.weights or write_weights(args.folder, args.width)
    runs, first = [], None
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    for n in args.workers:
        out = os.path.join(args.folder, f"feats-{args.photos}-w{n}.zarr")
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([*UVS, "features", "--list", listing, "--root", args.folder, "-o", out,
                        "--weights", weights, "--device", "cpu", "--workers", str(n),
                        "--chunk-rows", str(args.chunk_rows), "-q"], check=True, env=env,
                       capture_output=True)
        seconds = time.perf_counter() - start
        feats = zarr.open_group(out, mode="r")["features"][:]
        if first is None:
            first = feats
        runs.append({"workers": n, "seconds": round(seconds, 2),
                     "photos_per_s": round(args.photos / seconds, 2),
                     "speedup": round(runs[0]["seconds"] / seconds, 3) if runs else 1.0,
                     "identical": bool(np.array_equal(feats, first))})
    return {"what": "features", "photos": args.photos, "weights": weights,
            "chunk_rows": args.chunk_rows, "cpus": os.cpu_count(), "runs": runs}


# --- index ----------------------------------------------------------------------------------

def write_store(path: str, rows: int, dim: int, chunk_rows: int) -> None:
    from uvs.cluster.store import create_or_open
    from uvs.stores import OK

    names = (f"photo{k:09d}.jpg" for k in range(rows))
    store = create_or_open(path, "features", names, chunk_rows,
                           {"kind": "features", "model": "benchmark", "options": {}},
                           {"features": dim})
    rng = np.random.default_rng(0)
    for k in sorted(set(range(store.chunks)) - store.done()):
        a, b = store.chunk_range(k)
        x = rng.standard_normal((b - a, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        store.write_chunk(k, {"features": x}, np.full(b - a, OK, np.int8), {})


def write_model(path: str, dim_image: int, dim: int) -> None:
    from uvs.model import init_params
    from uvs.modelfile import write_model as write

    o = {"dim": dim, "dim_word": 8, "dim_image": dim_image, "encoder": "gru", "n_words": 12}
    write(path, init_params(o, rng=np.random.RandomState(0)), o,
          {w: i + 2 for i, w in enumerate("a dog cat car red blue sky sits runs the".split())})


def _build(model: str, store: str, out: str, index_type: str,
           extra: tuple = ()) -> tuple[dict, float, float, float]:
    """`uvs index build` in a child: (its JSON, seconds, peak RSS of any child so far, peak
    anonymous RSS of this child sampled every 20 ms; MiB). Anonymous memory leaves out the
    file-backed pages of memory-mapped files (the page cache may drop those)."""
    start = time.perf_counter()
    proc = subprocess.Popen([*UVS, "index", "build", model, "--images", store, "-o", out,
                             "--type", index_type, "--json", "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    anon = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        anon = max(anon, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(stderr)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return json.loads(stdout), seconds, peak, anon / 1024


def bench_index(args) -> dict:
    os.makedirs(args.folder, exist_ok=True)
    store = os.path.join(args.folder, f"store-{args.rows}x{args.dim}.zarr")
    small = os.path.join(args.folder, f"store-1000x{args.dim}.zarr")
    model = os.path.join(args.folder, f"model-{args.dim}-{args.embed_dim}.npz")
    start = time.perf_counter()
    write_store(store, args.rows, args.dim, args.chunk_rows)
    written = time.perf_counter() - start
    write_store(small, 1000, args.dim, 1000)
    if not os.path.exists(model):
        write_model(model, args.dim, args.embed_dim)
    out = os.path.join(args.folder, "bench.idx")
    for ext in ("", ".faiss", ".ivfdata"):  # an earlier run's files
        if os.path.exists(out + ext):
            os.unlink(out + ext)
    # ru_maxrss of children is the largest so far: the small build first gives the baseline
    _, _, baseline, base_anon = _build(model, small, out, "flat")
    extra = ("--on-disk", "--block-rows", str(args.block_rows)) if args.on_disk else ()
    built, seconds, peak, anon = _build(model, store, out, args.type, extra)
    index_bytes = args.rows * (args.embed_dim * 4 + (16 if built["type"] == "ivf" else 0))
    return {"what": "index", "rows": args.rows, "dim": args.dim, "embed_dim": args.embed_dim,
            "type": built["type"], "on_disk": args.on_disk, "nlist": built["nlist"],
            "store_seconds": round(written, 1),
            "build_seconds": round(seconds, 1), "peak_rss_mib": round(peak, 1),
            "baseline_rss_mib": round(baseline, 1), "peak_anon_mib": round(anon, 1),
            "baseline_anon_mib": round(base_anon, 1),
            "index_mib": round(index_bytes / 2**20, 1),
            "store_mib": round(args.rows * args.dim * 4 / 2**20, 1),
            "index_file_mib": round(sum(os.path.getsize(out + ext) for ext in
                                        ("", ".faiss", ".ivfdata")
                                        if os.path.exists(out + ext)) / 2**20, 1)}


def main() -> None:
    args = parse_args()
    result = bench_features(args) if args.what == "features" else bench_index(args)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if key != "runs":
            print(f"{key}: {value}")
    for run in result.get("runs", []):
        print(f"  {run['workers']} worker(s): {run['seconds']:8.2f} s  "
              f"{run['photos_per_s']:7.2f} photos/s  speed-up {run['speedup']:.2f}x  "
              f"identical {run['identical']}")


if __name__ == "__main__":
    main()
