"""Batch jobs into Zarr stores on a real `distributed.LocalCluster` of 2 worker processes:
the same bits as one process, a worker killed mid-job, shards, resume, refusals."""

import json
import os
import signal
import sys

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from models import write_tiny_model
from vggfixtures import DENSE, photo, write_lasagne_vgg

pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")
pytest.importorskip("torchvision")
Image = pytest.importorskip("PIL.Image")

from uvs.cluster.run import WORKER_ENV  # noqa: E402
from uvs.stores import open_store  # noqa: E402

PHOTOS = 12
CAPTIONS = ["a dog runs on the beach", "a red car", "a blue car", "a cat sits", "the sky",
            "a dog", "the red sky", "a cat on a car"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Painted photos (one unreadable among them), a narrow vgg19.pkl, a tiny model, captions,
    a features decoder."""
    from uvs.decoding.files import write_decoder
    from uvs.decoding.model import init_params

    root = tmp_path_factory.mktemp("cluster")
    names = []
    for i in range(PHOTOS):
        Image.fromarray(photo(40 + 3 * i, 60, seed=i)).save(root / f"p{i:02d}.png")
        names.append(f"p{i:02d}.png")
    (root / "broken.jpg").write_bytes(b"this is not a picture")
    names.insert(4, "broken.jpg")
    (root / "list.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    write_lasagne_vgg(root / "vgg19.pkl")
    model, *_ = write_tiny_model(root, "uvs", name="vse", dim_image=DENSE[1])
    (root / "caps.txt").write_text("".join(c + "\n" for c in CAPTIONS * 3), encoding="utf-8")
    words = ["a", "dog", "runs", "on", "the", "beach", "."]
    o = {"dimctx": DENSE[1], "dim_word": 4, "dim": 5, "n_words": 9, "decoder": "gru",
         "doutput": False, "condition": "features", "inject": "init"}
    write_decoder(root / "dec.npz", init_params(o, rng=np.random.RandomState(0)), o,
                  {w: i + 2 for i, w in enumerate(words)})
    return {"root": root, "names": names, "model": model, "dec": root / "dec.npz"}


@pytest.fixture(scope="module")
def cluster():
    """A LocalCluster of 2 worker processes, 1 thread each (as `--workers 2` makes)."""
    import logging

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.CRITICAL,
                      env=dict(WORKER_ENV)) as c, Client(c) as client:
        yield c.scheduler_address, client


@pytest.fixture
def one_thread():
    """One torch thread here too, as on each worker: the same arithmetic, bit for bit."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def features(work, out, *extra):
    r = work["root"]
    return run("features", "--list", r / "list.txt", "--root", r, "-o", out, "--weights",
               r / "vgg19.pkl", "--chunk-rows", 3, "-q", "--json", *extra)


def arrays(path):
    g = zarr.open_group(str(path), mode="r")
    return {name: g[name][:] for name in ("features", "embeddings", "status") if name in g}


def same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def whole(work, tmp_path_factory):
    """The features job run in this process, 1 thread: the reference store."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("whole") / "feats.zarr"
    summary = json.loads(ok(features(work, out)).stdout)
    torch.set_num_threads(before)
    return out, summary


def test_features_store_rows_names_and_skipped(work, whole, tmp_path):
    out, summary = whole
    assert summary["complete"] and summary["rows"] == PHOTOS + 1 and summary["chunks"] == 5
    assert summary["skipped"] == [{"path": "broken.jpg", "problem":
                                   "not an image Pillow can read"}]
    got = arrays(out)
    assert got["status"].tolist() == [1] * 4 + [2] + [1] * 8
    assert not got["features"][4].any()
    from uvs.features import read_image_features

    feats, names = read_image_features(str(out))
    assert names == [n for n in work["names"] if n != "broken.jpg"]
    assert feats.shape == (PHOTOS, DENSE[1])
    ok(run("features", "--list", work["root"] / "list.txt", "--root", work["root"], "-o",
           tmp_path / "f.npy", "--weights", work["root"] / "vgg19.pkl", "-q"))
    np.testing.assert_allclose(np.asarray(feats), np.load(tmp_path / "f.npy"), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(feats[5:9], got["features"][6:10])
    np.testing.assert_array_equal(feats.take(np.array([11, 0, 4])),
                                  got["features"][[12, 0, 5]])
    blocks = list(feats.blocks())
    assert [first for first, _ in blocks] == [0, 3, 5, 8, 11]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), np.asarray(feats))


@pytest.mark.slow
def test_features_on_the_cluster_equal_one_process_bit_for_bit(work, whole, cluster,
                                                              tmp_path):
    out = tmp_path / "c.zarr"
    summary = json.loads(ok(features(work, out, "--cluster", cluster[0])).stdout)
    assert summary["ran"] == 5 and summary["complete"]
    same(arrays(out), arrays(whole[0]))
    assert (out / "inputs.txt").read_text() == (whole[0] / "inputs.txt").read_text()


@pytest.mark.slow
def test_a_worker_killed_mid_job_loses_only_its_task(work, cluster, tmp_path, one_thread):
    """`uvs features --cluster` in a subprocess; the test SIGKILLs a worker process while it
    runs a task; the nanny starts another, the task runs again, and the store is the same."""
    import subprocess
    import time

    address, client = cluster
    reference, out = tmp_path / "ref.zarr", tmp_path / "k.zarr"
    ok(features(work, reference, "--crops", "10"))  # ten crops: tasks long enough to catch
    r = work["root"]
    proc = subprocess.Popen([sys.executable, "-c", "from uvs.cli.main import main; main()",
                             "features", "--list", str(r / "list.txt"), "--root", str(r), "-o",
                             str(out), "--weights", str(r / "vgg19.pkl"), "--crops", "10",
                             "--chunk-rows", "3", "--cluster", address, "--json", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids_before = set(client.run(os.getpid).values())
    killed, deadline = None, time.monotonic() + 300
    while proc.poll() is None and killed is None and time.monotonic() < deadline:
        if (out / "uvs-done").is_dir() and os.listdir(out / "uvs-done"):
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                killed = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.005)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert killed in pids_before, "no worker was busy once the first chunk was written"
    assert killed not in set(client.run(os.getpid).values())
    summary = json.loads(stdout)
    assert summary["complete"] and summary["chunks"] == 5
    same(arrays(out), arrays(reference))


def test_shards_combine_into_the_whole(work, whole, tmp_path, one_thread):
    shared = tmp_path / "shared.zarr"
    apart = []
    for i in (1, 2, 3):
        s = json.loads(ok(features(work, shared, "--shard", f"{i}/3")).stdout)
        assert s["complete"] == (i == 3) and s["ran"] == s["shard_chunks"]
        apart.append(tmp_path / f"piece{i}.zarr")
        ok(features(work, apart[-1], "--shard", f"{i}/3"))
    assert [open_store(p).done() for p in apart] == [{0}, {1, 2}, {3, 4}]
    same(arrays(shared), arrays(whole[0]))
    merged = tmp_path / "merged.zarr"
    res = json.loads(ok(run("store", "merge", *apart, "-o", merged, "--json")).stdout)
    assert res["copied"] == 5 and res["complete"]
    same(arrays(merged), arrays(whole[0]))
    info = json.loads(ok(run("store", "info", merged, "--json")).stdout)
    assert info["written_chunks"] == 5 and info["skipped"] == 1


def test_a_rerun_redoes_only_the_missing_chunks(work, whole, tmp_path, one_thread):
    import shutil

    out = tmp_path / "r.zarr"
    shutil.copytree(whole[0], out)
    # an interrupted job: chunks 1 and 3 not recorded (chunk 3's rows half written)
    os.unlink(out / "uvs-done" / "00000001.json")
    os.unlink(out / "uvs-done" / "00000003.json")
    (out / "features" / "c" / "3" / "0").write_bytes(b"partial")
    one_line_error(run("search", work["model"], "--text", "a dog", "--images", out),
                   "2 of 5 chunks are not written yet")
    summary = json.loads(ok(features(work, out)).stdout)
    assert (summary["ran"], summary["already"]) == (2, 3) and summary["complete"]
    same(arrays(out), arrays(whole[0]))
    again = json.loads(ok(features(work, out)).stdout)
    assert (again["ran"], again["already"]) == (0, 5)


@pytest.mark.slow
def test_a_job_killed_midway_is_finished_by_a_rerun(work, whole, tmp_path, one_thread):
    """`uvs features` in a subprocess, SIGKILLed once some chunks are written; the rerun
    runs exactly the chunks without a marker, and the store equals the uninterrupted one."""
    import subprocess
    import time

    r, out = work["root"], tmp_path / "i.zarr"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from uvs.cli.main import main; main()",
                             "features", "--list",
                             str(r / "list.txt"), "--root", str(r), "-o", str(out),
                             "--weights", str(r / "vgg19.pkl"), "--chunk-rows", "3", "-q"],
                            env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = out / "uvs-done"  # markers only: not a marker's temporary file
        if done.is_dir() and sum(n[:-5].isdigit() for n in os.listdir(done)) >= 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    written = len(open_store(out).done())
    assert 2 <= written < 5
    summary = json.loads(ok(features(work, out)).stdout)
    assert (summary["ran"], summary["already"]) == (5 - written, written)
    same(arrays(out), arrays(whole[0]))


def test_another_job_is_refused_rather_than_mixed_in(work, whole, tmp_path):
    out = whole[0]
    one_line_error(features(work, out, "--crops", "10"), str(out), "options.crops")
    other = tmp_path / "other.txt"
    other.write_text("p00.png\np01.png\n", encoding="utf-8")
    r = work["root"]
    one_line_error(run("features", "--list", other, "--root", r, "-o", out, "--weights",
                       r / "vgg19.pkl", "--chunk-rows", 3, "-q"), "inputs")
    write_lasagne_vgg(tmp_path / "vgg19.pkl", seed=5)
    one_line_error(run("features", "--list", r / "list.txt", "--root", r, "-o", out,
                       "--weights", tmp_path / "vgg19.pkl", "--chunk-rows", 3, "-q"),
                   "differs in model")


def test_strict_fails_the_job_with_the_photo(work, tmp_path):
    one_line_error(features(work, tmp_path / "s.zarr", "--strict"), "broken.jpg",
                   "not an image")


@pytest.mark.slow
def test_sentences_images_and_index_from_stores(work, whole, cluster, tmp_path, one_thread):
    m, root = work["model"], work["root"]
    here, there = tmp_path / "s1.zarr", tmp_path / "s2.zarr"
    ok(run("encode", "sentences", m, root / "caps.txt", "-o", here, "--chunk-rows", 5, "-q"))
    ok(run("encode", "sentences", m, root / "caps.txt", "-o", there, "--chunk-rows", 5,
           "--cluster", cluster[0], "-q"))
    same(arrays(here), arrays(there))
    ok(run("encode", "sentences", m, root / "caps.txt", "-o", tmp_path / "s.npy", "-q"))
    np.testing.assert_allclose(arrays(here)["embeddings"], np.load(tmp_path / "s.npy"),
                               rtol=1e-5, atol=1e-6)
    ims1, ims2 = tmp_path / "i1.zarr", tmp_path / "i2.zarr"
    ok(run("encode", "images", m, whole[0], "-o", ims1, "--chunk-rows", 5, "-q"))
    ok(run("encode", "images", m, whole[0], "-o", ims2, "--chunk-rows", 5, "--cluster",
           cluster[0], "-q"))
    same(arrays(ims1), arrays(ims2))
    ok(run("encode", "images", m, whole[0], "-o", tmp_path / "i.npy", "-q"))
    np.testing.assert_allclose(arrays(ims1)["embeddings"], np.load(tmp_path / "i.npy"),
                               rtol=1e-5, atol=1e-6)
    # the index streams the store; a .npy of the same rows gives the same answers
    from uvs.features import read_image_features

    feats, names = read_image_features(str(whole[0]))
    np.save(tmp_path / "f.npy", np.asarray(feats))
    (tmp_path / "f.paths.txt").write_text("".join(n + "\n" for n in names), encoding="utf-8")
    for kind in ("flat", "ivf"):
        idx_store, idx_npy = tmp_path / f"{kind}s.idx", tmp_path / f"{kind}n.idx"
        built = json.loads(ok(run("index", "build", m, "--images", whole[0], "-o", idx_store,
                                  "--type", kind, "--nlist", 2, "--json", "-q")).stdout)
        assert built["count"] == PHOTOS and built["cache"] == "streamed"
        ok(run("index", "build", m, "--images", tmp_path / "f.npy", "-o", idx_npy, "--type",
               kind, "--nlist", 2, "-q"))
        hits = [json.loads(ok(run("search", m, "--text", "a dog", "--index", p, "-k", 4,
                                  "--nprobe", 2, "--json")).stdout)["results"]
                for p in (idx_store, idx_npy)]
        assert [h["image"] for h in hits[0]] == [h["image"] for h in hits[1]]
        np.testing.assert_allclose([h["score"] for h in hits[0]],
                                   [h["score"] for h in hits[1]], rtol=1e-5)
    direct = json.loads(ok(run("search", m, "--text", "a dog", "--images", whole[0], "-k", 4,
                               "--json")).stdout)["results"]
    assert [h["image"] for h in direct] == [h["image"] for h in hits[0]]
    # a store of sentence embeddings streams into an index of captions
    for source, idx in ((here, tmp_path / "caps_s.idx"), (root / "caps.txt",
                                                          tmp_path / "caps_t.idx")):
        ok(run("index", "build", m, "--captions", source, "-o", idx, "-q"))
    found = [json.loads(ok(run("search", m, "--image-features", whole[0], "--row", 2,
                               "--index", p, "-k", 5, "--json")).stdout)["results"]
             for p in (tmp_path / "caps_s.idx", tmp_path / "caps_t.idx")]
    assert [h["caption"] for h in found[0]] == [h["caption"] for h in found[1]]
    np.testing.assert_allclose([h["score"] for h in found[0]],
                               [h["score"] for h in found[1]], rtol=1e-5)
    other, *_ = write_tiny_model(tmp_path, "uvs", name="other", dim_image=DENSE[1], seed=5)
    one_line_error(run("index", "build", other, "--captions", here, "-o", tmp_path / "x.idx"),
                   str(here), "embedded with another model")


@pytest.mark.slow
def test_captions_on_the_cluster_equal_one_process(work, whole, cluster, tmp_path, one_thread):
    dec = work["dec"]
    here, there = tmp_path / "c1.jsonl", tmp_path / "c2.jsonl"
    common = ("--image-features", whole[0], "--rows", "all", "--beam", 2, "--maxlen", 5,
              "--chunk-rows", 5, "-q")
    ok(run("caption", dec, *common, "-o", here))
    s = json.loads(ok(run("caption", dec, *common, "-o", there, "--cluster", cluster[0],
                          "--json")).stdout)
    assert s["complete"] and s["chunks"] == 3
    assert here.read_bytes() == there.read_bytes()
    lines = [json.loads(line) for line in here.read_text().splitlines()]
    assert [x["row"] for x in lines] == list(range(PHOTOS))
    assert lines[4]["name"] == "p04.png"
    single = json.loads(ok(run("caption", dec, "--image-features", whole[0], "--row", 4,
                               "--beam", 2, "--maxlen", 5, "--json")).stdout)
    assert single["sentences"][0]["text"] == lines[4]["sentences"][0]["text"]


@pytest.mark.slow
def test_workers_flag_starts_a_local_cluster(work, whole, tmp_path):
    out = tmp_path / "w.zarr"
    summary = json.loads(ok(features(work, out, "--workers", 2)).stdout)
    assert summary["ran"] == 5
    same(arrays(out), arrays(whole[0]))


def test_missing_extra_is_one_line_before_any_work(work, tmp_path, monkeypatch):
    missing = tmp_path / "missing.pkl"  # never read: the extra is checked first
    r = work["root"]
    monkeypatch.setitem(sys.modules, "distributed", None)
    one_line_error(run("features", "--list", r / "list.txt", "-o", tmp_path / "f.zarr",
                       "--weights", missing, "--workers", 2), "--workers needs distributed",
                   "uvs[cluster]")
    monkeypatch.setitem(sys.modules, "zarr", None)
    one_line_error(run("encode", "sentences", work["model"], r / "caps.txt", "-o",
                       tmp_path / "s.zarr"), "a .zarr store needs zarr", "uvs[cluster]")
    missing_model = tmp_path / "no-model.npz"  # the store is checked before the model
    for args in (("index", "build", missing_model, "--images", tmp_path / "f.zarr", "-o",
                  tmp_path / "x.idx"),
                 ("search", missing_model, "--text", "a", "--images", tmp_path / "f.zarr"),
                 ("caption", missing_model, "--image-features", tmp_path / "f.zarr"),
                 ("encode", "images", missing_model, tmp_path / "f.zarr", "-o",
                  tmp_path / "x.npy")):
        one_line_error(run(*args), "a .zarr store needs zarr")
    usage = run("features", "--list", r / "list.txt", "-o", tmp_path / "f.npy", "--shard",
                "1/2", "--weights", missing)
    assert usage.exit_code == 2 and "give -o NAME.zarr" in usage.output


def test_bad_shard_and_unreadable_weights(work, tmp_path):
    one_line_error(features(work, tmp_path / "x.zarr", "--shard", "4/3"), "--shard", "1 to n")
    one_line_error(features(work, tmp_path / "x.zarr", "--shard", "two"), "expected i/n")


@pytest.mark.slow
def test_region_features_on_the_cluster_equal_one_process(work, cluster, tmp_path, one_thread):
    r = work["root"]
    common = ("--list", r / "list.txt", "--root", r, "--weights", r / "vgg19.pkl", "--regions",
              "grid", "--max-regions", 4, "-q")
    ok(run("features", *common, "-o", tmp_path / "one.npz"))
    s = json.loads(ok(run("features", *common, "-o", tmp_path / "many.npz", "--chunk-rows", 4,
                          "--cluster", cluster[0], "--json")).stdout)
    assert s["complete"] and s["kept"] == PHOTOS and s["skipped"][0]["path"] == "broken.jpg"
    one, many = np.load(tmp_path / "one.npz"), np.load(tmp_path / "many.npz")
    assert one.files == many.files
    for key in one.files:
        assert np.array_equal(one[key], many[key]), key
    one_line_error(run("features", *common[:-1], "-o", tmp_path / "f.npz", "--regions",
                       r / "boxes.jsonl", "--workers", 2), "grid or detector")


def test_a_worker_that_cannot_read_the_weights_says_so(work, whole, tmp_path):
    from uvs.cluster import tasks

    store = open_store(whole[0])
    spec = {"kind": "features", "store": str(tmp_path / "x.zarr"), "meta": store.meta,
            "weights": str(tmp_path / "gone.pkl"), "weights_file": str(tmp_path / "gone.pkl"),
            "model_hash": "0" * 64, "crops": 1, "batch_size": 16, "strict": False}
    (tmp_path / "x.zarr" / "uvs-done").mkdir(parents=True)
    found = tasks.run_chunk(spec, 0)
    assert "gone.pkl" in found["error"] and "cannot be read on" in found["error"]
    assert "same file on every worker" in found["error"]
    spec["weights_file"] = spec["weights"] = str(work["root"] / "vgg19.pkl")
    found = tasks.run_chunk(spec, 0)
    assert "model hash mismatch" in found["error"]


def test_search_and_caption_take_a_store_row(work, whole):
    res = json.loads(ok(run("search", work["model"], "--image-features", whole[0], "--row", 4,
                            "--images", whole[0], "--minus", "dog", "-k", 1, "--json")).stdout)
    assert res["collection"]["count"] == PHOTOS
    res = json.loads(ok(run("caption", work["dec"], "--image-features", whole[0], "--row", 11,
                            "--beam", 2, "--maxlen", 4, "--json")).stdout)
    assert res["sentences"]
    one_line_error(run("caption", work["dec"], "--image-features", whole[0], "--row", 12),
                   "row 12 is out of range")


def test_an_on_disk_index_answers_as_the_one_in_memory(work, whole, tmp_path):
    """faiss's documented path beyond RAM: blocks added to copies of the trained index,
    their lists merged into INDEX.ivfdata (memory-mapped); the three files can move."""
    pytest.importorskip("faiss")
    from uvs import index as uindex
    from uvs import tools
    from uvs.features import embed_block
    from uvs.store_rows import StoreRows

    m = work["model"]
    (tmp_path / "a").mkdir()
    ram, disk = tmp_path / "ram.idx", tmp_path / "a" / "disk.idx"
    for out, extra in ((ram, ()), (disk, ("--on-disk",))):
        ok(run("index", "build", m, "--images", whole[0], "-o", out, "--type", "ivf",
               "--nlist", 2, "-q", *extra))
    assert sorted(os.listdir(tmp_path / "a")) == ["disk.idx", "disk.idx.faiss",
                                                  "disk.idx.ivfdata"]
    os.rename(tmp_path / "a", tmp_path / "b")  # the three files move together
    moved = tmp_path / "b" / "disk.idx"
    assert json.loads(ok(run("index", "info", moved, "--json")).stdout)["storage"] == "on-disk"

    def hits(path):
        out = json.loads(ok(run("search", m, "--text", "a dog", "--index", path, "-k", 6,
                                "--nprobe", 2, "--json")).stdout)["results"]
        return [h["image"] for h in out], [h["score"] for h in out]

    want = hits(ram)
    assert hits(moved)[0] == want[0]
    np.testing.assert_allclose(hits(moved)[1], want[1], rtol=1e-6)
    # several blocks merged (3-row chunks, blocks of at least 4 rows)
    model = tools.load_model(m)
    rows, store = StoreRows(open_store(whole[0])), open_store(whole[0])
    several = tmp_path / "several.idx"
    built = uindex.build_stream(rows, model["options"]["dim"],
                                lambda b, first: embed_block(model, b, "", first),
                                store.names(rows.status), {"kind": "images", "method": "cosine",
                                                           "model": "x"},
                                index_type="ivf", nlist=2, nprobe=2, on_disk=str(several),
                                block_rows=4)
    uindex.save(built, several)
    loaded = uindex.load(several)
    assert loaded.index.ntotal == PHOTOS
    mem = uindex.load(ram)
    np.testing.assert_array_equal(loaded.index.reconstruct_batch(np.arange(PHOTOS)),
                                  mem.index.reconstruct_batch(np.arange(PHOTOS)))
    os.unlink(tmp_path / "b" / "disk.idx.ivfdata")
    one_line_error(run("search", m, "--text", "a dog", "--index", moved),
                   "disk.idx.ivfdata is missing")


def test_store_names_keep_odd_characters_and_refuse_an_empty_job(tmp_path):
    from uvs.cluster.store import create_or_open
    from uvs.errors import UVSError
    from uvs.stores import OK

    lines = ["a dog\ra cat", "the sky\x85", "x"]
    store = create_or_open(tmp_path / "s.zarr", "sentences", lines, 2, {"model": "m"},
                           {"embeddings": 3})
    for k in range(store.chunks):
        a, b = store.chunk_range(k)
        store.write_chunk(k, {"embeddings": np.ones((b - a, 3), np.float32)},
                          np.full(b - a, OK, np.int8), {})
    assert store.names() == lines and store.chunk_inputs(1) == ["x"]
    with pytest.raises(UVSError, match="no inputs"):
        create_or_open(tmp_path / "e.zarr", "sentences", [], 2, {"model": "m"},
                       {"embeddings": 3})
    assert not (tmp_path / "e.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary folder left


@pytest.mark.slow
def test_captions_of_an_embedding_decoder_on_the_cluster(work, whole, cluster, tmp_path,
                                                         one_thread):
    """A decoder of the joint space: each worker loads the decoder and its uvs model once."""
    from uvs.decoding.files import write_decoder
    from uvs.decoding.model import init_params

    words = ["a", "dog", "runs", "on", "the", "beach", "."]
    o = {"dimctx": 8, "dim_word": 4, "dim": 5, "n_words": 9, "decoder": "gru",
         "doutput": False, "condition": "embedding", "inject": "init",
         "model": str(work["model"])}
    dec = tmp_path / "emb.npz"
    write_decoder(dec, init_params(o, rng=np.random.RandomState(1)), o,
                  {w: i + 2 for i, w in enumerate(words)})
    common = ("--image-features", whole[0], "--rows", "2:9", "--beam", 2, "--maxlen", 5,
              "--chunk-rows", 3, "-q")
    ok(run("caption", dec, *common, "-o", tmp_path / "a.jsonl"))
    ok(run("caption", dec, *common, "-o", tmp_path / "b.jsonl", "--cluster", cluster[0]))
    a = (tmp_path / "a.jsonl").read_bytes()
    assert a == (tmp_path / "b.jsonl").read_bytes()
    assert [json.loads(x)["row"] for x in a.decode().splitlines()] == list(range(2, 9))
