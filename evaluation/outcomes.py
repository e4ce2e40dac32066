"""Per-image outcomes: what each row of a report got right or wrong on each image, kept as data.

A row's error rate is a count over images; its uncertainty, and every paired comparison of two
rows, needs the images themselves (:mod:`evaluation.verdicts`). A reproduction therefore writes,
beside each report, ``reports/<artifact>/<run>.outcomes.csv.gz``, from which
:mod:`evaluation.uncertainty` recomputes every interval and verdict without running a network.

The files, one table each (CSV, gzip with ``mtime=0`` so the bytes depend on the content only):

- **Table 2** (wide, one line per validation image): ``image`` (the file's stem), then per row
  ``<row>:top1_wrong`` and ``<row>:top5_wrong`` (1 wrong, 0 right; an undecodable image is
  wrong, decision SKIPPED_IMAGE_COUNTS_AS_ERROR), and for the training-seed spread
  ``<row>@m<k>:top1_wrong`` / ``:top5_wrong``: member k's own outcome under the row's protocol.
- **Figure 9** (wide, one line per boxed image): ``image``, per row ``<row>:top1_loc_wrong``,
  ``<row>:top5_loc_wrong`` and ``<row>:iou``, the first guess's IoU with the best ground-truth
  box of the image's class (3 decimals; decision FIRST_GUESS_IOU).
- **Detection** (long): ``kind,row,image,class,score,matched,positives``. ``kind`` is
  ``image`` (one line per image of the list, in its order: resampling needs the images that hold
  nothing), ``row`` (the row was scored; its detections follow), ``positives`` (``positives`` objects of ``class`` in ``image``: the devkit's npos,
  per image) or ``detection`` (one detection of ``row``: its ``score`` and whether it
  ``matched`` an object, ``eval_detection.m``'s rule). Detections are in the devkit's order
  (class, descending score, ties by image-list then file order), which is what AP reads.

Decision DETECTION_OUTCOMES_TRIMMED: a class's detections scored below its last true positive
are left out of the file (scores are kept at full precision, so that ties stay ties). Precision
after the last true positive only falls, so they never enter the precision envelope, on the
images as they are or on any resample of them (a resample holds no true positive scored lower,
and a lower score comes after every copy of a higher one); leaving them out keeps a report's
file a few KB where a detector emits 100 boxes per image.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DETECTION_COLUMNS",
    "classification_outcomes",
    "detection_outcomes",
    "detection_table",
    "merge_outcomes",
    "outcomes_path",
    "read_outcomes",
    "row_names",
    "write_outcomes",
]

DETECTION_COLUMNS = ("kind", "row", "image", "class", "score", "matched", "positives")


def outcomes_path(csv_path: str | Path) -> Path:
    """``reports/<artifact>/<run>.csv`` → ``<run>.outcomes.csv.gz`` beside it."""
    csv_path = Path(csv_path)
    return csv_path.with_name(f"{csv_path.stem}.outcomes.csv.gz")


def write_outcomes(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write ``frame`` as gzip-compressed CSV whose bytes depend on its content only (no file
    name, ``mtime=0`` in the gzip header), so a rerun that changes nothing changes no byte."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.to_csv(index=False, lineterminator="\n")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(text.encode("utf-8"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


def read_outcomes(path: str | Path) -> pd.DataFrame | None:
    """The outcomes table at ``path``, or None where there is no such file (a report written
    before outcomes were kept). Image names stay strings."""
    path = Path(path)
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"image": str, "row": str, "kind": str})


def row_names(outcomes: pd.DataFrame) -> list[str]:
    """The rows a wide (Table 2, Figure 9) or long (detection) outcomes table holds, in order."""
    if "kind" in outcomes.columns:
        rows = outcomes.loc[outcomes["kind"] == "row", "row"]
        return list(dict.fromkeys(rows))
    return list(dict.fromkeys(c.split(":")[0] for c in outcomes.columns if ":" in c))


def merge_outcomes(earlier: pd.DataFrame | None, later: pd.DataFrame) -> pd.DataFrame:
    """One wide outcomes table from two invocations of a run (decision RUN_MERGES_FINISHED_ROWS):
    ``later``'s columns replace ``earlier``'s of the same name. Both must hold the same images
    in the same order (a run is its images); otherwise ``later`` alone is kept."""
    if earlier is None or list(earlier["image"]) != list(later["image"]):
        return later.copy()
    kept = [c for c in earlier.columns if c == "image" or c not in later.columns]
    merged = pd.concat([earlier[kept], later.drop(columns="image")], axis=1)
    return merged[["image", *sorted(c for c in merged.columns if c != "image")]]


# ----------------------------------------------------------------------------- builders


def classification_outcomes(
    labels: np.ndarray, top5: np.ndarray, decoded: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(top1_wrong, top5_wrong)``, ``(N,)`` bool each, from ``labels: (N,)`` true classes,
    ``top5: (N, 5)`` guesses in descending score and ``decoded: (N,)`` (False: no guess, wrong;
    decision SKIPPED_IMAGE_COUNTS_AS_ERROR). ``eval_flat.m``'s rule: right when a guess is the
    label."""
    labels = np.asarray(labels, dtype=np.int64)
    top5 = np.asarray(top5, dtype=np.int64)
    ok = np.ones(len(labels), dtype=bool) if decoded is None else np.asarray(decoded, dtype=bool)
    hit = top5 == labels[:, None]
    return ~(hit[:, 0] & ok), ~(hit.any(axis=1) & ok)


def detection_outcomes(row: str, pred: str | Path, xml_dir: str | Path, names, det_labels):
    """``row``'s detection lines (and nothing else) of the long outcomes table, from its
    submission ``pred``, scored as :func:`overfeat.detect.score_detections` scores it (the same
    readers and :func:`evaluation.detection.match_detections`); trimmed (decision
    DETECTION_OUTCOMES_TRIMMED). ``names: (I,)`` the image list; ``det_labels`` a
    :class:`evaluation.labels.DetLabels`. Returns ``(detections, positives)`` frames with
    :data:`DETECTION_COLUMNS`; ``positives`` is the same for every row of one image list."""
    from evaluation.detection import match_detections
    from evaluation.formats import read_det_submission
    from evaluation.tasks import load_det_ground_truth

    names = list(names)
    classes = len(det_labels.wnids)
    truth = load_det_ground_truth(xml_dir, names, det_labels)
    sub = read_det_submission(pred, num_images=len(names), num_classes=classes)
    image, label = sub.image_index - 1, sub.det_id - 1
    tp, _ = match_detections(image, label, sub.confidence, sub.boxes, truth.box_image,
                             truth.box_labels, truth.boxes, classes)  # fmt: skip
    # The devkit's global order (evaluation.detection.evaluate_detection): by class, descending
    # confidence, ties by image-list position, then file order.
    order = np.lexsort((np.arange(len(image)), image, -np.asarray(sub.confidence), label))
    image, label, conf, tp = image[order], label[order], sub.confidence[order], tp[order]
    keep = np.zeros(len(order), dtype=bool)
    for c in np.unique(label):
        where = np.flatnonzero(label == c)
        hits = where[tp[where]]
        if len(hits):
            keep[where] = conf[where] >= conf[hits[-1]]
    detections = pd.DataFrame({
        "kind": "detection", "row": row, "image": [names[i] for i in image[keep]],
        "class": label[keep], "score": conf[keep], "matched": tp[keep].astype(int),
        "positives": "",
    })  # fmt: skip
    pairs, counts = np.unique(np.stack([truth.box_image, truth.box_labels], 1), axis=0,
                              return_counts=True)  # fmt: skip
    positives = pd.DataFrame({
        "kind": "positives", "row": "", "image": [names[i] for i in pairs[:, 0]] if len(pairs) else [],
        "class": pairs[:, 1] if len(pairs) else [], "score": "", "matched": "", "positives": counts,
    })  # fmt: skip
    return detections[list(DETECTION_COLUMNS)], positives[list(DETECTION_COLUMNS)]


def detection_table(names, positives: pd.DataFrame, rows: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The long outcomes table of a detection run: its image list, the positives, then per row
    a ``row`` line (the row was scored, even where it kept no detection) and its detections
    (frames of :func:`detection_outcomes`, by row name)."""
    images = pd.DataFrame({c: "" for c in DETECTION_COLUMNS}, index=range(len(names)))
    images["kind"], images["image"] = "image", list(names)
    parts = [images, positives]
    for row, detections in rows.items():
        parts += [pd.DataFrame([dict.fromkeys(DETECTION_COLUMNS, "") | {"kind": "row", "row": row}]),
                  detections]  # fmt: skip
    return pd.concat(parts, ignore_index=True)[list(DETECTION_COLUMNS)]
