"""Real `uvs features`, `uvs search` and `uvs index` runs on a narrow VGG-19 and tiny models."""

import json
import os

import numpy as np
import pytest
from clirun import ok, one_line_error, run
from models import write_tiny_model
from vggfixtures import DENSE, awkward_images, write_lasagne_vgg

from uvs import corpus, demo, tools, vgg

pytest.importorskip("torchvision")
pytest.importorskip("PIL")

CAPTIONS = "a dog runs on the beach\na red car\na blue car\na cat sits\nthe sky\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Photos, a narrow vgg19.pkl, captions, a cosine and an order model, FEATS.npy."""
    root = tmp_path_factory.mktemp("cli_images")
    photos = awkward_images(root)
    write_lasagne_vgg(root / "vgg19.pkl")
    (root / "caps.txt").write_text(CAPTIONS, encoding="utf-8")
    cosine, *_ = write_tiny_model(root, "uvs", name="cosine", dim_image=DENSE[1])
    order, *_ = write_tiny_model(root, "uvs", name="order", method="order", abs_=True,
                                 dim_image=DENSE[1], seed=3)
    good = ["rgb", "grey", "rgba", "cmyk", "exif"]  # distinct pictures: no tied scores
    (root / "list.txt").write_text("".join(f"{k}{os.path.splitext(photos[k])[1]}\n"
                                           for k in good + ["broken"]), encoding="utf-8")
    ok(run("features", "--list", root / "list.txt", "--root", root, "-o", root / "feats.npy",
           "--weights", root / "vgg19.pkl", "-q"))
    return {"root": root, "photos": photos, "cosine": cosine, "order": order,
            "vgg": root / "vgg19.pkl", "feats": root / "feats.npy"}


def test_features_from_a_list_write_rows_and_paths(work):
    root = work["root"]
    feats = np.load(work["feats"])
    names = (root / "feats.paths.txt").read_text(encoding="utf-8").splitlines()
    assert names == ["rgb.png", "grey.png", "rgba.png", "cmyk.jpg", "exif.jpg"]
    assert feats.shape == (5, DENSE[1]) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1, rtol=1e-5)
    net = vgg.build_convnet(work["vgg"], device="cpu")
    np.testing.assert_allclose(feats[0], vgg.compute_features(net, [root / "rgb.png"])[0],
                               rtol=1e-5, atol=1e-6)


def test_features_json_reports_skipped_and_truncated(work, tmp_path):
    p = work["photos"]
    out = tmp_path / "f.npy"
    result = ok(run("features", p["rgb"], p["broken"], p["truncated"], "-o", out,
                    "--weights", work["vgg"], "--crops", "10", "--json", "-q"))
    report = json.loads(result.stdout)
    assert report["rows"] == 2 and report["crops"] == 10 and report["preprocessing"] == "caffe"
    assert [s["path"] for s in report["skipped"]] == [p["broken"]]
    assert [w["path"] for w in report["warnings"]] == [p["truncated"]]
    assert report["paths"] == str(tmp_path / "f.paths.txt")


def test_features_text_output_names_skipped_files(work, tmp_path):
    p = work["photos"]
    result = ok(run("features", p["rgb"], p["empty"], "-o", tmp_path / "f.npy",
                    "--weights", work["vgg"], "-q"))
    assert f"skipped {p['empty']}: not an image" in result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'f.npy'}: 1 x {DENSE[1]}")


def test_features_strict_and_nothing_readable_fail_in_one_line(work, tmp_path):
    p = work["photos"]
    one_line_error(run("features", p["rgb"], p["broken"], "-o", tmp_path / "f.npy",
                       "--weights", work["vgg"], "--strict", "-q"), p["broken"], "not an image")
    one_line_error(run("features", p["broken"], "-o", tmp_path / "f.npy", "--weights",
                       work["vgg"], "-q"), "none of the 1 images could be read")
    assert not (tmp_path / "f.npy").exists()


def test_missing_weights_say_where_to_put_them(work, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    where = tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    one_line_error(run("features", work["photos"]["rgb"], "-o", tmp_path / "f.npy"),
                   str(where), "download.pytorch.org")
    one_line_error(run("features", work["photos"]["rgb"], "-o", tmp_path / "f.npy",
                       "--weights", tmp_path / "vgg19.pkl"),
                   "https://s3.amazonaws.com/lasagne/recipes/pretrained/imagenet/vgg19.pkl")


def search_json(*args):
    return json.loads(ok(run("search", *args, "--json", "-q")).stdout)


@pytest.mark.parametrize("which", ["cosine", "order"])
def test_captions_for_a_photo_then_from_the_cache(work, which, monkeypatch):
    args = (work[which], "--image", work["photos"]["jpeg"], "--captions",
            work["root"] / "caps.txt", "--weights", work["vgg"], "-k", 3)
    first = search_json(*args)
    assert [r["rank"] for r in first["results"]] == [1, 2, 3]
    assert first["collection"]["kind"] == "captions" and first["method"] == which
    model = tools.load_model(work[which])
    net = demo.build_convnet(work["vgg"], device="cpu")
    want = demo.retrieve_captions(model, net, CAPTIONS.splitlines(),
                                  tools.encode_sentences(model, CAPTIONS.splitlines()),
                                  work["photos"]["jpeg"], k=3)
    assert [r["caption"] for r in first["results"]] == want
    monkeypatch.setattr(tools, "encode_sentences", None)  # a second search must not encode
    second = search_json(*args)
    assert second["collection"]["cache"] == "hit" and second["results"] == first["results"]


def test_photos_for_a_sentence_table_and_json(work):
    result = ok(run("search", work["cosine"], "--text", "a red car", "--images", work["feats"],
                    "-k", 2, "-q"))
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1"
    report = search_json(work["order"], "--text", "a red car", "--images", work["feats"], "-k", 5)
    scores = [r["score"] for r in report["results"]]
    assert scores == sorted(scores, reverse=True) and all(s <= 0 for s in scores)
    assert report["score"] == "negative order error"
    assert lines[0].split()[-1] == search_json(work["cosine"], "--text", "a red car",
                                               "--images", work["feats"])["results"][0]["image"]


def test_multimodal_arithmetic(work):
    report = search_json(work["cosine"], "--image", work["photos"]["rgb"], "--minus", "blue",
                         "--plus", "red", "--images", work["feats"], "--weights", work["vgg"],
                         "-k", 5)
    model = tools.load_model(work["cosine"])
    net = demo.build_convnet(work["vgg"], device="cpu")
    names, vecs, _ = corpus.image_collection(model, str(work["feats"]))
    want = demo.regularities(model, net, names, vecs, work["photos"]["rgb"], "blue", "red", k=5)
    assert [r["image"] for r in report["results"]] == want
    assert report["query"]["minus"] == ["blue"] and report["query"]["plus"] == ["red"]
    reranked = search_json(work["cosine"], "--image", work["photos"]["rgb"], "--minus", "blue",
                           "--plus", "red", "--images", work["feats"], "--weights", work["vgg"],
                           "-k", 3, "--rerank")
    assert sorted(r["image"] for r in reranked["results"]) == sorted(want[:3])


@pytest.mark.parametrize("which, index_type", [("cosine", "flat"), ("order", "flat"),
                                               ("order", "ivf")])
def test_index_search_matches_direct_search(work, tmp_path, which, index_type):
    caps_idx, im_idx = tmp_path / "caps.idx", tmp_path / "im.idx"
    ok(run("index", "build", work[which], "--captions", work["root"] / "caps.txt", "-o",
           caps_idx, "--type", index_type, "--nlist", 2, "-q"))
    built = json.loads(ok(run("index", "build", work[which], "--images", work["feats"], "-o",
                              im_idx, "--type", index_type, "--nlist", 2, "--json",
                              "-q")).stdout)
    assert built["kind"] == "images" and built["count"] == 5 and built["type"] == index_type
    photo = ("--image", work["photos"]["jpeg"], "--weights", work["vgg"], "-k", 3)
    direct = search_json(work[which], *photo, "--captions", work["root"] / "caps.txt")
    indexed = search_json(work[which], *photo, "--index", caps_idx, "--candidates", 5)
    assert [r["caption"] for r in indexed["results"]] == [r["caption"] for r in direct["results"]]
    text = ("--text", "a dog runs", "-k", 4)
    direct = search_json(work[which], *text, "--images", work["feats"])
    indexed = search_json(work[which], *text, "--index", im_idx, "--candidates", 5)
    assert [r["image"] for r in indexed["results"]] == [r["image"] for r in direct["results"]]
    for a, b in zip(indexed["results"], direct["results"], strict=True):
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
    info = json.loads(ok(run("index", "info", im_idx, "--json")).stdout)
    assert info["model"] == corpus.model_fingerprint(tools.load_model(work[which]))


def test_index_refuses_another_model_and_wrong_query(work, tmp_path):
    path = tmp_path / "caps.idx"
    ok(run("index", "build", work["cosine"], "--captions", work["root"] / "caps.txt", "-o",
           path, "-q"))
    one_line_error(run("search", work["order"], "--image", work["photos"]["rgb"], "--weights",
                       work["vgg"], "--index", path), str(path), "another model")
    one_line_error(run("search", work["cosine"], "--text", "a dog", "--index", path),
                   "answers a plain --image query")
    one_line_error(run("index", "info", work["root"] / "caps.txt"), "not a uvs index")


@pytest.mark.parametrize("args, fragment", [
    (("--text", "a dog"), "search one collection"),
    (("--images", "x.npy"), "give one query"),
    (("--text", "a dog", "--captions", "c.txt"), "--text finds photos"),
    (("--text", "a dog", "--minus", "dog", "--images", "x.npy"), "change an --image query"),
])
def test_search_usage_errors(work, args, fragment):
    result = run("search", work["cosine"], *args)
    assert result.exit_code == 2 and fragment in result.stderr


def test_width_mismatch_between_weights_and_model(work, tmp_path):
    path, *_ = write_tiny_model(tmp_path, "uvs", dim_image=4096)
    one_line_error(run("search", path, "--image", work["photos"]["rgb"], "--weights",
                       work["vgg"], "--captions", work["root"] / "caps.txt"),
                   f"give {DENSE[1]}-d features; the model expects 4096-d")
