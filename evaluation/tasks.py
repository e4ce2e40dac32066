"""The three ILSVRC tasks evaluated from files: classification, CLS-LOC localization and DET
(shared/reference/ilsvrc-evaluation.md §2). Reads ground truth and a submission, pairs them (by
name where the format names images, by position in the sorted image list where it does not),
converts labels through evaluation/labels.py, and calls the metrics.

Pairing rules (one behaviour each, never silent):
- positional submission with a different number of lines than ground-truth images → error;
- named submission (Kaggle CSV): an image not in the ground truth → error; a repeated image →
  error (reader); a ground-truth image without a line → no guesses (counted wrong) and a warning;
- DET: an image index outside the list → error naming the line (the devkit crashes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation import formats
from evaluation.annotations import Annotation, read_loc_solution_csv, read_xml_dir
from evaluation.clsloc import (
    MAX_GUESSES,
    NO_GUESS,
    ClsLocResult,
    classification_errors,
    localization_errors,
)
from evaluation.detection import DetResult, evaluate_detection
from evaluation.labels import ClassLabels, DetLabels

__all__ = [
    "SYNSET_MAPPING_NAME",
    "load_clsloc_ground_truth",
    "find_synset_mapping",
    "ClsLocGroundTruth",
    "evaluate_classification_files",
    "evaluate_localization_files",
    "DetGroundTruth",
    "load_det_ground_truth",
    "evaluate_detection_files",
]

# Kaggle ships the sorted WNID list beside LOC_val_solution.csv; without --meta, integer labels
# in a devkit-format submission are read as sorted indices 0..999 through this file.
SYNSET_MAPPING_NAME = "LOC_synset_mapping.txt"


def load_clsloc_ground_truth(path: str | Path) -> dict[str, Annotation]:
    """A CLS-LOC XML folder or Kaggle ``LOC_val_solution.csv`` → ``{image: Annotation}``."""
    path = Path(path)
    if path.is_dir():
        return read_xml_dir(path)
    if path.suffix.lower() == ".csv":
        return read_loc_solution_csv(path)
    raise ValueError(f"{path}: expected a folder of CLS-LOC XML files or LOC_val_solution.csv")


def find_synset_mapping(gt_path: str | Path, levels: int = 5) -> Path | None:
    """``LOC_synset_mapping.txt`` in the ground truth's folder or one of its parents (the Kaggle
    layout puts it 4 levels above ``ILSVRC/Annotations/CLS-LOC/val``)."""
    here = Path(gt_path).resolve()
    for folder in [here if here.is_dir() else here.parent, *here.parents][:levels]:
        if (folder / SYNSET_MAPPING_NAME).is_file():
            return folder / SYNSET_MAPPING_NAME
    return None


@dataclass(frozen=True)
class ClsLocGroundTruth:
    """Ground truth as arrays over the sorted image names, labels as sorted-WNID indices.

    images ``(N,)``; labels ``(N,)``; box_image ``(M,)``; box_labels ``(M,)``; boxes ``(M, 4)``.
    """

    images: tuple[str, ...]
    labels: np.ndarray
    box_image: np.ndarray
    box_labels: np.ndarray
    boxes: np.ndarray

    @classmethod
    def from_annotations(
        cls, anns: dict[str, Annotation], wnid_to_index: dict[str, int], source: str = ""
    ) -> ClsLocGroundTruth:
        images = tuple(sorted(anns))
        labels, box_image, box_labels, boxes = [], [], [], []
        for i, name in enumerate(images):
            ann = anns[name]
            if not ann.wnids:
                raise ValueError(
                    f"{source}: image {name} has no object; every CLS-LOC image needs at least one "
                    "box (its label is the label of its boxes)"
                )
            unknown = [w for w in ann.wnids if w not in wnid_to_index]
            if unknown:
                raise ValueError(
                    f"{source}: image {name}: WNID {unknown[0]} is not a CLS-LOC class"
                )
            # CLS-LOC images carry boxes of one class; the image's label is its first box's (as
            # Kaggle's first token), and compute_overlap.m only looks at boxes of that label.
            labels.append(wnid_to_index[ann.wnids[0]])
            box_image += [i] * len(ann.wnids)
            box_labels += [wnid_to_index[w] for w in ann.wnids]
            boxes.append(ann.boxes)
        return cls(
            images,
            np.array(labels, dtype=np.int64),
            np.array(box_image, dtype=np.int64),
            np.array(box_labels, dtype=np.int64),
            np.concatenate(boxes).astype(np.int64) if boxes else np.zeros((0, 4), np.int64),
        )

    def blacklist_mask(self, indices: np.ndarray) -> np.ndarray:
        """``(N,)`` bool from 1-based official validation indices (see formats.clsloc_image_name)."""
        names = {formats.clsloc_image_name(int(i)) for i in indices}
        return np.array([n in names for n in self.images], dtype=bool)


def _pairs_by_name(images, guesses, path, wnid_to_index):
    """Kaggle guesses → labels (N, 5), boxes (N, 5, 4), number of images without a line."""
    index = {name: i for i, name in enumerate(images)}
    n = len(images)
    labels = np.full((n, MAX_GUESSES), NO_GUESS, dtype=np.int64)
    boxes = np.full((n, MAX_GUESSES, 4), np.nan)
    for name, g in guesses.items():
        if name not in index:
            raise ValueError(f"{path}: image {name} is not in the ground truth; remove its line")
        i, k = index[name], len(g.wnids)
        # A WNID outside the class list can never be right; it stays a (wrong) guess.
        labels[i, :k] = [wnid_to_index.get(w, NO_GUESS - 1) for w in g.wnids]
        boxes[i, :k] = g.boxes
    missing = n - sum(1 for name in guesses if name in index)
    if missing:
        warnings.warn(
            f"{path}: {missing} of {n} ground-truth images have no line; they count as wrong",
            stacklevel=3,
        )
    return labels, boxes, missing


def _refuse_out_of_range(ids, path, devkit_ids: bool) -> np.ndarray:
    """Devkit integer labels (N, 5), one row per line: a label above the label space is refused
    with its line (0 is the devkit's "no guess" among ILSVRC2012_IDs and a class among sorted
    indices; negative labels are refused by the reader)."""
    ids = np.asarray(ids, dtype=np.int64)
    upper = 1000 if devkit_ids else 999
    bad = ids > upper
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        space = "ILSVRC2012_ID 1..1000" if devkit_ids else "sorted index 0..999"
        # Without --meta the labels were read as sorted indices; devkit ids are the likely cause.
        hint = "" if devkit_ids else " (if the labels are ILSVRC2012_IDs, pass --meta META_MAT)"
        raise ValueError(f"{path}:{row + 1}: label {ids[row][bad[row]][0]} outside {space}{hint}")
    return ids


def _positional_to_index(ids, path, labels: ClassLabels | None, devkit_ids: bool):
    """Devkit integer labels (N, 5) → sorted indices; out-of-range ids refused with the line."""
    ids = _refuse_out_of_range(ids, path, devkit_ids)
    if not devkit_ids:
        return ids
    out = np.where(ids >= 1, labels.devkit_ids_to_index(ids), NO_GUESS)
    return out


def evaluate_classification_files(
    gt_txt: str | Path, pred: str | Path, meta: str | Path | None = None
) -> dict:
    """Classification error with 1..5 guesses (``eval_flat.m``); labels are ILSVRC2012_IDs.
    A Kaggle CSV submission (WNIDs, by name) needs ``meta`` to convert WNIDs to ILSVRC2012_IDs."""
    gt = formats.read_ground_truth_txt(gt_txt)
    missing = 0
    if formats.is_kaggle_csv(pred):
        if meta is None:
            raise ValueError(f"{pred}: a Kaggle submission holds WNIDs; pass --meta META_MAT")
        labels = ClassLabels.from_devkit_meta(meta)
        images = [formats.clsloc_image_name(i) for i in range(1, len(gt) + 1)]
        to_id = {w: i + 1 for i, w in enumerate(labels.devkit_wnids)}
        guesses, _, missing = _pairs_by_name(
            images, formats.read_kaggle_submission(pred), pred, to_id
        )
    else:
        guesses = _refuse_out_of_range(formats.read_devkit_guesses(pred), pred, devkit_ids=True)
        if len(guesses) != len(gt):
            raise ValueError(
                f"{pred}: {len(guesses)} lines for {len(gt)} ground-truth images in {gt_txt}; a "
                "devkit submission has exactly one line per image, in image-name order"
            )
    errors = classification_errors(gt, guesses)
    return {
        "top1_error": float(errors[0]),
        "top5_error": float(errors[4]),
        "error_by_guesses": [float(e) for e in errors],
        "num_images": len(gt),
        "missing": missing,
    }


def evaluate_localization_files(
    gt: str | Path,
    pred: str | Path,
    meta: str | Path | None = None,
    blacklist: str | Path | None = None,
    synsets: str | Path | None = None,
) -> tuple[ClsLocResult, dict]:
    """CLS-LOC error with 1..5 guesses. ``meta``: integer labels of a devkit submission are
    ILSVRC2012_IDs; otherwise they are sorted indices 0..999 (``synsets`` or the Kaggle
    ``LOC_synset_mapping.txt`` found beside ``gt``). Returns the result and extra facts."""
    anns = load_clsloc_ground_truth(gt)
    if meta is not None:
        labels = ClassLabels.from_devkit_meta(meta)
    else:
        synsets = synsets or find_synset_mapping(gt)
        labels = ClassLabels.from_synset_mapping(synsets) if synsets else None
    if labels is not None:
        wnid_to_index = labels.wnid_to_index
    else:
        # Without a class list (Kaggle submission only): any WNID stands for itself.
        wnids = sorted({w for a in anns.values() for w in a.wnids})
        wnid_to_index = {w: i for i, w in enumerate(wnids)}
    truth = ClsLocGroundTruth.from_annotations(anns, wnid_to_index, str(gt))
    missing = 0
    if formats.is_kaggle_csv(pred):
        guesses = formats.read_kaggle_submission(pred)
        pred_labels, pred_boxes, missing = _pairs_by_name(
            truth.images, guesses, pred, wnid_to_index
        )
    else:
        if labels is None:
            raise ValueError(
                f"{pred}: integer labels need a label space: pass --meta META_MAT (they are "
                f"ILSVRC2012_IDs) or --synsets {SYNSET_MAPPING_NAME} (sorted indices 0..999)"
            )
        ids, pred_boxes = formats.read_devkit_loc(pred)
        if len(ids) != len(truth.images):
            raise ValueError(
                f"{pred}: {len(ids)} lines for {len(truth.images)} ground-truth images in {gt}; a "
                "devkit submission has exactly one line per image, in image-name order"
            )
        pred_labels = _positional_to_index(ids, pred, labels, devkit_ids=meta is not None)
    mask = None
    if blacklist is not None:
        mask = truth.blacklist_mask(formats.read_clsloc_blacklist(blacklist))
        if not mask.any():
            warnings.warn(f"{blacklist}: no ground-truth image is blacklisted", stacklevel=2)
    result = localization_errors(
        truth.labels, truth.box_image, truth.box_labels, truth.boxes, pred_labels, pred_boxes, mask
    )
    return result, {"missing": missing, "blacklist": str(blacklist) if blacklist else None}


@dataclass(frozen=True)
class DetGroundTruth:
    """DET ground truth over an image list: names ``(I,)``; box_image ``(M,)`` position in the
    list; box_labels ``(M,)`` DET_ID - 1; boxes ``(M, 4)`` inclusive."""

    images: tuple[str, ...]
    box_image: np.ndarray
    box_labels: np.ndarray
    boxes: np.ndarray


def load_det_ground_truth(xml_dir: str | Path, images: list[str], labels: DetLabels):
    anns = read_xml_dir(xml_dir, images)
    box_image, box_labels, boxes = [], [], []
    for i, name in enumerate(images):
        ann = anns[name]
        for w in ann.wnids:
            if w not in labels.wnid_to_det_id:
                raise ValueError(f"{Path(xml_dir) / name}.xml: <name>{w}</name> is not a DET class")
        box_image += [i] * len(ann.wnids)
        box_labels += [labels.wnid_to_det_id[w] - 1 for w in ann.wnids]
        boxes.append(ann.boxes)
    return DetGroundTruth(
        tuple(images),
        np.array(box_image, dtype=np.int64),
        np.array(box_labels, dtype=np.int64),
        np.concatenate(boxes) if boxes else np.zeros((0, 4), np.int64),
    )


def evaluate_detection_files(
    gt_dir: str | Path,
    images: str | Path,
    meta_det: str | Path,
    pred: str | Path,
    blacklist: str | Path | None = None,
    blacklist_images: str | Path | None = None,
) -> tuple[DetResult, DetLabels]:
    """DET AP per class (``eval_detection.m``). ``blacklist`` lines ``<image_index> <WNID>`` index
    ``blacklist_images`` (default: ``images``); pairs whose image is not evaluated are dropped, so
    the full-val 2014 blacklist applies to any sub-list (e.g. val2) given the full list."""
    labels = DetLabels.from_devkit_meta(meta_det)
    names = formats.read_image_list(images)
    truth = load_det_ground_truth(gt_dir, names, labels)
    sub = formats.read_det_submission(pred, num_images=len(names), num_classes=len(labels.wnids))
    pairs = None
    if blacklist is not None:
        bl_names = formats.read_image_list(blacklist_images) if blacklist_images else names
        position = {n: i for i, n in enumerate(names)}
        pairs = []
        for index, wnid in formats.read_det_blacklist(blacklist):
            if not 1 <= index <= len(bl_names):
                raise ValueError(
                    f"{blacklist}: image index {index} is not in {blacklist_images or images}"
                )
            if wnid not in labels.wnid_to_det_id:
                raise ValueError(f"{blacklist}: {wnid} is not a DET class of {meta_det}")
            name = bl_names[index - 1]
            if name in position:
                pairs.append((position[name], labels.wnid_to_det_id[wnid] - 1))
        pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    result = evaluate_detection(
        sub.image_index - 1,
        sub.det_id - 1,
        sub.confidence,
        sub.boxes,
        truth.box_image,
        truth.box_labels,
        truth.boxes,
        num_classes=len(labels.wnids),
        blacklist=pairs,
        class_names=labels.names,
    )
    return result, labels
