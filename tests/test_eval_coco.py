"""pycocotools as an independent cross-check of the DET matching (evaluation/coco_check.py): in
the documented agreement configuration the true positives and the 101-point AP coincide."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.coco_check import ap_101_point, inclusive_to_coco_xywh, run_pycocotools
from evaluation.detection import evaluate_detection, match_detections


def synthetic(seed, n_img=40, n_cls=4, m=160, small=False):
    rng = np.random.default_rng(seed)
    gi, gl = rng.integers(0, n_img, m), rng.integers(0, n_cls, m)
    xy = rng.integers(0, 300, (m, 2))
    lo = 3 if small else 30  # 30x30 and up: min(0.5, 900/1600) = 0.5, no small objects
    gb = np.c_[xy, xy + rng.integers(lo, 150, (m, 2)) - 1]
    k = rng.integers(0, m, 3 * m)
    # Real-valued jitter: no exact IoU ties; keep boxes upright (pycocotools drops inverted ones).
    db = gb[k] + rng.normal(0, 10, (3 * m, 4))
    db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
    di, dl = gi[k], gl[k]
    r = rng.integers(0, n_img, m)
    fxy = rng.uniform(0, 300, (m, 2))
    db = np.r_[db, np.c_[fxy, fxy + rng.uniform(20, 150, (m, 2))]]
    di, dl = np.r_[di, r], np.r_[dl, rng.integers(0, n_cls, m)]
    return di, dl, rng.random(len(di)), db, gi, gl, gb, n_img, n_cls


def test_inclusive_box_becomes_continuous_box_of_same_size():
    # (0,0,9,9) covers pixels 0..9: 10 wide, so [x, y, w, h] = [0, 0, 10, 10].
    np.testing.assert_array_equal(
        inclusive_to_coco_xywh(np.array([[0, 0, 9, 9]])), [[0, 0, 10, 10]]
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_true_positives_and_101_point_ap_agree_with_pycocotools(seed):
    di, dl, dc, db, gi, gl, gb, n_img, n_cls = synthetic(seed)
    tp, _ = match_detections(di, dl, dc, db, gi, gl, gb, n_cls)
    coco_tp, coco_ap, _ = run_pycocotools(di, dl, dc, db, gi, gl, gb, n_img, n_cls)
    assert tp.sum() > 100 and (~tp).sum() > 100
    np.testing.assert_array_equal(tp, coco_tp)
    tie = np.empty(len(di), np.int64)
    tie[np.lexsort((np.arange(len(di)), di))] = np.arange(len(di))
    ours = ap_101_point(dl, dc, tp, tie, np.bincount(gl, minlength=n_cls))
    np.testing.assert_allclose(ours, coco_ap, rtol=0, atol=1e-12)
    # The ILSVRC all-points AP is a different number from the same matches (not asserted equal).
    assert not np.allclose(evaluate_detection(di, dl, dc, db, gi, gl, gb, n_cls).ap, coco_ap)


def test_small_objects_are_outside_the_agreement_configuration():
    di, dl, dc, db, gi, gl, gb, n_img, n_cls = synthetic(0, small=True)
    with pytest.raises(ValueError, match="small"):
        run_pycocotools(di, dl, dc, db, gi, gl, gb, n_img, n_cls)
