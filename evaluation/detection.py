"""ILSVRC DET average precision as the 2013/2014 devkit's ``eval_detection.m`` and ``VOCap.m``
compute it (shared/reference/ilsvrc-evaluation.md §2.3, §6).

Stages (as in pycocotools' evaluate → accumulate → summarize, but vectorised over all images):

1. :func:`match_detections` — per image, detections in descending confidence (stable: ties keep
   file order) each take the BEST-IoU NOT-YET-MATCHED ground-truth box of their class whose IoU
   reaches that box's own threshold ``min(0.5, wh/((w+10)(h+10)))``; found → true positive,
   else false positive (a duplicate is therefore a false positive). Detections of a blacklisted
   (image, class) pair are ignored and its boxes are not positives.
2. :func:`average_precision` — all detections in one global stable descending-confidence order
   (ties keep image-list order, then file order), cumulative TP/FP per class, all-points
   interpolated AP (VOC2010+, ``VOCap.m``).
3. :func:`evaluate_detection` — AP per class, mAP and median AP over the classes that have
   positives (a class without positives is reported as NaN, named in a warning, and left out of
   the mean: the devkit would return NaN for the mean).

Shapes: D detections, M ground-truth boxes, C classes (labels 0..C-1 here; DET_ID = label + 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from evaluation.boxes import inclusive_overlap, small_object_threshold

__all__ = ["DetResult", "match_detections", "average_precision", "evaluate_detection"]


def _stable_desc(conf: np.ndarray, *then: np.ndarray) -> np.ndarray:
    """Order by descending confidence; ties by the ``then`` keys ascending (first key first)."""
    return np.lexsort((*reversed(then), -np.asarray(conf, dtype=np.float64)))


def match_detections(
    det_image: np.ndarray,
    det_label: np.ndarray,
    det_conf: np.ndarray,
    det_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_label: np.ndarray,
    gt_boxes: np.ndarray,
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of ``eval_detection.m``.

    det_image, det_label: ``(D,)`` int; det_conf: ``(D,)``; det_boxes: ``(D, 4)`` inclusive;
    gt_image, gt_label: ``(M,)``; gt_boxes: ``(M, 4)``. Rows in file order (the tie order).
    Returns (tp ``(D,)`` bool, matched_gt ``(D,)`` int64 index into the GT arrays or -1).

    Only detections of the same (image, class) compete for a box, so the per-image sequential loop
    of the devkit is run as rounds over all (image, class) groups at once: round r settles the r-th
    detection (in descending confidence) of every group that has candidate boxes.
    """
    det_image = np.asarray(det_image, dtype=np.int64)
    det_label = np.asarray(det_label, dtype=np.int64)
    gt_image = np.asarray(gt_image, dtype=np.int64)
    gt_label = np.asarray(gt_label, dtype=np.int64)
    d, m = len(det_image), len(gt_image)
    tp = np.zeros(d, dtype=bool)
    matched = np.full(d, -1, dtype=np.int64)
    if d == 0 or m == 0:
        return tp, matched
    det_group = det_image * num_classes + det_label
    gt_group = gt_image * num_classes + gt_label
    gt_order = np.argsort(gt_group, kind="stable")  # keeps file order inside a group
    sorted_groups = gt_group[gt_order]
    start = np.searchsorted(sorted_groups, det_group, side="left")
    count = np.searchsorted(sorted_groups, det_group, side="right") - start

    # All (detection, box) pairs of the same (image, class).
    pair_det = np.repeat(np.arange(d), count)
    offsets = np.arange(len(pair_det)) - np.repeat(np.cumsum(count) - count, count)
    pair_gt = gt_order[np.repeat(start, count) + offsets]
    ov = inclusive_overlap(np.asarray(det_boxes, np.float64)[pair_det], gt_boxes[pair_gt])
    thr = small_object_threshold(np.asarray(gt_boxes)[pair_gt])
    ok = ov >= thr
    pair_det, pair_gt, ov = pair_det[ok], pair_gt[ok], ov[ok]
    if len(pair_det) == 0:
        return tp, matched

    # Rank of each detection within its group, in the devkit's processing order.
    order = _stable_desc(det_conf, np.arange(d))
    order = order[np.argsort(det_group[order], kind="stable")]
    rank = np.empty(d, dtype=np.int64)
    grp_sorted = det_group[order]
    first = np.r_[0, np.flatnonzero(grp_sorted[1:] != grp_sorted[:-1]) + 1]
    rank[order] = np.arange(d) - np.repeat(first, np.diff(np.r_[first, d]))

    # Pairs by (rank, detection, IoU desc, box file order): the first available pair of a
    # detection is its best unmatched box; strict ">" in the devkit lets the first box win ties.
    p = np.lexsort((pair_gt, -ov, pair_det, rank[pair_det]))
    pair_det, pair_gt, pair_rank = pair_det[p], pair_gt[p], rank[pair_det[p]]
    bounds = np.r_[0, np.flatnonzero(np.diff(pair_rank)) + 1, len(p)]
    taken = np.zeros(m, dtype=bool)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        dets, gts = pair_det[lo:hi], pair_gt[lo:hi]
        free = ~taken[gts]
        dets, gts = dets[free], gts[free]
        if len(dets) == 0:
            continue
        keep = np.r_[True, dets[1:] != dets[:-1]]  # first free pair of each detection
        dets, gts = dets[keep], gts[keep]
        tp[dets] = True
        matched[dets] = gts
        taken[gts] = True
    return tp, matched


def average_precision(
    label: np.ndarray, conf: np.ndarray, tp: np.ndarray, tie_key: np.ndarray, npos: np.ndarray
) -> np.ndarray:
    """All-points interpolated AP per class (``VOCap.m``), from matched detections.

    label: ``(D,)`` class 0..C-1; conf: ``(D,)``; tp: ``(D,)`` bool; tie_key: ``(D,)`` position in
    the devkit's concatenation (image-list order, then order within the image); npos: ``(C,)``.
    Returns ``(C,)``: NaN where ``npos == 0``.

    With recall rising by 1/npos at each true positive, VOCap's sum of Δrecall × (precision
    envelope) is (1/npos) × Σ over true positives of the best precision at that rank or later.
    """
    npos = np.asarray(npos, dtype=np.int64)
    c = len(npos)
    order = _stable_desc(conf, tie_key)
    order = order[np.argsort(np.asarray(label)[order], kind="stable")]
    lab, hit = np.asarray(label)[order], np.asarray(tp, dtype=bool)[order]
    d = len(lab)
    starts = np.searchsorted(lab, np.arange(c))
    seg_start = starts[lab] if d else np.zeros(0, np.int64)
    ctp = np.cumsum(hit)
    before = np.r_[0, ctp][seg_start]
    tp_cum = ctp - before
    rank = np.arange(d) - seg_start + 1
    precision = tp_cum / rank
    # Backward running max (the precision envelope) per class; a loop over the C classes, not
    # over detections, keeps it exact (no offset arithmetic on the precision values).
    envelope = np.empty(d)
    bounds = np.r_[starts, d]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        envelope[lo:hi] = np.maximum.accumulate(precision[lo:hi][::-1])[::-1]
    sums = np.bincount(lab[hit], weights=envelope[hit], minlength=c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(npos > 0, sums / np.maximum(npos, 1), np.nan)


@dataclass(frozen=True)
class DetResult:
    """``ap``: ``(C,)`` AP per class (NaN: no positives); ``npos``: ``(C,)``; ``num_dets``: ``(C,)``
    detections counted (blacklisted ones excluded); ``ignored``: blacklisted detections;
    ``num_images``: images evaluated and ``images_without_detections``: those of them without a
    single detection (their boxes can only be misses), both None when the caller did not say
    how many images there are."""

    ap: np.ndarray
    npos: np.ndarray
    num_dets: np.ndarray
    ignored: int
    num_images: int | None = None
    images_without_detections: int | None = None

    @property
    def mean_ap(self) -> float:
        valid = ~np.isnan(self.ap)
        return float(self.ap[valid].mean()) if valid.any() else float("nan")

    @property
    def median_ap(self) -> float:
        valid = ~np.isnan(self.ap)
        return float(np.median(self.ap[valid])) if valid.any() else float("nan")


def evaluate_detection(
    det_image: np.ndarray,
    det_label: np.ndarray,
    det_conf: np.ndarray,
    det_boxes: np.ndarray,
    gt_image: np.ndarray,
    gt_label: np.ndarray,
    gt_boxes: np.ndarray,
    num_classes: int,
    blacklist: np.ndarray | None = None,
    class_names: tuple[str, ...] | None = None,
    num_images: int | None = None,
) -> DetResult:
    """DET AP per class, as ``eval_detection.m``.

    det_image: ``(D,)`` position of the image in the evaluation list (0-based; this is also the
    tie order across images); det_label ``(D,)`` 0..C-1; det_conf ``(D,)``; det_boxes ``(D, 4)``;
    gt_*: ``(M,)``/``(M, 4)``; blacklist: ``(B, 2)`` int (image position, class) pairs or None;
    num_images: the length of the evaluation list, to count its images without a detection.
    """
    det_image = np.asarray(det_image, dtype=np.int64)
    det_label = np.asarray(det_label, dtype=np.int64)
    det_conf = np.asarray(det_conf, dtype=np.float64)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    gt_image = np.asarray(gt_image, dtype=np.int64)
    gt_label = np.asarray(gt_label, dtype=np.int64)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    # Counted before the blacklist: an image whose only detections are blacklisted still had some.
    without = None if num_images is None else num_images - len(np.unique(det_image))
    ignored = 0
    if blacklist is not None and len(blacklist):
        bl = np.unique(np.asarray(blacklist, dtype=np.int64).reshape(-1, 2), axis=0)
        bl_keys = bl[:, 0] * num_classes + bl[:, 1]
        drop_det = np.isin(det_image * num_classes + det_label, bl_keys)
        drop_gt = np.isin(gt_image * num_classes + gt_label, bl_keys)
        ignored = int(drop_det.sum())
        det_image, det_label, det_conf, det_boxes = (
            a[~drop_det] for a in (det_image, det_label, det_conf, det_boxes)
        )
        gt_image, gt_label, gt_boxes = (a[~drop_gt] for a in (gt_image, gt_label, gt_boxes))
    tp, _ = match_detections(
        det_image, det_label, det_conf, det_boxes, gt_image, gt_label, gt_boxes, num_classes
    )
    # The devkit concatenates per-image lists (image-list order, each sorted by confidence):
    # across images, ties in the global sort fall back to image order, then file order.
    tie_key = np.lexsort((np.arange(len(det_image)), det_image))
    tie_rank = np.empty(len(det_image), dtype=np.int64)
    tie_rank[tie_key] = np.arange(len(det_image))
    npos = np.bincount(gt_label, minlength=num_classes)
    ap = average_precision(det_label, det_conf, tp, tie_rank, npos)
    empty = np.flatnonzero(npos == 0)
    if len(empty):
        names = [class_names[k] if class_names else str(k + 1) for k in empty[:10]]
        warnings.warn(
            f"{len(empty)} class(es) have no ground-truth boxes (AP undefined, reported as NaN and "
            f"left out of mAP): {', '.join(names)}{' ...' if len(empty) > 10 else ''}",
            stacklevel=2,
        )
    num_dets = np.bincount(det_label, minlength=num_classes)
    return DetResult(ap, npos, num_dets, ignored, num_images, without)
