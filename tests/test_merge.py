"""The greedy merge of §4.3 (FACTS §6.4): hand-worked cases, and equality with the paper's loop
written here literally (the argmin over all pairs, one merge per iteration).

Random boxes have integer coordinates, as pixel boxes do: every mean of them is then computed
exactly whatever the order of the additions, so the loop here and the module compute the same
scores bit for bit, and any difference in the result is a difference in the algorithm.
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


def test_two_distant_clusters_stay_two_at_their_mean_coordinates():
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


def test_one_cluster_becomes_one_box_with_the_summed_score():
    boxes = [_square(10, 10), _square(14, 10), _square(10, 16), _square(12, 12, side=110)]
    result = greedy_merge(boxes, [1.0, 2.0, 3.0, 4.0])
    assert len(result.boxes) == 1
    # x1 = (10 + 14 + 10 + 12) / 4, x2 = (109 + 113 + 109 + 121) / 4, y likewise
    np.testing.assert_allclose(result.boxes[0], [11.5, 12, 113, 113.5], atol=1e-12)
    assert result.scores[0] == 10.0


def test_the_cheapest_pair_merges_first_and_the_merged_box_can_stop_the_chain():
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


def test_threshold_is_inclusive():
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
def test_equals_the_paper_loop_on_random_sets(kind, seed):
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
def test_equals_the_paper_loop_at_other_thresholds(threshold):
    rng = np.random.default_rng(7)
    boxes = _random_boxes(rng, 150, "clustered")
    want = paper_loop(boxes, np.ones(150), threshold)
    got = greedy_merge(boxes, np.ones(150), threshold)
    assert _clusters(got) == sorted(sorted(c) for c in want)


def test_equals_the_paper_loop_on_real_valued_boxes():
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


def test_one_box_is_itself():
    result = greedy_merge([[3, 4, 50, 60]], [0.7])
    np.testing.assert_array_equal(result.boxes, [[3, 4, 50, 60]])
    np.testing.assert_array_equal(result.scores, [0.7])
    np.testing.assert_array_equal(result.assignment, [0])


def test_torch_tensors_are_accepted():
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
    from overfeat.merge import _box_features, _feature_scores, _features

    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 300, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0, 150, (300, 2))], axis=1)
    i, j = np.triu_indices(300, 1)
    feat = _features(boxes)
    want = match_score(boxes[i], boxes[j])
    assert np.array_equal(_feature_scores(feat[:, i], feat[:, j]), want)
    # one box as four Python floats against many: the form a merged box is scored in
    one = _box_features(boxes[7].tolist())
    assert np.array_equal(_feature_scores(one, feat), match_score(boxes[7], boxes))


@pytest.mark.parametrize("threshold", [0.0, 0.2, MERGE_THRESHOLD, 0.9, 0.999])
@pytest.mark.parametrize("kind", ["uniform", "clustered", "ties"])
def test_input_pairs_are_every_pair_at_or_under_t_in_the_loops_order(threshold, kind):
    from overfeat.merge import _features, _initial_pairs

    rng = np.random.default_rng(11)
    boxes = _random_boxes(rng, 150, kind) + rng.integers(0, 4, (150, 4)) / 4
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2])
    # brute force: every pair, scored one at a time, sorted as the loop's argmin breaks ties
    want = sorted(
        (float(match_score(boxes[a], boxes[b])), a, b)
        for a in range(150)
        for b in range(a + 1, 150)
        if match_score(boxes[a], boxes[b]) <= threshold
    )
    score, low, high = _initial_pairs(_features(boxes), threshold)
    assert list(zip(score.tolist(), low.tolist(), high.tolist())) == want


def test_a_merged_box_finds_partners_its_input_boxes_did_not_have():
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
def test_equals_the_paper_loop_on_a_larger_set(kind):
    # long merge chains: many merged boxes, each finding partners among the boxes present
    rng = np.random.default_rng(5)
    boxes = _random_boxes(rng, 400, kind)
    want = paper_loop(boxes, np.ones(400))
    assert _clusters(greedy_merge(boxes, np.ones(400))) == sorted(sorted(c) for c in want)
