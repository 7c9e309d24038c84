"""evalrank end to end against the original evaluation run on the float64 reference encoders."""

import numpy as np
import pytest
import reference
from models import write_tiny_dataset, write_tiny_model

from uvs import datasets, evaluation, tools


def original_i2t(images, captions):
    """visual-semantic-embedding's i2t, literally (caption-aligned images), stable argsort."""
    npts = images.shape[0] // 5
    ranks = np.zeros(npts)
    for index in range(npts):
        d = np.dot(images[5 * index], captions.T).flatten()
        inds = np.argsort(d, kind="stable")[::-1]
        ranks[index] = min(np.where(inds == i)[0][0] for i in range(5 * index, 5 * index + 5))
    return ranks


def original_t2i(images, captions):
    npts = images.shape[0] // 5
    ims = images[::5]
    ranks = np.zeros(5 * npts)
    for index in range(npts):
        d = np.dot(captions[5 * index:5 * index + 5], ims.T)
        for i in range(5):
            inds = np.argsort(d[i], kind="stable")[::-1]
            ranks[5 * index + i] = np.where(inds == index)[0][0]
    return ranks


def original_order(c2i):
    """order-embedding's t2i and i2t on the (5N, N) error matrix."""
    t2i = np.array([np.where(np.argsort(c2i[i], kind="stable") == i // 5)[0][0]
                    for i in range(c2i.shape[0])])
    i2t = np.array([np.where(np.argsort(c2i[:, i], kind="stable") // 5 == i)[0][0]
                    for i in range(c2i.shape[1])])
    return i2t, t2i


def metrics(ranks):
    return {"r1": 100.0 * (ranks < 1).mean(), "r5": 100.0 * (ranks < 5).mean(),
            "r10": 100.0 * (ranks < 10).mean(), "medr": np.floor(np.median(ranks)) + 1,
            "meanr": ranks.mean() + 1}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("layout, method", [("vse", None), ("order", "order"),
                                            ("order", "cosine"), ("vse", "order")])
def test_evalrank_matches_original(tmp_path, layout, method, seed):
    """Tiny captions repeat often: exact ties between identical captions are included."""
    write_tiny_dataset(tmp_path / "data", layout=layout, n_images=30, seed=seed)
    path, params, options, worddict = write_tiny_model(tmp_path, layout, method=method,
                                                       abs_=method == "order")
    split = datasets.load_split("tiny", "test", tmp_path / "data")
    s = reference.encode_sentences(params, options, worddict, split.caps)
    im = reference.encode_images(params, options, split.image_rows())
    assert len(set(split.caps)) < len(split.caps)
    if layout == "vse":
        if method == "order":   # visual-semantic-embedding's loops on −error scores
            s, im = -reference.order_errors(s, im), np.eye(len(im))
        i2t, t2i = original_i2t(np.repeat(im, 5, axis=0), s), original_t2i(
            np.repeat(im, 5, axis=0), s)
    elif method == "order":
        i2t, t2i = original_order(reference.order_errors(s, im))
    else:
        i2t, t2i = original_order(-s @ im.T)
    got = evaluation.evalrank(tools.load_model(path), "tiny", "test", tmp_path / "data")
    for key, value in metrics(i2t).items():
        assert got["i2t"][key] == pytest.approx(value), key
    for key, value in metrics(t2i).items():
        assert got["t2i"][key] == pytest.approx(value), key
