"""The three ILSVRC tasks evaluated from files: classification, CLS-LOC localization and DET
(shared/reference/ilsvrc-evaluation.md §2). Reads ground truth and a submission, pairs them (by
name where the format names images, by position in the sorted image list where it does not),
converts labels through evaluation/labels.py, and calls the metrics.

Ground truth of ``cls`` and ``loc``: a CLS-LOC XML folder or Kaggle ``LOC_val_solution.csv``
(the image's label is its first box's); ``cls`` also reads the devkit's
``ILSVRC2012_validation_ground_truth.txt`` (line i = ``ILSVRC2012_val_%08d`` % i).

Pairing rules (one behaviour each, never silent):
- positional submission with a different number of lines than ground-truth images → error (a
  subset needs a format that names its images);
- named submission (Kaggle CSV): an image not in the ground truth → error naming the line; a
  repeated image → error (reader); a WNID outside the class list → error naming the line (without
  any class list, a WNID in no ground-truth box → warning, a wrong guess);
- a ground-truth image without a line → no guesses (counted wrong) and a warning that names
  ``--subset``; with ``subset=True`` only the images with a line are scored, and the result says
  how many of how many;
- DET: the image list may be a sub-list with any indices (names and indices each listed once,
  every image with its XML, else an error naming the list's line); a detection for an index the
  list does not hold → error naming the line (the devkit crashes); listed images without any
  detection → counted, returned and warned about (their objects are misses).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation import formats
from evaluation.annotations import Annotation, read_loc_solution_csv, read_xml_dir
from evaluation.boxes import inclusive_overlap
from evaluation.clsloc import (
    MAX_GUESSES,
    NO_GUESS,
    ClsLocResult,
    classification_errors,
    localization_errors,
    localization_hits,
)
from evaluation.detection import DetResult, evaluate_detection
from evaluation.labels import ClassLabels, DetLabels

__all__ = [
    "SYNSET_MAPPING_NAME",
    "DET_FULL_LIST_NAMES",
    "load_clsloc_ground_truth",
    "is_annotation_ground_truth",
    "find_synset_mapping",
    "ClsLocGroundTruth",
    "evaluate_classification_files",
    "evaluate_localization_files",
    "localization_outcomes_files",
    "DetGroundTruth",
    "load_det_ground_truth",
    "det_blacklist_pairs",
    "evaluate_detection_files",
]

# Kaggle ships the sorted WNID list beside LOC_val_solution.csv; without --meta, integer labels
# in a devkit-format submission are read as sorted indices 0..999 through this file.
SYNSET_MAPPING_NAME = "LOC_synset_mapping.txt"
# The full DET validation list that the 2014 DET blacklist's indices number, where it is usually
# found beside the blacklist (shared/data's layout; the 2014 devkit's data/ folder).
DET_FULL_LIST_NAMES = ("det_val_list.txt", "det_lists/val.txt")
# A guess whose WNID is in no class list (nor, without one, in any ground-truth box): a label that
# matches nothing, kept apart from NO_GUESS only so that it still counts as a guess.
_UNKNOWN_LABEL = NO_GUESS - 1


def load_clsloc_ground_truth(path: str | Path) -> dict[str, Annotation]:
    """A CLS-LOC XML folder or Kaggle ``LOC_val_solution.csv`` → ``{image: Annotation}``."""
    path = Path(path)
    if path.is_dir():
        return read_xml_dir(path)
    if path.suffix.lower() == ".csv" or (path.is_file() and formats.is_kaggle_csv(path)):
        return read_loc_solution_csv(path)
    raise ValueError(f"{path}: expected a folder of CLS-LOC XML files or LOC_val_solution.csv")


def is_annotation_ground_truth(path: str | Path) -> bool:
    """True for a CLS-LOC XML folder or a file with Kaggle's ``ImageId,PredictionString`` header
    (``LOC_val_solution.csv``: named images with boxes), False for anything else (read as the
    devkit's positional ground-truth txt, whatever its file name)."""
    path = Path(path)
    return path.is_dir() or (path.is_file() and formats.is_kaggle_csv(path))


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

    def subset(self, keep: np.ndarray) -> ClsLocGroundTruth:
        """The images where ``keep`` ``(N,)`` is True, with their boxes, in the same order."""
        keep = np.asarray(keep, dtype=bool)
        box_keep = keep[self.box_image]
        new_index = np.cumsum(keep) - 1
        return ClsLocGroundTruth(
            tuple(n for n, k in zip(self.images, keep) if k),
            self.labels[keep],
            new_index[self.box_image[box_keep]],
            self.box_labels[box_keep],
            self.boxes[box_keep],
        )


def _pairs_by_name(images, guesses, path, wnid_to_index, class_list: str | None):
    """Kaggle guesses → labels (N, 5), boxes (N, 5, 4), has_line (N,) bool.

    ``class_list``: the file the classes come from; a WNID outside it is refused with its line.
    Without one, ``wnid_to_index`` holds only the ground truth's WNIDs, so an unknown WNID may be
    a real class that no ground-truth image has: it stays a (wrong) guess, with a warning."""
    index = {name: i for i, name in enumerate(images)}
    n = len(images)
    labels = np.full((n, MAX_GUESSES), NO_GUESS, dtype=np.int64)
    boxes = np.full((n, MAX_GUESSES, 4), np.nan)
    has_line = np.zeros(n, dtype=bool)
    unchecked = []
    for name, g in guesses.items():
        where = f"{path}:{g.line}" if g.line else str(path)
        if name not in index:
            raise ValueError(
                f"{where}: image {name} is not in the ground truth; remove its line (or pass the "
                "ground truth that holds it)"
            )
        for w in g.wnids:
            if w in wnid_to_index:
                continue
            if class_list is not None:
                raise ValueError(
                    f"{where}: WNID {w} is not one of the {len(wnid_to_index):,} classes of "
                    f"{class_list}; correct the label (a typo, or a label of another class list) "
                    "or drop the guess"
                )
            unchecked.append((where, w))
        i, k = index[name], len(g.wnids)
        labels[i, :k] = [wnid_to_index.get(w, _UNKNOWN_LABEL) for w in g.wnids]
        boxes[i, :k] = g.boxes
        has_line[i] = True
    if unchecked:
        where, w = unchecked[0]
        warnings.warn(
            f"{where}: WNID {w} is in no ground-truth box ({len(unchecked):,} such guesses); "
            "with no class list to check them they count as wrong guesses (pass --synsets "
            f"{SYNSET_MAPPING_NAME} or --meta META_MAT to have every label checked)",
            stacklevel=3,
        )
    return labels, boxes, has_line


def _warn_missing(path, has_line: np.ndarray) -> None:
    """Warn that the ground-truth images without a line count as wrong, naming the way out."""
    n, missing = len(has_line), int(len(has_line) - has_line.sum())
    if missing:
        warnings.warn(
            f"{path}: {missing:,} of {n:,} ground-truth images have no line; they count as wrong "
            "(to score only the images the submission has lines for, pass --subset)",
            stacklevel=3,
        )
    return missing


def _refuse_line_count(lines: int, images: int, pred, gt) -> None:
    if lines != images:
        raise ValueError(
            f"{pred}: {lines:,} lines for {images:,} ground-truth images in {gt}; a devkit "
            "submission has exactly one line per image, in image-name order (to score a subset, "
            "write a Kaggle CSV 'ImageId,PredictionString', which names its images, and pass "
            "--subset)"
        )


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


@dataclass(frozen=True)
class _ClsLocFiles:
    """A CLS-LOC ground truth with the class list its labels are read through: ``labels`` (None
    without ``--meta`` or a synset mapping), ``source`` (the class list's file), and
    ``wnid_to_index`` (the class list's, or the ground truth's own WNIDs)."""

    truth: ClsLocGroundTruth
    labels: ClassLabels | None
    source: str | None
    wnid_to_index: dict[str, int]


def _read_clsloc_ground_truth(gt, meta, synsets) -> _ClsLocFiles:
    anns = load_clsloc_ground_truth(gt)
    if meta is not None:
        labels, source = ClassLabels.from_devkit_meta(meta), str(meta)
    else:
        synsets = synsets or find_synset_mapping(gt)
        labels = ClassLabels.from_synset_mapping(synsets) if synsets else None
        source = str(synsets) if synsets else None
    if labels is not None:
        wnid_to_index = labels.wnid_to_index
    else:
        # Without a class list (Kaggle submission only): any WNID stands for itself.
        wnids = sorted({w for a in anns.values() for w in a.wnids})
        wnid_to_index = {w: i for i, w in enumerate(wnids)}
    truth = ClsLocGroundTruth.from_annotations(anns, wnid_to_index, str(gt))
    return _ClsLocFiles(truth, labels, source, wnid_to_index)


def _read_clsloc_submission(files: _ClsLocFiles, gt, pred, devkit_ids: bool, with_boxes: bool):
    """A Kaggle CSV (by name) or a devkit file (by position) → labels ``(N, 5)`` as sorted
    indices, boxes ``(N, 5, 4)`` (None for a devkit classification file), has_line ``(N,)``."""
    n = len(files.truth.images)
    if formats.is_kaggle_csv(pred):
        guesses = formats.read_kaggle_submission(pred)
        return _pairs_by_name(files.truth.images, guesses, pred, files.wnid_to_index, files.source)
    if files.labels is None:
        raise ValueError(
            f"{pred}: integer labels need a label space: pass --meta META_MAT (they are "
            f"ILSVRC2012_IDs) or --synsets {SYNSET_MAPPING_NAME} (sorted indices 0..999)"
        )
    if with_boxes:
        ids, boxes = formats.read_devkit_loc(pred)
    else:
        ids, boxes = formats.read_devkit_guesses(pred), None
    _refuse_line_count(len(ids), n, pred, gt)
    labels = _positional_to_index(ids, pred, files.labels, devkit_ids)
    return labels, boxes, np.ones(n, dtype=bool)


def _refuse_empty_subset(pred, gt, has_line: np.ndarray) -> None:
    if not has_line.any():
        raise ValueError(
            f"{pred}: no line names an image of {gt}, so --subset leaves nothing to score; "
            "submit predictions for images of this ground truth"
        )


def evaluate_classification_files(
    gt_txt: str | Path,
    pred: str | Path,
    meta: str | Path | None = None,
    synsets: str | Path | None = None,
    subset: bool = False,
) -> dict:
    """Classification error with 1..5 guesses (``eval_flat.m``).

    ``gt_txt``: the devkit's ground-truth txt (ILSVRC2012_IDs), a CLS-LOC XML folder or
    ``LOC_val_solution.csv``. Against the txt, integer labels are ILSVRC2012_IDs and a Kaggle CSV
    (WNIDs, by name) needs ``meta``; against XML or CSV ground truth, labels are read as by
    :func:`evaluate_localization_files` (``meta``: ILSVRC2012_IDs; else sorted indices through
    ``synsets`` or the ``LOC_synset_mapping.txt`` found beside the ground truth).
    ``subset``: score only the ground-truth images the submission has a line for.

    Returns ``top1_error``, ``top5_error``, ``error_by_guesses`` (1..5 guesses), ``num_images``
    (images scored), ``num_ground_truth_images``, ``missing`` (ground-truth images without a
    line) and ``subset``.
    """
    if is_annotation_ground_truth(gt_txt):
        files = _read_clsloc_ground_truth(gt_txt, meta, synsets)
        guesses, _, has_line = _read_clsloc_submission(
            files, gt_txt, pred, devkit_ids=meta is not None, with_boxes=False
        )
        gt = files.truth.labels
    else:
        gt = formats.read_ground_truth_txt(gt_txt)
        if formats.is_kaggle_csv(pred):
            if meta is None:
                raise ValueError(f"{pred}: a Kaggle submission holds WNIDs; pass --meta META_MAT")
            labels = ClassLabels.from_devkit_meta(meta)
            images = [formats.clsloc_image_name(i) for i in range(1, len(gt) + 1)]
            to_id = {w: i + 1 for i, w in enumerate(labels.devkit_wnids)}
            guesses, _, has_line = _pairs_by_name(
                images, formats.read_kaggle_submission(pred), pred, to_id, str(meta)
            )
        else:
            guesses = _refuse_out_of_range(formats.read_devkit_guesses(pred), pred, devkit_ids=True)
            _refuse_line_count(len(guesses), len(gt), pred, gt_txt)
            has_line = np.ones(len(gt), dtype=bool)
    missing = int(len(gt) - has_line.sum())
    if subset:
        _refuse_empty_subset(pred, gt_txt, has_line)
        errors = classification_errors(gt[has_line], guesses[has_line])
    else:
        _warn_missing(pred, has_line)
        errors = classification_errors(gt, guesses)
    return {
        "top1_error": float(errors[0]),
        "top5_error": float(errors[4]),
        "error_by_guesses": [float(e) for e in errors],
        "num_images": int(has_line.sum()) if subset else len(gt),
        "num_ground_truth_images": len(gt),
        "missing": missing,
        "subset": subset,
    }


def evaluate_localization_files(
    gt: str | Path,
    pred: str | Path,
    meta: str | Path | None = None,
    blacklist: str | Path | None = None,
    synsets: str | Path | None = None,
    subset: bool = False,
) -> tuple[ClsLocResult, dict]:
    """CLS-LOC error with 1..5 guesses. ``meta``: integer labels of a devkit submission are
    ILSVRC2012_IDs; otherwise they are sorted indices 0..999 (``synsets`` or the Kaggle
    ``LOC_synset_mapping.txt`` found beside ``gt``). ``subset``: score only the ground-truth
    images the submission has a line for (the blacklist then applies among them).

    Returns the result (``num_images``: images scored) and extra facts: ``missing``,
    ``blacklist``, ``num_ground_truth_images``, ``subset``."""
    files = _read_clsloc_ground_truth(gt, meta, synsets)
    pred_labels, pred_boxes, has_line = _read_clsloc_submission(
        files, gt, pred, devkit_ids=meta is not None, with_boxes=True
    )
    truth, total = files.truth, len(files.truth.images)
    missing = int(total - has_line.sum())
    if subset:
        _refuse_empty_subset(pred, gt, has_line)
        truth = truth.subset(has_line)
        pred_labels, pred_boxes = pred_labels[has_line], pred_boxes[has_line]
    else:
        _warn_missing(pred, has_line)
    mask = None
    if blacklist is not None:
        mask = truth.blacklist_mask(formats.read_clsloc_blacklist(blacklist))
        if not mask.any():
            warnings.warn(f"{blacklist}: no ground-truth image is blacklisted", stacklevel=2)
    result = localization_errors(
        truth.labels, truth.box_image, truth.box_labels, truth.boxes, pred_labels, pred_boxes, mask
    )
    extra = {
        "missing": missing,
        "blacklist": str(blacklist) if blacklist else None,
        "num_ground_truth_images": total,
        "subset": subset,
    }
    return result, extra


def localization_outcomes_files(
    gt: str | Path, pred: str | Path, synsets: str | Path | None = None
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Per-image CLS-LOC outcomes of a submission, read as :func:`evaluate_localization_files`
    reads it (no blacklist): ``(images (N,), hit (N, 5) bool, first-guess IoU (N,))``. ``hit``
    is :func:`evaluation.clsloc.localization_hits`: top-k localization is right when any of the
    first k columns is. Decision FIRST_GUESS_IOU: the first guess's box against the image's
    ground-truth boxes of the image's label, the best of them, whether or not its class guess is
    right (it measures the box); 0 where the boxes do not overlap."""
    files = _read_clsloc_ground_truth(gt, None, synsets)
    labels, boxes, _ = _read_clsloc_submission(files, gt, pred, devkit_ids=False, with_boxes=True)
    truth = files.truth
    hit = localization_hits(truth.labels, truth.box_image, truth.box_labels, truth.boxes, labels,
                            boxes)  # fmt: skip
    n = len(truth.images)
    first = np.asarray(boxes, dtype=np.float64).reshape(n, -1, 4)[:, 0]
    own = np.asarray(truth.box_labels) == truth.labels[truth.box_image]
    img = truth.box_image[own]
    ov = inclusive_overlap(first[img], np.asarray(truth.boxes, np.float64)[own])
    ov = np.nan_to_num(np.maximum(ov, 0.0), nan=0.0)  # no box (no guess): no overlap
    iou = np.zeros(n)
    np.maximum.at(iou, img, ov)
    return truth.images, hit, iou


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


def _refuse_unlisted_xml(listed: formats.ImageList, xml_dir: str | Path) -> None:
    """Every listed image needs its ``<name>.xml``; the first one without is named by its line."""
    xml_dir = Path(xml_dir)
    if not xml_dir.is_dir():
        raise FileNotFoundError(f"{xml_dir}: not a folder of annotation XML files")
    for name, line in zip(listed.names, listed.lines):
        if not (xml_dir / f"{name}.xml").is_file():
            raise ValueError(
                f"{listed.path}:{line}: image {name} has no annotation {xml_dir / name}.xml; list "
                "only images of this ground truth, or point --gt at the folder of their XML files"
            )


def _full_list_hint(blacklist: Path) -> str:
    """The full DET validation list beside the blacklist, as the user wrote the path, if any."""
    for name in DET_FULL_LIST_NAMES:
        if (blacklist.parent / name).is_file():
            return str(blacklist.parent / name)
    return f"the devkit's full DET validation list ({' or '.join(DET_FULL_LIST_NAMES)})"


def _det_blacklist_pairs(
    blacklist, blacklist_images, listed: formats.ImageList, names, labels: DetLabels, meta_det
) -> np.ndarray:
    """``(B, 2)`` (evaluation position, DET_ID - 1) pairs. The blacklist's indices number the
    images of ``blacklist_images`` (default: the evaluated list); pairs of images not evaluated
    are dropped, so the full-val 2014 blacklist applies to any sub-list given the full list."""
    blacklist = Path(blacklist)
    numbered = formats.read_image_index(blacklist_images) if blacklist_images else listed
    name_of = numbered.name_of()
    position = {n: i for i, n in enumerate(names)}
    pairs = []
    for line, index, wnid in formats.read_det_blacklist(blacklist, lines=True):
        where = f"{blacklist}:{line}"
        if index not in name_of:
            hint = _full_list_hint(blacklist)
            if blacklist_images:
                fix = (
                    f"--blacklist-images must be the list the blacklist's indices refer to "
                    f"(for the 2014 DET blacklist: {hint})"
                )
            else:
                fix = (
                    "the blacklist's indices number the images of the devkit's full DET "
                    f"validation list, not of --images: pass --blacklist-images {hint} (the list "
                    "the blacklist's indices refer to)"
                )
            raise ValueError(f"{where}: image index {index} is not in {numbered.path}; {fix}")
        if wnid not in labels.wnid_to_det_id:
            raise ValueError(
                f"{where}: {wnid} is not a DET class of {meta_det}; pass the blacklist and the "
                "meta_det.mat of one devkit"
            )
        name = name_of[index]
        if name in position:
            pairs.append((position[name], labels.wnid_to_det_id[wnid] - 1))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def det_blacklist_pairs(blacklist, full_list, names, labels: DetLabels) -> np.ndarray:
    """``(B, 2)`` (position in ``names``, DET_ID - 1) pairs of a DET blacklist whose image
    indices number ``full_list`` (the 2014 blacklist: the devkit's full DET validation list),
    for the evaluated images ``names`` in any order (pairs of other images are dropped)."""
    return _det_blacklist_pairs(blacklist, full_list, None, list(names), labels, "meta_det.mat")


def evaluate_detection_files(
    gt_dir: str | Path,
    images: str | Path,
    meta_det: str | Path,
    pred: str | Path,
    blacklist: str | Path | None = None,
    blacklist_images: str | Path | None = None,
) -> tuple[DetResult, DetLabels]:
    """DET AP per class (``eval_detection.m``). ``images``: ``<image_name> <image_index>`` lines,
    the devkit's list or any sub-list of it (the submission's image indices are the list's).
    ``blacklist`` lines ``<image_index> <WNID>`` index ``blacklist_images`` (default:
    ``images``); pairs whose image is not evaluated are dropped, so the full-val 2014 blacklist
    applies to any sub-list (e.g. val2) given the full list. The result's
    ``images_without_detections`` counts the listed images with no detection (warned about)."""
    labels = DetLabels.from_devkit_meta(meta_det)
    listed = formats.read_image_index(images)
    _refuse_unlisted_xml(listed, gt_dir)
    # The devkit files each image's detections under its index and concatenates them in index
    # order ([tp_cell{:}]), so ties across images fall back to index order, whatever the order
    # of the list's lines; on the devkit's own lists (1, 2, 3, ...) that is file order.
    order = np.argsort(listed.indices, kind="stable")
    names = [listed.names[i] for i in order]
    indices = listed.indices[order]
    truth = load_det_ground_truth(gt_dir, names, labels)
    sub = formats.read_det_submission(pred, num_classes=len(labels.wnids), image_list=listed)
    pairs = None
    if blacklist is not None:
        pairs = _det_blacklist_pairs(blacklist, blacklist_images, listed, names, labels, meta_det)
    result = evaluate_detection(
        np.searchsorted(indices, sub.image_index),
        sub.det_id - 1,
        sub.confidence,
        sub.boxes,
        truth.box_image,
        truth.box_labels,
        truth.boxes,
        num_classes=len(labels.wnids),
        blacklist=pairs,
        class_names=labels.names,
        num_images=len(names),
    )
    # Only an image that holds objects loses anything by having no detection: a listed image
    # with no object (val2 has 677) and no detection is scored right, so it is not warned about.
    detected = np.searchsorted(indices, sub.image_index)
    missed = np.setdiff1d(np.unique(truth.box_image), detected)
    if missed.size:
        objects = int(np.isin(truth.box_image, missed).sum())
        warnings.warn(
            f"{pred}: {missed.size:,} of {len(names):,} images listed in {images} hold objects "
            f"and have no detection; their {objects:,} objects count as misses (to score a "
            "subset, pass --images a list of just its images, with their indices)",
            stacklevel=2,
        )
    return result, labels
