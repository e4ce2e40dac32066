"""Gate suite ``harness``: the evaluation harness on the official devkits' own files.

- Classification: the 2012 devkit's demo submission (``t12/demo.val.pred.txt``) against its
  ground truth, scored by ``evaluation.tasks.evaluate_classification_files`` (what
  ``python -m evaluation cls`` runs). The devkit's readme prints the answer: error 0.99898,
  0.99802, 0.99722, 0.99620, 0.99500 with 1..5 guesses.
- Detection: submissions built from the real DET val2 annotations (9,917 images, 200 classes),
  scored by ``evaluation.tasks.evaluate_detection_files`` (``python -m evaluation det``): every
  ground-truth box as a detection (mAP 1, with and without the 2014 blacklist), and the same
  boxes moved by a seeded fraction of their size with seeded confidences, whose mAP exercises
  the per-object IoU threshold, the matching order and the AP integration of ``eval_detection.m``
  at once (its value is whatever the harness computes; the gate pins it exactly).

Every number here is a function of fixed files: each metric is ``exact``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from overfeat.gate.baselines import Measured, SuiteResult

__all__ = ["run_harness"]

# Moves of at most 0.6 of a box side: most moved boxes stay above the 0.5 IoU threshold, some
# fall below it, and small boxes meet their lower min(0.5, wh/((w+10)(h+10))) threshold.
JITTER = 0.6
JITTER_SEED = 0


def _det_ground_truth(devkit: Path) -> np.ndarray:
    """``(M, 7)`` rows ``(image index 1.., DET_ID, x1, y1, x2, y2)`` of every val2 box, in list
    order (the boxes as ``evaluation`` reads them)."""
    from evaluation import formats
    from evaluation.annotations import read_xml_dir
    from evaluation.labels import DetLabels

    det = DetLabels.from_devkit_meta(devkit / "t14/meta_det.mat")
    names = formats.read_image_list(devkit / "det_val2_list.txt")
    anns = read_xml_dir(devkit / "det_val2_xml", names)
    rows = [
        (i + 1, det.wnid_to_det_id[w], *b)
        for i, n in enumerate(names)
        for w, b in zip(anns[n].wnids, anns[n].boxes.tolist())
    ]
    return np.array(rows, dtype=np.int64)


def _jittered(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes moved by up to ``JITTER`` of their width/height (seeded), and seeded confidences."""
    rng = np.random.default_rng(JITTER_SEED)
    boxes = gt[:, 2:].astype(np.float64)
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    shift = rng.uniform(-JITTER, JITTER, size=(len(gt), 2)) * np.column_stack([w, h])
    moved = np.round(boxes + np.column_stack([shift, shift])).clip(min=0)
    return moved, rng.random(len(gt))


def run_harness(devkit: Path, work: Path) -> SuiteResult:
    """The suite's metrics (module docstring); ``work`` receives the submissions it scores."""
    from evaluation import formats
    from evaluation.tasks import evaluate_classification_files, evaluate_detection_files

    start = time.perf_counter()
    result = SuiteResult("harness", data={"devkit": devkit.name}, settings={})
    cls = evaluate_classification_files(
        devkit / "t12/ILSVRC2012_validation_ground_truth.txt", devkit / "t12/demo.val.pred.txt"
    )
    for k, err in enumerate(cls["error_by_guesses"], start=1):
        result.metrics[f"devkit demo cls error, {k} guess{'es' if k > 1 else ''}"] = Measured(
            err, "exact", 0.0, "python -m evaluation cls on t12/demo.val.pred.txt"
        )

    gt = _det_ground_truth(devkit)
    work.mkdir(parents=True, exist_ok=True)
    perfect = work / "det_perfect.txt"
    formats.write_det_submission(
        perfect, formats.DetSubmission(gt[:, 0], gt[:, 1], np.ones(len(gt)), gt[:, 2:])
    )
    moved, conf = _jittered(gt)
    jittered = work / "det_jittered.txt"
    formats.write_det_submission(jittered, formats.DetSubmission(gt[:, 0], gt[:, 1], conf, moved))

    args = (devkit / "det_val2_xml", devkit / "det_val2_list.txt", devkit / "t14/meta_det.mat")
    blacklist = {
        "blacklist": devkit / "t14/ILSVRC2014_det_validation_blacklist.txt",
        "blacklist_images": devkit / "t14/det_val_list.txt",
    }
    runs = {
        "DET val2 mAP, every box (perfect)": (perfect, {}),
        "DET val2 mAP, every box, 2014 blacklist": (perfect, blacklist),
        f"DET val2 mAP, boxes moved up to {JITTER:g} of a side": (jittered, {}),
    }
    for name, (pred, extra) in runs.items():
        det, _ = evaluate_detection_files(*args, pred, **extra)
        result.metrics[name] = Measured(
            det.mean_ap, "exact", 0.0, "python -m evaluation det on the val2 XML boxes"
        )
    result.data["det_boxes"] = int(len(gt))
    result.seconds = time.perf_counter() - start
    return result
