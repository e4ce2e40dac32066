"""Classification and CLS-LOC error (eval_flat.m, eval_clsloc.m; ilsvrc-evaluation.md §2.1-2.2):
the 2012 devkit's published demo numbers and hand-worked cases for every rule."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import formats
from evaluation.clsloc import NO_GUESS, classification_errors, localization_errors
from evaluation.tasks import evaluate_classification_files


def test_2012_demo_submission_gives_published_errors(devkit_dir):
    # 2012 devkit readme, recomputed exactly (shared/data/ilsvrc-devkit/README.md).
    out = evaluate_classification_files(
        devkit_dir / "t12/ILSVRC2012_validation_ground_truth.txt",
        devkit_dir / "t12/demo.val.pred.txt",
    )
    assert out["error_by_guesses"] == pytest.approx([0.99898, 0.99802, 0.99722, 0.99620, 0.99500],
                                                    abs=1e-12)  # fmt: skip
    assert out["num_images"] == 50000


def test_classification_error_hand_worked_min_over_first_k_guesses():
    gt = np.array([1, 2, 3, 4])
    pred = np.array([[1, 9, 9, 9, 9], [9, 2, 9, 9, 9], [9, 9, 9, 9, 3], [9, 9, 9, 9, 9]])
    # image 1 right at guess 1, image 2 at guess 2, image 3 at guess 5, image 4 never.
    np.testing.assert_array_equal(
        classification_errors(gt, pred), [3 / 4, 2 / 4, 2 / 4, 2 / 4, 1 / 4]
    )


def test_fewer_than_five_guesses_are_padded_as_wrong():
    np.testing.assert_array_equal(classification_errors([5], [[7, 5]]), [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(classification_errors([5], [[7, NO_GUESS]]), [1, 1, 1, 1, 1])


def _loc(gt_label, boxes, pred_labels, pred_boxes, blacklist=None):
    """One-label images: gt_label (N,), boxes list per image."""
    img = np.concatenate([[i] * len(b) for i, b in enumerate(boxes)]).astype(int)
    allb = np.concatenate([np.asarray(b).reshape(-1, 4) for b in boxes])
    return localization_errors(gt_label, img, np.asarray(gt_label)[img], allb, pred_labels,
                               pred_boxes, blacklist)  # fmt: skip


def test_localization_needs_label_and_half_iou_with_any_box():
    gt_boxes = [[[0, 0, 99, 99], [200, 200, 299, 299]]]
    half = [0, 0, 99, 199]  # vs the first box: 100x100 / 100x200 = exactly 0.5 -> correct (>=)
    under = [0, 0, 99, 200]  # 10000 / 20100 < 0.5
    on_second = [200, 200, 299, 299]
    res = _loc([3], gt_boxes, [[4, 3, 3, 3, 3]], [[half, under, on_second, half, half]])
    # guess 1 has the wrong label, guess 2 too little overlap, guess 3 matches the second box.
    assert res.loc_error_by_guesses == (1.0, 1.0, 0.0, 0.0, 0.0)
    assert res.cls_error_by_guesses == (1.0, 0.0, 0.0, 0.0, 0.0)


def test_localization_only_looks_at_boxes_of_the_image_label():
    # compute_overlap(…, gt_label): a box of another label does not count.
    img, lab, boxes = np.array([0, 0]), np.array([3, 8]), np.array([[0, 0, 9, 9], [50, 50, 59, 59]])
    res = localization_errors([3], img, lab, boxes, [[3]], [[[50, 50, 59, 59]]])
    assert res.loc_error == 1.0


def test_blacklist_removes_images_from_loc_numerator_and_denominator_only():
    boxes = [[[0, 0, 9, 9]]] * 4
    good, bad = [0, 0, 9, 9], [100, 100, 109, 109]
    preds = [[good], [bad], [bad], [good]]
    labels = [[1], [1], [1], [1]]
    res = _loc([1, 1, 1, 1], boxes, labels, preds, blacklist=np.array([0, 1, 0, 0], bool))
    # 2012 rule would be 2 wrong of 4; the 2014 rule drops image 2: 1 wrong of 3.
    assert res.loc_error == pytest.approx(1 / 3) and res.blacklisted == 1
    assert res.cls_error == 0.0
    assert _loc([1, 1, 1, 1], boxes, labels, preds).loc_error == 0.5


def test_inverted_and_nan_boxes_never_localize():
    res = _loc([1], [[[0, 0, 9, 9]]], [[1, 1]], [[[9, 9, 0, 0], [np.nan] * 4]])
    assert res.loc_error == 1.0


def test_2014_blacklist_file_has_1762_indices_from_36(devkit_dir):
    bl = formats.read_clsloc_blacklist(
        devkit_dir / "t14/ILSVRC2014_clsloc_validation_blacklist.txt"
    )
    assert len(bl) == 1762 and bl.min() == 36 and bl.max() == 49981


def test_errors_are_wrong_count_over_image_count_bit_for_bit():
    # eval_flat.m / eval_clsloc.m compute sum(e)/n: 3 wrong of 10 is the double nearest 0.3,
    # where 1 - 7/10 would be 0.30000000000000004.
    gt = np.arange(10)
    pred = np.where(np.arange(10) < 7, gt, 99)[:, None]
    assert classification_errors(gt, pred)[0] == 3 / 10
    boxes = [[[0, 0, 9, 9]]] * 11
    res = _loc(np.zeros(11, int), boxes, np.where(np.arange(11) < 7, 0, 5)[:, None],
               np.full((11, 1, 4), [0, 0, 9, 9]), blacklist=np.arange(11) == 10)  # fmt: skip
    assert res.loc_error == 3 / 10 and res.cls_error == 4 / 11
