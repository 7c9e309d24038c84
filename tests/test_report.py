"""The HTML reports: built from the sample data set's real training logs and evaluation,
checked as files and, when Chromium is installed, rendered in headless Chromium."""

import io
import json
import pathlib
import re

import numpy as np
import pytest
from browser import Browser, find_chromium
from clirun import ok, one_line_error, run
from test_report_runs import line_and_star, plot_svg

from uvs.errors import UVSError
from uvs.report import logs, metrics, plots

pytest.importorskip("matplotlib", reason="the report extra is not installed: "
                    "pip install '.[report]' (scripts/test.sh does)")
pytest.importorskip("jinja2", reason="the report extra is not installed")
PIL_Image = pytest.importorskip("PIL.Image", reason="the report extra is not installed")

CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed: apt-get install chromium "
    "(scripts/test.sh installs it when run as root)")
trains = pytest.mark.slow  # the `trained` fixture runs two (short) training runs
PLOTS = ["update.cost", "valid.rsum", "valid.i2t.r1", "valid.i2t.r5", "valid.i2t.r10",
         "valid.t2i.r1", "valid.t2i.r5", "valid.t2i.r10"]
COLOURS = {"black": (30, 30, 30), "white": (235, 235, 235), "brown": (120, 80, 40),
           "red": (200, 40, 40), "blue": (40, 80, 200), "yellow": (230, 200, 40),
           "green": (40, 160, 60), "grey": (128, 128, 128)}


# --- fixtures: two real training runs on the sample, photos for its dev images -------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, link_sample):
    """The sample data set, two runs that differ in margin and lrate, painted dev photos."""
    root = tmp_path_factory.mktemp("report")
    data = link_sample(root / "data")
    for name, margin, lrate in (("a", "0.2", "0.002"), ("b", "0.1", "0.001")):
        ok(run("train", "--data", "sample", "--data-dir", data, "--dim", "16",
               "--dim-word", "12", "--batch-size", "32", "--max-epochs", "1",
               "--valid-freq", "40", "--seed", "7", "--margin", margin, "--lrate", lrate,
               "--saveto", root / f"{name}.npz", "-q"))
    # a photo per dev image, painted in its scene's colour, listed one per line
    names = (data / "sample" / "sample_dev_photos.paths.txt").read_text().splitlines()
    (root / "photos").mkdir()
    lines = []
    for i, name in enumerate(names):
        colour = re.search(r"\((\w+) ", name).group(1)
        img = PIL_Image.new("RGB", (120, 90), (230, 230, 220))
        img.paste(COLOURS[colour], (30 + i % 30, 20, 80 + i % 30, 75))
        img.save(root / "photos" / f"{i:04d}.png")
        lines.append(f"photos/{i:04d}.png")
    (root / "dev_photos.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def runs_page(trained):
    out = trained / "runs.html"
    result = ok(run("report", trained / "a.npz", trained / "b.log.jsonl", "-o", out, "--json"))
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def eval_page(trained):
    out = trained / "eval.html"
    result = ok(run("evalrank", trained / "a.npz", "--data-dir", trained / "data",
                    "--report", out, "--photos", trained / "dev_photos.txt", "--json", "-q"))
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed: apt-get install chromium")
    with Browser(CHROMIUM) as b:
        yield b


def gallery_data(path):
    html = pathlib.Path(path).read_text(encoding="utf-8")
    raw = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', html,
                    re.S).group(1)
    return json.loads(raw)


# --- the files -----------------------------------------------------------------------------

@trains
def test_training_report_plots_every_curve_of_both_runs(trained, runs_page):
    out, summary = runs_page
    assert [r["label"] for r in summary["runs"]] == ["margin=0.2 lrate=0.002",
                                                     "margin=0.1 lrate=0.001"]
    for r in summary["runs"]:
        events = [json.loads(x) for x in open(r["log"])]
        valid = [e for e in events if e["event"] == "valid"]
        best = max(valid, key=lambda e: (e["rsum"], -e["update"]))
        assert r["best"] == {"metric": "rsum", "at": best["update"], "value": best["rsum"]}
        assert r["updates"] == max(e["update"] for e in events if "update" in e)
    assert set(PLOTS) <= set(summary["plots"])
    assert summary["lead"] == ["update.cost", "valid.rsum", "valid.i2t.r1", "valid.t2i.r1"]
    assert not [p for p in summary["plots"] if "seconds" in p or "epoch" in p]  # not scores
    html = out.read_text(encoding="utf-8")
    assert html.count('<svg') == len(summary["plots"])
    assert "http://" not in html.replace("http://www.w3.org/", "")
    assert "https://" not in html


@trains
def test_real_decoder_run_beside_a_vse_run(trained, tmp_path):
    """A short real decoder run: its best is its lowest dev cost per word, as training said,
    starred on its own plot; the VSE run keeps its rsum; each loss has its own axes."""
    saveto = tmp_path / "dec.npz"
    result = json.loads(ok(run(
        "decoder", "train", "--data", "sample", "--data-dir", trained / "data", "--condition",
        "features", "--dim", 8, "--dim-word", 4, "--batch-size", 500, "--max-epochs", 2,
        "--valid-freq", 4, "--saveto", saveto, "--json", "-q")).stdout)
    valid = [json.loads(x) for x in open(tmp_path / "dec.log.jsonl")]
    valid = [e for e in valid if e["event"] == "valid"]
    assert len(valid) >= 3
    out = tmp_path / "mixed.html"
    summary = json.loads(ok(run("report", trained / "a.npz", saveto, "-o", out,
                                "--json")).stdout)
    vse, dec = summary["runs"]
    assert (vse["kind"], dec["kind"]) == ("vse", "decoder")
    assert vse["best"]["metric"] == "rsum" and vse["label"] == "vse"
    low = min(valid, key=lambda e: (e["dev_cost_per_word"], e["update"]))
    assert dec["best"] == {"metric": "dev_cost_per_word", "at": low["update"],
                           "value": result["best_dev_cost_per_word"]}
    assert low["dev_cost_per_word"] == result["best_dev_cost_per_word"]
    assert {"update.cost@vse", "update.cost@decoder"} <= set(summary["plots"])
    vertices, star = line_and_star(plot_svg(out.read_text(), "valid.dev_cost_per_word"),
                                   plots.colour(1))
    assert star[1] == pytest.approx(max(y for _, y in vertices))


def test_generic_metrics_and_resumed_runs_are_plotted(tmp_path):
    """A decoder-like run logs its own dev scores: they are plotted under their names."""
    log = tmp_path / "cap.log.jsonl"
    events = [{"event": "start", "options": {"dim": 8, "lrate": 0.1}},
              {"event": "update", "update": 10, "cost": 3.0},
              {"event": "valid", "update": 10, "bleu": {"b4": 0.1}, "perplexity": 40.0,
               "best": True},
              {"event": "update", "update": 20, "cost": 9.0},
              {"event": "start", "resume": True, "options": {"dim": 8, "lrate": 0.05}},
              {"event": "update", "update": 20, "cost": 2.0},
              {"event": "valid", "update": 20, "bleu": {"b4": 0.2}, "perplexity": 30.0}]
    log.write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "upd')
    r = logs.read_run(log)
    assert r.curves[("update", "cost")] == {10: 3.0, 20: 2.0}  # the resumed value wins
    assert r.curves[("valid", "bleu.b4")] == {10: 0.1, 20: 0.2}
    assert r.options["lrate"] == 0.05 and r.resumed == 1 and not r.finished
    assert metrics.best_point(r.curves[("valid", "perplexity")], "perplexity") == (20, 30.0)
    assert metrics.best_point(r.curves[("valid", "bleu.b4")], "bleu.b4") == (20, 0.2)
    out = tmp_path / "cap.html"
    summary = json.loads(ok(run("report", log, "-o", out, "--json")).stdout)
    assert summary["plots"] == ["update.cost", "valid.bleu.b4", "valid.perplexity"]
    # no rsum: the run's best is that of its first dev metric
    assert summary["runs"][0]["best"] == {"metric": "bleu.b4", "at": 20, "value": 0.2}
    assert "dev bleu b4" in out.read_text()


def test_rank_bins_cover_every_rank():
    bins = plots.rank_bins(2500)
    assert bins[:7] == [(1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100)]
    assert bins[-1][1] == 2500
    assert all(b[0] == a[1] + 1 for a, b in zip(bins, bins[1:], strict=False))


@trains
def test_bad_runs_are_one_line_errors(tmp_path, trained):
    one_line_error(run("report", tmp_path / "none.npz", "-o", tmp_path / "r.html"),
                   "none.npz", "no training log", "none.log.jsonl")
    bad = tmp_path / "bad.log.jsonl"
    bad.write_text('{"event": "start", "options": {}}\nnot json\n{}\n')
    one_line_error(run("report", bad, "-o", tmp_path / "r.html"), "bad.log.jsonl", "line 2")
    empty = tmp_path / "empty.log.jsonl"
    empty.write_text("")
    one_line_error(run("report", empty, "-o", tmp_path / "r.html"), "empty.log.jsonl",
                   "no events")
    one_line_error(run("report", trained / "a.npz", trained / "a.log.jsonl", "-o",
                       tmp_path / "r.html"), "a.log.jsonl", "the same run")
    assert not (tmp_path / "r.html").exists()


@trains
def test_no_overwrite_of_what_is_not_a_report(tmp_path, trained, runs_page):
    precious = tmp_path / "notes.html"
    precious.write_text("<html>my notes</html>")
    one_line_error(run("report", trained / "a.npz", "-o", precious), "notes.html",
                   "not a uvs report")
    assert precious.read_text() == "<html>my notes</html>"
    log = trained / "a.log.jsonl"
    before = log.read_bytes()
    one_line_error(run("report", log, "-o", log), "a.log.jsonl", "would write over an input")
    assert log.read_bytes() == before
    # an older report is replaced
    again = tmp_path / "again.html"
    for name in ("one", "two"):
        (tmp_path / f"{name}.log.jsonl").write_text(
            '{"event": "update", "update": 1, "cost": 2.0}\n')
        ok(run("report", tmp_path / f"{name}.npz", "-o", again))
    assert "two.log.jsonl" in again.read_text() and "one.log" not in again.read_text()


@trains
def test_missing_extra_is_named(tmp_path, trained, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    one_line_error(run("report", trained / "a.npz", "-o", tmp_path / "r.html"),
                   "matplotlib", "pip install -e '.[report]'")
    one_line_error(run("evalrank", trained / "a.npz", "--data-dir", trained / "data",
                       "--report", tmp_path / "e.html", "-q"), "pip install -e '.[report]'")
    assert not list(tmp_path.iterdir())


@trains
def test_evalrank_report_holds_every_query(trained, eval_page):
    out, results = eval_page
    plain = json.loads(ok(run("evalrank", trained / "a.npz", "--data-dir", trained / "data",
                              "--json", "-q")).stdout)
    assert results.pop("report") == str(out)
    assert results == plain  # the same numbers with or without the report
    data = gallery_data(out)
    i2t, t2i = data["directions"]
    assert len(i2t["rank"]) == 500 and len(t2i["rank"]) == 2500
    assert len(data["thumbs"]) == 500 and len(data["captions"]) == 2500
    r1 = 100.0 * sum(r == 0 for r in i2t["rank"]) / 500
    assert r1 == pytest.approx(results["i2t"]["r1"])
    assert data["thumbs"][0].startswith("data:image/jpeg;base64,")
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and "recall@K" in html


@trains
def test_evalrank_report_names_images_without_photos(trained, tmp_path):
    """Without --photos the sample's scene names (its .paths.txt) stand for the images."""
    out = tmp_path / "names.html"
    ok(run("evalrank", trained / "a.npz", "--data-dir", trained / "data", "--split", "test",
           "--report", out, "-q"))
    data = gallery_data(out)
    assert data["thumbs"] == []
    assert data["images"][0]["label"].startswith("test/0000 (")
    short = tmp_path / "short.txt"
    short.write_text("one\ntwo\n")
    one_line_error(run("evalrank", trained / "a.npz", "--data-dir", trained / "data",
                       "--report", tmp_path / "x.html", "--photos", short, "-q"),
                   "short.txt", "2 names for 500 images")


@trains
def test_search_report(trained, tmp_path):
    feats = tmp_path / "mine.npy"
    np.save(feats, np.load(trained / "data" / "sample" / "sample_dev_photos.npy")[:50])
    (tmp_path / "mine.paths.txt").write_text(
        "".join(f"{trained}/photos/{i:04d}.png\n" for i in range(50)))
    out = tmp_path / "search.html"
    ok(run("search", trained / "a.npz", "--text", "a red dog runs on the beach .",
           "--images", feats, "-k", "4", "--report", out, "-q"))
    data = gallery_data(out)
    (d,) = data["directions"]
    assert data["captions"] == ["a red dog runs on the beach ."]
    assert len(d["top"][0]) == 4 and len(data["thumbs"]) == 4
    out2 = tmp_path / "search2.html"
    ok(run("search", trained / "a.npz", "--image-features", feats, "--row", 3, "--captions",
           trained / "data" / "sample" / "sample_dev_caps.txt", "--report", out2, "-q"))
    data = gallery_data(out2)
    assert data["images"][0]["label"].endswith("photos/0003.png")
    assert len(data["thumbs"]) == 1 and len(data["captions"]) == 5


def test_thumbnails_survive_bad_photos(tmp_path):
    from uvs.report import gallery

    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    PIL_Image.new("RGB", (800, 200), (10, 200, 30)).save(tmp_path / "wide.png")
    images = gallery.Images()
    images.add_named(["bad.jpg", "wide.png", "missing.png", "wide.png"], 4, str(tmp_path))
    assert [i["thumb"] for i in images.items] == [-1, 0, -1, 0]
    raw = images.thumbs[0].split(",", 1)[1]
    import base64

    small = PIL_Image.open(io.BytesIO(base64.b64decode(raw)))
    assert small.size == (160, 40)
    with pytest.raises(UVSError, match="3 names for 2 images"):
        (tmp_path / "n.txt").write_text("a\nb\nc\n")
        gallery.read_names(str(tmp_path / "n.txt"), 2)


# --- in the browser ------------------------------------------------------------------------

def not_blank(png: bytes) -> None:
    """A screenshot with content: many colours, and a fair share of non-background pixels."""
    img = PIL_Image.open(io.BytesIO(png)).convert("RGB")
    px = np.asarray(img).reshape(-1, 3).astype(np.int64)
    colours = len(np.unique(px[:: max(1, len(px) // 50000)], axis=0))
    background = np.bincount(px[:, 0] * 65536 + px[:, 1] * 256 + px[:, 2]).max()
    assert colours > 50, colours
    assert background < 0.9 * len(px)


def loaded_cleanly(b: Browser, url: str) -> None:
    assert b.errors() == []
    assert [u for u in b.requests() if not u.startswith("data:")] == [url]


@needs_browser
@trains
def test_training_report_renders(browser, runs_page):
    out, summary = runs_page
    url = out.as_uri()
    browser.open(url, 1280, 900)
    loaded_cleanly(browser, url)
    browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    shown = browser.evaluate("""Array.from(document.querySelectorAll('figure[data-plot]'))
        .map(f => [f.dataset.plot, f.querySelector('svg').getBoundingClientRect().width,
                   f.querySelectorAll('svg path').length])""")
    assert [s[0] for s in shown] == summary["plots"]
    assert all(w > 300 and paths > 10 for _, w, paths in shown)
    assert browser.evaluate("document.querySelectorAll('table.runs tbody tr').length") == 2
    not_blank(browser.screenshot())


@needs_browser
@trains
def test_evalrank_report_renders_and_pages(browser, eval_page):
    out, _ = eval_page
    data = gallery_data(out)
    url = out.as_uri()
    browser.open(url, 1280, 900)
    loaded_cleanly(browser, url)
    assert browser.evaluate("document.querySelectorAll('figure[data-plot] svg').length") == 2
    cards = browser.evaluate("""Array.from(document.querySelectorAll('#gallery .query'))
        .map(q => +q.dataset.query)""")
    worst = sorted(range(500), key=lambda q: (-data["directions"][0]["rank"][q], q))
    assert cards == worst[:12]
    assert browser.evaluate("""Array.from(document.querySelectorAll('#gallery img.thumb'))
        .every(i => i.complete && i.naturalWidth > 0)""")
    assert browser.evaluate("document.querySelectorAll('#gallery .query .thumb').length") == 12
    assert "1–12 of 500" in browser.evaluate("document.querySelector('.where').textContent")
    # page on, switch to text → image, filter by words
    browser.evaluate("document.querySelector('.pager .next').click()")
    cards = browser.evaluate("""Array.from(document.querySelectorAll('#gallery .query'))
        .map(q => +q.dataset.query)""")
    assert cards == worst[12:24]
    browser.evaluate("document.querySelectorAll('.tabs button')[1].click()")
    t2i = browser.evaluate("""Array.from(document.querySelectorAll('#gallery .query'))
        .map(q => [+q.dataset.query, q.querySelectorAll('.tile').length,
                   q.querySelectorAll('.tile.gt').length])""")
    ranks = data["directions"][1]["rank"]
    assert [q for q, _, _ in t2i] == sorted(range(2500), key=lambda q: (-ranks[q], q))[:12]
    assert all(tiles in (5, 6) and gt == 1 for _, tiles, gt in t2i)
    browser.evaluate("""(() => { const f = document.querySelector('.filter');
        f.value = 'dog'; f.dispatchEvent(new Event('input')); })()""")
    texts = browser.evaluate("""Array.from(document.querySelectorAll('#gallery .qtext'))
        .map(t => t.textContent)""")
    assert texts and all("dog" in t for t in texts)
    assert browser.errors() == []
    not_blank(browser.screenshot())


@needs_browser
@trains
def test_reports_fit_a_phone(browser, eval_page, runs_page):
    for out in (eval_page[0], runs_page[0]):
        browser.open(out.as_uri(), 390, 844, mobile=True)
        assert browser.errors() == []
        assert browser.evaluate("document.documentElement.scrollWidth") <= 390
        not_blank(browser.screenshot())
