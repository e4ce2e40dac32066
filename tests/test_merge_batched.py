"""The batched greedy merge of §4.3 in torch (overfeat.merge_batched), many sets at once: the
clusters of the paper's loop written literally (tests/test_merge.py's ``paper_loop``: the argmin
over every pair, one merge per iteration) and the merged boxes as their means, on random and
realistic sets, ties included; and greedy_merge's output bit for bit on real-valued boxes, where
the order of additions matters. On the CPU here; the same code runs on CUDA (gpu_check)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_merge import _random_boxes, _square, paper_loop

from overfeat.merge import MERGE_THRESHOLD, greedy_merge
from overfeat.merge_batched import batched_greedy_merge

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from merge_speed import realistic_boxes  # noqa: E402


def _loop_result(boxes, threshold=MERGE_THRESHOLD):
    """The literal loop's clusters as greedy_merge reports them: merged boxes ordered by their
    first input box, each the mean of its input boxes; the assignment of every input box."""
    boxes = np.asarray(boxes, dtype=np.float64)
    clusters = sorted((sorted(c) for c in paper_loop(boxes, None, threshold)), key=min)
    assignment = np.empty(len(boxes), dtype=np.int64)
    for k, c in enumerate(clusters):
        assignment[c] = k
    means = np.array([boxes[c].sum(axis=0) / len(c) for c in clusters]).reshape(-1, 4)
    return means, assignment


def _assert_loop(sets, got, threshold=MERGE_THRESHOLD):
    assert len(got) == len(sets)
    for boxes, (merged, assignment) in zip(sets, got):
        want_boxes, want_assignment = _loop_result(boxes, threshold)
        np.testing.assert_array_equal(assignment, want_assignment)
        np.testing.assert_array_equal(merged, want_boxes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_set_of_a_batch_merges_as_the_paper_loop(seed):
    # sets of different sizes and kinds in one batch: padding never joins two sets
    rng = np.random.default_rng(seed)
    sets = [_random_boxes(rng, n, kind) for n in (2, 3, 7, 40, 120)
            for kind in ("uniform", "clustered", "ties")]  # fmt: skip
    _assert_loop(sets, batched_greedy_merge(sets))


@pytest.mark.parametrize("threshold", [-0.1, 0.0, 0.2, 0.9, 1 - 1e-7])
def test_equals_the_paper_loop_at_other_thresholds(threshold):
    rng = np.random.default_rng(7)
    sets = [_random_boxes(rng, 80, "clustered"), _random_boxes(rng, 60, "ties")]
    _assert_loop(sets, batched_greedy_merge(sets, threshold), threshold)


def test_realistic_sets_merge_as_the_paper_loop():
    # what a regressor gives for one (image, class): boxes jittered around a few objects and
    # boxes scattered over the image (benchmarks/merge_speed.py), long merge chains
    rng = np.random.default_rng(11)
    sets = [realistic_boxes(n, rng) for n in (150, 90, 30)]
    _assert_loop(sets, batched_greedy_merge(sets))


def test_identical_boxes_merge_into_the_first_and_equal_scores_tie_as_the_loop():
    # every pair of copies scores 0: the loop merges (0, 1), then (0, 2), ... keeping index 0
    copies = np.array([_square(5, 5)] * 40 + [_square(400, 5)] * 3, dtype=np.float64)
    rng = np.random.default_rng(4)
    repeated = np.repeat(_random_boxes(rng, 5, "uniform"), 12, axis=0)[rng.permutation(60)]
    (merged, assignment), second = batched_greedy_merge([copies, repeated])
    np.testing.assert_array_equal(assignment, [0] * 40 + [1] * 3)
    np.testing.assert_array_equal(merged, [_square(5, 5), _square(400, 5)])
    _assert_loop([repeated], [second])


def test_empty_and_single_box_sets():
    got = batched_greedy_merge([np.zeros((0, 4)), [_square(3, 4)], [_square(0, 0), _square(3, 0)]])
    assert got[0][0].shape == (0, 4) and got[0][1].shape == (0,)
    np.testing.assert_array_equal(got[1][0], [_square(3, 4)])
    np.testing.assert_array_equal(got[1][1], [0])
    np.testing.assert_array_equal(got[2][0], [[1.5, 0, 100.5, 99]])
    np.testing.assert_array_equal(got[2][1], [0, 0])
    assert batched_greedy_merge([]) == []


@pytest.mark.parametrize("max_pairs", [1, 5_000, 10**9])
def test_real_valued_boxes_give_greedy_merges_bits_whatever_the_chunks(max_pairs):
    # decoded regressor boxes are real-valued: the merged boxes' terms depend on the order of
    # the additions, which the batched merge keeps; chunks of one set, a few, or all at once
    rng = np.random.default_rng(5)
    sets = [realistic_boxes(n, rng) + rng.uniform(-0.5, 0.5, (n, 4)) for n in (260, 45, 120, 3)]
    for s in sets:
        s[:, 2:] = np.maximum(s[:, 2:], s[:, :2])
    got = batched_greedy_merge(sets, max_pairs=max_pairs)
    for boxes, (merged, assignment) in zip(sets, got):
        want = greedy_merge(boxes, np.zeros(len(boxes)))
        np.testing.assert_array_equal(assignment, want.assignment)
        np.testing.assert_array_equal(merged, want.boxes)


def test_tensors_and_lists_are_accepted_and_bad_input_refused():
    boxes = [_square(0, 0), _square(3, 0)]
    as_tensor = batched_greedy_merge([torch.tensor(boxes, dtype=torch.float32)])
    np.testing.assert_array_equal(as_tensor[0][1], [0, 0])
    with pytest.raises(ValueError, match="x2 < x1"):
        batched_greedy_merge([[[5, 0, 4, 9]]])
    with pytest.raises(ValueError, match="threshold must be < 1"):
        batched_greedy_merge([boxes], threshold=1.0)
