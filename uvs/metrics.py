"""Retrieval ranks and recall metrics, as the originals computed them, in chunked NumPy.

Image ``i`` owns captions ``5i .. 5i+4``. Image-to-text (i2t) ranks all captions for
each image and keeps the best rank among its five; text-to-image (t2i) ranks all
images for each caption. A rank is 0-based: the number of candidates placed ahead
of the ground truth. Ties are broken as a stable argsort would
(the originals called NumPy's default quicksort, whose order among exact ties is arbitrary):

- ``ties="last"`` (visual-semantic-embedding, ``argsort(d)[::-1]``): among equal
  scores the higher index comes first;
- ``ties="first"`` (order-embedding, ``argsort(errors)``): the lower index comes first.

The (N, 5N) score matrix is computed in chunks of image rows and never held whole;
one pass gives both directions, every score (ground truths included) from that matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from uvs.errors import UVSError

ScoreFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

CHUNK_BYTES = 64 * 2**20  # score-matrix bytes per chunk when `chunk` is not given
_GT_BLOCK = 8  # images per call when computing the ground-truth scores
TIES = ("last", "first")


def _dot(im: np.ndarray, captions: np.ndarray) -> np.ndarray:
    """Default score: ``im @ captions.T`` (float32 inputs give float32 scores)."""
    return im @ captions.T


def _check(images: np.ndarray, captions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of shapes (N, d) and (5N, d), N >= 1, or a ValueError saying what is wrong."""
    images, captions = np.asarray(images), np.asarray(captions)
    if images.ndim != 2 or captions.ndim != 2:
        raise ValueError(
            f"images and captions must be 2-D, got shapes {images.shape} and {captions.shape}"
        )
    if len(images) == 0:
        raise ValueError("no images to rank")
    if len(captions) != 5 * len(images):
        raise ValueError(
            f"expected 5 captions per image: {len(images)} images need {5 * len(images)} "
            f"captions, got {len(captions)}"
        )
    if images.shape[1] != captions.shape[1]:
        raise ValueError(f"images are {images.shape[1]}-d but captions are {captions.shape[1]}-d")
    return images, captions


def _scores(
    score: ScoreFn, im: np.ndarray, captions: np.ndarray, dtype: np.dtype | None = None
) -> np.ndarray:
    """``score(im, captions)`` checked to be a (len(im), len(captions)) float array."""
    s = np.asarray(score(im, captions))
    if s.shape != (len(im), len(captions)):
        raise ValueError(f"score returned shape {s.shape}, expected {(len(im), len(captions))}")
    if dtype is None:
        if np.issubdtype(s.dtype, np.floating):
            return s
        if not (np.issubdtype(s.dtype, np.integer) or s.dtype == bool):
            raise ValueError(f"score returned dtype {s.dtype}, expected numbers")
        dtype = np.float64
    return s.astype(dtype, copy=False)


def _gt_scores(score: ScoreFn, images: np.ndarray, captions: np.ndarray) -> np.ndarray:
    """Scores of each image with its own five captions: (N, 5), from small blocks."""
    n = len(images)
    out = None
    for a in range(0, n, _GT_BLOCK):
        b = min(n, a + _GT_BLOCK)
        s = _scores(score, images[a:b], captions[5 * a : 5 * b], None if out is None else out.dtype)
        if out is None:
            out = np.empty((n, 5), s.dtype)
        rows = np.arange(b - a)
        out[a:b] = s[rows[:, None], 5 * rows[:, None] + np.arange(5)]
    if not np.isfinite(out).all():
        raise ValueError("the score of an image with one of its own captions is not finite")
    return out


def _count_columns(mask: np.ndarray) -> np.ndarray:
    """True entries per column of a 2-D bool array, summed as uint8 in slabs of 255 rows."""
    u8 = mask.view(np.uint8)
    total = np.zeros(mask.shape[1], np.int64)
    for a in range(0, len(u8), 255):
        total += np.add.reduce(u8[a : a + 255], axis=0, dtype=np.uint8)
    return total


def default_chunk(n_captions: int, itemsize: int = 4) -> int:
    """Image rows per chunk so that one chunk of scores takes about `CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // max(1, n_captions * itemsize))


def _band(gt: np.ndarray) -> np.ndarray:
    """Half-widths of intervals around provisional ground-truth scores (from another product
    of the same vectors) that should hold the score matrix's own values: (5N,)."""
    mag = np.abs(gt)
    scale = mag.max() if mag.size else 0
    return np.maximum(scale * gt.dtype.type(2.0**-16), 16 * np.spacing(mag)).astype(gt.dtype)


BAND_BUDGET = 1 << 22  # band entries kept before falling back to a second pass


def ranks(
    images: np.ndarray,
    captions: np.ndarray,
    score: ScoreFn | None = None,
    higher_is_better: bool = True,
    ties: str | None = None,
    chunk: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Both directions' 0-based ranks from one chunked pass over the score matrix.

    images: (N, d) float32, one row per image; captions: (5N, d) float32, captions
    5i..5i+4 belong to image i (other dtypes go to `score` as given, or become float32
    for the default).
    score: ``score(im_chunk (c, d), captions (5N, d)) -> (c, 5N)``, a deterministic
    function; default the float32 dot product. Set ``higher_is_better=False`` for errors
    (order-embedding).
    ties: "last" or "first" (see the module docstring); default "last" for scores and
    "first" for errors, the rule of the original that used each.
    chunk: image rows per chunk; default about 64 MB of scores.
    Returns i2t: (N,) int64, the best rank of each image's captions among all 5N, and
    t2i: (5N,) int64, the rank of each caption's image among all N.

    Every score, the ground truths included, is the matrix's own entry: two products of
    the same vectors can differ in the last bits. Columns whose ground truth lies in a
    later chunk are first compared against a provisional value (from a product of a few
    images); entries near it are kept and settled once the matrix's value is known, and
    any column the provisional value misjudged is counted again in a second pass.
    """
    images, captions = _check(images, captions)
    if ties is None:
        ties = "last" if higher_is_better else "first"
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if score is None:
        images = np.ascontiguousarray(images, np.float32)
        captions = np.ascontiguousarray(captions, np.float32)
        if not (np.isfinite(images).all() and np.isfinite(captions).all()):
            raise ValueError("images or captions hold NaN or infinite values")
    n, m = len(images), len(captions)

    provisional = _gt_scores(score or _dot, images, captions).reshape(-1)  # (5N,)
    dtype = provisional.dtype
    if chunk is None:
        chunk = default_chunk(m, dtype.itemsize)
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive number of image rows, got {chunk!r}")
    chunk = min(int(chunk), n)

    # A candidate is ahead of the ground truth if strictly better, or equal and on the
    # winning side of it by index. Strictly better is >= the next representable score:
    # x > g  <=>  x >= nextafter(g, +inf). So every comparison is one `geq` against a
    # threshold, and each query's candidates split into two runs of indices: those
    # before a split point and those after it, each with one threshold.
    geq = np.greater_equal if higher_is_better else np.less_equal
    toward = dtype.type(np.inf if higher_is_better else -np.inf)
    last = ties == "last"

    # t2i: caption c's own image c // 5; for image row i, captions of earlier images
    # (c < 5i) have their image before i, those from 5i + 5 on after it. Thresholds of
    # columns whose ground truth is not yet known: beyond the band, surely ahead.
    t2i_split = 5 * np.arange(n) + (0 if last else 5)
    delta = _band(provisional)
    lo, hi = provisional - delta, provisional + delta
    gt = np.empty(m, dtype)  # the matrix's own ground-truth scores
    t2i_before = np.empty(m, dtype)  # set for a column once its image's chunk is scored
    t2i_after = np.nextafter(hi if higher_is_better else lo, toward)
    band: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (image, caption, score)
    kept = 0

    i2t = np.empty(n, np.int64)
    t2i = np.zeros(m, np.int64)
    buf = np.empty((chunk, m), dtype) if score is None else None
    mask = np.empty((chunk, m), bool)  # t2i: image row r ahead for caption c
    ahead = np.empty(m, bool)  # i2t: caption ahead for the current image
    for a, b, sc in _chunks(score, images, captions, chunk, dtype, buf):
        c = b - a
        own = sc[np.repeat(np.arange(c), 5), np.arange(5 * a, 5 * b)]  # (5c,)
        if not np.isfinite(own).all():
            raise ValueError("the score of an image with one of its own captions is not finite")
        gt[5 * a : 5 * b] = own
        strict = np.nextafter(own, toward)
        t2i_before[5 * a : 5 * b], t2i_after[5 * a : 5 * b] = (own, strict) if last else (
            strict, own)
        # i2t: each image's best ground truth (the one ranked first among its five) decides;
        # "last": captions up to the best (itself included, never counted) must beat it
        # strictly, later ones may tie; "first": earlier captions may tie, the rest must beat.
        own = own.reshape(c, 5)
        extreme = own.max(axis=1) if higher_is_better else own.min(axis=1)
        hit = own == extreme[:, None]
        t = 4 - np.argmax(hit[:, ::-1], axis=1) if last else np.argmax(hit, axis=1)
        i2t_split = 5 * np.arange(a, b) + t + (1 if last else 0)
        v_strict = np.nextafter(extreme, toward)
        i2t_before, i2t_after = (v_strict, extreme) if last else (extreme, v_strict)
        for r, i in enumerate(range(a, b)):
            row = sc[r]
            k = i2t_split[r]
            geq(row[:k], i2t_before[r], out=ahead[:k])
            geq(row[k:], i2t_after[r], out=ahead[k:])
            i2t[i] = np.count_nonzero(ahead)
            k = t2i_split[i]
            geq(row[:k], t2i_before[:k], out=mask[r, :k])
            geq(row[k:], t2i_after[k:], out=mask[r, k:])
        t2i += _count_columns(mask[:c])
        if 5 * b < m and kept <= BAND_BUDGET:
            later = sc[:, 5 * b :]
            near = (later >= lo[5 * b :]) & (later <= hi[5 * b :])
            rows, cols = np.nonzero(near)
            band.append((a + rows, 5 * b + cols, later[rows, cols]))
            kept += len(rows)

    # Settle the kept entries against the matrix's ground truths. Their image comes before
    # the caption's own, so a tie puts it ahead only under "first".
    provisional_cols = np.arange(m) >= 5 * chunk
    if kept <= BAND_BUDGET:
        recount = provisional_cols & ~((lo <= gt) & (gt <= hi))
        if band:
            _, col, x = (np.concatenate(z) for z in zip(*band, strict=True))
            g = gt[col]
            win = (x > g) if higher_is_better else (x < g)
            if not last:
                win |= x == g
            t2i += np.bincount(col[win & ~recount[col]], minlength=m)
    else:
        recount = provisional_cols
    if recount.any():
        cols = np.flatnonzero(recount)
        t2i[cols] = _recount_t2i(score, images, captions, chunk, dtype, buf, cols, gt,
                                 t2i_split, t2i_before, t2i_after, geq)
    return i2t, t2i


def _chunks(score, images, captions, chunk, dtype, buf):
    """(a, b, scores of images a..b-1 against all captions: (b - a, 5N)), chunk by chunk."""
    n = len(images)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        if score is None:
            sc = np.matmul(images[a:b], captions.T, out=buf[: b - a])
        else:
            sc = _scores(score, images[a:b], captions, dtype)
            if np.isnan(sc).any():
                raise ValueError(f"score returned NaN for images {a}..{b - 1}")
            if not (sc.flags.writeable and sc.flags.owndata):
                sc = sc.copy()
        yield a, b, sc


def _recount_t2i(score, images, captions, chunk, dtype, buf, cols, gt, split, before, after,
                 geq) -> np.ndarray:
    """t2i ranks of the captions `cols`, counted in a second pass over the same chunks."""
    counts = np.zeros(len(cols), np.int64)
    for a, b, sc in _chunks(score, images, captions, chunk, dtype, buf):
        own = sc[np.repeat(np.arange(b - a), 5), np.arange(5 * a, 5 * b)]
        if not np.array_equal(own, gt[5 * a : 5 * b]):
            raise ValueError("score gave different values for the same images and captions")
        first = cols[None, :] < split[a:b, None]  # (c, len(cols)): column before the split
        thresholds = np.where(first, before[cols], after[cols])
        counts += np.count_nonzero(geq(sc[:, cols], thresholds), axis=0)
    return counts


def recall_metrics(ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (percent), median and mean rank (1-based) of 0-based ranks: (Q,)."""
    r = np.asarray(ranks)
    if r.ndim != 1 or len(r) == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array, got shape {r.shape}")
    out = {f"r{k}": 100.0 * int(np.count_nonzero(r < k)) / len(r) for k in (1, 5, 10)}
    out["medr"] = float(np.floor(np.median(r)) + 1)
    out["meanr"] = float(r.mean() + 1)
    return out


def recall_summary(i2t_ranks: np.ndarray, t2i_ranks: np.ndarray) -> dict:
    """{'i2t': recall_metrics, 't2i': recall_metrics, 'rsum': R@1+R@5+R@10 summed both ways}."""
    out = {"i2t": recall_metrics(i2t_ranks), "t2i": recall_metrics(t2i_ranks)}
    out["rsum"] = sum(out[d][k] for d in ("i2t", "t2i") for k in ("r1", "r5", "r10"))
    return out


def mean_of_folds(results: list[dict]) -> dict:
    """The mean of per-fold `recall_summary` results, metric by metric."""
    mean = {d: {k: float(np.mean([r[d][k] for r in results])) for k in results[0][d]}
            for d in ("i2t", "t2i")}
    mean["rsum"] = float(np.mean([r["rsum"] for r in results]))
    return mean


def five_folds(n_images: int, where: str | None = None) -> list[tuple[slice, slice]]:
    """[(image rows, their caption rows)] of 5 equal folds (COCO 1K); UVSError naming `where`
    when n_images does not split evenly."""
    if n_images % 5:
        raise UVSError(where, f"{n_images} images do not split into 5 equal folds")
    size = n_images // 5
    return [(slice(f * size, (f + 1) * size), slice(5 * f * size, 5 * (f + 1) * size))
            for f in range(5)]


def tie_rule(layout: str) -> str:
    """The ties of the original evaluation of a data set's layout (`uvs.datasets.layout`):
    'last' for visual-semantic-embedding's ('vse'), 'first' for order-embedding's."""
    return "last" if layout == "vse" else "first"


def top_k(scores: np.ndarray, k: int, ties: str = "first") -> np.ndarray:
    """Indices of the k best scores of each row, best first: (rows, k) int64, or (k,) for a
    1-D row.

    scores: (rows, m) or (m,), higher is better; among equal scores `ties="first"` puts the
    lower index first, `"last"` the higher, as the originals' argsorts did.
    """
    scores = np.asarray(scores)
    if scores.ndim == 1:
        return top_k(scores[None], k, ties)[0]
    rows, m = scores.shape
    k = max(min(k, m), 0)
    out = np.empty((rows, k), np.int64)
    if k == 0:
        return out
    for r in range(rows):
        row = scores[r]
        kth = -np.partition(-row, k - 1)[k - 1]
        idx = np.flatnonzero(row >= kth)  # every candidate tied with the k-th too
        tie = -idx if ties == "last" else idx
        out[r] = idx[np.lexsort((tie, -row[idx]))][:k]
    return out


def _per_image(images: np.ndarray, captions: np.ndarray) -> np.ndarray:
    """One row per image from caption-aligned (5N, d) rows (every 5th) or per-image (N, d)."""
    images, captions = np.asarray(images), np.asarray(captions)
    if images.ndim == 2 and len(images) == len(captions) and len(images) % 5 == 0:
        return images[::5]
    return images


def _metrics_tuple(r: np.ndarray) -> tuple[float, float, float, float, float]:
    m = recall_metrics(r)
    return m["r1"], m["r5"], m["r10"], m["medr"], m["meanr"]


def _npts(npts: int | None, n: int) -> int:
    if npts is None:
        return n
    if int(npts) != npts or not 1 <= npts <= n:
        raise ValueError(f"npts must be between 1 and {n}, got {npts!r}")
    return int(npts)


def i2t(
    images: np.ndarray, captions: np.ndarray, npts: int | None = None, **kw
) -> tuple[float, float, float, float, float]:
    """Image-to-text (r1, r5, r10, medr, meanr), as the original ``i2t``.

    images: (5N, d) caption-aligned (row 5i is image i) or (N, d); captions: (5N, d).
    npts: score only the first `npts` images as queries (against all captions).
    Other keywords go to `ranks`.
    """
    ims = _per_image(images, captions)
    k = _npts(npts, len(ims))
    r, _ = ranks(ims, captions, **kw)
    return _metrics_tuple(r[:k])


def t2i(
    images: np.ndarray, captions: np.ndarray, npts: int | None = None, **kw
) -> tuple[float, float, float, float, float]:
    """Text-to-image (r1, r5, r10, medr, meanr), as the original ``t2i``.

    images: (5N, d) caption-aligned (row 5i is image i) or (N, d); captions: (5N, d).
    npts: use only the captions of the first `npts` images as queries (against all images).
    Other keywords go to `ranks`.
    """
    ims = _per_image(images, captions)
    k = _npts(npts, len(ims))
    _, r = ranks(ims, captions, **kw)
    return _metrics_tuple(r[: 5 * k])
