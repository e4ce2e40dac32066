"""The detection result reproduced (§5, Figure 11): mAP of the detector with a background class.

``reproduce_detection`` resolves a DET data set and the networks (a detector, i.e. a classifier
fine-tuned with a background class, and a regressor trained on its features: trained runs given
with ``--checkpoints``, or trained here and cached, as the embedded default does, from a trained
classifier or from the released network imported as a classifier run with ``--release-weights``),
runs
:func:`overfeat.detect.detect_dataset` over the DET validation images (or, where the data set
has no DET split, its boxed CLS-LOC validation images in its own classes,
DET_FROM_CLSLOC_BOXES: :mod:`overfeat.reproduce.clsloc_detection`), scores the submission
with the harness (:func:`overfeat.detect.score_detections`, the devkit's ``eval_detection.m``
rules) and writes ``reports/detection/<run>.csv`` and ``<run>.json``; :mod:`evaluation.render`
renders the Markdown and the plot (per-class AP, sorted) from them.

Rows: the detector with its regressor's boxes, the detector with each window's own box, and
random boxes (as many per image as the detector emits, RANDOM_BOXES), the floor any detector
must clear; then the paper's Figure 11 bars for OverFeat, comparable only on the ILSVRC2013 DET
test set.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.paper import read_reported
from evaluation.render import ordinal
from overfeat.reproduce.clsloc_detection import clsloc_detection_images, write_det_ground_truth
from overfeat.reproduce.content import FileHashes
from overfeat.reproduce.embedded import (
    EMBEDDED_DATA,
    EMBEDDED_TRAIN_ARGS,
    embedded_data,
    synthetic_command,
)
from overfeat.reproduce.figure9 import EMBEDDED_REGRESSOR_ARGS, train_regressor_cached
from overfeat.reproduce.networks import (
    SourceError,
    imported_release_run,
    train_missing,
    train_spatial_cached,
)
from overfeat.reproduce.runner import RunOptions, write_run

__all__ = [
    "COLUMNS",
    "DETECTION_ROWS",
    "EMBEDDED_DETECTOR_ARGS",
    "DetectionRequest",
    "reproduce_detection",
]

COLUMNS = (
    "row", "system", "box_source", "scales", "data", "images", "objects", "detections",
    "skipped", "networks", "mAP", "paper_mAP", "comparable", "note",
)  # fmt: skip

# (row, system, box source); the paper's OverFeat bars of Figure 11 follow them.
DETECTION_ROWS: tuple[tuple[str, str, str], ...] = (
    ("DET-REG", "detector + SCR regressor boxes", "regressor"),
    ("DET-WIN", "detector + each window's own box", "window"),
    ("DET-RANDOM", "random boxes, as many per image as DET-REG", "random"),
)
PAPER_ROWS = ("F11-1", "F11-4")  # OverFeat post competition (24.3) and competition entry (19.4)

# Decision EMBEDDED_DETECTOR_ARGS: the embedded default fine-tunes the fast toy network of
# Table 2's default with the toy detector recipe (DETECTOR_RECIPE) on the embedded set's
# CLS-LOC training images (it has no DET training split), and trains the SCR regressor on the
# detector's features with the toy regressor recipe.
EMBEDDED_DETECTOR_ARGS: tuple[str, ...] = (
    "--recipe", "toy", "--workers", "1", "--log-every", "0",
)  # fmt: skip
RANDOM_SEED = 0


@dataclass
class DetectionRequest:
    """What a user asked for (the flags of ``overfeat reproduce detection``)."""

    data: str | None = None
    limit: int | None = None
    every: int = 1
    checkpoints: tuple[str, ...] = ()  # classifier=RUN detector=RUN regressor=RUN
    release_weights: str | None = None
    meta: str | None = None
    train: bool = False
    train_args: tuple[str, ...] = ()
    det_devkit: str | None = None
    blacklist: bool = False
    detector_args: tuple[str, ...] = ()
    regressor_args: tuple[str, ...] = ()
    name: str | None = None
    cache: str = "runs/reproduce"
    reports: str = "reports"
    options: RunOptions = field(default_factory=RunOptions)
    command: str = ""


def _parse(values) -> dict[str, Path]:
    out = {}
    for value in values:
        kind, sep, run = value.partition("=")
        if not sep or kind not in ("classifier", "detector", "regressor") or not run:
            raise SourceError(
                f"--checkpoints {value!r}: expected classifier=RUN, detector=RUN or regressor=RUN "
                "(runs of 'overfeat train classifier|detector|regressor')"
            )
        out[kind] = Path(run)
    return out


def train_detector_cached(classifier: Path, data: Path, args, cache: Path,
                          progress: bool = True) -> Path:  # fmt: skip
    """Train (or reuse, or resume) a detector on ``classifier`` under ``cache``."""
    return train_spatial_cached("detector", classifier, data, args, cache,
                                f"detector-{classifier.name}", "--detector-args", progress)  # fmt: skip


def _resolve(request: DetectionRequest):
    from overfeat.data import open_detection
    from overfeat.data.readers import classification_samples, find_det_layout

    notes: list[str] = []
    if request.data is None:
        if request.checkpoints:
            raise SourceError("--checkpoints needs --data (the images its networks were trained for)")
        data = embedded_data(request.cache, request.options.progress)
        desc = f"the embedded synthetic ILSVRC-format set (`{synthetic_command(EMBEDDED_DATA, data)}`)"
        train = True
        train_args = request.train_args or EMBEDDED_TRAIN_ARGS
        detector_args = request.detector_args or EMBEDDED_DETECTOR_ARGS
        regressor_args = request.regressor_args or EMBEDDED_REGRESSOR_ARGS
    else:
        data = Path(request.data)
        if not data.is_dir():
            raise SourceError(f"--data {data}: no such folder; pass a root with ILSVRC/Data/DET/val "
                              "or with boxed CLS-LOC validation images")  # fmt: skip
        desc = f"`{data.name}` ({data})"
        train, train_args = request.train, request.train_args
        detector_args, regressor_args = request.detector_args, request.regressor_args
    if request.det_devkit is not None and "--det-devkit" not in detector_args:
        detector_args = (*detector_args, "--det-devkit", str(request.det_devkit))  # DET_LABEL_SPACE
    if request.every < 1:
        raise SourceError(f"--every must be >= 1, got {request.every}")
    try:
        find_det_layout(data, "val")
    except FileNotFoundError:
        det_split = False
    else:
        det_split = True
    if not det_split and request.det_devkit is not None:
        raise SourceError(f"--det-devkit: --data {data} has no DET split; its boxed CLS-LOC "
                          "validation images are scored in the classifier's own classes "
                          "(DET_FROM_CLSLOC_BOXES); drop --det-devkit")  # fmt: skip
    try:
        if det_split:
            dataset = open_detection(data, "val")
            xml_dir = find_det_layout(data, "val").xml_dir
            samples = dataset.samples[:: request.every][: request.limit or None]
        else:
            # DET_FROM_CLSLOC_BOXES: no DET split; its boxed CLS-LOC validation images are the
            # detection task, their ground truth written as the DET XMLs the harness reads.
            samples, _ = clsloc_detection_images(data, request.limit, request.every)
            xml_dir = write_det_ground_truth(samples, _work(request, data) / "ground-truth")
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(f"--data {data}: {exc}") from None
    try:
        _, classes, _ = classification_samples(data, "val")
    except (FileNotFoundError, ValueError) as exc:
        # A DET-only layout (ilsvrc-det-val-mini) has no CLS-LOC class list: its classes come
        # from the devkit's meta_det.mat (DET_LABEL_SPACE), and its detector from elsewhere.
        if train or request.release_weights is not None:
            raise SourceError(f"--data {data}: {exc}; training here needs the data set's "
                              "CLS-LOC classes: pass --checkpoints detector=RUN") from None  # fmt: skip
        classes = []
    if not samples:
        raise SourceError(f"--data {data}: no validation image to score (check --limit/--every)")
    runs = _parse(request.checkpoints)
    cache = Path(request.cache) / "train" / data.name
    if request.release_weights is not None:
        if "classifier" in runs:
            raise SourceError("--release-weights and --checkpoints classifier=RUN both name the "
                              "classifier; pass one")  # fmt: skip
        runs["classifier"], label = imported_release_run(
            request.release_weights, None, request.meta, classes, Path(request.cache)
        )
        # The release has no detector: it is fine-tuned here from the imported run (§5).
        train = True
        notes.append(f"Classifier: the {label}, imported by `overfeat import-release`.")
    if "detector" not in runs:
        if not train:
            raise SourceError("--data needs networks: --checkpoints detector=RUN regressor=RUN, "
                              "or --train")  # fmt: skip
        if "classifier" not in runs:
            ref = train_missing(data, cache, {"fast": 1}, train_args, len(classes),
                                request.options.progress)["fast"][0]
            runs["classifier"] = Path(ref.key.rsplit(":", 1)[0])
            notes.append("Classifier trained here by `overfeat train classifier --data DATA "
                         f"--arch fast {shlex.join(train_args)}`.")  # fmt: skip
        runs["detector"] = train_detector_cached(runs["classifier"], data, detector_args, cache,
                                                 request.options.progress)
        notes.append("Detector trained here by `overfeat train detector --classifier CLASSIFIER "
                     f"--data DATA {shlex.join(detector_args)}`.")  # fmt: skip
    if "regressor" not in runs and train:
        runs["regressor"] = train_regressor_cached(runs["detector"], data, "scr", regressor_args,
                                                   cache, request.options.progress)  # fmt: skip
        notes.append("SCR regressor trained here on the detector by `overfeat train regressor "
                     f"--classifier DETECTOR --data DATA --type scr {shlex.join(regressor_args)}`.")  # fmt: skip
    objects = sum(len(ann.boxes) for _, ann in samples)
    if det_split:
        desc += f": {len(samples):,} DET validation images ({objects} objects)"
    else:
        desc += (f": {len(samples):,} boxed CLS-LOC validation images ({objects} boxes) as a "
                 f"detection task in the data set's {len(classes)} classes, every box an object "
                 "of its image's class (DET_FROM_CLSLOC_BOXES)")  # fmt: skip
        notes.append(f"No DET split: the ground truth is the CLS-LOC validation boxes of the "
                     f"{len(samples):,} boxed validation images in file-name order, written as "
                     f"DET XMLs to {xml_dir} (DET_FROM_CLSLOC_BOXES).")  # fmt: skip
    if request.every > 1:
        desc += f" (every {ordinal(request.every)} in {'list' if det_split else 'file-name'} order)"
    if request.limit:
        desc += f" (the first {request.limit})"
    return data, desc, samples, xml_dir, classes, runs, notes, objects


def _run_name(request: DetectionRequest, data: Path) -> str:
    return request.name or ("embedded-default" if request.data is None else data.name)


def _work(request: DetectionRequest, data: Path) -> Path:
    """Where the run's submissions, scores and (DET_FROM_CLSLOC_BOXES) ground truth are kept."""
    return Path(request.cache) / "detection" / _run_name(request, data)


def _label_space(request: DetectionRequest, data: Path, classes, detector_space: str,
                 detector_classes, samples):  # fmt: skip
    """(scoring :class:`~overfeat.data.label_space.LabelSpace`, the detector's output WNIDs,
    blacklist pairs or ``None``) (DET_LABEL_SPACE). The detector's outputs are the classes its
    run recorded, else (a run from before they were recorded) the data set's CLS-LOC classes."""
    from evaluation.tasks import det_blacklist_pairs
    from overfeat.data.label_space import find_det_devkit, scoring_space

    out_classes = list(detector_classes or classes)
    if not out_classes:
        raise ValueError(f"--data {data} has no CLS-LOC class list and the detector recorded "
                         "none; pass a detector trained in the DET label space (overfeat train "
                         "detector --det-devkit DIR)")  # fmt: skip
    devkit = find_det_devkit(data, request.det_devkit)
    space = scoring_space(out_classes, detector_space, devkit, classes)
    blacklist = None
    if request.blacklist:
        if devkit is None or devkit.blacklist is None or devkit.val_list is None:
            raise ValueError("--blacklist needs a devkit folder with "
                             "ILSVRC2014_det_validation_blacklist.txt and the full DET validation "
                             "list its indices number (det_val_list.txt); pass --det-devkit DIR")  # fmt: skip
        names = [ann.image for _, ann in samples]
        blacklist = det_blacklist_pairs(devkit.blacklist, devkit.val_list, names,
                                        space.det_labels())  # fmt: skip
    return space, out_classes, blacklist


def class_names(data: Path, classes) -> list[str]:
    """Each class's words from the data set's ``LOC_synset_mapping.txt`` (``""`` where it has
    none, or where the data set has no such file), for the report beside the WNIDs."""
    from evaluation.labels import read_synset_mapping
    from overfeat.data.readers import find_clsloc_layout

    try:
        mapping = find_clsloc_layout(data).synset_mapping
    except (FileNotFoundError, ValueError):
        mapping = None
    if mapping is None:
        return [""] * len(classes)
    wnids, words = read_synset_mapping(mapping)
    found = dict(zip(wnids, words))
    return [found.get(c, "") for c in classes]


def _checkpoint_identity(run: Path | None, required, hashes: FileHashes) -> str:
    """The sha256 of the checkpoint a run's loader reads (its newest readable one; decision
    CONTENT_KEYS); ``""`` without a run."""
    import warnings

    from overfeat.engine.checkpoint import find_latest_valid

    if run is None:
        return ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loader has already said what is unreadable
        found = find_latest_valid(run, required=required)
    return "sha256:" + hashes.sha256(found[0]) if found else str(run)


def _detections(row, source, model, background, regressor, samples, sizes, classes, protocol,
                options, like: float | None):  # fmt: skip
    from overfeat.detect import detect_dataset, random_detections

    paths = [p for p, _ in samples]
    if source == "random":
        return list(random_detections(sizes, len(classes), like, RANDOM_SEED)), 0, 0.0
    proto = replace(protocol, box_source=source)
    result = detect_dataset(model, background, regressor if source == "regressor" else None,
                            paths, proto, options)  # fmt: skip
    return list(result.detections), result.skipped, result.seconds


def reproduce_detection(request: DetectionRequest) -> Path:
    """Run the rows and write ``reports/detection/<run>.csv`` and ``.json``; returns the CSV."""
    from evaluation.formats import write_det_submission
    from overfeat.detect import (
        DetectionProtocol,
        det_ids_for,
        detection_submission,
        score_detections,
    )
    from overfeat.engine.detector import DETECTOR_REQUIRED_KEYS, load_detector
    from overfeat.engine.regressor import REGRESSOR_REQUIRED_KEYS, load_regressor
    from overfeat.inference_cli import _image_sizes

    started = time.perf_counter()
    data, desc, samples, xml_dir, classes, runs, notes, objects = _resolve(request)
    try:
        model, background, (detector_space, detector_classes) = load_detector(
            runs["detector"], with_space=True
        )
        regressor = (load_regressor(runs["regressor"], classifier=model,
                                    classifier_label=f"detector {runs['detector']}")
                     if "regressor" in runs else None)  # fmt: skip
    except ValueError as exc:
        raise SourceError(f"--checkpoints: {exc}") from None
    try:
        space, out_classes, blacklist = _label_space(request, data, classes, detector_space,
                                                     detector_classes, samples)  # fmt: skip
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(str(exc)) from None
    if model.num_classes != len(out_classes) + 1:
        raise SourceError(f"the detector has {model.num_classes} outputs; the "
                          f"{len(out_classes)} classes of the data set and the background need "
                          "one more")  # fmt: skip
    notes.append(f"Scored in the {space.kind} label space: {space.description}"
                 + (f"; the 2014 DET blacklist {space.devkit.blacklist} left out "
                    f"{len(blacklist)} (image, class) pairs." if blacklist is not None else "."))  # fmt: skip
    protocol = DetectionProtocol()
    name = _run_name(request, data)
    work = _work(request, data)
    work.mkdir(parents=True, exist_ok=True)
    names = [ann.image for _, ann in samples]
    sizes = np.array(_image_sizes([p for p, _ in samples]), dtype=np.int64).reshape(-1, 2)
    labels = space.det_labels()
    det_ids = det_ids_for(out_classes, labels if space.devkit is not None else None)
    networks = f"detector {runs['detector'].name}" + (
        f"; SCR regressor {runs['regressor'].name}" if "regressor" in runs else ""
    )
    hashes = FileHashes(Path(request.cache) / "sha256.json")
    identities = {
        "detector": _checkpoint_identity(runs["detector"], DETECTOR_REQUIRED_KEYS, hashes),
        "regressor": _checkpoint_identity(runs.get("regressor"), REGRESSOR_REQUIRED_KEYS, hashes),
    }
    table, records, like = [], {}, None
    for row, system, source in DETECTION_ROWS:
        entry = dict.fromkeys(COLUMNS, "") | {
            "row": row, "system": system, "box_source": source, "data": data.name,
            "images": len(samples), "objects": objects, "paper_mAP": np.nan,
            "comparable": "not comparable: the paper's mAP is on the ILSVRC2013 DET test set",
            "scales": ",".join(str(s) for s in protocol.scales) if source != "random" else "—",
        }  # fmt: skip
        if source == "regressor" and regressor is None:
            entry["note"] = "not available: no regressor was given"
            table.append(entry)
            continue
        if source == "random" and like is None:
            like = 1.0
        key_src = json.dumps([row, protocol.to_dict(), identities["detector"],
                              identities["regressor"], names, like, space.kind,
                              blacklist is not None], sort_keys=True)  # fmt: skip
        key = f"{row}-{hashlib.sha256(key_src.encode()).hexdigest()[:12]}"
        saved = work / f"{key}.json"
        if saved.is_file():
            record = json.loads(saved.read_text(encoding="utf-8"))
        else:
            dets, skipped, seconds = _detections(row, source, model, background, regressor,
                                                 samples, sizes, out_classes, protocol,
                                                 request.options, like)  # fmt: skip
            pred = work / f"{key}.det.txt"
            sub = detection_submission(dets, sizes, det_ids)
            write_det_submission(pred, sub)
            res = score_detections(pred, xml_dir, names, labels, blacklist)
            record = {"detections": len(sub), "skipped": skipped, "seconds": seconds,
                      "mAP": float(res.mean_ap), "ap": [float(v) for v in res.ap],
                      "npos": [int(v) for v in res.npos], "submission": str(pred)}  # fmt: skip
            saved.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if source == "regressor":
            like = record["detections"] / len(samples)
        records[row] = record
        entry |= {"detections": record["detections"], "skipped": record["skipped"],
                  "mAP": round(100 * record["mAP"], 4),
                  "networks": "—" if source == "random" else networks}  # fmt: skip
        if source == "random":
            entry["note"] = f"{like:.2f} per image, seed {RANDOM_SEED}"
        table.append(entry)
        print(f"{row} ({system}): mAP {entry['mAP']:.2f}%", flush=True)
    for r in read_reported():
        if r["row_id"] in PAPER_ROWS:
            table.append(dict.fromkeys(COLUMNS, "") | {
                "row": r["row_id"], "system": r["description"], "paper_mAP": float(r["value_percent"]),
                "mAP": np.nan, "comparable": "paper only (ILSVRC2013 DET test, 200 classes)",
            })  # fmt: skip
    frame = pd.DataFrame(table, columns=list(COLUMNS))
    if request.data is None:
        notes.insert(0, "A toy detector on a 10-class synthetic set: not the paper's numbers; "
                     "what can match at this scale is that the detector clears the random floor.")  # fmt: skip
    meta = {
        "data_description": desc,
        "networks_description": networks,
        "command": request.command,
        "created": date.today().isoformat(),
        "seconds_total": sum(r.get("seconds", 0.0) for r in records.values()),
        "notes": notes,
        "networks_sha256": {k: v for k, v in identities.items() if v},
        "label_space": space.kind,
        "label_space_description": space.description,
        "classes": list(space.wnids),
        "class_names": list(space.names) if space.devkit else class_names(data, space.wnids),
        "rows": records,
    }
    outcomes = _outcomes(records, xml_dir, names, labels, work)
    csv_path = write_run(request.reports, "detection", name, frame, meta, outcomes)
    from overfeat.reproduce.gallery import detection_gallery

    detection_gallery(records, model, background, regressor, samples, classes, protocol, data,
                      request, name)  # fmt: skip
    print(f"Detection written to {csv_path} in {time.perf_counter() - started:.0f} s", flush=True)
    return csv_path


def _outcomes(records: dict, xml_dir, names, det_labels, work: Path) -> pd.DataFrame | None:
    """Per-image outcomes of the rows that ran (:mod:`evaluation.outcomes`): each row's
    detections matched or not, read back from its scored submission, and the objects of each
    class per image, so that mAP can be resampled by image; saved in ``work`` as
    ``outcomes.csv.gz``."""
    from evaluation.outcomes import detection_outcomes, detection_table, write_outcomes

    rows, positives = {}, None
    for row, record in records.items():
        pred = Path(record.get("submission", ""))
        if not pred.is_file():
            continue
        rows[row], positives = detection_outcomes(row, pred, xml_dir, names, det_labels)
    if not rows:
        return None
    frame = detection_table(names, positives, rows)
    write_outcomes(work / "outcomes.csv.gz", frame)
    return frame
