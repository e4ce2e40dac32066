"""Gate suites ``loc-real`` and ``det-synthetic``: localization (§4) and detection (§5), trained
and run through the code users run.

``loc-real`` takes the classifier of ``train-real`` (the same cached run: no second training),
trains an SCR regressor on it (``overfeat train regressor``, cached by configuration), and runs
Figure 9 rows through :func:`overfeat.localize.localize_dataset` on the boxed validation images
(imagenette-10: 134), scored by the harness's ``loc``. ``det-synthetic`` takes the ``synthetic``
suite's set (with its DET images) and classifier, trains a detector with a background class on
it and an SCR regressor on the detector, runs :func:`overfeat.detect.detect_dataset` and scores the submission
with the devkit's DET rules. As in :mod:`overfeat.gate.trained`, networks are reused between gate
runs, evaluation files never.

Metrics, beside the training losses:

- ``<row> top-5 loc error`` / ``top-1 loc error`` (loc-real) and ``mAP`` (det-synthetic): the
  harness's numbers;
- ``<row> first-guess IoU``: the mean over images of the best IoU between the first guess's box
  and any true box of the image, whatever its label (the classifier's noise left out, so a box
  decoded in the wrong place shows even where the label is wrong);
- ``objects found at IoU 0.5``: the fraction of true objects with a detection of their class
  overlapping them by at least 50% (the recall the mAP is built on);
- ``merged boxes per image``: what §4.3's merge leaves of the windows' boxes. Fewer is better in
  the sense the merge exists for: a merge that stops merging multiplies it while the top-5 and
  the mAP of a toy network may barely move.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from overfeat.gate.baselines import FLOAT_FLOOR, Measured, SuiteResult
from overfeat.gate.config import DetectionSuite, LocalizationSuite, TrainedSuite
from overfeat.gate.trained import (
    eval_options,
    fresh_folder,
    loss_metric,
    pinned_classifier,
    run_dir,
    train_cache,
    trained_classifier,
    where_args,
)

__all__ = ["best_overlap", "run_detection", "run_localization"]

IOU_FOUND = 0.5  # the CLS-LOC criterion (and DET's for objects larger than about 25x25 pixels)


def best_overlap(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``boxes (N, 4)``, ``truth (K, 4)`` inclusive pixel boxes → ``(K,)`` each true box's
    largest IoU (devkit rule, :func:`evaluation.boxes.inclusive_overlap`) with any of ``boxes``;
    0 where none overlaps or ``N = 0``."""
    from evaluation.boxes import inclusive_overlap

    truth = np.asarray(truth, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not len(truth):
        return np.zeros(len(truth))
    return np.maximum(inclusive_overlap(truth[:, None, :], boxes[None, :, :]).max(axis=1), 0.0)


def run_localization(
    suite_name: str,
    data: Path,
    classifier: TrainedSuite,
    suite: LocalizationSuite,
    cache: Path,
    work: Path,
    pinned: Path,
    device: str = "cpu",
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = False,
    pin: bool = False,
) -> SuiteResult:
    """Train (or reuse) the classifier and its SCR regressor on ``data`` and judge the
    regressor's training; localize the boxed validation images with each of the suite's Figure 9
    rows on the pinned classifier and regressor (``pin``: pinned from this training first).
    ``work`` receives the files the harness scores."""
    from overfeat.data.readers import classification_samples
    from overfeat.engine.regressor import load_regressor
    from overfeat.gate.pinned import load_pinned
    from overfeat.gate.pinned import pin as write_pinned
    from overfeat.localize import localization_images, localize_dataset
    from overfeat.reproduce.figure9 import (
        FIGURE9_ROWS,
        score_localization,
        train_regressor_cached,
    )

    start = time.perf_counter()
    data = Path(data)
    rows = {r.row: r for r in FIGURE9_ROWS}
    unknown = [r for r in suite.rows if r not in rows or rows[r].regression != "scr"]
    if unknown:
        raise ValueError(f"loc-real rows {unknown}: expected Figure 9 SCR rows "
                         f"({', '.join(r.row for r in FIGURE9_ROWS if r.regression == 'scr')})")  # fmt: skip
    samples, classes, boxes = localization_images(data, suite.val_limit)
    if not boxes:
        raise FileNotFoundError(f"{data}: no validation boxes (LOC_val_solution.csv or the XML "
                                "folder); the localization suite scores boxes")  # fmt: skip
    train_images = len(classification_samples(data, "train")[0])
    ref = trained_classifier(data, classifier.train_args, cache, len(classes), device, workers,
                             progress)  # fmt: skip
    reg_run = train_regressor_cached(
        run_dir(ref), data, "scr", (*suite.regressor_args, *where_args(device, workers, progress)),
        train_cache(cache, data),
    )  # fmt: skip
    # The classifier is train-real's pinned one (the same trained run pins the same file).
    cname, rname = "train-real.classifier", f"{suite_name}.regressor"
    net = pinned_classifier(pinned, cname, ref, len(classes), pin,
                            f"train-real: overfeat train classifier {' '.join(classifier.train_args)}")  # fmt: skip
    if pin:
        write_pinned(pinned, rname, "regressor", load_regressor(reg_run, classifier=ref.load()),
                     f"{suite_name}: overfeat train regressor --type scr "
                     f"{' '.join(suite.regressor_args)}", reads=cname)  # fmt: skip
    model = net.module
    reg = load_pinned(pinned, rname, reads=model)
    regressor = reg.module
    result = SuiteResult(
        suite_name,
        data={"name": data.resolve().name, "train_images": train_images,
              "boxed_val_images": len(samples), "classes": len(classes),
              "pinned": {cname: net.sha256[:16], rname: reg.sha256[:16]}},  # fmt: skip
    )
    m = result.metrics
    # SCR's loss is a squared distance in window sides: an untrained regressor's (each window's
    # own box) is what it starts from, so no chance value is claimed for it.
    m["SCR regressor train loss, last epoch"] = loss_metric(reg_run, "SCR regressor", None)
    errors = "localization errors of the pinned networks"
    ious = "first-guess IoUs of the pinned networks"
    merged = "merged boxes of the pinned networks"
    work = fresh_folder(work)
    options = eval_options(device, workers, batch_size, progress)
    for name in suite.rows:
        row = rows[name]
        found = localize_dataset(model, regressor, samples, row.protocol(), options)
        h = score_localization(found, classes, boxes, work, name)
        what = f"{row.bar} ({row.protocol().summary()}); python -m evaluation loc"
        for k in (5, 1):
            m[f"pinned {name} top-{k} loc error"] = Measured(
                h["loc_error_by_guesses"][k - 1], "lower_is_better", 1.0 / len(samples), what,
                errors, chance=1.0,
            )  # fmt: skip
        first = [
            best_overlap(found.boxes[i, :1], boxes[n].boxes).max(initial=0.0)
            for i, n in enumerate(found.names)
        ]
        m[f"pinned {name} first-guess IoU"] = Measured(
            float(np.mean(first)), "higher_is_better", FLOAT_FLOOR,
            f"{row.bar}: mean over images of the first guess's best IoU with a true box", ious,
            chance=0.0,
        )  # fmt: skip
        m[f"pinned {name} merged boxes per image"] = Measured(
            float(found.merged.mean()), "lower_is_better", 1.0 / len(samples),
            f"{row.bar}: boxes left by the per-class greedy merge (§4.3), mean over images",
            merged, chance=0.0,
        )  # fmt: skip
    result.seconds = time.perf_counter() - start
    return result


def run_detection(
    suite_name: str,
    data: Path,
    classifier: TrainedSuite,
    suite: DetectionSuite,
    cache: Path,
    work: Path,
    pinned: Path,
    device: str = "cpu",
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = False,
    pin: bool = False,
) -> SuiteResult:
    """Train (or reuse) ``classifier``'s network, the detector and its SCR regressor on ``data``
    (a set with ``ILSVRC/Data/DET/val``) and judge their training; detect its DET validation
    images with the pinned detector and regressor (``pin``: pinned from this training first) and
    score them."""
    from evaluation.formats import write_det_submission
    from evaluation.labels import DetLabels
    from overfeat.data import open_detection
    from overfeat.data.readers import classification_samples, find_det_layout
    from overfeat.detect import (
        DetectionProtocol,
        det_ids_for,
        detect_dataset,
        detection_submission,
        score_detections,
    )
    from overfeat.engine.detector import load_detector
    from overfeat.engine.regressor import load_regressor
    from overfeat.gate.pinned import load_pinned
    from overfeat.gate.pinned import pin as write_pinned
    from overfeat.inference_cli import _image_sizes
    from overfeat.reproduce.detection import train_detector_cached
    from overfeat.reproduce.figure9 import train_regressor_cached

    start = time.perf_counter()
    data = Path(data)
    _, classes, _ = classification_samples(data, "val")
    samples = open_detection(data, "val").samples[: suite.val_limit]
    if not samples:
        raise FileNotFoundError(f"{data}: no DET validation image (ILSVRC/Data/DET/val)")
    xml_dir = find_det_layout(data, "val").xml_dir
    where = where_args(device, workers, progress)
    runs = train_cache(cache, data)
    ref = trained_classifier(data, classifier.train_args, cache, len(classes), device, workers,
                             progress)  # fmt: skip
    det_run = train_detector_cached(run_dir(ref), data, (*suite.detector_args, *where), runs)
    reg_run = train_regressor_cached(det_run, data, "scr", (*suite.regressor_args, *where), runs)
    dname, rname = f"{suite_name}.detector", f"{suite_name}.regressor"
    if pin:
        trained, bg = load_detector(det_run)
        write_pinned(pinned, dname, "detector", trained,
                     f"{suite_name}: overfeat train detector {' '.join(suite.detector_args)} on "
                     f"the synthetic suite's classifier", background=bg)  # fmt: skip
        write_pinned(pinned, rname, "regressor", load_regressor(reg_run, classifier=trained),
                     f"{suite_name}: overfeat train regressor --type scr "
                     f"{' '.join(suite.regressor_args)} on the detector", reads=dname)  # fmt: skip
    det = load_pinned(pinned, dname)
    if det.module.num_classes != len(classes) + 1:
        raise ValueError(f"{pinned}/{dname}.pt has {det.module.num_classes} outputs, the data "
                         f"{len(classes)} classes + background; pin it again with --pin")  # fmt: skip
    reg = load_pinned(pinned, rname, reads=det.module)
    model, background, regressor = det.module, det.background, reg.module

    paths = [p for p, _ in samples]
    names = [ann.image for _, ann in samples]
    objects = sum(len(ann.boxes) for _, ann in samples)
    protocol = DetectionProtocol(scales=suite.scales)
    found = detect_dataset(model, background, regressor, paths, protocol,
                           eval_options(device, workers, batch_size, progress))  # fmt: skip
    sizes = np.array(_image_sizes(paths), dtype=np.int64).reshape(-1, 2)
    work = fresh_folder(work)
    pred = work / "detections.det.txt"
    write_det_submission(pred, detection_submission(list(found.detections), sizes,
                                                    det_ids_for(classes)))  # fmt: skip
    scores = score_detections(pred, xml_dir, names, DetLabels(tuple(classes), tuple(classes)))

    hits = []
    for (_, ann), d in zip(samples, found.detections):
        for box, wnid in zip(ann.boxes, ann.wnids):
            mine = d.boxes[d.classes == classes.index(wnid)]
            hits.append(best_overlap(mine, box[None])[0] >= IOU_FOUND)
    result = SuiteResult(
        suite_name,
        data={"name": data.resolve().name, "det_val_images": len(samples), "objects": objects,
              "classes": len(classes),
              "pinned": {dname: det.sha256[:16], rname: reg.sha256[:16]}},  # fmt: skip
    )
    m = result.metrics
    # The detector's cross-entropy is over C classes + background (chance ln(C + 1)); the
    # regressor's squared distance has no know-nothing value (it starts at each window's box).
    m["detector train loss, last epoch"] = loss_metric(det_run, "detector",
                                                       math.log(len(classes) + 1))  # fmt: skip
    m["SCR regressor train loss, last epoch"] = loss_metric(reg_run, "SCR regressor", None)
    what = f"pinned detector + SCR regressor ({protocol.summary()})"
    m["pinned mAP"] = Measured(float(scores.mean_ap), "higher_is_better", FLOAT_FLOOR,
                               f"{what}; the devkit's DET rules", "detections",
                               chance=0.0)  # fmt: skip
    m["pinned objects found at IoU 0.5"] = Measured(
        float(np.mean(hits)) if hits else 0.0, "higher_is_better", 1.0 / max(1, objects),
        f"{what}; true objects with a detection of their class at IoU >= 0.5", "detections",
        chance=0.0,
    )  # fmt: skip
    m["pinned merged boxes per image"] = Measured(
        float(found.merged.mean()), "lower_is_better", 1.0 / len(samples),
        f"{what}; boxes left by the per-class greedy merge (§4.3), mean over images",
        chance=0.0,
    )  # fmt: skip
    result.seconds = time.perf_counter() - start
    return result
