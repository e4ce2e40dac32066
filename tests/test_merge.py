"""The greedy merge of §4.3 (FACTS §6.4): hand-worked cases, and equality with the paper's loop
written here literally (the argmin over all pairs, one merge per iteration).

Random boxes have integer coordinates, as pixel boxes do: every mean of them is then computed
exactly whatever the order of the additions, so the loop here and the module compute the same
scores bit for bit, and any difference in the result is a difference in the algorithm. Both
ways the module reaches the loop's result, the matrix of all pairs (small sets) and the rounds
(large sets), run through the same tests (fixture ``path``); extreme speed settings run the
rounds' rarer paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from overfeat.merge import (
    MERGE_THRESHOLD,
    box_merge,
    greedy_merge,
    independent_groups,
    match_score,
)


def _square(x, y, side=100):
    return [x, y, x + side - 1, y + side - 1]


def paper_loop(boxes, scores, threshold=MERGE_THRESHOLD):
    """§4.3 (d)–(g) literally: B is a list, the argmin runs over every pair of the current B
    (row-major, so ties go to the pair whose first, then second, position comes first), the
    merged box takes the first box's place. Returns the input indices behind each box of B."""
    boxes = np.asarray(boxes, dtype=np.float64)
    clusters = [[i] for i in range(len(boxes))]
    while len(clusters) > 1:
        current = np.array([boxes[c].sum(axis=0) / len(c) for c in clusters])
        pair = match_score(current[:, None, :], current[None, :, :])
        np.fill_diagonal(pair, np.inf)
        a, b = np.unravel_index(np.argmin(pair), pair.shape)
        if pair[a, b] > threshold:
            break
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return clusters


@pytest.fixture(params=["dense", "rounds"])
def path(request, monkeypatch):
    """Run a test through both ways to the loop's result, whatever the set's size: the matrix
    of every pair's score (_dense_merge, small sets) and the rounds (_Merger, large sets)."""
    import overfeat.merge as merge

    monkeypatch.setattr(merge, "_DENSE_MAX", 10**9 if request.param == "dense" else 1)
    return request.param


def _clusters(result):
    return sorted(sorted(np.flatnonzero(result.assignment == k).tolist()) for k in range(
        len(result.boxes)))  # fmt: skip


# ------------------------------------------------------------------------------ match_score


def test_match_score_hand_worked_values():
    a = [0, 0, 9, 9]  # 10x10, centre (4.5, 4.5)
    # identical: distance 0, IoU 1
    assert match_score(a, a) == 0.0
    # shifted 5 px: centre distance 5 over a mean side of 10 = 0.5; intersection 5x10 = 50,
    # union 150, 1 − IoU = 2/3
    assert match_score(a, [5, 0, 14, 9]) == pytest.approx(0.5 + 2 / 3, abs=1e-12)
    # disjoint, 20 px away diagonally: distance 20·√2 / 10, 1 − IoU = 1
    assert match_score(a, [20, 20, 29, 29]) == pytest.approx(2 * math.sqrt(2) + 1, abs=1e-12)
    # boxes sharing one pixel column intersect (inclusive widths): 1x10 of 190
    assert match_score(a, [9, 0, 18, 9]) == pytest.approx(0.9 + 1 - 10 / 190, abs=1e-12)


def test_match_score_same_centre_scale_step():
    # Same centre (69.5, 69.5), sides 100 and s: IoU = 100² / s², distance 0. The limit of
    # t = 0.5 is s = 100·√2 (MERGE_THRESHOLD's comment): 140 merges, 142 does not.
    small = [20, 20, 119, 119]
    assert match_score(small, [0, 0, 139, 139]) == pytest.approx(1 - 100**2 / 140**2)
    assert match_score(small, [-1, -1, 140, 140]) == pytest.approx(1 - 100**2 / 142**2)
    assert 1 - 100**2 / 140**2 <= MERGE_THRESHOLD < 1 - 100**2 / 142**2


def test_match_score_is_symmetric_bit_for_bit():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (500, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 200, (500, 2))], axis=1)
    s = match_score(boxes[:, None, :], boxes[None, :, :])
    assert np.array_equal(s, s.T)
    assert (np.diag(s) == 0).all()


def test_box_merge_is_the_mean_of_every_box_behind_it():
    # [0,0,10,10] holds 3 input boxes, [4,4,14,14] one: (3·0 + 4) / 4 = 1, (3·10 + 14) / 4 = 11
    got = box_merge(np.array([0, 0, 10, 10]), 3, np.array([4, 4, 14, 14]), 1)
    np.testing.assert_array_equal(got, [1, 1, 11, 11])


# --------------------------------------------------------------------------- hand-worked merges


def test_two_distant_clusters_stay_two_at_their_mean_coordinates(path):
    a = [_square(0, 0), _square(2, 0), _square(0, 2)]
    b = [_square(500, 0), _square(503, 0)]
    boxes = [a[0], b[0], a[1], b[1], a[2]]
    scores = [0.5, 0.1, 0.25, 0.2, 0.125]
    result = greedy_merge(boxes, scores)
    assert _clusters(result) == [[0, 2, 4], [1, 3]]
    # cluster a: x1 = (0 + 2 + 0) / 3, y1 = (0 + 0 + 2) / 3, x2 = (99 + 101 + 99) / 3, ...
    np.testing.assert_allclose(result.boxes[0], [2 / 3, 2 / 3, 299 / 3, 299 / 3], atol=1e-12)
    np.testing.assert_allclose(result.boxes[1], [501.5, 0, 600.5, 99], atol=1e-12)
    np.testing.assert_allclose(result.scores, [0.875, 0.3], atol=1e-12)
    np.testing.assert_array_equal(result.assignment, [0, 1, 0, 1, 0])


def test_one_cluster_becomes_one_box_with_the_summed_score(path):
    boxes = [_square(10, 10), _square(14, 10), _square(10, 16), _square(12, 12, side=110)]
    result = greedy_merge(boxes, [1.0, 2.0, 3.0, 4.0])
    assert len(result.boxes) == 1
    # x1 = (10 + 14 + 10 + 12) / 4, x2 = (109 + 113 + 109 + 121) / 4, y likewise
    np.testing.assert_allclose(result.boxes[0], [11.5, 12, 113, 113.5], atol=1e-12)
    assert result.scores[0] == 10.0


def test_the_cheapest_pair_merges_first_and_the_merged_box_can_stop_the_chain(path):
    # Three 100x100 boxes in a row: A at x 0, B at 15, C at 33.
    # A–B: 15/100 + 1 − 85/115 = 0.411; B–C: 18/100 + 1 − 82/118 = 0.485; both ≤ 0.5.
    # A–B goes first; the merged box starts at 7.5 and scores 25.5/100 + 1 − 74.5/125.5 = 0.661
    # against C, so C stays alone (merging B–C first would have left A alone instead).
    a, b, c = _square(0, 0), _square(15, 0), _square(33, 0)
    assert match_score(a, b) == pytest.approx(0.15 + 1 - 85 / 115)
    assert match_score(b, c) == pytest.approx(0.18 + 1 - 82 / 118)
    merged = [7.5, 0, 106.5, 99]
    assert match_score(merged, c) == pytest.approx(0.255 + 1 - 74.5 / 125.5)
    result = greedy_merge([c, a, b], [1, 1, 1])
    assert _clusters(result) == [[0], [1, 2]]
    np.testing.assert_allclose(result.boxes[1], merged)


def test_threshold_is_inclusive(path):
    a, b = _square(0, 0), _square(10, 0)
    s = float(match_score(a, b))
    assert len(greedy_merge([a, b], [1, 1], threshold=s).boxes) == 1
    assert len(greedy_merge([a, b], [1, 1], threshold=np.nextafter(s, 0)).boxes) == 2


# --------------------------------------------------------------------- against the paper's loop


def _random_boxes(rng, n, kind):
    if kind == "uniform":  # sizes and places all over: few merges, many tiny groups
        xy = rng.integers(0, 300, (n, 2))
        wh = rng.integers(1, 120, (n, 2))
    elif kind == "clustered":  # jittered copies around a few objects: long merge chains
        k = rng.integers(1, 5)
        centre = rng.integers(50, 250, (k, 2))[rng.integers(0, k, n)]
        side = rng.integers(40, 160, (k, 1))[rng.integers(0, k, n)]
        wh = np.round(side * np.exp(rng.normal(0, 0.15, (n, 2)))).astype(np.int64)
        xy = np.round(centre + rng.normal(0, 0.1, (n, 2)) * side - wh / 2).astype(np.int64)
        wh = np.maximum(wh, 1)
    else:  # "ties": a few positions and sizes only, many identical boxes and equal scores
        xy = rng.integers(0, 4, (n, 2)) * 5
        wh = np.full((n, 2), 40)
    return np.concatenate([xy, xy + wh - 1], axis=1)


@pytest.mark.parametrize("kind", ["uniform", "clustered", "ties"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_paper_loop_on_random_sets(kind, seed, path):
    rng = np.random.default_rng(seed)
    for n in (2, 3, 7, 40, 120, 200):
        boxes = _random_boxes(rng, n, kind)
        scores = rng.uniform(0, 1, n)
        want = paper_loop(boxes, scores)
        result = greedy_merge(boxes, scores)
        assert _clusters(result) == sorted(sorted(c) for c in want), (kind, seed, n)
        by_first = sorted(want, key=min)
        np.testing.assert_array_equal(
            result.boxes, [boxes[c].sum(axis=0) / len(c) for c in by_first]
        )
        np.testing.assert_allclose(result.scores, [scores[c].sum() for c in by_first])


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.9])
def test_equals_the_paper_loop_at_other_thresholds(threshold, path):
    rng = np.random.default_rng(7)
    boxes = _random_boxes(rng, 150, "clustered")
    want = paper_loop(boxes, np.ones(150), threshold)
    got = greedy_merge(boxes, np.ones(150), threshold)
    assert _clusters(got) == sorted(sorted(c) for c in want)


def test_equals_the_paper_loop_on_real_valued_boxes(path):
    # decoded regressor boxes are real-valued; dyadic values keep every mean exact
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 120, "clustered") + rng.integers(0, 4, (120, 4)) / 4
    want = paper_loop(boxes, np.ones(120))
    assert _clusters(greedy_merge(boxes, np.ones(120))) == sorted(sorted(c) for c in want)


# ------------------------------------------------------------------------ groups and edge cases


def test_independent_groups_split_at_pixel_gaps_only():
    boxes = np.array(
        [
            [0, 0, 9, 9],
            [10, 0, 19, 9],  # starts one past the first box's last column: no shared pixel
            [9, 20, 18, 29],  # below both (y starts at 20 > 9), x overlapping both
            [18, 25, 30, 40],  # shares column 18 and rows 25–29 with the third box
        ]
    )
    labels = independent_groups(boxes)
    assert independent_groups(np.zeros((0, 4))).shape == (0,)
    # x alone cannot split (the third box spans x 9–18); y splits {0, 1} from {2, 3}, then x
    # splits 0 from 1; 2 and 3 share a pixel
    assert labels[0] != labels[1]
    assert labels[2] == labels[3]
    assert len({labels[0], labels[1], labels[2]}) == 3


def test_empty_input_gives_an_empty_result():
    result = greedy_merge(np.zeros((0, 4)), np.zeros(0))
    assert result.boxes.shape == (0, 4)
    assert result.scores.shape == (0,)
    assert result.assignment.shape == (0,)


def test_one_box_is_itself(path):
    result = greedy_merge([[3, 4, 50, 60]], [0.7])
    np.testing.assert_array_equal(result.boxes, [[3, 4, 50, 60]])
    np.testing.assert_array_equal(result.scores, [0.7])
    np.testing.assert_array_equal(result.assignment, [0])


def test_torch_tensors_are_accepted(path):
    boxes = torch.tensor([_square(0, 0), _square(3, 0)], dtype=torch.float32)
    result = greedy_merge(boxes, torch.tensor([0.25, 0.5]))
    np.testing.assert_allclose(result.boxes, [[1.5, 0, 100.5, 99]])
    np.testing.assert_allclose(result.scores, [0.75])


@pytest.mark.parametrize(
    "boxes, scores, match",
    [
        (np.zeros((3, 3)), np.zeros(3), r"\(N, 4\)"),
        (np.zeros((3, 4)), np.zeros(2), r"scores must be \(N,\)"),
        ([[0, 0, 5, np.nan]], [1.0], "finite"),
        ([[0, 0, 5, 5]], [np.inf], "finite"),
        ([[0, 0, 5, 5], [6, 0, 4, 5]], [1.0, 1.0], r"boxes\[1\]"),
    ],
)
def test_bad_input_is_refused(boxes, scores, match):
    with pytest.raises(ValueError, match=match):
        greedy_merge(boxes, scores)


def test_threshold_of_one_or_more_is_refused():
    with pytest.raises(ValueError, match="threshold must be < 1"):
        greedy_merge([_square(0, 0)], [1.0], threshold=1.0)


# ------------------------------------------------------------ the pairs the merge keeps and scores


def test_per_box_terms_give_match_score_bit_for_bit():
    from overfeat.merge import _SCORE_CHUNK, _feature_scores, _features, _pair_scores

    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 300, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 150, (300, 2))], axis=1)
    i, j = np.triu_indices(300, 1)
    rows = _features(boxes)
    want = match_score(boxes[i], boxes[j])
    assert np.array_equal(_feature_scores(rows[i].T, rows[j].T), want)
    # the chunked form every pair is scored in (more pairs than one chunk)
    assert len(i) > 2 * _SCORE_CHUNK
    assert np.array_equal(_pair_scores(rows, i, rows, j), want)
    # a merged box's terms come from its members' sums over their count, as the loop's mean
    members = rng.integers(0, 300, (50, 3))
    sums = [[float(v) for v in boxes[m].sum(axis=0)] for m in members]
    merged = np.array(sums) / np.full(50, 3.0)[:, None]
    np.testing.assert_array_equal(merged, boxes[members].sum(axis=1) / 3)
    assert np.array_equal(
        _pair_scores(_features(merged), np.arange(50), rows, np.arange(50)),
        match_score(merged, boxes[:50]),
    )
    # one merged box against every box, its terms as Python floats (_dense_merge)
    x1, y1, x2, y2 = merged[0].tolist()
    w, h = x2 - x1 + 1, y2 - y1 + 1
    one = [x1, y1, x2, y2, (x1 + x2) * 0.5, (y1 + y2) * 0.5, (w + h) * 0.25, w * h]
    np.testing.assert_array_equal(one, _features(merged[:1])[0])
    assert np.array_equal(_feature_scores(one, rows.T), match_score(merged[0], boxes))


def _near_pairs(rng, count):
    """Pairs ``(a, b)``, each ``(count, 4)``, of real-valued boxes of every size and aspect, b a
    jittered, rescaled copy of a (an exact copy for 1%): many pairs score close to any level
    below 1."""
    xy = rng.uniform(-50, 400, (count, 2))
    wh = np.exp(rng.uniform(0, 6, (count, 2)))
    a = np.concatenate([xy, xy + wh - 1], axis=1)
    scale = np.exp(rng.normal(0, 0.3, (count, 2)))
    centre = (a[:, :2] + a[:, 2:]) / 2 + rng.normal(0, 0.2, (count, 2)) * wh
    half = (wh * scale - 1) / 2
    b = np.concatenate([centre - half, centre + half], axis=1)
    b[: count // 100] = a[: count // 100]
    return a, b


@pytest.mark.parametrize("level", [0.0, 0.05, 0.2, MERGE_THRESHOLD, 0.9, 0.999])
def test_windows_hold_every_partner_scoring_at_most_the_level(level):
    # The index looks for a box's partners only in a window around its centre: every pair
    # scoring ≤ level must lie in both boxes' windows (module docstring, _windows).
    from overfeat.merge import _features, _windows

    rng = np.random.default_rng(12)
    a, b = _near_pairs(rng, 200_000)
    close = match_score(a, b) <= level
    assert close.sum() > 100  # the test has pairs to check
    a, b = a[close], b[close]
    for one, other in ((a, b), (b, a)):
        win = _windows(_features(one), level)
        u = np.abs((one[:, 0] + one[:, 2]) / 2 - (other[:, 0] + other[:, 2]) / 2)
        v = np.abs((one[:, 1] + one[:, 3]) / 2 - (other[:, 1] + other[:, 3]) / 2)
        assert (u <= win.rx).all() and (v <= win.ry).all()
        # the bound that narrows each strip: √(u² + v²) / m + 4v / (hh + 2v) ≤ τ
        bound = np.hypot(u, v) / win.m + 4 * v / (win.hh + 2 * v)
        assert (bound <= win.tau).all()


@pytest.mark.parametrize("height", [0.5, 30.0, 1e4])
@pytest.mark.parametrize("shift", [0.0, -7.25, 1e6])
def test_index_finds_every_box_scoring_at_most_the_level(height, shift):
    from overfeat.merge import _CentreIndex, _features, _windows

    rng = np.random.default_rng(13)
    boxes = np.concatenate(
        [_random_boxes(rng, 150, "clustered"), _random_boxes(rng, 150, "uniform")]
    )
    boxes = boxes + rng.integers(0, 4, boxes.shape) / 4 + shift
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    rows = _features(boxes)
    level = 0.3
    scores = match_score(boxes[:, None], boxes[None])
    want = {(i, j) for i, j in zip(*np.nonzero(scores <= level)) if i != j}
    index = _CentreIndex(rows, np.arange(300), height, 1e-9 * (abs(shift) + 500))
    q, box = index.query(rows[:, 4], rows[:, 5], _windows(rows, level))
    got = set(zip(q.tolist(), box.tolist()))
    assert want <= got
    # from the box that comes first in the index only: each pair once
    order = index.row
    q, box = index.query(rows[order, 4], rows[order, 5], _windows(rows[order], level),
                         after=np.arange(300))  # fmt: skip
    found = [tuple(sorted((int(order[k]), int(c)))) for k, c in zip(q, box)]
    assert len(found) == len(set(found))
    assert {p for p in want if p[0] < p[1]} <= set(found)


@pytest.mark.parametrize("below, level", [(-np.inf, 0.1), (0.1, 0.25), (0.25, MERGE_THRESHOLD)])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "ties"])
def test_level_pairs_are_each_pair_scoring_in_the_band_once(below, level, kind):
    from overfeat.merge import _CentreIndex, _features, _level_pairs, _windows

    rng = np.random.default_rng(11)
    boxes = _random_boxes(rng, 150, kind) + rng.integers(0, 4, (150, 4)) / 4
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    # brute force: every pair
    every = match_score(boxes[:, None], boxes[None])
    a, b = np.triu_indices(150, 1)
    band = (every[a, b] > below) & (every[a, b] <= level)
    want = sorted(zip(every[a, b][band].tolist(), a[band].tolist(), b[band].tolist()))
    rows = _features(boxes)
    height = float(np.median(_windows(rows, level).ry))
    score, a, b = _level_pairs(rows, _CentreIndex(rows, np.arange(150), height, 1e-6), below, level)
    got = sorted(zip(score.tolist(), np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
    assert got == want


def test_a_merged_box_finds_partners_its_input_boxes_did_not_have(path):
    # A and B (offset 16 px) score 0.16 + 1 − 84/116 = 0.436 and merge into M = [8, 0, 107, 99].
    # C, 15 px below M, scores 0.17 + 1 − 7820/12180 = 0.528 > t with A and with B (centre
    # distance √(8² + 15²) = 17, intersection 92×85), but 0.15 + 1 − 85/115 = 0.411 with M.
    a, b, c = _square(0, 0), _square(16, 0), _square(8, 15)
    assert match_score(a, b) == pytest.approx(0.16 + 1 - 84 / 116)
    assert match_score(a, c) == match_score(b, c) == pytest.approx(0.17 + 1 - 7820 / 12180)
    assert match_score([8, 0, 107, 99], c) == pytest.approx(0.15 + 1 - 85 / 115)
    result = greedy_merge([c, a, b], [1, 2, 4])
    # one box: the mean of the three, x1 = (8 + 0 + 16) / 3, y1 = (15 + 0 + 0) / 3, ...
    np.testing.assert_array_equal(result.boxes, [[8, 5, 107, 104]])
    np.testing.assert_array_equal(result.scores, [7])


@pytest.mark.parametrize("kind", ["clustered", "ties"])
def test_equals_the_paper_loop_on_a_larger_set(kind, path):
    # long merge chains: many merged boxes, each finding partners among the boxes present
    rng = np.random.default_rng(5)
    boxes = _random_boxes(rng, 400, kind)
    want = paper_loop(boxes, np.ones(400))
    assert _clusters(greedy_merge(boxes, np.ones(400))) == sorted(sorted(c) for c in want)


# Every setting below only changes how fast the loop's result is reached: pushed to extremes,
# they run the rounds' rarer paths (runs running out, a front refilled a few pairs at a time,
# many levels, chunks of one or two, an index of one strip or of hundreds).
_STRESS = [
    dict(_ROUND_RUNS=2, _FIRST_MERGES=2, _MIN_MERGES=1, _MAX_MERGES=3),
    dict(_FRONT_PAIRS=1, _FRONT_PER_MERGE=1, _LEVELS=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 1.0)),
    dict(_QUERY_CHUNK=3, _SCORE_CHUNK=2, _STRIP_HEIGHT=1e-3, _FIRST_MERGES=400, _MAX_MERGES=400),
    dict(_STRIP_HEIGHT=1e6, _LEVELS=(1.0,), _ROUND_RUNS=1, _FIRST_MERGES=1, _MIN_MERGES=1),
]


@pytest.mark.parametrize("setting", range(len(_STRESS)))
@pytest.mark.parametrize("kind", ["clustered", "ties"])
def test_equals_the_paper_loop_whatever_the_speed_settings(setting, kind, monkeypatch):
    import overfeat.merge as merge

    monkeypatch.setattr(merge, "_DENSE_MAX", 1)  # the rounds, whatever the set's size
    for name, value in _STRESS[setting].items():
        monkeypatch.setattr(merge, name, value)
    rng = np.random.default_rng(21 + setting)
    for n in (60, 150):
        boxes = _random_boxes(rng, n, kind) + rng.integers(0, 4, (n, 4)) / 4
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
        want = paper_loop(boxes, np.ones(n))
        assert _clusters(greedy_merge(boxes, np.ones(n))) == sorted(sorted(c) for c in want)


def test_identical_boxes_merge_into_the_first(path):
    # every pair scores 0: the loop merges (0, 1), then (0, 2), ... and keeps index 0
    boxes = np.array([_square(5, 5)] * 40 + [_square(400, 5)] * 3)
    result = greedy_merge(boxes, np.arange(43.0))
    np.testing.assert_array_equal(result.assignment, [0] * 40 + [1] * 3)
    np.testing.assert_array_equal(result.boxes, [_square(5, 5), _square(400, 5)])
    np.testing.assert_array_equal(result.scores, [sum(range(40)), 40 + 41 + 42])


@pytest.mark.parametrize("threshold", [-0.1, 0.0, 0.999, 1 - 1e-7])
def test_equals_the_paper_loop_at_extreme_thresholds(threshold, path):
    rng = np.random.default_rng(8)
    boxes = np.concatenate([_random_boxes(rng, 60, "ties"), _random_boxes(rng, 60, "clustered")])
    want = paper_loop(boxes, np.ones(120), threshold)
    got = greedy_merge(boxes, np.ones(120), threshold)
    assert _clusters(got) == sorted(sorted(c) for c in want)


@pytest.mark.parametrize("shift", [-1000.5, 1e6])
def test_equals_the_paper_loop_far_from_the_origin(shift, path):
    # the centre index keys boxes by a strip of y, then by x: offsets and large coordinates
    rng = np.random.default_rng(9)
    boxes = _random_boxes(rng, 150, "clustered") + shift
    want = paper_loop(boxes, np.ones(150))
    assert _clusters(greedy_merge(boxes, np.ones(150))) == sorted(sorted(c) for c in want)


def test_two_boxes(path):
    a, b = _square(0, 0), _square(3, 0)
    for order in ((a, b), (b, a)):
        result = greedy_merge(order, [1, 2])
        np.testing.assert_array_equal(result.assignment, [0, 0])
        np.testing.assert_array_equal(result.boxes, [[1.5, 0, 100.5, 99]])
    far = greedy_merge([a, _square(300, 0)], [1, 2])
    np.testing.assert_array_equal(far.assignment, [0, 1])
