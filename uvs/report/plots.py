"""The report's plots: matplotlib figures rendered to inline SVG (text kept as text).

No pyplot: each plot is its own `Figure`, so nothing touches matplotlib's global state or
needs a display. Text is drawn as written (no mathtext: a '$' in a name is a '$').
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np

from uvs.report import need
from uvs.report.logs import Run
from uvs.report.metrics import best_point, lower_is_better, metric_title

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22"]
DIRECTIONS = {"i2t": ("image → text", "#1f77b4"), "t2i": ("text → image", "#d62728")}
MAX_POINTS = 2000  # drawn of one curve (evenly spaced, the best point among them)


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@contextlib.contextmanager
def _literal_text():
    """Text objects made inside draw their strings literally (no mathtext, no TeX)."""
    need("matplotlib")
    import matplotlib

    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}), \
            warnings.catch_warnings():
        # the SVG keeps text as text (the browser's fonts draw it): a glyph missing from
        # matplotlib's font only makes its measure of the text approximate
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        yield


def _figure(width: float = 5.0, height: float = 3.1, below: float = 0.0):
    """A figure with one axes and fixed margins in inches (`below`: extra room underneath).

    Fixed margins, not a layout engine: measuring every text box takes longer than drawing.
    """
    need("matplotlib")
    from matplotlib.figure import Figure

    height += below
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.72 / width, right=1 - 0.12 / width, top=1 - 0.36 / height,
                        bottom=(0.62 + below) / height)
    return fig, fig.add_subplot()


def _style(ax, title: str, xlabel: str, ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel, fontsize=9)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def to_svg(fig, salt: str) -> str:
    """The figure as an <svg> element sized by its container (width 100%, viewBox kept).

    `salt` makes the ids of clip paths unique among the page's figures.
    """
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # no XML prolog or DOCTYPE inside HTML
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # RDF boilerplate
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    return head + ' class="plot" role="img"' + svg[head_end:]


def thin(xs: list[int], limit: int = MAX_POINTS, keep: int | None = None) -> list[int]:
    """At most about `limit` of the sorted updates `xs`, evenly spaced (first and last
    among them), and `keep`."""
    if len(xs) <= limit:
        return xs
    picked = {xs[round(i * (len(xs) - 1) / (limit - 1))] for i in range(limit)}
    if keep is not None:
        picked.add(keep)
    return sorted(picked)


def training_plot(runs: list[Run], source: str, metric: str, salt: str,
                  colours: list[str], kind: str | None = None) -> str:
    """One metric of every run (of `kind`, when given) over updates, the best point of each
    marked with a star; run i drawn in colours[i] (the page's table is the legend)."""
    with _literal_text():
        fig, ax = _figure()
        lower = lower_is_better(metric)
        values = []
        for run, c in zip(runs, colours, strict=True):
            curve = run.curves.get((source, metric))
            if not curve or (kind and run.kind != kind):
                continue
            bu, bv = best_point(curve, metric)
            xs = thin(sorted(curve), keep=bu)
            ys = [curve[x] for x in xs]
            values.extend(ys)
            many = len(xs) > 40
            ax.plot(xs, ys, color=c, linewidth=1.0 if many else 1.6,
                    marker=None if many else "o", markersize=3)
            ax.plot([bu], [bv], marker="*", markersize=13, color=c,
                    markeredgecolor="black", markeredgewidth=0.7, zorder=5, linestyle="none")
        _style(ax, metric_title(source, metric, kind), "update",
               "lower is better" if lower else "higher is better")
        ax.yaxis.label.set_color("#777777")
        if source == "update" and lower and values and min(values) > 0 and \
                max(values) > 20 * min(values):
            ax.set_yscale("log")
        return to_svg(fig, salt)


def recall_plot(i2t_curve: np.ndarray, t2i_curve: np.ndarray, salt: str) -> str:
    """R@K against K (log scale), both directions; R@1, R@5 and R@10 marked."""
    with _literal_text():
        fig, ax = _figure()
        for key, curve in (("i2t", i2t_curve), ("t2i", t2i_curve)):
            label, c = DIRECTIONS[key]
            ks = np.arange(1, len(curve) + 1)
            ax.plot(ks, curve, color=c, linewidth=1.8, label=label)
            marks = [k for k in (1, 5, 10) if k <= len(curve)]
            ax.plot(marks, [curve[k - 1] for k in marks], "o", color=c, markersize=4)
        ax.set_xscale("log")
        ticks = [k for k in (1, 2, 5, 10, 20, 50, 100)
                 if k <= max(len(i2t_curve), len(t2i_curve))]
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.set_ylim(0, 100)
        _style(ax, "recall@K", "K", "% found in the top K")
        ax.legend(fontsize=8, frameon=False, loc="lower right")
        return to_svg(fig, salt)


def rank_bins(n_candidates: int) -> list[tuple[int, int]]:
    """1-based rank ranges 1, 2, 3–5, 6–10, 11–20, 21–50, 51–100, ... up to the candidates."""
    edges = [1, 2, 3, 6, 11]
    while edges[-1] <= n_candidates:
        last = edges[-1] - 1
        step = {1: 2, 2: 2.5, 5: 2}[int(str(last)[0])]
        edges.append(int(last * step) + 1)
    pairs = zip(edges[:-1], edges[1:], strict=True)
    return [(a, min(b - 1, n_candidates)) for a, b in pairs if a <= n_candidates]


def rank_histogram(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray, n_captions: int,
                   n_images: int, salt: str) -> str:
    """Share of queries whose ground truth came at each (binned) rank, both directions."""
    with _literal_text():
        fig, ax = _figure(below=0.25)
        return _rank_bars(fig, ax, i2t_ranks, t2i_ranks, n_captions, n_images, salt)


def _rank_bars(fig, ax, i2t_ranks, t2i_ranks, n_captions: int, n_images: int,
               salt: str) -> str:
    worst = int(max(np.max(i2t_ranks), np.max(t2i_ranks))) + 1
    bins = rank_bins(min(max(n_captions, n_images), max(100, worst)))  # no empty tail
    width = 0.4
    for j, (key, r) in enumerate((("i2t", i2t_ranks), ("t2i", t2i_ranks))):
        label, c = DIRECTIONS[key]
        one = np.asarray(r) + 1
        share = [100.0 * np.count_nonzero((one >= a) & (one <= b)) / len(one) for a, b in bins]
        ax.bar(np.arange(len(bins)) + (j - 0.5) * width, share, width, color=c, label=label)
    ax.set_xticks(np.arange(len(bins)),
                  [str(a) if a == b else f"{a}–{b}" for a, b in bins], rotation=45, ha="right")
    _style(ax, "rank of the ground truth", "rank (1 = first)", "% of queries")
    ax.legend(fontsize=8, frameon=False, loc="upper right")
    return to_svg(fig, salt)
