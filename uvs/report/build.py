"""The three reports: training runs compared, an evaluation query by query, and one search."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from uvs.datasets import Split
from uvs.errors import UVSError
from uvs.queries import QueryResults, recall_curve
from uvs.report import check_installed, compare, gallery, logs, metrics, page, plots

MAX_PLOTS = 30  # curves drawn in one training report


def _markup(svg: str):
    from markupsafe import Markup

    return Markup(svg)  # matplotlib escapes the text it writes into the SVG


def _status(run: logs.Run) -> str:
    if run.diverged:
        state = f"diverged at update {run.diverged[-1].get('update', '?')}"
    elif run.finished:
        state = "finished"
    elif run.interrupted:
        state = f"interrupted at update {run.interrupted[-1].get('update', '?')}"
    else:
        state = "running or stopped"
    return state + (f", resumed {run.resumed}×" if run.resumed else "")


def _plot_keys(runs: list[logs.Run]) -> list[tuple[str, str, str | None]]:
    """(source, metric, kind) of each plot: one per curve, in order, except that training
    curves of runs of different kinds (their own losses) get one plot per kind."""
    found: dict[tuple[str, str], dict[str, None]] = {}
    for r in runs:
        for key, curve in r.curves.items():
            if curve:
                found.setdefault(key, {})[r.kind] = None
    out = []
    for source, metric in metrics.order_keys(list(found)):
        kinds = list(found[(source, metric)])
        if source == "update" and len({r.kind for r in runs}) > 1:
            out.extend((source, metric, k) for k in kinds)
        else:
            out.append((source, metric, None))
    return out


def _best(run: logs.Run) -> dict | None:
    metric = metrics.dev_score(run.kind, run.curves)
    best = metrics.best_point(run.curves[("valid", metric)], metric) if metric else None
    return None if best is None else {"metric": metric, "at": best[0], "value": best[1]}


def _row(run: logs.Run, label: str, colour: str) -> dict:
    best = _best(run)
    return {"colour": colour, "label": label, "name": run.name, "kind": run.kind,
            "log": run.log, "updates": run.updates, "status": _status(run), "best": best,
            "best_name": metrics.metric_name(best["metric"], short=True) if best else None}


def _figures(found: list[logs.Run], colours: list[str], notes: list[str]) -> list[dict]:
    """The plots (at most MAX_PLOTS, what leads first; a note says what is not drawn)."""
    keys = _plot_keys(found)
    if len(keys) > MAX_PLOTS:
        gone = [metrics.metric_title(*k) for k in keys[MAX_PLOTS:]]
        notes.append(f"{len(gone)} curves beyond the first {MAX_PLOTS} are not drawn: "
                     + ", ".join(gone[:10]) + (", …" if len(gone) > 10 else ""))
        keys = keys[:MAX_PLOTS]
    figures = [{"title": metrics.metric_title(*k),
                "id": f"{k[0]}.{k[1]}" + (f"@{k[2]}" if k[2] else ""),
                "lead": metrics.leads(k[0], k[1]),
                "svg": _markup(plots.training_plot(found, k[0], k[1], f"p{i}", colours, k[2]))}
               for i, k in enumerate(keys)]
    return sorted(figures, key=lambda f: not f["lead"])  # as the page shows them


def training_report(runs: Sequence[str], output: str, title: str | None = None) -> dict:
    """Write OUTPUT comparing training RUNS (models or their logs); returns a summary.

    summary['left_out']: what the page does not show (bounds met), one sentence each.
    """
    check_installed()
    found = [logs.read_run(r) for r in runs]
    seen: dict[str, str] = {}
    for given, run in zip(runs, found, strict=True):
        real = os.path.realpath(run.log)
        if real in seen:
            raise UVSError(os.fspath(given), f"the same run as {seen[real]}: give each run once")
        seen[real] = os.fspath(given)
    page.check_output(output, tuple(r.log for r in found))  # before the slow part
    names = compare.labels(found)
    colours = [plots.colour(i) for i in range(len(found))]
    notes = [f"{label}: {note}" for run, label in zip(found, names, strict=True)
             for note in run.notes]
    figures = _figures(found, colours, notes)
    rows = [_row(*x) for x in zip(found, names, colours, strict=True)]
    options, hidden = compare.option_rows(found)
    if len({r.kind for r in found}) > 1:
        options.insert(0, {"name": "kind", "differs": False, "cells": [r.kind for r in found]})
    if hidden:
        notes.append(f"{hidden} options are not listed (the table shows "
                     f"{compare.MAX_OPTION_ROWS}, those that differ first)")
    html = page.render(title or "uvs: training runs", training={
        "runs": rows, "options": options, "notes": notes,
        "lead": [f for f in figures if f["lead"]], "more": [f for f in figures if not f["lead"]]})
    page.write(output, html, inputs=tuple(r.log for r in found))
    return {"output": output, "plots": [f["id"] for f in figures],
            "lead": [f["id"] for f in figures if f["lead"]], "left_out": notes,
            "runs": [{k: r[k] for k in ("log", "label", "kind", "updates", "status", "best")}
                     for r in rows]}


def _metrics_rows(results: dict) -> list[dict]:
    return [{"direction": plots.DIRECTIONS[d][0], **results[d]} for d in ("i2t", "t2i")]


def retrieval_report(output: str, results: dict, queries: QueryResults, split: Split, *,
                     model_path: str, data: str, split_name: str, fold5: bool = False,
                     method: str = "cosine", names_file: str | None = None,
                     inputs: tuple[str, ...] = (),
                     on_progress: Callable[[int], None] | None = None) -> dict:
    """Write OUTPUT: evalrank's table, recall@K, the ranks' histogram and every query.

    names_file: one name (or photo path) per image of the split; default the split's
    `.paths.txt` when there is one (see `gallery.split_names_file`), else row numbers.
    on_progress(n): called as images are named and their thumbnails made.
    """
    check_installed()
    page.check_output(output, (model_path, split.caps_path, split.ims_path, *inputs))
    n = len(queries.i2t_ranks)
    names_file = names_file or gallery.split_names_file(split.ims_path, data, split_name)
    names = gallery.read_names(names_file, n) if names_file else None
    images = gallery.Images()
    images.add_named(names, n, os.path.dirname(names_file) if names_file else ".", on_progress)
    figures = [
        {"title": "recall@K", "id": "recall",
         "svg": _markup(plots.recall_plot(recall_curve(queries.i2t_ranks, min(100, 5 * n)),
                                          recall_curve(queries.t2i_ranks, min(100, n)), "r"))},
        {"title": "rank of the ground truth", "id": "ranks",
         "svg": _markup(plots.rank_histogram(queries.i2t_ranks, queries.t2i_ranks, 5 * n, n,
                                             "h"))}]
    retrieval = {
        "model": model_path, "data": data, "split": split_name, "images": n,
        "captions": len(split.caps), "fold5": fold5, "names": names_file,
        "photos": len(images.thumbs), "rows": _metrics_rows(results), "rsum": results["rsum"],
        "folds": [{"fold": f + 1, "rows": _metrics_rows(r), "rsum": r["rsum"]}
                  for f, r in enumerate(results.get("folds", []))],
        "figures": figures,
        "score": {"order": "minus the order error", "align": "S_kl, the alignment score (each "
                  "word's best region, summed)"}.get(method, "cosine similarity")}
    data_ = gallery.evaluation_gallery(queries, split.caps, images)
    html = page.render(f"uvs: {os.path.basename(model_path)} on {data} {split_name}",
                       retrieval=retrieval, gallery=data_)
    page.write(output, html, inputs=(model_path, split.caps_path, split.ims_path, *inputs))
    return {"output": output, "images": n, "photos": len(images.thumbs), "names": names_file}


def search_report(output: str, *, model_path: str, method: str, query: dict, kind: str,
                  hits: list[str], scores: list[float], names_folder: str = ".",
                  collection: str = "", inputs: tuple[str, ...] = ()) -> dict:
    """Write OUTPUT showing one search: the query and its hits, best first.

    query: {'text': sentence} or {'label': name, 'photo': path or None}, with 'minus' and
    'plus' (words); kind: 'captions' or 'images' (then `hits` are image names, photos when
    they are files relative to `names_folder`).
    """
    check_installed()
    page.check_output(output, (model_path, *inputs))
    images = gallery.Images()
    captions: list[str] = []
    change = "".join(f" − {w}" for w in query.get("minus", ())) + \
        "".join(f" + {w}" for w in query.get("plus", ()))
    if "text" in query:
        captions.append(query["text"])
        query_kind, q = "caption", 0
    else:
        query_kind = "image"
        q = images.add(query["label"] + change, query.get("photo"))
    if kind == "captions":
        rows = list(range(len(captions), len(captions) + len(hits)))
        captions.extend(hits)
        result_kind = "caption"
    else:
        rows = [images.add(h, gallery.photo_file(h, names_folder)) for h in hits]
        result_kind = "image"
    data_ = gallery.search_gallery(query_kind, q, result_kind, rows, scores, images, captions)
    search = {"model": model_path, "collection": collection, "kind": kind, "k": len(hits),
              "query": query.get("text") or query["label"] + change,
              "score": "minus the order error" if method == "order" else "cosine similarity"}
    html = page.render(f"uvs search: {search['query']}", search=search, gallery=data_)
    page.write(output, html, inputs=(model_path, *inputs))
    return {"output": output, "photos": len(images.thumbs)}
