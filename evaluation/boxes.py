"""Box overlap exactly as the ILSVRC devkits compute it (``compute_overlap.m``,
``eval_detection.m``; shared/reference/ilsvrc-evaluation.md §0, §2.2, §2.3).

Boxes are inclusive pixel boxes ``(x1, y1, x2, y2)``: a box's width is ``x2 - x1 + 1``. The same
"+1" enters the intersection, so two boxes sharing one pixel column overlap.
"""

from __future__ import annotations

import numpy as np

__all__ = ["inclusive_overlap", "small_object_threshold", "NO_OVERLAP"]

# compute_overlap.m writes -1 where iw <= 0 or ih <= 0; keeping the value keeps ">= threshold"
# false for every threshold the devkits use, including the small-object ones (> 0).
NO_OVERLAP = -1.0


def inclusive_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union with the devkit's +1 widths.

    a: ``(..., 4)``, b: ``(..., 4)`` (broadcast), any real dtype.
    Returns ``(...)`` float64: ``iw*ih / ua`` where ``iw > 0 and ih > 0``, else ``NO_OVERLAP``.
    Inverted or degenerate boxes are never repaired (the devkit does not): they fail the
    ``iw > 0 and ih > 0`` test against any box.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    inter = iw * ih
    # Same operation order as the MATLAB source, so ">=" at the threshold agrees bit for bit.
    ua = (
        (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
        + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
        - inter
    )
    valid = (iw > 0) & (ih > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(valid, inter / np.where(valid, ua, 1.0), NO_OVERLAP)


def small_object_threshold(gt_boxes: np.ndarray, base: float = 0.5, margin: float = 10.0):
    """The DET per-object IoU threshold ``min(0.5, w*h / ((w+10)*(h+10)))`` (``eval_detection.m``,
    readme §2.3: it relaxes the criterion for objects smaller than about 25x25 pixels).

    gt_boxes: ``(M, 4)`` inclusive. Returns ``(M,)`` float64.
    """
    gt = np.asarray(gt_boxes, dtype=np.float64)
    w = gt[:, 2] - gt[:, 0] + 1
    h = gt[:, 3] - gt[:, 1] + 1
    return np.minimum(base, (w * h) / ((w + margin) * (h + margin)))
