"""Streaming evaluators for inference loops, detectron2-style (``reset / process / evaluate``).

Each rank of a ``torchrun`` job calls ``process`` on its own batches; ``evaluate`` gathers every
rank's records when ``torch.distributed`` is initialised (``all_gather_object``) and computes the
metrics once over the union, on every rank. Records are keyed by image name, so the duplicates
that ``DistributedSampler`` pads the last batch with are counted once (the first copy, in rank
order, is kept), never twice::

    evaluator = ClsLocEvaluator(read_xml_dir(xml_dir), ClassLabels.from_synset_mapping(txt))
    evaluator.reset()
    for names, images in loader:
        scores = model(images)                                   # (B, 1000)
        top5 = scores.topk(5, dim=1).indices                     # (B, 5) sorted indices
        evaluator.process(names, top5, boxes)                    # boxes: (B, 5, 4) or None
    metrics = evaluator.evaluate()   # {"cls_error_by_guesses": [...], "loc_error": ..., ...}

Labels are in the model's space: sorted-WNID index 0..999 for CLS-LOC, DET_ID - 1 for DET.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from evaluation.annotations import Annotation
from evaluation.clsloc import MAX_GUESSES, NO_GUESS, classification_errors, localization_errors
from evaluation.detection import evaluate_detection
from evaluation.labels import ClassLabels
from evaluation.tasks import ClsLocGroundTruth, DetGroundTruth

__all__ = ["ClsLocEvaluator", "DetEvaluator", "gather_records"]


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def gather_records(records: list) -> list:
    """All ranks' records in rank order (this rank's alone without torch.distributed)."""
    try:
        import torch.distributed as dist
    except ImportError:  # a CPU-only build without distributed support
        return records
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return records
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, records)
    return [r for part in gathered for r in part]


def _warn_repeats_on_this_rank(records: list) -> None:
    """DistributedSampler's padding repeats images on OTHER ranks only, so a repeat within one
    rank's records is an evaluator reused without ``reset()`` (or an image processed twice): the
    first, possibly stale, record would be scored without a word."""
    repeats = len(records) - len({rec[0] for rec in records})
    if repeats:
        warnings.warn(
            f"{repeats} image(s) were processed more than once by this process; only the first "
            "record of each is scored (call reset() before each evaluation)",
            stacklevel=3,
        )


def _first_per_image(records: list) -> tuple[list, int]:
    """Keep the first record of each image name; return the records and how many were dropped."""
    seen, out = set(), []
    for rec in records:
        if rec[0] not in seen:
            seen.add(rec[0])
            out.append(rec)
    return out, len(records) - len(out)


class ClsLocEvaluator:
    """Classification (and, with boxes, CLS-LOC) error with 1..5 guesses over a ground truth.

    ground_truth: ``{image: Annotation}`` (XML folder or Kaggle CSV); labels: the class list
    (sorted indices); blacklist: 1-based official validation indices excluded from the
    localization error (2014 rule) or None (2012 rule). ``only_processed``: score only the images
    seen (a quick look at a subset); otherwise an unseen image counts as wrong, with a warning.
    """

    def __init__(
        self,
        ground_truth: dict[str, Annotation],
        labels: ClassLabels,
        blacklist: np.ndarray | None = None,
        only_processed: bool = False,
    ) -> None:
        self.truth = ClsLocGroundTruth.from_annotations(ground_truth, labels.wnid_to_index)
        self.position = {n: i for i, n in enumerate(self.truth.images)}
        self.blacklist = None if blacklist is None else self.truth.blacklist_mask(blacklist)
        self.only_processed = only_processed
        self.reset()

    def reset(self) -> None:
        self._records: list = []

    def process(self, images: Sequence[str], labels, boxes=None) -> None:
        """images: ``(B,)`` names; labels: ``(B, G)`` guesses, best first; boxes: ``(B, G, 4)``
        inclusive pixel boxes in the image's own pixels, or None for classification only."""
        labels = _numpy(labels).astype(np.int64).reshape(len(images), -1)
        boxes = (
            None if boxes is None else _numpy(boxes).astype(np.float64).reshape(len(images), -1, 4)
        )
        for b, name in enumerate(images):
            if name not in self.position:
                raise ValueError(f"image {name} is not in the ground truth of this evaluator")
            self._records.append((name, labels[b], None if boxes is None else boxes[b]))

    def evaluate(self) -> dict:
        _warn_repeats_on_this_rank(self._records)
        records, duplicates = _first_per_image(gather_records(self._records))
        n = len(self.truth.images)
        pred = np.full((n, MAX_GUESSES), NO_GUESS, dtype=np.int64)
        boxes = np.full((n, MAX_GUESSES, 4), np.nan)
        seen = np.zeros(n, dtype=bool)
        has_boxes = bool(records) and all(r[2] is not None for r in records)
        for name, lab, box in records:
            i = self.position[name]
            g = min(len(lab), MAX_GUESSES)
            pred[i, :g] = lab[:g]
            if has_boxes:
                boxes[i, :g] = box[:g]
            seen[i] = True
        keep = seen if self.only_processed else np.ones(n, dtype=bool)
        if not self.only_processed and not seen.all():
            warnings.warn(
                f"{n - seen.sum()} of {n} images were not processed; they count as wrong",
                stacklevel=2,
            )
        out = {"num_images": int(keep.sum()), "duplicates_dropped": duplicates}
        t = self.truth
        if not has_boxes:
            errors = classification_errors(t.labels[keep], pred[keep])
            return {**out, "cls_error_by_guesses": [float(e) for e in errors]}
        box_keep = keep[t.box_image]
        new_index = np.cumsum(keep) - 1
        result = localization_errors(
            t.labels[keep],
            new_index[t.box_image[box_keep]],
            t.box_labels[box_keep],
            t.boxes[box_keep],
            pred[keep],
            boxes[keep],
            None if self.blacklist is None else self.blacklist[keep],
        )
        return {**out, **result.to_dict()}


class DetEvaluator:
    """DET AP per class over a ground truth (``eval_detection.m`` rules, evaluation/detection.py).

    ground_truth: :class:`evaluation.tasks.DetGroundTruth`; blacklist: ``(B, 2)`` (image position
    in ``ground_truth.images``, class) pairs, or None.
    """

    def __init__(self, ground_truth: DetGroundTruth, num_classes: int = 200, blacklist=None):
        self.truth = ground_truth
        self.position = {n: i for i, n in enumerate(ground_truth.images)}
        self.num_classes = num_classes
        self.blacklist = blacklist
        self.reset()

    def reset(self) -> None:
        self._records: list = []

    def process(self, images: Sequence[str], labels, scores, boxes) -> None:
        """Per image b: ``labels[b]`` ``(n_b,)`` DET_ID - 1, ``scores[b]`` ``(n_b,)``,
        ``boxes[b]`` ``(n_b, 4)`` inclusive pixel boxes; n_b may be 0."""
        for b, name in enumerate(images):
            if name not in self.position:
                raise ValueError(f"image {name} is not in the ground truth of this evaluator")
            lab = _numpy(labels[b]).astype(np.int64).reshape(-1)
            if len(lab) and (lab.min() < 0 or lab.max() >= self.num_classes):
                raise ValueError(f"image {name}: labels must be 0..{self.num_classes - 1}")
            sc = _numpy(scores[b]).astype(np.float64).reshape(-1)
            if not np.isfinite(sc).all():
                raise ValueError(f"image {name}: NaN or inf score")
            box = _numpy(boxes[b]).astype(np.float64).reshape(-1, 4)
            if not len(lab) == len(sc) == len(box):
                # Concatenated over images, one extra entry would shift every later detection.
                raise ValueError(
                    f"image {name}: {len(lab)} labels, {len(sc)} scores, {len(box)} boxes; "
                    "need one label, score and box per detection"
                )
            self._records.append((name, lab, sc, box))

    def evaluate(self) -> dict:
        _warn_repeats_on_this_rank(self._records)
        records, duplicates = _first_per_image(gather_records(self._records))
        if records:
            image = np.concatenate([np.full(len(r[1]), self.position[r[0]]) for r in records])
            label = np.concatenate([r[1] for r in records])
            score = np.concatenate([r[2] for r in records])
            boxes = np.concatenate([r[3] for r in records])
        else:
            image = label = np.zeros(0, np.int64)
            score, boxes = np.zeros(0), np.zeros((0, 4))
        # The devkit's tie order is image-list order then file order: sort records by image.
        order = np.argsort(image, kind="stable")
        t = self.truth
        result = evaluate_detection(
            image[order], label[order], score[order], boxes[order],
            t.box_image, t.box_labels, t.boxes, self.num_classes, self.blacklist,
            num_images=len(t.images),
        )  # fmt: skip
        without = result.images_without_detections
        if without:
            warnings.warn(
                f"{without:,} of {len(t.images):,} images have no detection (not processed, or "
                "processed with none); their objects count as misses",
                stacklevel=2,
            )
        return {
            "mAP": result.mean_ap,
            "mean_ap": result.mean_ap,
            "median_ap": result.median_ap,
            "ap": {str(k + 1): float(v) for k, v in enumerate(result.ap)},
            "duplicates_dropped": duplicates,
            "num_images": len(t.images),
            "images_without_detections": without,
        }
