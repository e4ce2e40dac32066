"""Combining predictions: the greedy merge of bounding boxes, §4.3 (FACTS §6.4).

The paper's loop over the set B of predicted boxes:

    (e) (b1*, b2*) = argmin over b1 ≠ b2 ∈ B of match_score(b1, b2)
    (f) if match_score(b1*, b2*) > t, stop
    (g) otherwise B ← B \\ {b1*, b2*} ∪ box_merge(b1*, b2*)

and "the merged bounding boxes with maximum class scores [...] computed by cumulatively adding
the detection class outputs associated with the input windows from which each bounding box was
predicted." The paper names neither the score's exact form nor t; the decisions made here are
MATCH_SCORE, MERGE_THRESHOLD, BOX_MERGE and MERGED_SCORE, each explained where it is made.

:func:`greedy_merge` computes exactly what that loop computes (with ties broken towards the
pair whose smaller, then larger, index comes first, a merged box keeping the smaller index), but
scores only the pairs that can merge:

- **only pairs that can score ≤ t are scored.** A pair scores ≥ 1 − IoU, so a pair scoring
  ≤ t < 1 has IoU ≥ 1 − t > 0; and IoU ≤ iw / max(w_a, w_b) (the intersection is at most
  iw · min(h_a, h_b), the union at least max(w_a·h_a, w_b·h_b)), likewise in y. So such a pair's
  intersection is at least (1 − t) of the wider box's width and of the taller box's height.
  Sorted by x1, box j after box i can then start at most t·w_i after box i: the input boxes'
  pairs come from that sweep (:func:`_initial_pairs`); a merged box's partners are the boxes
  present whose intersection with it can reach (1 − t) of its width and height, found by one
  scan of the group's boxes (:func:`_merge_group`). Pairs scoring > t are never stored;
- **independent groups**: a box derived by merging lies, coordinate by coordinate, between the
  boxes behind it, so two sets of boxes whose x (or y) extents are disjoint can never produce a
  pair with any intersection, hence never a pair scoring ≤ t < 1. The boxes are split at such
  gaps (:func:`independent_groups`), and each group is merged alone;
- **a priority queue with lazy deletion**: pairs are keyed (score, smaller index, larger index),
  the loop's order (a box's index is the smallest input index behind it). The input boxes' pairs
  sit in one sorted array; each merged box gets its own sorted list of its pairs with the boxes
  present when it is made, and a heap holds one entry per merged box, keyed by the pair at its
  list's cursor; a cursor moves only past pairs whose partner was merged away, so the entry's key
  is at most that of any pair of the list still present. Every pair of present boxes is in the
  array (both are input boxes) or in the list of the later made of its merged boxes (the other
  was present then). Hence the smaller of the array's first pair with both boxes present and the
  heap's first entry whose partner is present (entries whose own box is gone are dropped) is the
  argmin over B: the loop's pair. When neither exists, no pair of B scores ≤ t, and the loop
  stops. A score is computed once per pair, from the same per-box terms and in the same order of
  operations as :func:`match_score`, so it has the same bits as the loop's.

Cost: the sweep's candidate pairs of the input boxes (for realistic sets a few times the pairs
scoring ≤ t), then per merge one scan of the group's boxes present, one score per partner found
and O(log n) per heap entry; memory: the input pairs scoring ≤ t, plus the lists of the merged
boxes present. ``benchmarks/merge_speed.py`` measures it against the literal loop.

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
# so that boxes that do not intersect never merge (the grouping below relies on it).
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

# The input boxes' pairs are tested this many boxes (sorted by x1) at a time against the range
# their sweeps reach, so the temporaries stay small.
_BLOCK_ROWS = 32
# Relative slack on the necessary conditions of :func:`_initial_pairs` and of the scan for a
# merged box's partners: they only discard pairs, so a margin costs a few extra scores and keeps
# a pair whose computed score lands on the threshold by rounding.
_SLACK = 1e-6

# The per-box terms of match_score, one row each in a (8, G) array (see _features).
_X1, _Y1, _X2, _Y2, _CX, _CY, _QUARTER_SIDES, _AREA = range(8)
# The terms of an emptied column: no box intersects it.
_EMPTY = np.array([np.inf, np.inf, -np.inf, -np.inf, 0.0, 0.0, 0.0, 0.0])


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
    """The per-box terms of :func:`match_score`, ``boxes: (G, 4)`` → ``(8, G)``: x1, y1, x2, y2,
    the centre (x, y), a quarter of width + height, and the area (inclusive widths)."""
    x1, y1, x2, y2 = boxes.T
    w, h = x2 - x1 + 1, y2 - y1 + 1
    return np.stack([x1, y1, x2, y2, (x1 + x2) * 0.5, (y1 + y2) * 0.5, (w + h) * 0.25, w * h])


def _box_features(box: list[float]) -> list[float]:
    """:func:`_features` of one box given as four floats (Python floats are IEEE doubles, so
    these are the same bits numpy computes)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1 + 1, y2 - y1 + 1
    return [x1, y1, x2, y2, (x1 + x2) * 0.5, (y1 + y2) * 0.5, (w + h) * 0.25, w * h]


def _feature_scores(a, b) -> np.ndarray:
    """:func:`match_score` from :func:`_features` rows: ``a``, ``b`` index 0..7 to scalars or
    ``(K,)`` arrays (at least one an array) → ``(K,)``. The same operations as match_score in the
    same order, hence the same bits (each step is one correctly rounded IEEE operation)."""
    distance = np.asarray(a[_CX] - b[_CX])
    distance *= distance
    dy = np.asarray(a[_CY] - b[_CY])
    dy *= dy
    distance += dy
    np.sqrt(distance, out=distance)
    distance /= a[_QUARTER_SIDES] + b[_QUARTER_SIDES]
    iw = np.asarray(np.minimum(a[_X2], b[_X2]) - np.maximum(a[_X1], b[_X1]))
    ih = np.asarray(np.minimum(a[_Y2], b[_Y2]) - np.maximum(a[_Y1], b[_Y1]))
    iw += 1
    ih += 1
    inter = np.maximum(iw, 0.0, out=iw)
    inter *= np.maximum(ih, 0.0, out=ih)
    union = np.asarray(a[_AREA] + b[_AREA])
    union -= inter
    iou = np.divide(inter, union, out=inter)
    distance += 1.0
    distance -= iou
    return distance


def _initial_pairs(feat: np.ndarray, threshold: float) -> tuple[np.ndarray, ...]:
    """Every pair of the boxes ``feat: (8, G)`` (:func:`_features`) scoring ≤ ``threshold``, as
    ``(score, low, high)``, three ``(P,)`` arrays (low < high: box indices) sorted by score, then
    low, then high: the order in which the loop would take them.

    Necessary conditions (module docstring) keep the work near the pairs that merge: with the
    boxes sorted by x1, box j after box i has ``iw ≤ w_i − (x1_j − x1_i)`` and needs
    ``iw ≥ (1 − t)·w_i``, so only ``x1_j ≤ x1_i + t·w_i`` is tested; of those, only pairs with
    ``iw ≥ (1 − t)·max(w)``, ``ih ≥ (1 − t)·max(h)`` and IoU ≥ 1 − t are scored. The tests run
    on blocks of _BLOCK_ROWS sorted boxes against the contiguous range of sorted boxes their
    sweeps reach.
    """
    g = feat.shape[1]
    order = np.argsort(feat[_X1], kind="stable")
    f = feat[:, order]
    w, h = f[_X2] - f[_X1] + 1, f[_Y2] - f[_Y1] + 1
    share = max(1.0 - threshold - _SLACK, 0.0)
    ends = np.searchsorted(f[_X1], f[_X1] + (threshold + _SLACK) * w, side="right")
    # iw − 1 ≥ share·max(w) − 1 = max(share·w − 1): one subtraction and one product fewer per pair
    least_x, least_y = share * w - 1, share * h - 1
    # IoU = inter / (A_i + A_j − inter) ≥ 1 − t  ⇔  (2 − t)·inter ≥ (1 − t)·(A_i + A_j)
    least_area = share * f[_AREA]
    found = []
    for r0 in range(0, g - 1, _BLOCK_ROWS):
        r1 = min(g, r0 + _BLOCK_ROWS)
        c0, c1 = r0 + 1, int(ends[r0:r1].max())
        if c1 <= c0:
            continue
        rows, cols = slice(r0, r1), slice(c0, c1)
        iw = np.minimum(f[_X2, rows, None], f[None, _X2, cols])
        iw -= np.maximum(f[_X1, rows, None], f[None, _X1, cols])
        near = iw >= np.maximum(least_x[rows, None], least_x[None, cols])
        ih = np.minimum(f[_Y2, rows, None], f[None, _Y2, cols])
        ih -= np.maximum(f[_Y1, rows, None], f[None, _Y1, cols])
        near &= ih >= np.maximum(least_y[rows, None], least_y[None, cols])
        i, j = np.nonzero(near)
        inter = iw[i, j] + 1
        inter *= ih[i, j] + 1
        i += r0
        j += c0
        # the sweep: j after i in x1 order, and no further than t·w_i; the IoU itself
        near = (j > i) & (j < ends[i])
        near &= (2 - threshold) * inter >= least_area[i] + least_area[j]
        i, j = i[near], j[near]
        score = _feature_scores(f[:, i], f[:, j])
        merges = score <= threshold
        i, j = order[i[merges]], order[j[merges]]
        found.append((score[merges], np.minimum(i, j), np.maximum(i, j)))
    if not found:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    score, low, high = (np.concatenate(parts) for parts in zip(*found))
    del found
    order = np.lexsort((high, low, score))
    return score[order], low[order], high[order]


def _merge_group(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """The greedy merge of one group, ``boxes: (G, 4)`` → ``(G,)`` int64: for each box, the
    index of the box it ends up merged into (the smallest index among them).

    State per *slot* (slots are the group's boxes in index order; a merged box takes the smaller
    slot, the other slot empties, so a slot's index is the smallest input index behind its box,
    the loop's order): ``sums`` and ``count`` of the input boxes behind it (the box is their
    mean), ``pristine`` (the slot still holds its input box) and ``box_of`` (the id of the box it
    holds: input boxes 0..G−1, merged boxes G, G+1, ... in the order they are made). The boxes'
    terms ``feat: (8, K)`` are kept by *column*, ``col_slot: (K,)`` the slot in each column, in
    slot order; an emptied column's x1 is +inf and x2 −inf, so that no scan finds it, and the
    emptied columns are dropped once they are half of them.
    """
    g = len(boxes)
    parent = np.arange(g)
    if g < 2:
        return parent
    feat = _features(boxes)
    first_score, first_low, first_high = _initial_pairs(feat, threshold)
    first_pairs = len(first_score)
    share = max(1.0 - threshold - _SLACK, 0.0)
    sums, count = boxes.tolist(), [1] * g
    pristine = np.ones(g, dtype=bool)
    box_of = np.arange(g)
    col_slot, slot_col = np.arange(g), list(range(g))
    emptied = 0
    present = bytearray(b"\x01") * g  # by box id: the box is in the current set B
    # merged box id → its pairs, sorted: (scores, partner slots, partner box ids, its own slot)
    lists: dict[int, tuple[list, list, list, int]] = {}
    cursor: dict[int, int] = {}  # merged box id → position of its first pair not yet skipped
    heap: list[tuple[float, int, int, int]] = []  # (score, low, high, merged box id)
    p = 0  # the first input pair not yet skipped
    while True:
        # the first input pair whose boxes are both still there: a pair at a time, then chunks
        # of growing size
        step = 16
        while p < first_pairs and not (pristine[first_low[p]] and pristine[first_high[p]]):
            end = min(first_pairs, p + step)
            live = pristine[first_low[p:end]] & pristine[first_high[p:end]]
            k = int(live.argmax())
            if live[k]:
                p += k
                break
            p, step = end, step * 2
        # the heap's first entry whose pair is still there
        while heap:
            owner = heap[0][3]
            if not present[owner]:
                heapq.heappop(heap)
                continue
            s, partner_slot, partner, own = lists[owner]
            at = cursor[owner]
            if present[partner[at]]:
                break
            at += 1
            while at < len(partner) and not present[partner[at]]:
                at += 1
            cursor[owner] = at
            if at < len(partner):
                pair = sorted((partner_slot[at], own))
                heapq.heapreplace(heap, (s[at], pair[0], pair[1], owner))
            else:
                heapq.heappop(heap)
        best = None
        if p < first_pairs:
            best = (float(first_score[p]), int(first_low[p]), int(first_high[p]))
        if heap and (best is None or heap[0][:3] < best):
            best = heap[0][:3]
        if best is None:  # no pair of B scores ≤ t: step (f) stops
            return _resolve(parent)
        _, low, high = best

        # step (g): the merged box takes slot `low`; slot `high` empties
        for gone in (int(box_of[low]), int(box_of[high])):
            present[gone] = 0
            lists.pop(gone, None)  # its heap entry is dropped when it comes up
            cursor.pop(gone, None)
        new_id = len(present)
        present.append(1)
        box_of[low] = new_id
        pristine[low] = pristine[high] = False
        parent[high] = low
        count[low] += count[high]
        sums[low] = [a + b for a, b in zip(sums[low], sums[high])]
        merged = _box_features([v / count[low] for v in sums[low]])
        at_low, at_high = slot_col[low], slot_col[high]
        feat[:, at_high] = feat[:, at_low] = _EMPTY
        emptied += 1
        # the boxes of B that can score ≤ t with the merged box m (module docstring): their
        # intersection with m reaches (1 − t) of m's width and of m's height
        x1, y1, x2, y2 = merged[:4]
        reach_x, reach_y = share * (x2 - x1 + 1), share * (y2 - y1 + 1)
        near = feat[_X1] <= x2 + 1 - reach_x
        near &= feat[_X2] >= x1 - 1 + reach_x
        near &= feat[_Y1] <= y2 + 1 - reach_y
        near &= feat[_Y2] >= y1 - 1 + reach_y
        columns = np.flatnonzero(near)
        feat[:, at_low] = merged
        if len(columns):
            score = _feature_scores(merged, feat[:, columns])
            merges = score <= threshold
            if merges.any():
                # Columns are in slot order, so a stable sort by score is the order of
                # (score, smaller slot, larger slot): of two partners on a tie, the one with the
                # smaller slot comes first whichever side of `low` each lies.
                slots, score = col_slot[columns[merges]], score[merges]
                order = np.argsort(score, kind="stable")
                slots = slots[order]
                lists[new_id] = (score[order].tolist(), slots.tolist(), box_of[slots].tolist(), low)
                cursor[new_id] = 0
                first = int(slots[0])
                heapq.heappush(
                    heap, (float(score[order[0]]), min(first, low), max(first, low), new_id)
                )
        if 2 * emptied > feat.shape[1]:
            keep = np.flatnonzero(feat[_X1] < np.inf)
            feat, col_slot, emptied = feat[:, keep], col_slot[keep], 0
            for column, slot in enumerate(col_slot.tolist()):
                slot_col[slot] = column


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
    root = np.arange(n)
    labels = independent_groups(boxes)
    order = np.lexsort((root, labels))  # each group's boxes, ascending index
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for members in np.split(order, bounds):
        if len(members) > 1:
            root[members] = members[_merge_group(boxes[members], threshold)]
    firsts, assignment = np.unique(root, return_inverse=True)
    counts = np.bincount(assignment, minlength=len(firsts)).astype(np.float64)
    sums = np.stack([np.bincount(assignment, boxes[:, k], len(firsts)) for k in range(4)], 1)
    return MergeResult(
        boxes=sums / counts[:, None],
        scores=np.bincount(assignment, scores, len(firsts)).astype(np.float64),
        assignment=assignment.astype(np.int64),
    )
