"""What a logged metric means: which way is better, its title, each kind's dev score, and
which curves lead a report. The one place these rules live (plots, table and CLI use them).
"""

from __future__ import annotations

import re

# a metric is lower-is-better when one of these is a word of its last dotted part
LOWER_WORDS = {"cost", "loss", "medr", "meanr", "perplexity", "ppl", "error", "err", "rank",
               "nll", "distance"}
DEV_SCORE = {"vse": "rsum", "align": "rsum", "decoder": "dev_cost_per_word"}
LEAD_DEV = ("i2t.r1", "t2i.r1")  # recall leads too; other curves are folded away
_NAMES = {"r1": "R@1", "r5": "R@5", "r10": "R@10", "medr": "median rank",
          "meanr": "mean rank", "rsum": "rsum (R@1+R@5+R@10, both ways)"}


def lower_is_better(metric: str) -> bool:
    """Costs, losses, errors, perplexities and ranks go down as a model improves; recalls
    and scores go up. 'dev_cost_per_word', 'i2t.medr', 'valid_loss' are lower-is-better."""
    last = metric.rsplit(".", 1)[-1].lower()
    return any(w in LOWER_WORDS for w in re.split(r"[_\W]+", last))


def best_point(curve: dict[int, float], metric: str) -> tuple[int, float] | None:
    """(update, value) of the best value of a curve (the earliest when tied)."""
    if not curve:
        return None
    sign = 1.0 if lower_is_better(metric) else -1.0
    update = min(curve, key=lambda u: (sign * curve[u], u))
    return update, curve[update]


def metric_name(metric: str, short: bool = False) -> str:
    """'i2t R@1', 'cost per word', 'bleu b4': a metric's name as the page shows it (`short`:
    'rsum' without its definition)."""
    if metric.startswith("dev_"):
        metric = metric[4:]
    if not metric.isprintable():
        metric = ascii(metric)[1:-1]  # control characters spelled out
    return " ".join(p if short and p == "rsum" else _NAMES.get(p, p.replace("_", " "))
                    for p in metric.split("."))


def metric_title(source: str, metric: str, kind: str | None = None) -> str:
    """'training cost', 'dev i2t R@1', 'dev cost per word', '... (decoder)' for one kind."""
    title = ("training " if source == "update" else "dev ") + metric_name(metric)
    return f"{title} ({kind})" if kind else title


def dev_score(kind: str, curves: dict) -> str | None:
    """The dev metric that names a run's best point: its kind's own (rsum, or a decoder's
    dev cost per word), else its first dev metric."""
    own = DEV_SCORE.get(kind)
    if own and curves.get(("valid", own)):
        return own
    dev = [m for (s, m), c in curves.items() if s == "valid" and c]
    return order_keys([("valid", m) for m in dev])[0][1] if dev else None


def _rank(item: tuple[str, str]) -> tuple:
    source, metric = item
    if source == "update":
        return (0 if metric == "cost" else 1, 0, 0)
    if metric in DEV_SCORE.values():
        return (2, 0, 0)
    head = metric.split(".")[0]
    rank = {"i2t": 1, "t2i": 2}.get(head, 3)
    sub = {"r1": 0, "r5": 1, "r10": 2, "medr": 3, "meanr": 4}.get(metric.split(".")[-1], 5)
    return (2, rank, sub)


def order_keys(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Training cost first, then the dev scores, the two directions' recall, then anything
    else in the order given."""
    return [k for _, k in sorted(enumerate(keys), key=lambda ik: (_rank(ik[1]), ik[0]))]


def leads(source: str, metric: str) -> bool:
    """Whether a curve is shown first (training cost, dev score, R@1 both ways); the rest
    are folded."""
    return (source == "update" and metric == "cost") or (
        source == "valid" and (metric in DEV_SCORE.values() or metric in LEAD_DEV))
