"""`uvs report` on logs written as the three trainers write them (VSE, alignment, decoder):
which way each metric is better, mixed kinds, bounds on hostile logs, one-line refusals,
and the page at a phone's width in headless Chromium."""

import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import pytest
from browser import Browser, find_chromium
from clirun import ok, one_line_error, run

from uvs.report import compare, logs, metrics

pytest.importorskip("matplotlib", reason="the report extra is not installed")
pytest.importorskip("jinja2", reason="the report extra is not installed")

CHROMIUM = find_chromium()

# --- logs in the trainers' own format (uvs.runs.Run.event, uvs/decoding/train.py) ------------

VSE_OPTIONS = {"recipe": "vse", "data": "sample", "data_dir": "data", "margin": 0.2, "dim": 16,
               "dim_image": 4096, "dim_word": 12, "encoder": "gru", "max_epochs": 1,
               "dispFreq": 10, "decay_c": 0.0, "grad_clip": 2.0, "maxlen_w": 100,
               "optimizer": "adam", "batch_size": 32, "saveto": "vse.npz", "validFreq": 40,
               "lrate": 0.0002, "reload_": False, "method": "cosine", "abs": False,
               "max_violation": False, "seed": 7, "cnn": None, "n_words": 51}
ALIGN_OPTIONS = {"data": "sample", "data_dir": "data", "regions": None, "margin": 1.0,
                 "dim": 32, "dim_word": 16, "max_epochs": 2, "dispFreq": 10, "grad_clip": 2.0,
                 "maxlen_w": 100, "optimizer": "adam", "batch_size": 50, "saveto": "al.npz",
                 "validFreq": 30, "lrate": 0.0002, "reload_": False, "seed": 3,
                 "dim_image": 256, "n_words": 53}
DECODER_OPTIONS = {"data": "sample", "data_dir": "data", "condition": "features",
                   "inject": "init", "model": None, "dimctx": 4096, "dim_word": 4, "dim": 8,
                   "decoder": "gru", "doutput": False, "max_epochs": 2, "dispFreq": 20,
                   "decay_c": 0.0, "grad_clip": 5.0, "n_words": 53, "maxlen_w": 100,
                   "optimizer": "adam", "batch_size": 50, "saveto": "dec.npz",
                   "dictionary": None, "embeddings": None, "saveFreq": 1000,
                   "sampleFreq": 200, "reload_": False, "validFreq": 20, "lrate": 0.002,
                   "seed": 1234, "cnn": None}


def _update(u, cost):
    return {"event": "update", "update": u, "epoch": 1, "cost": cost,
            "seconds_per_update": 0.01, "eta_seconds": 1.0, "max_epochs": 2}


def _recall(u, rsum, best):
    side = {"r1": rsum / 6, "r5": rsum / 3, "r10": rsum / 2, "medr": 100 - rsum,
            "meanr": 300 - rsum}
    return {"event": "valid", "update": u, "epoch": 0, "best": best, "i2t": side,
            "t2i": dict(side), "rsum": rsum}


def write_log(path, events):
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def vse_log(path, rsums, options=None, costs=None):
    """A VSE run: `update` and `valid` events every 10 updates (rsum as given)."""
    events = [{"event": "start", "resume": False, "options": {**VSE_OPTIONS, **(options or {})},
               "n_train": 5000, "n_words": 51}]
    best = -1.0
    for i, rsum in enumerate(rsums):
        u = 10 * (i + 1)
        events.append(_update(u, (costs or [300.0 - 10 * j for j in range(len(rsums))])[i]))
        events.append(_recall(u, rsum, rsum > best))
        best = max(best, rsum)
    events.append({"event": "end", "update": 10 * len(rsums), "best": best})
    return write_log(path, events)


def align_log(path, rsums, options=None):
    events = [{"event": "start", "resume": False,
               "options": {**ALIGN_OPTIONS, **(options or {})}, "n_train": 5000, "n_words": 53}]
    for i, rsum in enumerate(rsums):
        u = 30 * (i + 1)
        events += [_update(u, 4800.0 - 100 * i), _recall(u, rsum, True)]
    return write_log(path, events + [{"event": "end", "update": 30 * len(rsums),
                                      "best": max(rsums)}])


def decoder_log(path, dev_costs, every=80, options=None):
    """A decoder run as uvs/decoding/train.py writes it: `start` naming the kind, progress
    every dispFreq updates, `valid` with dev_cost_per_word and dev_perplexity."""
    events = [{"event": "start", "resume": False,
               "options": {**DECODER_OPTIONS, **(options or {})}, "kind": "decoder",
               "n_train": 5000, "n_words": 53}]
    best = -1.0
    for i, c in enumerate(dev_costs):
        u = every * (i + 1)
        improved = best < 0 or c < best
        best = c if improved else best
        events += [_update(u, 1500.0 / (i + 1)),
                   {"event": "valid", "update": u, "epoch": 0, "best": improved,
                    "dev_cost_per_word": c, "dev_perplexity": 2.718281828 ** c}]
    events.append({"event": "end", "update": every * len(dev_costs), "best": best})
    return write_log(path, events)


# the decoder: worst 0.8385 at update 80, best 0.6034 after 640 updates
DEV_COSTS = [0.8385, 0.79, 0.74, 0.70, 0.66, 0.63, 0.615, 0.6034, 0.6051, 0.612]


def plot_svg(html: str, plot_id: str) -> str:
    start = html.index(f'data-plot="{plot_id}"')
    return html[start:html.index("</svg>", start)]


def line_and_star(svg: str, colour: str = "#1f77b4"
                  ) -> tuple[list[tuple[float, float]], tuple[float, float]]:
    """The vertices of the line drawn in `colour` (one run's) and the star's position, in
    SVG coordinates (the plot holds one star)."""
    lines = re.findall(rf'<path d="(M [^"]*)"[^>]*stroke: {colour}', svg)
    data = max(lines, key=len)  # the run's curve (grid lines have two vertices)
    vertices = [tuple(map(float, p.split())) for p in re.findall(r"[ML] ([\d.]+ [\d.]+)", data)]
    star_id = next(m for m in re.findall(r'<path id="(m[0-9a-f]+)" d="([^"]*)"', svg)
                   if m[1].count("L") == 9)[0]  # ten corners
    x, y = re.search(rf'xlink:href="#{star_id}" x="([\d.]+)" y="([\d.]+)"', svg).groups()
    return vertices, (float(x), float(y))


# --- which way is better --------------------------------------------------------------------

def test_lower_is_better_is_one_rule():
    for m in ("cost", "i2t.medr", "t2i.meanr", "perplexity", "valid_loss", "word_error",
              "dev_cost_per_word", "dev_perplexity", "mean_rank", "nll"):
        assert metrics.lower_is_better(m), m
    for m in ("rsum", "i2t.r1", "bleu.b4", "cider", "accuracy", "dev_rsum", "recall"):
        assert not metrics.lower_is_better(m), m
    curve = {80 * (i + 1): c for i, c in enumerate(DEV_COSTS)}
    assert metrics.best_point(curve, "dev_cost_per_word") == (640, 0.6034)


def test_decoder_report_stars_the_lowest_dev_cost(tmp_path):
    """The issue's case: the best is 0.6034 after 640 updates, as training said, not 0.8385."""
    log = decoder_log(tmp_path / "dec.log.jsonl", DEV_COSTS)
    out = tmp_path / "dec.html"
    text = ok(run("report", log, "-o", out)).stdout
    assert "best dev_cost_per_word 0.6034 at update 640" in text
    summary = json.loads(ok(run("report", log, "-o", out, "--json")).stdout)
    (r,) = summary["runs"]
    assert r["kind"] == "decoder"
    assert r["best"] == {"metric": "dev_cost_per_word", "at": 640, "value": 0.6034}
    end = json.loads(log.read_text().splitlines()[-1])
    assert r["best"]["value"] == end["best"]  # what training said
    html = out.read_text()
    svg = plot_svg(html, "valid.dev_cost_per_word")
    assert "lower is better" in svg and "higher is better" not in svg
    assert "dev cost per word" in svg and "dev dev_" not in html
    vertices, star = line_and_star(svg)
    assert len(vertices) == len(DEV_COSTS)
    best = DEV_COSTS.index(min(DEV_COSTS))
    assert star == pytest.approx(vertices[best], abs=0.01)
    assert star[1] == max(y for _, y in vertices)  # the lowest point (SVG y grows down)
    # the table says the same
    assert re.search(r"cost per word <strong>0\.6034</strong> <span class=\"muted\">at update "
                     r"640", html)


def test_recall_run_stars_the_highest_rsum(tmp_path):
    log = vse_log(tmp_path / "v.log.jsonl", [20.0, 35.0, 30.0])
    out = tmp_path / "v.html"
    summary = json.loads(ok(run("report", log, "-o", out, "--json")).stdout)
    assert summary["runs"][0]["best"] == {"metric": "rsum", "at": 20, "value": 35.0}
    vertices, star = line_and_star(plot_svg(out.read_text(), "valid.rsum"))
    assert star == pytest.approx(vertices[1], abs=0.01)
    assert star[1] == min(y for _, y in vertices)


# --- runs of different kinds --------------------------------------------------------------

@pytest.fixture
def mixed(tmp_path):
    paths = [vse_log(tmp_path / "vse_a.log.jsonl", [18.0, 30.0, 34.7]),
             vse_log(tmp_path / "vse_b.log.jsonl", [15.0, 25.0, 28.0], {"margin": 0.05}),
             decoder_log(tmp_path / "dec.log.jsonl", DEV_COSTS),
             align_log(tmp_path / "al.log.jsonl", [20.0, 25.2])]
    out = tmp_path / "mixed.html"
    summary = json.loads(ok(run("report", *paths, "-o", out, "--json")).stdout)
    return out, summary


def test_mixed_kinds_are_labelled_and_scored_each_by_its_own(mixed):
    out, summary = mixed
    labels = [r["label"] for r in summary["runs"]]
    assert labels == ["vse: margin=0.2", "vse: margin=0.05", "decoder", "align"]
    assert not [x for x in labels if "=-" in x]
    assert [r["kind"] for r in summary["runs"]] == ["vse", "vse", "decoder", "align"]
    assert [r["best"]["metric"] for r in summary["runs"]] == ["rsum", "rsum",
                                                              "dev_cost_per_word", "rsum"]
    assert summary["runs"][2]["best"]["value"] == 0.6034
    # each kind's training loss on its own axes; the dev scores as they are
    assert summary["plots"][:3] == ["update.cost@vse", "update.cost@decoder", "update.cost@align"]
    assert {"valid.rsum", "valid.dev_cost_per_word"} <= set(summary["lead"])
    html = out.read_text()
    assert "training cost (decoder)" in html and "dev cost per word" in html
    assert "dev dev_" not in html and "no dev score" not in html
    # the legend is HTML: every label whole, whatever its length
    legend = re.search(r'<ul class="legend">(.*?)</ul>', html, re.S).group(1)
    assert all(label in legend for label in labels)
    svg = plot_svg(html, "update.cost@decoder")  # the decoder's (third colour) alone
    assert "stroke: #2ca02c" in svg
    assert not [c for c in ("#1f77b4", "#d62728", "#ff7f0e") if f"stroke: {c}" in svg]


def test_labels_name_only_what_a_run_has(tmp_path):
    a = logs.Run(log="x/a.log.jsonl", kind="vse", options={"margin": 0.2, "saveto": "a.npz",
                                                           "dim": 8})
    b = logs.Run(log="x/b.log.jsonl", kind="vse", options={"margin": 0.05, "saveto": "b.npz",
                                                           "dim": 8, "abs": True})
    assert compare.labels([a, b]) == ["margin=0.2", "margin=0.05 abs=True"]
    same = logs.Run(log="y/c.log.jsonl", kind="vse", options=dict(a.options))
    assert compare.labels([a, same]) == ["a", "c"]
    assert compare.labels([a]) == ["a"]
    many = [logs.Run(log=f"m/{i}.log.jsonl", kind="vse",
                     options={f"o{j}": i * j for j in range(40)}) for i in range(2)]
    assert compare.labels(many)[1] == "o1=1 o2=2 o3=3 o4=4 o5=5 o6=6 (+33 more)"


def test_one_short_run_leads_with_what_matters(tmp_path):
    log = vse_log(tmp_path / "one.log.jsonl", [10.0, 12.0, 15.0])
    out = tmp_path / "one.html"
    summary = json.loads(ok(run("report", log, "-o", out, "--json")).stdout)
    assert summary["lead"] == ["update.cost", "valid.rsum", "valid.i2t.r1", "valid.t2i.r1"]
    assert len(summary["plots"]) == 12
    html = out.read_text()
    folded = html[html.index('<details class="more">'):]
    assert folded.count("<svg") == 8 and "valid.i2t.r5" in folded
    assert html[:html.index('<details class="more">')].count("<svg") == 4


# --- hostile logs: bounded, noted, refused in one line --------------------------------------

def peak_mb(*args, timeout: float = 120) -> tuple[int, str, float, float]:
    """`uvs report ARGS` in a child process: exit status, stderr, seconds and the child's
    peak resident memory in MB (the child reports its own VmHWM at exit: unlike ru_maxrss,
    it starts afresh at exec, not from the forking test process's size)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        code = ("import atexit\n"
                "def hwm():\n"
                "    for line in open('/proc/self/status'):\n"
                "        if line.startswith('VmHWM:'):\n"
                f"            open({rss.name!r}, 'w').write(line.split()[1])\n"
                "atexit.register(hwm)\n"
                "from uvs.cli.main import main\nmain()")
        start = time.time()
        proc = subprocess.run([sys.executable, "-c", code, "report", *map(str, args)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout)
        seconds = time.time() - start
        return proc.returncode, proc.stderr.decode(), seconds, int(rss.read()) / 1024


@pytest.mark.parametrize("case", ["fields", "options", "bytes"])
def test_hostile_logs_are_bounded_and_say_what_was_left_out(tmp_path, case):
    log = tmp_path / f"{case}.log.jsonl"
    if case == "fields":  # the 60 KB log with 3 000 numeric fields
        events = [{"event": "start", "options": {"dim": 8}}] + [
            {"event": "update", "update": u, **{f"m{i}": i for i in range(3000)}}
            for u in (1, 2)]
        write_log(log, events)
    elif case == "options":  # 50 000 options, in two runs that differ in all of them
        write_log(log, [{"event": "start", "options": {f"o{i}": i for i in range(50000)}},
                        _update(1, 2.0)])
        write_log(tmp_path / "other.log.jsonl",
                  [{"event": "start", "options": {f"o{i}": -i for i in range(50000)}},
                   _update(1, 3.0)])
    else:  # 40 MB of events
        with open(log, "w") as f:
            f.write(json.dumps({"event": "start", "options": {"dim": 8}}) + "\n")
            line = '{"event": "update", "update": %d, "cost": 1.5}\n'
            u = 0
            while f.tell() < 40 << 20:
                f.write("".join(line % (u + k) for k in range(1, 1001)))
                u += 1000
    out = tmp_path / "r.html"
    inputs = [log, tmp_path / "other.log.jsonl"] if case == "options" else [log]
    status, err, seconds, mb = peak_mb(*inputs, "-o", out)  # a hang fails by the timeout
    assert status == 0, err
    assert mb < 1024, (seconds, mb)
    html = out.read_text()
    assert out.stat().st_size < 2 << 20
    assert "Left out of this page" in html and "left out of the page" in err
    if case == "fields":
        assert html.count("<svg") == 30
        assert "2900 more metrics than the 100 kept" in err
        assert "70 curves beyond the first 30" in html
    elif case == "options":
        assert html.count('<tr class="differs">') == compare.MAX_OPTION_ROWS
        assert "49800 options are not listed" in html
    else:
        assert "only the first 16 MB of 40 MB were read" in err


def test_nan_and_infinite_values_are_not_drawn(tmp_path):
    log = tmp_path / "n.log.jsonl"
    log.write_text('{"event": "update", "update": 1, "cost": 2.0}\n'
                   '{"event": "update", "update": 2, "cost": NaN}\n'
                   '{"event": "update", "update": 3, "cost": -Infinity, "x": 1e999}\n'
                   '{"event": "update", "update": 4, "cost": 1.0, "big": '
                   + "9" * 400 + "}\n")
    run_ = logs.read_run(log)
    assert run_.curves[("update", "cost")] == {1: 2.0, 4: 1.0}
    result = ok(run("report", log, "-o", tmp_path / "n.html"))
    assert "4 values that are NaN, infinite or beyond" in result.stderr


@pytest.mark.parametrize("update", ["Infinity", "NaN", "-Infinity", "-3", "1.5", '"ten"',
                                    "1e300", "true"])
def test_an_update_that_is_no_count_is_a_one_line_error(tmp_path, update):
    log = tmp_path / "u.log.jsonl"
    log.write_text('{"event": "start", "options": {}}\n'
                   f'{{"event": "update", "update": {update}, "cost": 1}}\n')
    one_line_error(run("report", log, "-o", tmp_path / "u.html"), "u.log.jsonl", "line 2",
                   "not a count of updates")
    assert not (tmp_path / "u.html").exists()


def test_numbers_json_cannot_hold_are_one_line_errors(tmp_path):
    log = tmp_path / "big.log.jsonl"
    log.write_text('{"event": "update", "update": 1, "cost": ' + "9" * 5000 + "}\n")
    one_line_error(run("report", log, "-o", tmp_path / "b.html"), "big.log.jsonl",
                   "line 1 is not a JSON object", "4300")
    log.write_text('{"event": "update", "update": ' + "9" * 400 + ', "cost": 1}\n')
    one_line_error(run("report", log, "-o", tmp_path / "b.html"), "big.log.jsonl",
                   "line 1: update is 9999", "not a count of updates")
    assert not (tmp_path / "b.html").exists()


def test_deep_nesting_is_a_one_line_error(tmp_path):
    log = tmp_path / "deep.log.jsonl"
    log.write_text('{"event": "start", "options": {}}\n{"event": "update", "update": 1, '
                   '"cost": ' + "[" * 100000 + "]" * 100000 + "}\n")
    one_line_error(run("report", log, "-o", tmp_path / "d.html"), "deep.log.jsonl",
                   "line 2 is nested too deeply")
    # nesting that JSON reads but a report does not follow: skipped, the rest is drawn
    log.write_text('{"event": "update", "update": 1, "cost": 1.0, "x": '
                   + '{"a": ' * 900 + "1" + "}" * 900 + "}\n")
    assert list(logs.read_run(log).curves) == [("update", "cost")]
    # and an option nested deeply is shown, not a traceback
    log.write_text('{"event": "start", "options": {"o": ' + "[" * 900 + "]" * 900 + "}}\n"
                   '{"event": "update", "update": 1, "cost": 1.0}\n')
    ok(run("report", log, "-o", tmp_path / "d.html"))


def test_dollar_signs_are_drawn_as_written(tmp_path):
    """matplotlib's mathtext is off: '$\\macro$' names render literally, nothing fails."""
    log = write_log(tmp_path / "m.log.jsonl", [
        {"event": "start", "options": {"$\\macro$": "$x^$", "a$b": 1}},
        {"event": "update", "update": 1, "cost": 2.0, "$\\frac{1}{0}$": 1.0},
        {"event": "valid", "update": 1, "$\\undefinedmacro$": 3.0, "$x$.$y$": 4.0}])
    out = tmp_path / "m.html"
    ok(run("report", log, "-o", out))
    html = out.read_text()
    for text in ("training $\\frac{1}{0}$", "dev $\\undefinedmacro$", "dev $x$ $y$",
                 "$\\macro$", "$x^$"):
        assert text in html, text


def test_control_characters_are_not_printed_raw(tmp_path):
    """A name holding an escape sequence is spelled out on the terminal, never sent raw."""
    logs_ = [write_log(tmp_path / f"{n}.log.jsonl", [
        {"event": "start", "options": {"\x1b]0;pwned\x07": f"\x1b[2J{n}", "k" * 500: n}},
        {"event": "update", "update": 1, "cost": 1.0},
        *[{"event": "update", "update": 2, **{f"m{i}\x1b[31m": 1 for i in range(101)}}]])
        for n in ("a", "b")]
    result = ok(run("report", *logs_, "-o", tmp_path / "c.html"))
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stderr
    assert "\\x1b[2Ja" in result.stdout
    assert "left out of the page" in result.stderr
    label = result.stdout.splitlines()[0]
    assert len(label) < 200  # a 500-character option name is cut in the label


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.log.jsonl"
    os.mkfifo(fifo)
    (tmp_path / "dir.log.jsonl").mkdir()
    os.symlink(fifo, tmp_path / "link.log.jsonl")
    for given, name, what in ((fifo, "pipe.log.jsonl", "FIFO"),
                              (tmp_path / "pipe.npz", "pipe.log.jsonl", "FIFO"),
                              (tmp_path / "link.log.jsonl", "link.log.jsonl", "FIFO"),
                              (tmp_path / "dir.npz", "dir.log.jsonl", "folder")):
        status, err, _, _ = peak_mb(given, "-o", tmp_path / "f.html", timeout=60)  # no block
        assert status == 1 and len(err.strip().splitlines()) == 1, err
        assert name in err and what in err and "Traceback" not in err
    one_line_error(run("report", fifo, "-o", tmp_path / "f.html"), "pipe.log.jsonl",
                   "a training log is a regular file")
    assert not (tmp_path / "f.html").exists()


# --- at a phone's width -----------------------------------------------------------------

@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install "
                    "chromium")
def test_mixed_report_fits_a_phone(mixed):
    """At 390 px: no sideways scrolling of the page; every column of every table reachable
    (the runs table stacks each run's cells; the options table scrolls in its own box)."""
    out, summary = mixed
    with Browser(CHROMIUM) as b:
        for width in (390, 1280):
            b.open(out.as_uri(), width, 844, mobile=width < 600)
            assert b.errors() == []
            assert b.evaluate("document.documentElement.scrollWidth") <= width
            b.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
            assert b.evaluate("document.documentElement.scrollWidth") <= width
            cells = b.evaluate("""Array.from(document.querySelectorAll('table.runs td'))
                .map(td => { const r = td.getBoundingClientRect();
                             return [r.left, r.right, r.width, td.textContent.trim()]; })""")
            assert cells and all(0 <= left and right <= width and w > 0
                                 for left, right, w, _ in cells), cells
            assert any("0.6034" in text for *_, text in cells)
            # the options table: its box fits; scrolled to the end, its last column shows
            box = b.evaluate("""(() => { const s = document.querySelector('table.options')
                .parentElement; s.scrollLeft = s.scrollWidth;
                const t = s.getBoundingClientRect();
                const last = s.querySelector('thead th:last-child').getBoundingClientRect();
                return [getComputedStyle(s).overflowX, t.left, t.right, last.left,
                        last.right]; })()""")
            overflow, left, right, last_left, last_right = box
            assert overflow == "auto" and 0 <= left and right <= width
            assert left <= last_left and last_right <= right + 1, box
            legend = b.evaluate("""Array.from(document.querySelectorAll('ul.legend li'))
                .map(li => li.getBoundingClientRect().right)""")
            assert len(legend) == 4 and max(legend) <= width
            plots = b.evaluate("""Array.from(document.querySelectorAll('figure[data-plot] svg'))
                .map(s => s.getBoundingClientRect().right)""")
            assert len(plots) == len(summary["plots"]) and max(plots) <= width


# --- `uvs align show -o FILE.html`: a page styled as the reports ----------------------------

@pytest.fixture
def phrases_page(tmp_path):
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    from uvs.align.show import draw

    result = {"words": ["a", "red", "dog", "on", "<grass>"], "beta": 0.1, "energy": 1.25,
              "phrases": [{"text": "a red dog", "first": 0, "last": 2, "region": 3,
                           "box": [10.0, 20.0, 60.0, 70.0], "score": 0.5},
                          {"text": "on <grass>", "first": 3, "last": 4, "region": 1,
                           "box": [0.0, 50.0, 120.0, 90.0], "score": 0.25}]}
    out = tmp_path / "phrases.html"
    draw(np.full((90, 120, 3), 200, np.uint8), result, str(out))
    return out


def test_align_show_page_is_a_styled_report(phrases_page, tmp_path):
    html = phrases_page.read_text()
    css = (pathlib.Path(__file__).parents[1] / "uvs" / "report" / "report.css").read_text()
    assert css.strip()[:200] in html  # the reports' own stylesheet, inline
    assert '<meta name="generator" content="uvs report">' in html
    assert "data:image/png;base64," in html and "http" not in html.replace(
        "http://www.w3.org/", "")
    assert "on &lt;grass&gt;" in html and "<grass>" not in html.split("<title>")[1]
    rows = re.findall(r'<tr><td><span class="swatch" style="background: (#[0-9a-f]{6})">'
                      r"</span></td><td>([^<]*)</td>", html)
    assert [t for _, t in rows] == ["a red dog", "on &lt;grass&gt;"]
    assert rows[0][0] == "#e6194b" and rows[1][0] == "#3cb44b"  # the boxes' colours
    # a page that is not a uvs report is not overwritten
    precious = tmp_path / "mine.html"
    precious.write_text("<p>my notes</p>")
    from uvs.align.show import draw
    from uvs.errors import UVSError

    np = pytest.importorskip("numpy")
    with pytest.raises(UVSError, match="not a uvs report"):
        draw(np.zeros((4, 4, 3), np.uint8), {"words": ["a"], "beta": 0.1, "energy": 0.0,
                                              "phrases": []}, str(precious))
    assert precious.read_text() == "<p>my notes</p>"


def test_align_show_html_needs_jinja2_said_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "jinja2", None)
    model = tmp_path / "m.npz"
    model.write_bytes(b"not read: the missing extra is said first")
    one_line_error(run("align", "show", model, "--regions", model, "--text", "a dog", "-o",
                       tmp_path / "p.html"), "jinja2", "pip install")
    assert not (tmp_path / "p.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed: apt-get install "
                    "chromium")
def test_align_show_page_renders_styled(phrases_page):
    with Browser(CHROMIUM) as b:
        for width in (390, 1280):
            b.open(phrases_page.as_uri(), width, 844, mobile=width < 600)
            assert b.errors() == []
            assert b.evaluate("document.documentElement.scrollWidth") <= width
            style = b.evaluate("""(() => { const t = document.querySelector('table.phrases');
                const img = document.querySelector('figure.photo img');
                return [getComputedStyle(document.documentElement).backgroundColor,
                        getComputedStyle(t).borderTopStyle, img.naturalWidth,
                        img.getBoundingClientRect().right]; })()""")
            background, border, natural, right = style
            assert background == "rgb(246, 247, 249)" and border == "solid"
            assert natural >= 480 and right <= width
