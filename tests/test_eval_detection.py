"""DET AP rules of eval_detection.m / VOCap.m (ilsvrc-evaluation.md §2.3), checked on hand-worked
cases and against a line-by-line loop port of the MATLAB written here."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.boxes import inclusive_overlap, small_object_threshold
from evaluation.detection import average_precision, evaluate_detection, match_detections


def devkit_loop_reference(det_image, det_label, det_conf, det_boxes, gt_image, gt_label, gt_boxes,
                          num_classes, blacklist=()):  # fmt: skip
    """A direct transcription of eval_detection.m's loops and VOCap.m (slow, obviously right)."""
    bl = set(map(tuple, blacklist))
    n_img = int(max(np.max(det_image, initial=0), np.max(gt_image, initial=0))) + 1
    tp_all, fp_all, conf_all, lab_all = [], [], [], []
    for img in range(n_img):
        ids = [j for j in range(len(det_image)) if det_image[j] == img]
        # MATLAB: sort(conf,'descend') is stable.
        ids = sorted(ids, key=lambda j: -det_conf[j])
        gts = [k for k in range(len(gt_image)) if gt_image[k] == img]
        detected = {k: False for k in gts}
        for j in ids:
            if (img, det_label[j]) in bl:
                continue
            bb = det_boxes[j]
            ovmax, kmax = -np.inf, -1
            for k in gts:
                if gt_label[k] != det_label[j] or detected[k]:
                    continue
                g = gt_boxes[k]
                w, h = g[2] - g[0] + 1, g[3] - g[1] + 1
                thr = min(0.5, (w * h) / ((w + 10) * (h + 10)))
                bi = [max(bb[0], g[0]), max(bb[1], g[1]), min(bb[2], g[2]), min(bb[3], g[3])]
                iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
                if iw > 0 and ih > 0:
                    ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + w * h - iw * ih
                    ov = iw * ih / ua
                    if ov >= thr and ov > ovmax:
                        ovmax, kmax = ov, k
            if kmax >= 0:
                detected[kmax] = True
            tp_all.append(kmax >= 0)
            fp_all.append(kmax < 0)
            conf_all.append(det_conf[j])
            lab_all.append(det_label[j])
    order = sorted(range(len(conf_all)), key=lambda i: -conf_all[i])  # stable
    aps = []
    for c in range(num_classes):
        npos = sum(1 for k in range(len(gt_label))
                   if gt_label[k] == c and (gt_image[k], c) not in bl)  # fmt: skip
        sel = [i for i in order if lab_all[i] == c]
        tp = np.cumsum([tp_all[i] for i in sel])
        fp = np.cumsum([fp_all[i] for i in sel])
        if npos == 0:
            aps.append(np.nan)
            continue
        rec = tp / npos
        prec = tp / np.maximum(fp + tp, 1e-300)
        mrec = np.r_[0, rec, 1]
        mpre = np.r_[0, prec, 0]
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
        aps.append(float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i])))
    return np.array(aps)


def box(x1, y1, x2, y2):
    return [x1, y1, x2, y2]


def test_inclusive_overlap_hand_worked_with_plus_one():
    # (0,0,9,9) is 10x10 = 100 px; (5,0,14,9) is 10x10; the intersection is columns 5..9 = 5x10.
    assert inclusive_overlap(np.array(box(0, 0, 9, 9)), np.array(box(5, 0, 14, 9))) == 50 / 150
    # Sharing a single pixel column still overlaps under the +1 rule: 1x10 / (100+100-10).
    assert inclusive_overlap(np.array(box(0, 0, 9, 9)), np.array(box(9, 0, 18, 9))) == 10 / 190
    # Disjoint and inverted boxes give the devkit's -1.
    assert inclusive_overlap(np.array(box(0, 0, 9, 9)), np.array(box(10, 0, 19, 9))) == -1
    assert inclusive_overlap(np.array(box(9, 0, 0, 9)), np.array(box(0, 0, 9, 9))) == -1


def test_small_object_threshold_hand_worked():
    # 20x20: 400 / (30*30) = 0.444..; 30x30: 900/1600 = 0.5625 -> capped at 0.5; 1x1: 1/121.
    thr = small_object_threshold(np.array([box(0, 0, 19, 19), box(0, 0, 29, 29), box(3, 3, 3, 3)]))
    np.testing.assert_array_equal(thr, [400 / 900, 0.5, 1 / 121])


def test_small_object_matches_below_half_iou():
    # GT 20x20 (thr 0.444); a detection shifted 3 px: intersection 17x20=340, union 460 -> 0.739;
    # shifted 6 px: 14*20=280 / 520 = 0.538; shifted 8: 12*20=240/560 = 0.4286 < 0.444 -> FP;
    # with a 40x40 GT the same 0.4286-ish overlap would need 0.5.
    gt = np.array([box(0, 0, 19, 19)])
    for shift, expect in [(3, True), (6, True), (7, True), (8, False)]:
        det = np.array([box(shift, 0, 19 + shift, 19)])
        tp, _ = match_detections([0], [0], [1.0], det, [0], [0], gt, 1)
        iou = (20 - shift) * 20 / (800 - (20 - shift) * 20)
        assert tp[0] == expect == (iou >= 400 / 900)


def test_duplicate_detection_is_false_positive():
    gt = np.array([box(0, 0, 99, 99)])
    dets = np.array([box(0, 0, 99, 99), box(1, 1, 99, 99)])
    tp, matched = match_detections([0, 0], [0, 0], [0.9, 0.8], dets, [0], [0], gt, 1)
    assert tp.tolist() == [True, False] and matched.tolist() == [0, -1]
    # Precision 1 then 1/2; AP = recall 1 reached at rank 1 with precision 1 -> 1.0.
    res = evaluate_detection([0, 0], [0, 0], [0.9, 0.8], dets, [0], [0], gt, 1)
    assert res.ap[0] == 1.0


def test_best_unmatched_rule_differs_from_voc():
    # Two GTs A=(0..99) and B=(20..119). Detection 1 (conf .9) sits on A, detection 2 (conf .8)
    # overlaps A best (IoU 90*100/(2*10000-9000)=0.818) and B with 80*100/12000... computed:
    gt = np.array([box(0, 0, 99, 99), box(20, 0, 119, 99)])
    dets = np.array([box(0, 0, 99, 99), box(10, 0, 109, 99)])
    # det2 vs A: 90 cols -> 9000/11000 = 0.818; vs B: 90 cols -> 9000/11000 = 0.818 too; make
    # det2 closer to A: shift 8 -> vs A 92*100/(20000-9200)=0.852, vs B 88*100/11200 = 0.786.
    dets[1] = box(8, 0, 107, 99)
    tp, matched = match_detections([0, 0], [0, 0], [0.9, 0.8], dets, [0, 0], [0, 0], gt, 1)
    # ILSVRC: A is taken, so det2 takes the best UNMATCHED box B (0.786 >= 0.5) -> TP.
    assert tp.tolist() == [True, True] and matched.tolist() == [0, 1]
    # VOC (VOCevaldet.m) would take the best box overall (A, taken) and call det2 a false
    # positive: the ILSVRC AP is 1.0 here, the VOC one would be 0.5.
    res = evaluate_detection([0, 0], [0, 0], [0.9, 0.8], dets, [0, 0], [0, 0], gt, 1)
    assert res.ap[0] == 1.0


def test_equal_iou_goes_to_first_ground_truth_box():
    # A detection exactly between two identical-overlap boxes: strict ">" keeps the first GT.
    gt = np.array([box(0, 0, 99, 99), box(0, 0, 99, 99)])
    tp, matched = match_detections([0], [0], [1.0], np.array([box(0, 0, 99, 99)]), [0, 0], [0, 0],
                                   gt, 1)  # fmt: skip
    assert matched.tolist() == [0]


def test_confidence_ties_keep_file_order_within_image_and_image_order_across():
    # One GT; two identical detections with equal confidence: the first in file order is the TP.
    gt = np.array([box(0, 0, 99, 99)])
    dets = np.array([box(0, 0, 99, 99), box(0, 0, 99, 99)])
    tp, _ = match_detections([0, 0], [0, 0], [0.5, 0.5], dets, [0], [0], gt, 1)
    assert tp.tolist() == [True, False]
    # Across images with tied confidence, image-list order decides the PR order: image 0 has an
    # FP, image 1 a TP, both at 0.5. Devkit order FP then TP: precision 0, 1/2 -> AP = 0.5.
    # (The reverse order would give AP 1.0.)
    dets = np.array([box(200, 200, 299, 299), box(0, 0, 99, 99)])
    res = evaluate_detection([1, 0], [0, 0], [0.5, 0.5], dets[::-1], [1], [0], gt, 1)
    assert res.ap[0] == 0.5


def test_blacklisted_pair_is_neither_positive_nor_detection():
    gt = np.array([box(0, 0, 99, 99), box(0, 0, 99, 99)])
    # Image 0 class 0 is blacklisted: its GT is not a positive, its FP detection is ignored.
    dets = np.array([box(300, 300, 399, 399), box(0, 0, 99, 99)])
    res = evaluate_detection([0, 1], [0, 0], [0.9, 0.8], dets, [0, 1], [0, 0], gt, 1,
                             blacklist=np.array([[0, 0]]))  # fmt: skip
    assert res.npos[0] == 1 and res.ignored == 1 and res.ap[0] == 1.0
    # Without the blacklist: FP first (precision 0) then TP (1/2), 1 of 2 positives -> 0.25.
    res = evaluate_detection([0, 1], [0, 0], [0.9, 0.8], dets, [0, 1], [0, 0], gt, 1)
    assert res.ap[0] == 0.25


def test_all_points_ap_hand_worked():
    # Ranks: TP, FP, TP, FP, TP with 4 positives. Precision 1, .5, .667, .5, .6; the envelope at
    # the TPs is 1, .667, .6 -> AP = (1 + 2/3 + 3/5) / 4.
    label = np.zeros(5, np.int64)
    tp = np.array([1, 0, 1, 0, 1], bool)
    conf = np.array([5, 4, 3, 2, 1.0])
    ap = average_precision(label, conf, tp, np.arange(5), np.array([4]))
    assert ap[0] == pytest.approx((1 + 2 / 3 + 3 / 5) / 4, abs=1e-15)


def test_class_without_positives_is_nan_and_left_out_with_warning():
    gt = np.array([box(0, 0, 99, 99)])
    with pytest.warns(UserWarning, match="no ground-truth boxes"):
        res = evaluate_detection([0], [1], [0.5], np.array([box(0, 0, 9, 9)]), [0], [0], gt, 2)
    assert np.isnan(res.ap[1]) and res.ap[0] == 0.0 and res.mean_ap == 0.0


def test_inverted_predicted_box_is_a_false_positive():
    gt = np.array([box(0, 0, 99, 99)])
    tp, _ = match_detections([0], [0], [1.0], np.array([box(99, 99, 0, 0)]), [0], [0], gt, 1)
    assert not tp[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop_port_of_eval_detection(seed):
    rng = np.random.default_rng(seed)
    n_img, n_cls, m = 12, 3, 40
    gi, gl = rng.integers(0, n_img, m), rng.integers(0, n_cls, m)
    xy = rng.integers(0, 60, (m, 2))
    gb = np.c_[xy, xy + rng.integers(2, 50, (m, 2))]  # many small boxes: per-object thresholds
    k = rng.integers(0, m, 150)
    db = gb[k] + rng.integers(-4, 5, (150, 4))  # integer boxes: IoU ties and inverted boxes occur
    di, dl = gi[k], np.where(rng.random(150) < 0.8, gl[k], rng.integers(0, n_cls, 150))
    dc = rng.integers(0, 6, 150) / 5.0  # heavy confidence ties
    bl = np.array([[gi[0], gl[0]], [3, 1]])
    want = devkit_loop_reference(di, dl, dc, db, gi, gl, gb, n_cls, bl)
    got = evaluate_detection(di, dl, dc, db, gi, gl, gb, n_cls, blacklist=bl)
    np.testing.assert_allclose(got.ap, want, rtol=0, atol=1e-12)
