"""Classification and CLS-LOC localization error as the ILSVRC devkits compute them
(2012 ``eval_flat.m`` / ``eval_localization_flat.m``, 2014 ``eval_clsloc.m``;
shared/reference/ilsvrc-evaluation.md §2.1, §2.2).

Labels here are plain integers in ONE label space chosen by the caller (the formats layer converts
through evaluation/labels.py). ``NO_GUESS`` (-1) marks a missing guess: the devkit reads short
lines zero-padded and label 0 never matches, so a missing guess is simply wrong.

Shapes: N images, G ≤ 5 guesses per image, M ground-truth boxes over all images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.boxes import inclusive_overlap

__all__ = [
    "MAX_GUESSES",
    "LOC_IOU_THRESHOLD",
    "NO_GUESS",
    "ClsLocResult",
    "classification_errors",
    "localization_hits",
    "localization_errors",
]

MAX_GUESSES = 5
# "over 50% overlap" (2012 task text); the devkit tests `ov < 0.50 == 0`, i.e. IoU >= 0.5.
LOC_IOU_THRESHOLD = 0.5
NO_GUESS = -1


def _pad_guesses(pred: np.ndarray) -> np.ndarray:
    """(N, G) → (N, 5), filling with NO_GUESS; columns beyond 5 are dropped as in eval_flat.m."""
    pred = np.asarray(pred, dtype=np.int64)
    if pred.ndim != 2:
        raise ValueError(f"guesses must be (N, G), got shape {pred.shape}")
    out = np.full((pred.shape[0], MAX_GUESSES), NO_GUESS, dtype=np.int64)
    g = min(pred.shape[1], MAX_GUESSES)
    out[:, :g] = pred[:, :g]
    return out


def _errors_by_guesses(hit: np.ndarray, weight: np.ndarray | None = None) -> np.ndarray:
    """hit: (N, 5) bool, guess j of image i is correct. Returns (5,) error with 1..5 guesses:
    the mean over images of min over the first k guesses of the 0/1 error."""
    solved = np.logical_or.accumulate(hit, axis=1)
    if weight is None:
        weight = np.ones(len(hit), dtype=bool)
    n = weight.sum()
    # The devkits' sum(e)/n: a count over a count is the double nearest the true ratio, where
    # 1 - right/n is not (1 - 7/10 = 0.30000000000000004).
    return (~solved & weight[:, None]).sum(axis=0) / n if n else np.full(MAX_GUESSES, np.nan)


def classification_errors(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Flat top-k classification error (``eval_flat.m``).

    gt: ``(N,)`` int labels; pred: ``(N, G)`` int guesses in descending confidence.
    Returns ``(5,)``: error with 1, 2, 3, 4, 5 guesses. Duplicate labels in a row are allowed.
    """
    gt = np.asarray(gt, dtype=np.int64)
    pred = _pad_guesses(pred)
    if len(gt) != len(pred):
        raise ValueError(f"{len(pred)} prediction rows for {len(gt)} ground-truth images")
    return _errors_by_guesses(pred == gt[:, None])


def localization_hits(
    gt_labels: np.ndarray,
    gt_image: np.ndarray,
    gt_box_labels: np.ndarray,
    gt_boxes: np.ndarray,
    pred_labels: np.ndarray,
    pred_boxes: np.ndarray,
) -> np.ndarray:
    """Which guesses localize their image's object (``eval_clsloc.m`` + ``compute_overlap.m``).

    gt_labels: ``(N,)`` the image's ground-truth label; gt_image: ``(M,)`` image of each box;
    gt_box_labels: ``(M,)``; gt_boxes: ``(M, 4)`` inclusive; pred_labels: ``(N, G)``;
    pred_boxes: ``(N, G, 4)``. Returns ``(N, 5)`` bool: guess j has the image's label and IoU ≥ 0.5
    with at least one ground-truth box OF THAT LABEL. Vectorised over the M × 5 (box, guess) pairs.
    """
    gt_labels = np.asarray(gt_labels, dtype=np.int64)
    pred_labels = _pad_guesses(pred_labels)
    n = len(gt_labels)
    boxes = np.full((n, MAX_GUESSES, 4), np.nan)
    pb = np.asarray(pred_boxes, dtype=np.float64).reshape(n, -1, 4)[:, :MAX_GUESSES]
    boxes[:, : pb.shape[1]] = pb
    gt_image = np.asarray(gt_image, dtype=np.int64)
    # compute_overlap(…, gt_label) looks only at the boxes of the image's ground-truth label.
    keep = np.asarray(gt_box_labels, dtype=np.int64) == gt_labels[gt_image]
    img, gbox = gt_image[keep], np.asarray(gt_boxes, dtype=np.float64)[keep]
    ov = inclusive_overlap(boxes[img], gbox[:, None, :])  # (M', 5)
    pair_hit = (pred_labels[img] == gt_labels[img][:, None]) & (ov >= LOC_IOU_THRESHOLD)
    hit = np.zeros((n, MAX_GUESSES), dtype=bool)
    rows, cols = np.nonzero(pair_hit)
    hit[img[rows], cols] = True
    return hit


@dataclass(frozen=True)
class ClsLocResult:
    """Errors with 1..5 guesses. ``loc_error_by_guesses`` excludes ``blacklisted`` images from
    numerator and denominator (the 2014 devkit) or, with ``blacklisted == 0``, uses every image
    (the 2012 devkit); ``cls_error_by_guesses`` always uses every image (both kits)."""

    loc_error_by_guesses: tuple[float, ...]
    cls_error_by_guesses: tuple[float, ...]
    num_images: int
    blacklisted: int

    @property
    def loc_error(self) -> float:
        return self.loc_error_by_guesses[-1]

    @property
    def cls_error(self) -> float:
        return self.cls_error_by_guesses[-1]

    def to_dict(self) -> dict:
        """The numbers by name: ``loc_error_1`` / ``loc_error_5`` (localization error with 1 and
        5 guesses), ``cls_error_1`` / ``cls_error_5`` (classification error with 1 and 5
        guesses, boxes not looked at); ``loc_error`` and ``cls_error`` are the 5-guess values
        under their earlier names; ``*_by_guesses`` hold all five."""
        return {
            "loc_error": self.loc_error,
            "cls_error": self.cls_error,
            "loc_error_1": self.loc_error_by_guesses[0],
            "loc_error_5": self.loc_error_by_guesses[-1],
            "cls_error_1": self.cls_error_by_guesses[0],
            "cls_error_5": self.cls_error_by_guesses[-1],
            "loc_error_by_guesses": list(self.loc_error_by_guesses),
            "cls_error_by_guesses": list(self.cls_error_by_guesses),
            "num_images": self.num_images,
            "blacklisted": self.blacklisted,
        }


def localization_errors(
    gt_labels: np.ndarray,
    gt_image: np.ndarray,
    gt_box_labels: np.ndarray,
    gt_boxes: np.ndarray,
    pred_labels: np.ndarray,
    pred_boxes: np.ndarray,
    blacklist: np.ndarray | None = None,
) -> ClsLocResult:
    """CLS-LOC error with 1..5 guesses (shapes as in :func:`localization_hits`).

    blacklist: ``(N,)`` bool, True for images left out of the localization error (2014 devkit,
    1,762 of 50,000 validation images), or None for none (2012 devkit).
    """
    hit = localization_hits(gt_labels, gt_image, gt_box_labels, gt_boxes, pred_labels, pred_boxes)
    n = len(hit)
    keep = np.ones(n, dtype=bool) if blacklist is None else ~np.asarray(blacklist, dtype=bool)
    loc = _errors_by_guesses(hit, keep)
    cls = classification_errors(gt_labels, pred_labels)
    return ClsLocResult(
        tuple(float(x) for x in loc), tuple(float(x) for x in cls), n, int(n - keep.sum())
    )
