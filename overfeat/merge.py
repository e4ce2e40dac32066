"""Combining predictions: the greedy merge of bounding boxes, §4.3 (FACTS §6.4).

The paper's loop over the set B of predicted boxes:

    (e) (b1*, b2*) = argmin over b1 ≠ b2 ∈ B of match_score(b1, b2)
    (f) if match_score(b1*, b2*) > t, stop
    (g) otherwise B ← B \\ {b1*, b2*} ∪ box_merge(b1*, b2*)

and "the merged bounding boxes with maximum class scores [...] computed by cumulatively adding
the detection class outputs associated with the input windows from which each bounding box was
predicted." The paper names neither the score's exact form nor t; the decisions made here are
MATCH_SCORE, MERGE_THRESHOLD, BOX_MERGE and MERGED_SCORE, each explained where it is made.

:func:`greedy_merge` computes exactly what that loop computes. Pairs are keyed (score, smaller
slot, larger slot), a box's *slot* being the smallest input index behind it: ties go to the pair
whose smaller, then larger, index comes first, and a merged box keeps the smaller index. A
score is computed from the same per-box terms, in the same order of operations, as
:func:`match_score` (:func:`_feature_scores`), so it has the loop's bits; the merges are the
loop's, in the loop's order. Two ways get there:

- **small sets** (≤ _DENSE_MAX boxes, :func:`_dense_merge`): the loop itself, over the matrix of
  every pair's score, each row's minimum kept; a merge rescores one row and column. Cost
  O(N²) time and memory.
- **large sets** (:class:`_Merger`) score only pairs that can merge, and take many of the
  loop's merges per numpy batch:

  - *windows*: a pair scoring ≤ τ < 1 has IoU ≥ 1 − τ, so each side of one box is at least
    1 − τ times the other's, and its centres are close: with offset u along x and W the sum of
    the widths, IoU ≤ (W − 2u) / (W + 2u) and the score ≥ u / mean side + 4u / (W + 2u)
    (:func:`_windows`). A box's partners scoring ≤ τ have their centres in a window around its
    own, found in a :class:`_CentreIndex` (centres by horizontal strip, then x);
  - *levels*: pairs are looked for at τ = t·_LEVELS in turn, each time over the boxes of B
    then, each pair once (:func:`_level_pairs`); a merged box is scored against the boxes of B
    when made. So at level τ every pair of B scoring ≤ τ is known, while a box merged early
    was never scored against partners it was too far from to merge soon;
  - *rounds*: the known pairs wait in a :class:`_PairQueue`, the lowest sorted in its front. A
    round runs the loop itself, in Python, over the front's first pairs and, in a heap, over
    the pairs of the boxes it makes, up to a *horizon*: the key of the last front pair it
    looks at (its first run, a few dozen merges at most, decides which boxes to score first).
    The boxes a run makes unscored are scored in one batch (their windows in the index, and
    the round's other boxes); the loop runs again from the first merge one of their pairs
    would have come before (:meth:`_Merger._first_change`). Once a run makes only scored
    boxes, every pair of B with a key ≤ the horizon was in the front or the heap at its turn:
    each merge was the loop's argmin, and the round's merges are committed together. A round
    takes as many runs as its longest chain of merges built on its own merges: a few on
    realistic sets, one per merge where one box absorbs the others one at a time.

  Cost: per level, a window query per box of B and a score per pair found; per merged box, a
  window query and a score per box in its window; per merge, a few Python heap and set
  operations; per round, a few numpy batches. Memory: the known pairs (those of B scoring ≤
  the level), the terms of at most 2N boxes, the index.

Every window carries a relative slack of 1e-6 (they only discard pairs: a margin costs a few
scores). ``benchmarks/merge_speed.py`` times both against the literal loop.

Boxes are inclusive pixel boxes ``(x1, y1, x2, y2)``, width ``x2 − x1 + 1`` (ARCHITECTURE.md,
"Boxes"); they may be real-valued (decoded regressor outputs).
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np

__all__ = [
    "BOX_MERGE",
    "MATCH_SCORE",
    "MERGED_SCORE",
    "MERGE_THRESHOLD",
    "MergeResult",
    "box_merge",
    "greedy_merge",
    "independent_groups",
    "match_score",
]

# Decision MATCH_SCORE (§4.3: "the sum of the distance between centers of the two bounding boxes
# and the intersection area of the boxes"; sign, weights and normalisation unstated, FACTS §6.4).
# Taken literally, a larger intersection would raise the score, and the argmin would prefer
# boxes that do not overlap. We keep the paper's two terms as a sum of two dissimilarities, each
# scale-free so that boxes from every scale merge by the same rule:
#   match_score = ‖centre_a − centre_b‖ / mean side of the two boxes + (1 − IoU)
# (mean side = (w_a + h_a + w_b + h_b) / 4; IoU with the inclusive +1 widths). Identical boxes
# score 0; disjoint boxes score > 1.
MATCH_SCORE = "centre distance / mean side + (1 - IoU)"

# Decision MERGE_THRESHOLD (t, unstated): 0.5. Two boxes with the same centre merge while their
# sides differ by up to √2 ≈ 1.41 (the paper's scale step is "approximately 1.4", §4.2); two
# boxes of the same size merge while their offset is up to ~19% of the side. It must stay below 1
# so that boxes that do not intersect never merge (independent_groups and _windows rely on it).
MERGE_THRESHOLD = 0.5

# Decision BOX_MERGE (§4.3: "box merge compute the average of the bounding boxes' coordinates"):
# a merged box is the mean of ALL the input boxes behind it, i.e. the two boxes' means weighted
# by how many inputs each holds. The plain mean of the two would give the last box merged into a
# cluster of fifty half the weight, and make the result depend on the order of the merges; the
# weighted mean is the average of the predicted boxes' coordinates whatever that order.
BOX_MERGE = "mean of the member boxes"

# Decision MERGED_SCORE (§4.3: "cumulatively adding the detection class outputs associated with
# the input windows"): a merged box's score is the plain sum of its input boxes' scores.
MERGED_SCORE = "sum of the member scores"


# The rest only sets how fast the loop's result is reached, never the result.
# The levels, as fractions of t, at which the pairs of B are looked for: a lower first level
# scores fewer pairs of boxes that merge early, each level costs one pass over B.
_LEVELS = (0.2, 0.4, 0.7, 1.0)
# A round's first run takes this many merges at most (then twice its last round's count, within
# the bounds below), and the round looks this many front pairs ahead per such merge.
_FIRST_MERGES, _MIN_MERGES, _MAX_MERGES = 32, 8, 128
_FRONT_PER_MERGE = 8
# The front is refilled to this many pairs, or four per merge of a round.
_FRONT_PAIRS = 64
# A round commits what is certain after this many runs, at least 2 (each run after the first
# knows the pairs of the boxes the previous one made).
_ROUND_RUNS = 8
# Window queries of a level pass run this many boxes at a time, and scores this many pairs: a
# chunk's temporaries stay in the CPU's caches.
_QUERY_CHUNK, _SCORE_CHUNK = 256, 4096
# The index's strips are this many median window half-heights high: lower strips fit the
# windows closer, at more runs of entries per window.
_STRIP_HEIGHT = 0.5
# Sets of at most this many boxes are merged over the matrix of all their pairs' scores
# (_dense_merge): below it, the rounds' fixed costs outweigh scoring every pair.
_DENSE_MAX = 200
# Relative slack on every window (the windows only discard pairs; a margin costs a few scores).
_SLACK = 1e-6

# The per-box terms of match_score, the columns of a (G, 8) table of terms (see _features).
_X1, _Y1, _X2, _Y2, _CX, _CY, _QUARTER_SIDES, _AREA = range(8)
# A window half-width beyond any box (finite, so that strips can be computed from it).
_EVERYWHERE = 1e150
# The terms of an emptied row: it scores +inf with every box.
_EMPTY = np.array([np.inf, np.inf, -np.inf, -np.inf, np.inf, np.inf, 0.0, 0.0])


class MergeResult(NamedTuple):
    """The output of :func:`greedy_merge`, M merged boxes from N input boxes.

    ``boxes: (M, 4)`` float64, each the mean of its input boxes (BOX_MERGE); ``scores: (M,)``
    float64, each the sum of its input boxes' scores (MERGED_SCORE); ``assignment: (N,)`` int64,
    the merged box each input box went into. Merged boxes are ordered by their first input box
    (the smallest input index behind them).
    """

    boxes: np.ndarray
    scores: np.ndarray
    assignment: np.ndarray


def match_score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """§4.3's match_score of boxes ``a: (..., 4)`` and ``b: (..., 4)`` (broadcast) → ``(...)``.

    ``‖centre_a − centre_b‖ / ((w_a + h_a + w_b + h_b) / 4) + (1 − IoU(a, b))``, inclusive
    widths ``x2 − x1 + 1`` (decision MATCH_SCORE); symmetric in a and b, bit for bit.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    wa, ha = a[..., 2] - a[..., 0] + 1, a[..., 3] - a[..., 1] + 1
    wb, hb = b[..., 2] - b[..., 0] + 1, b[..., 3] - b[..., 1] + 1
    # Per-box terms are computed once per box; every per-pair step is in place, since this
    # runs over millions of pairs (a 2-D array over its pairs, or 0-d for two boxes).
    dx = np.asarray((a[..., 0] + a[..., 2]) * 0.5 - (b[..., 0] + b[..., 2]) * 0.5)
    dy = np.asarray((a[..., 1] + a[..., 3]) * 0.5 - (b[..., 1] + b[..., 3]) * 0.5)
    dx *= dx
    dy *= dy
    dx += dy
    distance = np.sqrt(dx, out=dx)
    distance /= (wa + ha) * 0.25 + (wb + hb) * 0.25
    iw = np.asarray(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]))
    ih = np.asarray(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]))
    iw += 1
    ih += 1
    inter = np.maximum(iw, 0.0, out=iw)
    inter *= np.maximum(ih, 0.0, out=ih)
    union = np.asarray(wa * ha + wb * hb)
    union -= inter
    iou = np.divide(inter, union, out=inter)
    distance += 1.0
    distance -= iou
    return distance


def box_merge(a: np.ndarray, count_a, b: np.ndarray, count_b) -> np.ndarray:
    """§4.3's box_merge: boxes ``a, b: (..., 4)`` holding ``count_a``, ``count_b`` input boxes
    each → their mean weighted by the counts, the mean of every input box behind them
    (BOX_MERGE)."""
    count_a = np.asarray(count_a, dtype=np.float64)[..., None]
    count_b = np.asarray(count_b, dtype=np.float64)[..., None]
    return (np.asarray(a) * count_a + np.asarray(b) * count_b) / (count_a + count_b)


def _check(boxes, scores) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) as (x1, y1, x2, y2), got shape {boxes.shape}")
    if scores.shape != (len(boxes),):
        raise ValueError(f"scores must be (N,) = ({len(boxes)},), got shape {scores.shape}")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError("boxes and scores must be finite (no NaN or inf)")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        raise ValueError(
            f"{bad.size} boxes have x2 < x1 or y2 < y1, the first is boxes[{bad[0]}] = "
            f"{boxes[bad[0]].tolist()}; inclusive boxes need x2 ≥ x1 and y2 ≥ y1"
        )
    return boxes, scores


def independent_groups(boxes: np.ndarray) -> np.ndarray:
    """Labels ``(N,)`` int64 of groups of ``boxes: (N, 4)`` that never merge with each other.

    Groups are split along x, then y, then x ... wherever the boxes on one side of a gap end
    before those on the other begin (inclusive: ``x1 ≥ max x2 + 1``), until no group splits. A
    merged box's coordinates lie between its input boxes', so boxes derived on the two sides of a
    gap never intersect, and a pair without intersection scores > 1 > t (MATCH_SCORE,
    MERGE_THRESHOLD). Labels are 0..G−1; a group's boxes need not be contiguous.
    """
    n = len(boxes)
    labels = np.zeros(n, dtype=np.int64)
    if n == 0:
        return labels
    groups, unchanged = 1, 0
    axis = 0
    while unchanged < 2:  # stop once neither axis splits anything
        lo, hi = boxes[:, axis], boxes[:, axis + 2] + 1
        # Exact comparisons in rank space: the running maximum per group is taken over
        # int64 ranks offset by the group label, so groups never mix.
        values, ranks = np.unique(np.concatenate([lo, hi]), return_inverse=True)
        r_lo, r_hi = ranks[:n], ranks[n:]
        span = len(values) + 1
        order = np.lexsort((r_lo, labels))
        g = labels[order]
        run_max = np.maximum.accumulate(r_hi[order] + g * span) - g * span
        starts = np.ones(n, dtype=bool)
        starts[1:] = (g[1:] != g[:-1]) | (r_lo[order][1:] >= run_max[:-1])
        new = np.empty(n, dtype=np.int64)
        new[order] = np.cumsum(starts) - 1
        count = int(new.max()) + 1
        unchanged = unchanged + 1 if count == groups else 0
        labels, groups = new, count
        axis = 1 - axis
    return labels


def _features(boxes: np.ndarray) -> np.ndarray:
    """The per-box terms of :func:`match_score`, ``boxes: (G, 4)`` → ``(G, 8)``, one row per
    box: x1, y1, x2, y2, the centre (x, y), a quarter of width + height, and the area (inclusive
    widths), each computed as match_score computes it."""
    low, high = boxes[:, :2], boxes[:, 2:]
    sides = high - low
    sides += 1
    w, h = sides[:, :1], sides[:, 1:]
    centre = low + high
    centre *= 0.5
    return np.concatenate([boxes, centre, (w + h) * 0.25, w * h], axis=1)


def _feature_scores(a, b) -> np.ndarray:
    """:func:`match_score` from :func:`_features` terms: ``a``, ``b`` index 0..7 to ``(P,)``
    arrays (the columns of ``(P, 8)`` tables, transposed) → ``(P,)``. The same operations as
    match_score in the same order, hence the same bits (each step is one correctly rounded IEEE
    operation)."""
    distance = a[_CX] - b[_CX]
    distance *= distance
    dy = a[_CY] - b[_CY]
    dy *= dy
    distance += dy
    np.sqrt(distance, out=distance)
    distance /= a[_QUARTER_SIDES] + b[_QUARTER_SIDES]
    iw = np.minimum(a[_X2], b[_X2])
    iw -= np.maximum(a[_X1], b[_X1])
    ih = np.minimum(a[_Y2], b[_Y2])
    ih -= np.maximum(a[_Y1], b[_Y1])
    iw += 1
    ih += 1
    inter = np.maximum(iw, 0.0, out=iw)
    inter *= np.maximum(ih, 0.0, out=ih)
    union = a[_AREA] + b[_AREA]
    union -= inter
    iou = np.divide(inter, union, out=inter)
    distance += 1.0
    distance -= iou
    return distance


class _Windows(NamedTuple):
    """Centre windows around ``G`` boxes (:func:`_windows`): half-widths ``rx, ry: (G,)``; the
    mean side ``m: (G,)`` and the sum of heights ``hh: (G,)`` with the largest partner allowed;
    the level ``tau`` they hold, with its slack."""

    rx: np.ndarray
    ry: np.ndarray
    m: np.ndarray
    hh: np.ndarray
    tau: float


def _windows(terms: np.ndarray, level: float) -> _Windows:
    """The centre windows around the boxes ``terms: (G, 8)`` (:func:`_features` terms, one row
    per box) that hold the centre of every box scoring ≤ ``level`` with them.

    Along x, for boxes a, b with centre offset u and W = w_a + w_b: the intersection is at most
    (W/2 − u)·min(h) and the areas add to at least min(h)·W, so IoU ≤ (W − 2u) / (W + 2u) and
    match_score ≥ u / M + 4u / (W + 2u), M the mean side. A pair scoring ≤ τ has IoU ≥ 1 − τ,
    hence each side of the partner at most 1 / (1 − τ) times the box's own; with the partner
    that large the bound is lowest, and u / M + 4u / (W + 2u) = τ (a quadratic in u) gives the
    largest offset left. Likewise along y; with both offsets, match_score ≥ √(u² + v²) / M +
    4v / (H + 2v) also bounds u given v (:meth:`_CentreIndex.query`). ``level`` and every
    bound carry the relative slack _SLACK.
    """
    tau = max(level, 0.0) + _SLACK
    theta = 1.0 - tau
    w = terms[:, _X2] - terms[:, _X1] + 1
    h = terms[:, _Y2] - terms[:, _Y1] + 1
    if theta <= 0:  # any intersecting pair may score ≤ τ: the windows hold every box
        everywhere = np.full_like(w, _EVERYWHERE)
        return _Windows(everywhere, everywhere, everywhere, everywhere, tau)
    grow = 1.0 + 1.0 / theta
    mean_side = (w + h) * (grow / 4)

    def largest_offset(both: np.ndarray) -> np.ndarray:
        b = both + (4 - 2 * tau) * mean_side
        return (np.sqrt(b * b + 8 * tau * mean_side * both) - b) * ((1 + _SLACK) / 4) + _SLACK

    hh = h * grow
    return _Windows(largest_offset(w * grow), largest_offset(hh), mean_side, hh, tau)


def _pair_scores(
    terms_a: np.ndarray, a: np.ndarray, terms_b: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """:func:`match_score` of the boxes ``terms_a[a]`` and ``terms_b[b]`` (:func:`_features` rows, ``a``,
    ``b``: ``(P,)`` indices) → ``(P,)``, a chunk of pairs at a time (the temporaries stay in
    cache: several times faster than one call over a large P)."""
    out = np.empty(len(a))
    for start in range(0, len(a), _SCORE_CHUNK):
        part = slice(start, start + _SCORE_CHUNK)
        terms = np.take(terms_a, a[part], axis=0).T
        out[part] = _feature_scores(terms, np.take(terms_b, b[part], axis=0).T)
    return out


class _CentreIndex:
    """Boxes (their rows in a table of terms, one per box for its life) sorted by the
    horizontal strip of ``height`` that holds their centre, then by centre x: the boxes whose
    centre lies in a window are one contiguous run per strip the window spans.

    ``key: (E,)`` sorted, ``row: (E,)`` the box of each entry. Entries of boxes merged away
    since the index was built stay until it is rebuilt (an emptied row scores +inf).
    """

    def __init__(self, terms: np.ndarray, rows: np.ndarray, height: float, eps: float):
        cx, cy = terms[rows, _CX], terms[rows, _CY]
        self.x0, self.y0 = float(cx.min()), float(cy.min())
        self.width = float(cx.max()) - self.x0
        # strips lie this far apart in key space: no window spills into the next one
        self.stride = np.floor(self.width) + 2.0
        self.height = max(float(height), eps)
        self.strips = int((float(cy.max()) - self.y0) // self.height) + 1
        key = self._key(cx, cy)
        order = np.argsort(key, kind="stable")
        self.key, self.row = key[order], rows[order]
        self.eps = max(eps, 8 * float(np.spacing(self.strips * self.stride)))
        self.stale = 0

    def _strip(self, cy: np.ndarray) -> np.ndarray:
        return np.clip((cy - self.y0) // self.height, 0, self.strips - 1)

    def _key(self, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        return self._strip(cy) * self.stride + np.clip(cx - self.x0, 0, self.width)

    def insert(self, rows: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> None:
        """Add boxes whose centres lie within the built extent (a merged box's do)."""
        key = self._key(cx, cy)
        order = np.argsort(key)
        key, rows = key[order], rows[order]
        at = np.searchsorted(self.key, key) + np.arange(len(key))
        old = np.ones(len(self.key) + len(key), dtype=bool)
        old[at] = False
        merged_key, merged_row = np.empty(len(old)), np.empty(len(old), dtype=np.int64)
        merged_key[old], merged_key[at] = self.key, key
        merged_row[old], merged_row[at] = self.row, rows
        self.key, self.row = merged_key, merged_row

    def query(self, cx, cy, win: _Windows, after=None, trim=True):
        """The boxes whose centre may lie in the windows ``win`` around ``Q`` centres
        ``cx, cy: (Q,)`` → ``(window, row)``, two ``(P,)`` arrays. With ``trim``, each strip
        the window spans is searched only over the x-range its nearest y leaves (worth its cost
        over many windows); with ``after: (Q,)`` entry positions, only after them."""
        first = np.maximum((cy - win.ry - self.y0) // self.height, 0).astype(np.int64)
        spans = np.minimum((cy + win.ry - self.y0) // self.height, self.strips - 1)
        spans = spans.astype(np.int64) + 1 - first
        q = np.repeat(np.arange(len(cx)), spans)
        strip = np.arange(len(q)) - np.repeat(np.cumsum(spans) - spans - first, spans)
        if trim:  # the strip's nearest y to the window's centre, and the x-offset left there
            top = self.y0 + strip * self.height - cy[q]
            v = np.maximum(np.maximum(top, -top - self.height) * (1 - _SLACK) - self.eps, 0)
            reach = np.maximum(win.tau - 4 * v / (win.hh[q] + 2 * v), 0) * win.m[q]
            reach = np.sqrt(np.maximum(reach * reach - v * v, 0)) * (1 + _SLACK)
            reach = np.minimum(reach, win.rx[q]) + self.eps
        else:
            reach = win.rx[q] + self.eps
        strip_key = strip * self.stride
        centre = cx[q] - self.x0
        lo = np.searchsorted(self.key, strip_key + np.maximum(centre - reach, 0))
        hi = np.searchsorted(self.key, strip_key + np.minimum(centre + reach, self.width), "right")
        if after is not None:
            lo = np.maximum(lo, after[q] + 1)
        count = np.maximum(hi - lo, 0)
        ends = np.cumsum(count)
        pos = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(lo - ends + count, count)
        return np.repeat(q, count), self.row[pos]


def _level_pairs(terms: np.ndarray, index: _CentreIndex, below: float, level: float):
    """The pairs of the boxes in ``index`` (their terms in ``terms: (R, 8)``) scoring in
    ``(below, level]``, each once → ``(score, row, row)``, three ``(P,)`` arrays."""
    rows = index.row
    f = terms[rows]
    win = _windows(f, level)
    found = []
    for q0 in range(0, len(rows), _QUERY_CHUNK):
        part = slice(q0, q0 + _QUERY_CHUNK)
        # a pair scoring ≤ level lies in both boxes' windows: it is taken from the box that
        # comes first in the index
        after = np.arange(q0, q0 + len(f[part]))
        part_win = _Windows(*(a[part] for a in win[:4]), win.tau)
        q, c = index.query(f[part, _CX], f[part, _CY], part_win, after)
        a = rows[q0 + q]
        score = _pair_scores(terms, a, terms, c)
        keep = np.flatnonzero((score <= level) & (score > below))
        found.append((score[keep], a[keep], c[keep]))
    return tuple(np.concatenate(p) for p in zip(*found))


class _PairQueue:
    """The known pairs of B, keyed ``(score, smaller slot, larger slot)``, each with the clock
    (merges done) at which it was found, ``born``: it is still a pair of B while neither slot
    has changed since (``stamp[slot] ≤ born``).

    ``front``: every known pair scoring ≤ ``cutoff``, sorted by key, four ``(F,)`` arrays;
    ``pool``: the others, unsorted, moved to the front a part at a time (by
    :func:`numpy.partition`), so that only pairs close to their turn are ever sorted.
    """

    def __init__(self):
        empty = np.zeros(0, np.int64)
        self.front = (np.zeros(0), empty, empty, empty)
        self.pool: list[tuple[np.ndarray, ...]] = []
        self.cutoff = -np.inf

    def add(self, score, low, high, born: int) -> None:
        if not len(score):
            return
        born = np.full(len(score), born, dtype=np.int64)
        now = score <= self.cutoff
        if now.any():
            self._to_front(score[now], low[now], high[now], born[now])
            if now.all():
                return
            later = ~now
            score, low, high, born = score[later], low[later], high[later], born[later]
        self.pool.append((score, low, high, born))

    def _to_front(self, score, low, high, born) -> None:
        """Merge pairs into the sorted front: each goes after the front's pairs of lower key
        (a search by score, then, among equal scores, by slots)."""
        order = np.lexsort((high, low, score))
        score, low, high, born = score[order], low[order], high[order], born[order]
        front_score, front_low, front_high, _ = self.front
        at = np.searchsorted(front_score, score)
        ends = np.searchsorted(front_score, score, "right")
        tied = np.flatnonzero(ends > at)
        if len(tied):  # among equal scores, (smaller slot, larger slot) decides
            wide = int(max(front_high.max(), high.max())) + 1
            for value in np.unique(score[tied]).tolist():
                same = tied[score[tied] == value]
                start, end = int(at[same[0]]), int(ends[same[0]])
                run = front_low[start:end] * wide + front_high[start:end]
                at[same] = start + np.searchsorted(run, low[same] * wide + high[same])
        at += np.arange(len(score))
        old = np.ones(len(front_score) + len(score), dtype=bool)
        old[at] = False
        merged = []
        for mine, new in zip(self.front, (score, low, high, born)):
            both = np.empty(len(old), dtype=mine.dtype)
            both[old], both[at] = mine, new
            merged.append(both)
        self.front = tuple(merged)

    def drop_gone(self, stamp: np.ndarray) -> None:
        """Drop the front's pairs one of whose boxes was merged since they were found."""
        score, low, high, born = self.front
        valid = (stamp[low] <= born) & (stamp[high] <= born)
        if not valid.all():
            self.front = (score[valid], low[valid], high[valid], born[valid])

    def refill(self, stamp: np.ndarray, want: int, level: float) -> None:
        """Bring the front up to ``want`` pairs from the pool; every pair of B scoring ≤
        ``level`` is known, so once the pool is empty the cutoff rises to ``level``."""
        if len(self.front[0]) >= want:
            return
        if len(self.pool) > 1:
            score, low, high, born = (np.concatenate(p) for p in zip(*self.pool))
        elif self.pool:
            score, low, high, born = self.pool[0]
        else:
            self.cutoff = level
            return
        valid = (stamp[low] <= born) & (stamp[high] <= born)
        score, low, high, born = score[valid], low[valid], high[valid], born[valid]
        need = want - len(self.front[0])
        now = None
        if len(score) > need:
            cutoff = float(np.partition(score, need - 1)[need - 1])
            now = score <= cutoff
            later = ~now
        if now is not None and later.any():
            self.pool = [(score[later], low[later], high[later], born[later])]
            self.cutoff = cutoff
            score, low, high, born = score[now], low[now], high[now], born[now]
        else:
            self.pool, self.cutoff = [], level
        if len(score):
            self._to_front(score, low, high, born)


class _Merger:
    """The greedy merge of ``boxes: (N, 4)`` at ``threshold`` (module docstring); :meth:`run`
    returns ``(N,)``: for each box, the slot of the merged box it ends in.

    Slot s (0..N−1) holds the box of B whose smallest input index is s, or nothing. Per slot:
    ``sums`` (four floats) and ``counts`` of its input boxes (the box is their mean),
    ``stamp: (N,)`` the clock (merges done) when it last changed, ``parent: (N,)`` the slot it
    was merged into. The boxes' terms are rows of ``terms: (R, 8)``, one per box for its life
    (N input boxes, then the boxes made, 2N rows at first); ``row_slot`` and ``slot_row`` map
    between the two; an emptied row is +inf.
    """

    def __init__(self, boxes: np.ndarray, threshold: float):
        n = self.n = len(boxes)
        self.sums = boxes.tolist()
        self.counts = [1.0] * n
        self.stamp = np.zeros(n, dtype=np.int64)
        self.parent = np.arange(n)
        self.clock = 0
        self.terms = np.empty((2 * n, 8))
        self.terms[:n] = _features(boxes)
        self.used = n
        self.row_slot = np.empty(2 * n, dtype=np.int64)
        self.row_slot[:n] = np.arange(n)
        self.slot_row = np.arange(n)
        # absolute slack on centre offsets: rounding errors of the largest coordinate
        self.eps = 1e-9 * (float(np.abs(boxes).max()) + 1)
        self.levels = [threshold * f for f in _LEVELS] if threshold > 0 else [threshold]
        self.level_at, self.level = -1, -np.inf
        self.index: _CentreIndex | None = None
        self.queue = _PairQueue()
        self.budget = _FIRST_MERGES

    def run(self) -> np.ndarray:
        while True:
            self.queue.refill(self.stamp, max(_FRONT_PAIRS, 4 * self.budget), self.level)
            if len(self.queue.front[0]):
                self._round()
            elif self.level_at + 1 < len(self.levels):
                self._next_level()
            else:  # no pair of B scores ≤ t: step (f) stops
                return _resolve(self.parent)

    def _index(self, height: float | None = None) -> _CentreIndex:
        rows = np.flatnonzero(self.terms[: self.used, _X1] < np.inf)
        if height is None:
            height = _STRIP_HEIGHT * float(np.median(_windows(self.terms[rows], self.level).ry))
            height = max(height, 1.0)
        return _CentreIndex(self.terms, rows, height, self.eps)

    def _next_level(self) -> None:
        """Raise the level: the pairs of B scoring between the old level and the new one join
        the queue (every pair scoring less is known already)."""
        below = self.level
        self.level_at += 1
        self.level = self.levels[self.level_at]
        self.index = self._index()
        score, a, b = _level_pairs(self.terms, self.index, below, self.level)
        a, b = self.row_slot[a], self.row_slot[b]
        self.queue.add(score, np.minimum(a, b), np.maximum(a, b), self.clock)

    def _round(self) -> None:
        """Run §4.3's loop over the front's first pairs and the pairs of the boxes it makes,
        up to the last front pair's key; score the boxes it made unscored and run again from
        the first merge their pairs change, until every box made is scored; commit the merges
        (module docstring)."""
        n = self.n
        front_score, front_low, front_high, _ = self.queue.front
        size = min(len(front_score), _FRONT_PER_MERGE * self.budget)
        fs, fl, fh = (a[:size].tolist() for a in (front_score, front_low, front_high))
        sums, counts = self.sums, self.counts
        # The boxes the round makes get ids n, n + 1, ... (the boxes of B at its start are
        # their slots): made[pair x, y] is the id of box_merge(x, y).
        made: dict[int, int] = {}
        made_slot: list[int] = []
        made_sums: list[list[float]] = []
        made_count: list[float] = []
        scored = 0  # the boxes made with ids < n + scored have their pairs known
        near: dict[int, list[tuple[float, int]]] = {}  # id → its pairs scoring ≤ the horizon
        found: list[tuple[np.ndarray, ...]] = []  # (score, id, partner id) of every pair ≤ level
        heappush, heappop = heapq.heappush, heapq.heappop
        # the run's state: the front position, the boxes merged away, the boxes made that are
        # in B, a heap of their pairs (score, smaller slot, larger slot, id, partner id), and
        # the merges: x, y, made id (three ints each, flat), key, front position after
        at, gone, alive, heap = 0, set(), set(), []
        xyz: list[int] = []
        keys: list[tuple[float, int, int]] = []
        ats: list[int] = []
        # Every pair of B with a key up to the last front pair looked at is known: the front's
        # are in it, the boxes made have theirs scored up to the level.
        horizon = (fs[-1], fl[-1], fh[-1])
        key = None
        wide = 4 * n  # pair (x, y), x < y, as the number x·wide + y: ids stay below 3N
        runs = max(_ROUND_RUNS, 2)  # the second run always commits its first merge
        for run in range(runs):
            unscored = None  # where the first box made unscored was made
            first_unscored = n + scored
            limit = self.budget if run == 0 else n
            while len(keys) < limit:
                while at < size and (fl[at] in gone or fh[at] in gone):
                    at += 1
                while heap and (heap[0][3] in gone or heap[0][4] in gone):
                    heappop(heap)
                if at < size:
                    key = (fs[at], fl[at], fh[at])
                    if heap and heap[0] < key:  # (live pairs never share both slots)
                        top = heappop(heap)
                        key, x, y = top[:3], top[3], top[4]
                    else:
                        x, y = key[1], key[2]
                        at += 1
                elif heap:
                    top = heappop(heap)
                    key, x, y = top[:3], top[3], top[4]
                else:
                    break
                if key > horizon:
                    break
                gone.add(x)
                gone.add(y)
                if x >= n:
                    alive.discard(x)
                if y >= n:
                    alive.discard(y)
                pair = x * wide + y if x < y else y * wide + x
                z = made.get(pair)
                if z is None:  # box_merge(x, y): the sums and counts of their input boxes
                    z = n + len(made_slot)
                    made[pair] = z
                    made_slot.append(key[1])
                    sx = sums[x] if x < n else made_sums[x - n]
                    sy = sums[y] if y < n else made_sums[y - n]
                    made_sums.append([sx[0] + sy[0], sx[1] + sy[1], sx[2] + sy[2], sx[3] + sy[3]])
                    made_count.append((counts[x] if x < n else made_count[x - n])
                                      + (counts[y] if y < n else made_count[y - n]))  # fmt: skip
                if z >= first_unscored:
                    if unscored is None:
                        unscored = len(keys)
                else:
                    zs = key[1]
                    for s, p in near.get(z, ()):
                        if p < n:
                            if p in gone:
                                continue
                            ps = p
                        elif p in alive:
                            ps = made_slot[p - n]
                        else:
                            continue
                        heappush(heap, (s, zs, ps, z, p) if zs < ps else (s, ps, zs, z, p))
                alive.add(z)
                xyz += (x, y, z)
                keys.append(key)
                ats.append(at)
            if unscored is None:  # every box made was scored: these are the loop's merges
                break
            if run == runs - 1:  # commit what is certain: the merges before that box
                del xyz[3 * unscored :], keys[unscored:]
                break
            new = self._score_made(made_sums, made_count, scored, horizon[0], near, found)
            scored = len(made_slot)
            # Run again from the first merge one of the new pairs would have come before: up
            # to it, the run is what it was.
            again = self._first_change(xyz, keys, new, made_slot, horizon)
            del xyz[3 * again :], keys[again:], ats[again:]
            at = ats[-1] if ats else 0
            gone = set(xyz[0::3]) | set(xyz[1::3])
            alive = set(xyz[2::3]) - gone
            heap = []
            for z in alive:
                zs = made_slot[z - n]
                for s, p in near.get(z, ()):
                    if p < n:
                        if p in gone:
                            continue
                        ps = p
                    elif p in alive:
                        ps = made_slot[p - n]
                    else:
                        continue
                    heap.append((s, zs, ps, z, p) if zs < ps else (s, ps, zs, z, p))
            heapq.heapify(heap)
        self._commit(np.array(xyz, dtype=np.int64).reshape(-1, 3), made_slot, made_sums,
                     made_count, scored, found)  # fmt: skip
        grown = 2 * len(keys) if len(keys) >= self.budget else len(keys) + 4
        self.budget = min(_MAX_MERGES, max(_MIN_MERGES, grown))

    def _first_change(self, xyz, keys, new, made_slot, horizon) -> int:
        """The first step at which a run knowing the ``new`` pairs (``(id, partner id, score)``
        arrays, of boxes made unscored in the merges ``xyz``, ``keys``) would part from them:
        the first moment one of the pairs exists and is below the merge taken (or ≤ the
        horizon, past the last merge)."""
        n, last = self.n, len(keys)
        z, p, score = new
        merged = np.array(xyz, dtype=np.int64).reshape(-1, 3)
        steps = np.arange(last)
        made_at = np.full(n + len(made_slot), last + 1)  # a box never made here: never exists
        made_at[merged[:, 2]] = steps
        made_at[:n] = -1  # the boxes of B exist from the start
        gone_at = np.full(n + len(made_slot), last)
        gone_at[merged[:, 0]] = steps
        gone_at[merged[:, 1]] = steps
        exists = np.maximum(made_at[z], made_at[p]) + 1
        until = gone_at[p]
        can = np.flatnonzero(exists <= until)
        can = can[np.argsort(exists[can], kind="stable")]
        slot = np.concatenate([np.arange(n), made_slot])
        first = last
        for i in can.tolist():
            start = int(exists[i])
            if start >= first:
                break
            zs, ps = int(slot[z[i]]), int(slot[p[i]])
            key = (float(score[i]), min(zs, ps), max(zs, ps))
            t, stop = start, min(first, int(until[i]) + 1)
            while t < stop and t < last and keys[t] < key:
                t += 1
            if t < stop and (t < last or key <= horizon):
                first = t
        return first

    def _score_made(self, made_sums, made_count, first, horizon, near, found):
        """Score the boxes made with ids ``n + first`` on, giving them the rows after
        ``used``: against the boxes of B (their windows in the index) and the boxes made so far
        (their windows, directly). Every pair scoring ≤ the level goes to ``found`` as
        ``(score, id, partner id)``; those ≤ ``horizon`` also to ``near``, both ways, and are
        returned as three arrays (id, partner id, score)."""
        n, base = self.n, self.used
        count = len(made_sums) - first
        rows = np.arange(base + first, base + first + count)
        if rows[-1] >= len(self.terms):  # more boxes made than merges left: room for them
            grow = max(len(self.terms) // 2, count)
            self.terms = np.concatenate([self.terms, np.empty((grow, 8))])
            self.row_slot = np.concatenate([self.row_slot, np.empty(grow, dtype=np.int64)])
        sums = np.array(made_sums[first:])
        self.terms[rows] = _features(sums / np.array(made_count[first:])[:, None])
        self.row_slot[rows] = np.arange(n + first, n + first + count)  # ids, until committed
        new = self.terms[rows]
        win = _windows(new, self.level)
        q, row = self.index.query(new[:, _CX], new[:, _CY], win, trim=False)
        live = np.flatnonzero(self.terms[row, _X1] < np.inf)  # not merged away since indexed
        q, row = q[live], row[live]
        # the boxes made so far: those scored before, and those of this batch after each
        made = self.terms[base : base + first + count]
        close = np.abs(made[:, _CX] - new[:, None, _CX]) <= win.rx[:, None]
        close &= np.abs(made[:, _CY] - new[:, None, _CY]) <= win.ry[:, None]
        close[:, first:] &= np.arange(count)[:, None] < np.arange(count)
        q2, j = np.nonzero(close)
        q = np.concatenate([q, q2])
        row = np.concatenate([row, j + base])
        score = _pair_scores(new, q, self.terms, row)
        keep = np.flatnonzero(score <= self.level)
        score, q, row = score[keep], q[keep], row[keep]
        ids = q + (n + first)
        partner = self.row_slot[row]
        found.append((score, ids, partner))
        close = np.flatnonzero(score <= horizon)
        new = ids[close], partner[close], score[close]
        for z, p, s in zip(*(a.tolist() for a in new)):
            near.setdefault(z, []).append((s, p))
            if p >= n:
                near.setdefault(p, []).append((s, z))
        return new

    def _commit(self, merged, made_slot, made_sums, made_count, scored, found) -> None:
        """Apply the merges ``merged: (S, 3)`` (x, y, made id; in the loop's order) to B: the
        boxes made that stay in B keep their rows, the others' are emptied; queue the pairs
        of the boxes made with the boxes of B."""
        n, steps, base = self.n, len(merged), self.used
        slot = np.concatenate([np.arange(n), np.array(made_slot, dtype=np.int64)])
        x, y = merged[:, 0], merged[:, 1]
        low, high = np.minimum(slot[x], slot[y]), np.maximum(slot[x], slot[y])
        when = np.arange(self.clock + 1, self.clock + steps + 1)
        np.maximum.at(self.stamp, low, when)
        self.stamp[high] = when
        self.parent[high] = low
        inputs = merged[:, :2].ravel()
        self.terms[self.slot_row[inputs[inputs < n]]] = _EMPTY
        kept = np.zeros(scored, dtype=bool)
        kept[merged[:, 2] - n] = True
        kept[inputs[inputs >= n] - n] = False
        ids = np.flatnonzero(kept)
        self.terms[base + np.flatnonzero(~kept)] = _EMPTY
        slots = slot[n:]
        rows = base + ids
        self.row_slot[rows] = slots[ids]
        self.slot_row[slots[ids]] = rows
        for i, s in zip(ids.tolist(), slots[ids].tolist()):
            self.sums[s], self.counts[s] = made_sums[i], made_count[i]
        self.used = base + scored
        self.index.insert(rows, self.terms[rows, _CX], self.terms[rows, _CY])
        self.index.stale += int((inputs < n).sum())
        if 2 * self.index.stale > len(self.index.key):
            self.index = self._index(self.index.height)
        before, self.clock = self.clock, self.clock + steps
        if found and len(ids):
            score, z, p = (np.concatenate(part) for part in zip(*found))
            made = p >= n
            mine = np.where(made, p - n, 0)
            # both boxes still in B: a made box kept, a box of B whose slot is as it was
            same = self.stamp[np.where(made, 0, p)] <= before
            both = np.flatnonzero(kept[z - n] & np.where(made, kept[mine], same))
            a = slots[z[both] - n]
            b = np.where(made[both], slots[mine[both]], p[both])
            self.queue.add(score[both], np.minimum(a, b), np.maximum(a, b), self.clock)
        self.queue.drop_gone(self.stamp)


def _dense_merge(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """The greedy merge of a small set ``boxes: (G, 4)`` by §4.3's loop itself, over the matrix
    of every pair's score → ``(G,)``, the slot of the merged box each box ends in.

    ``scores[a, b]`` (a < b; +inf where the pair scores > t or a slot is empty) with each row's
    minimum and its first column: the first row holding the smallest minimum is the loop's pair
    (score, smaller slot, larger slot). A merge rescores its box's row and column and rescans
    only the rows whose minimum was in a changed column.
    """
    g = len(boxes)
    terms = _features(boxes)
    scores = np.full((g, g), np.inf)
    a, b = np.triu_indices(g, 1)
    pair = _pair_scores(terms, a, terms, b)
    scores[a, b] = np.where(pair <= threshold, pair, np.inf)
    best = scores.argmin(axis=1)
    least = scores[np.arange(g), best]
    sums, counts = boxes.tolist(), [1.0] * g
    parent = np.arange(g)
    columns = terms.T
    while True:
        a = int(np.argmin(least))
        if not least[a] <= threshold:  # no pair of B scores ≤ t: step (f) stops
            return _resolve(parent)
        b = int(best[a])
        parent[b] = a
        sums[a] = [p + q for p, q in zip(sums[a], sums[b])]
        counts[a] += counts[b]
        x1, y1, x2, y2 = (v / counts[a] for v in sums[a])
        w, h = x2 - x1 + 1, y2 - y1 + 1  # _features of the merged box, in Python floats
        terms[a] = x1, y1, x2, y2, (x1 + x2) * 0.5, (y1 + y2) * 0.5, (w + h) * 0.25, w * h
        terms[b] = _EMPTY
        new = _feature_scores(terms[a], columns)
        new[a] = np.inf
        new[new > threshold] = np.inf
        scores[b], scores[:, b] = np.inf, np.inf
        scores[a, a + 1 :], scores[:a, a] = new[a + 1 :], new[:a]
        least[b] = np.inf
        # rows whose minimum was in column a or b: rescan; rows above a: column a may now win
        stale = np.flatnonzero((best == a) | (best == b))
        stale = np.append(stale[stale != b], a)
        above = new[:a]
        wins = (above < least[:a]) | ((above == least[:a]) & (a < best[:a]))
        best[:a][wins], least[:a][wins] = a, above[wins]
        best[stale] = scores[stale].argmin(axis=1)
        least[stale] = scores[stale, best[stale]]


def _resolve(parent: np.ndarray) -> np.ndarray:
    """Follow ``parent`` links to their roots (pointer jumping)."""
    while True:
        up = parent[parent]
        if np.array_equal(up, parent):
            return parent
        parent = up


def greedy_merge(boxes, scores, threshold: float = MERGE_THRESHOLD) -> MergeResult:
    """§4.3 steps (d)–(g) and the final scores: merge ``boxes: (N, 4)`` with ``scores: (N,)``.

    Repeatedly merges the pair with the smallest :func:`match_score` while it is ≤
    ``threshold`` (MERGE_THRESHOLD); a merged box is the mean of its input boxes (BOX_MERGE) and
    scores the sum of their scores (MERGED_SCORE). Exactly the one-pair-at-a-time loop's result
    (module docstring), ties included. ``boxes`` are inclusive pixel boxes ``(x1, y1, x2, y2)``
    with ``x2 ≥ x1`` and ``y2 ≥ y1``, real-valued allowed; numpy arrays, torch tensors or lists.
    Empty input gives an empty :class:`MergeResult`.
    """
    if not threshold < 1:
        raise ValueError(
            f"threshold must be < 1, got {threshold}: at 1 or more, boxes that do not even "
            "intersect would merge (MERGE_THRESHOLD)"
        )
    boxes, scores = _check(boxes, scores)
    n = len(boxes)
    if n == 0:
        return MergeResult(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))
    root = _Merger(boxes, threshold).run() if n > _DENSE_MAX else _dense_merge(boxes, threshold)
    firsts, assignment = np.unique(root, return_inverse=True)
    counts = np.bincount(assignment, minlength=len(firsts)).astype(np.float64)
    sums = np.stack([np.bincount(assignment, boxes[:, k], len(firsts)) for k in range(4)], 1)
    return MergeResult(
        boxes=sums / counts[:, None],
        scores=np.bincount(assignment, scores, len(firsts)).astype(np.float64),
        assignment=assignment.astype(np.int64),
    )
