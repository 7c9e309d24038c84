"""Per-query ranks and top-k lists agree with evalrank and with each other, ties included."""

import numpy as np
import pytest
from models import write_tiny_dataset, write_tiny_model

from uvs import evaluation, queries, tools


def flat(results, prefix=""):
    """Nested metrics (folds included) as one {dotted name: number} dict."""
    out = {}
    items = enumerate(results) if isinstance(results, list) else results.items()
    for key, value in items:
        if isinstance(value, (dict, list)):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("layout, method", [("vse", None), ("order", "order"),
                                            ("order", "cosine"), ("vse", "order")])
@pytest.mark.parametrize("fold5", [False, True])
def test_query_ranks_give_evalranks_metrics(tmp_path, layout, method, fold5):
    """Tiny captions repeat often, so exact ties are part of the check."""
    write_tiny_dataset(tmp_path / "data", layout=layout, n_images=30, seed=3)
    path, *_ = write_tiny_model(tmp_path, layout, method=method, abs_=method == "order")
    model = tools.load_model(path)
    expected = evaluation.evalrank(model, "tiny", "test", tmp_path / "data", fold5=fold5)
    got, found, split = queries.evalrank_queries(model, "tiny", "test", tmp_path / "data",
                                                 fold5=fold5, k=10)
    assert flat(got) == pytest.approx(flat(expected))
    assert found.i2t_ranks.shape == (30,) and found.t2i_ranks.shape == (150,)
    assert len(split.caps) == 150
    # the top lists are in the ranks' order: a ground truth ranked r < k sits at position r
    # (in fold5 each query ranks within its fold: indices stay inside it)
    per = 6 if fold5 else 30
    for i, r in enumerate(found.i2t_ranks):
        own = set(range(5 * i, 5 * i + 5))
        assert found.i2t_gt[i] in own
        top = list(found.i2t_top[i])
        assert all(5 * per * (i // per) <= c < 5 * per * (i // per + 1) for c in top)
        if r < 10:
            assert top[r] == found.i2t_gt[i] and not own & set(top[:r])
        else:
            assert not own & set(top)
    for c, r in enumerate(found.t2i_ranks):
        top = list(found.t2i_top[c])
        if r < 10:
            assert top[r] == c // 5 and c // 5 not in top[:r]
        else:
            assert c // 5 not in top
    assert np.all(np.diff(found.i2t_scores, axis=1) <= 0)
    assert np.all(np.diff(found.t2i_scores, axis=1) <= 0)


def test_top_k_breaks_ties_as_the_originals():
    scores = np.array([[0.5, 0.9, 0.5, 0.1, 0.5, 0.9]], np.float32)
    # visual-semantic-embedding: argsort(d)[::-1] puts the higher index first among equals
    assert queries.top_k(scores, 4, "last").tolist() == [[5, 1, 4, 2]]
    # order-embedding: argsort(errors) puts the lower index first
    assert queries.top_k(scores, 4, "first").tolist() == [[1, 5, 0, 2]]
    assert queries.top_k(scores, 10, "last").tolist() == [[5, 1, 4, 2, 0, 3]]


def test_recall_curve():
    ranks = np.array([0, 0, 1, 4, 9, 50, 200])
    curve = queries.recall_curve(ranks, 100)
    assert curve.shape == (100,)
    assert curve[0] == pytest.approx(100 * 2 / 7)  # R@1
    assert curve[4] == pytest.approx(100 * 4 / 7)  # R@5
    assert curve[9] == pytest.approx(100 * 5 / 7)  # R@10
    assert curve[99] == pytest.approx(100 * 6 / 7)
