"""pycocotools as an independent cross-check of the DET matching — never as the metric.

pycocotools ``COCOeval`` and the ILSVRC ``eval_detection.m`` differ (shared/reference/
ilsvrc-evaluation.md §5, §6): continuous ``[x, y, w, h]`` boxes without +1, one IoU threshold per
run instead of a per-object one, 101-point sampled AP instead of all-points, a per-image
per-class cap ``maxDets``, area ranges, and ties in IoU won by the LAST box instead of the first.

They agree exactly in this configuration (:data:`AGREEMENT`), which the tests hold them to:

1. boxes converted once at the boundary: inclusive ``(x1, y1, x2, y2)`` → ``[x1, y1, x2-x1+1,
   y2-y1+1]``; a continuous box ``[x1, x2+1)`` has the same intersection and union as the +1
   inclusive box, so the IoUs are equal;
2. every ground-truth box large enough that ``min(0.5, wh/((w+10)(h+10)))`` is 0.5 (no small
   objects), and pycocotools run at ``iouThrs = [0.5]``;
3. no blacklist, no crowd boxes, one area range covering everything, ``maxDets`` at least the
   largest number of detections of one class in one image;
4. no detection with exactly equal IoU to two unmatched boxes (real-valued boxes in the tests);
5. no inverted detection box: pycocotools gives it a negative area, which falls outside every
   area range, so an unmatched one is ignored instead of counted as a false positive.

Then the true positives are the same detections, and pycocotools' per-class 101-point AP equals
:func:`ap_101_point` computed from the harness's own true positives.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from evaluation.boxes import small_object_threshold

__all__ = ["AGREEMENT", "inclusive_to_coco_xywh", "run_pycocotools", "ap_101_point"]

AGREEMENT = (
    "IoU 0.5 only; no ground-truth box with min(0.5, wh/((w+10)(h+10))) < 0.5; no blacklist; "
    "one area range [0, 1e10]; maxDets >= the most detections of one class in one image; "
    "no exact IoU ties between two unmatched boxes; no inverted detection boxes"
)


def inclusive_to_coco_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` inclusive ``(x1, y1, x2, y2)`` → ``(N, 4)`` continuous ``[x, y, w, h]``."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.column_stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0] + 1, b[:, 3] - b[:, 1] + 1])


def run_pycocotools(
    det_image, det_label, det_conf, det_boxes, gt_image, gt_label, gt_boxes,
    num_images: int, num_classes: int,
):  # fmt: skip
    """Run ``COCOeval`` in the agreement configuration (shapes as in evaluation/detection.py).

    Returns (tp ``(D,)`` bool per detection in input order, ap101 ``(C,)`` with NaN for classes
    without ground truth, the COCOeval object).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if (small_object_threshold(gt_boxes) < 0.5).any():
        raise ValueError("outside the agreement configuration: a ground-truth box is small")
    gxywh = inclusive_to_coco_xywh(gt_boxes)
    dxywh = inclusive_to_coco_xywh(det_boxes)
    dataset = {
        "images": [{"id": i + 1} for i in range(num_images)],
        "categories": [{"id": c + 1} for c in range(num_classes)],
        "annotations": [
            {"id": k + 1, "image_id": int(i) + 1, "category_id": int(c) + 1,
             "bbox": box.tolist(), "area": float(box[2] * box[3]), "iscrowd": 0}
            for k, (i, c, box) in enumerate(zip(gt_image, gt_label, gxywh))
        ],
    }  # fmt: skip
    results = [
        {"image_id": int(i) + 1, "category_id": int(c) + 1, "bbox": box.tolist(), "score": float(s)}
        for i, c, s, box in zip(det_image, det_label, det_conf, dxywh)
    ]
    counts = np.bincount(
        np.asarray(det_image, np.int64) * num_classes + np.asarray(det_label, np.int64)
    )
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.iouThrs = np.array([0.5])
        ev.params.areaRng = [[0.0, 1e10]]
        ev.params.areaRngLbl = ["all"]
        ev.params.maxDets = [int(max(counts.max(initial=0), 1))]
        ev.evaluate()
        ev.accumulate()
    tp = np.zeros(len(results), dtype=bool)
    for e in ev.evalImgs:
        if e is None:
            continue
        ids = np.asarray(e["dtIds"], dtype=np.int64)
        tp[ids[np.asarray(e["dtMatches"])[0] > 0] - 1] = True  # loadRes numbers results 1..D
    precision = ev.eval["precision"][0, :, :, 0, 0]  # (R=101, K)
    ap = np.where((precision > -1).all(axis=0), precision.mean(axis=0), np.nan)
    return tp, ap, ev


def ap_101_point(label, conf, tp, tie_key, npos) -> np.ndarray:
    """COCO's 101-point AP (``cocoeval.accumulate``) from given true positives.

    label, conf, tp, tie_key: ``(D,)``; npos: ``(C,)``. Returns ``(C,)``, NaN where npos == 0.
    """
    label, tp = np.asarray(label), np.asarray(tp, dtype=bool)
    rec_thrs = np.linspace(0.0, 1.0, 101)
    ap = np.full(len(npos), np.nan)
    for c in np.flatnonzero(np.asarray(npos) > 0):
        sel = np.flatnonzero(label == c)
        order = sel[np.lexsort((np.asarray(tie_key)[sel], -np.asarray(conf)[sel]))]
        ctp = np.cumsum(tp[order])
        cfp = np.cumsum(~tp[order])
        rc = ctp / npos[c]
        pr = ctp / np.maximum(ctp + cfp, np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1] if len(pr) else pr
        idx = np.searchsorted(rc, rec_thrs, side="left")
        q = np.zeros(len(rec_thrs))
        ok = idx < len(pr)
        q[ok] = pr[idx[ok]]
        ap[c] = q.mean()
    return ap
