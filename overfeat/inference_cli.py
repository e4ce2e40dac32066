"""``overfeat localize`` and ``overfeat detect``: §4 and §5 run over a validation set, written as
the submission files the ILSVRC harness (``python -m evaluation loc|det``) scores.

    overfeat localize --classifier RUN --regressor RUN --data DIR --out loc.txt --score
    overfeat localize --release-weights DIR --arch accurate --meta t12/meta.mat \\
        --regressor RUN --data /data/imagenet --out loc.txt
    overfeat localize --classifier RUN --box-source window --data DIR --out loc.txt
    overfeat detect --detector RUN --regressor RUN --data DIR --out det.txt --score
    overfeat detect --box-source random --like det.txt --data DIR --out random.txt --score

Every problem a user can cause (a missing run, a regressor of another network, a data set without
validation boxes when ``--score`` is asked) stops the command before any image is read, with a
message that names the flag and the fix, and exit status 2.

Both merge in ``--merge-workers`` processes beside the forward passes (decision MERGE_WORKERS,
:mod:`overfeat.merge_workers`), with the output of merging in the main process, and print where
the time went.

Beside ``--out FILE`` each command writes ``FILE.json`` (the protocol, the networks, the counts
and the scores) and what the harness needs to score ``FILE`` on the images it covers: for
``localize`` ``FILE.gt.csv`` (their ground truth) and ``FILE.synsets.txt`` (the label space of
integer labels), for ``detect`` ``FILE.images.txt`` (the image list its indices refer to).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from pathlib import Path

from overfeat.flags import (
    EVALUATION,
    add_amp_flag,
    add_batch_size_flag,
    add_data_flag,
    add_deprecated_alias,
    add_device_flag,
    add_meta_flag,
    add_progress_flag,
    add_workers_flag,
    effective_amp,
)

__all__ = ["register"]


def _scales(text: str) -> tuple[int, ...]:
    try:
        out = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected scale indices like 1,2,4,6, got {text!r}"
        ) from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one scale index")
    return out


def _merge_workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes, 0 or more (0: merge in the main process), got {text!r}"
        )
    return n


def _common(p: argparse.ArgumentParser) -> None:
    add_data_flag(p, "its validation split")
    p.add_argument("--scales", type=_scales, default=None, metavar="1,2,4,6",
                   help="1-based Table 5 scales (default 1,2,4,6, LOCALIZATION_SCALES)")  # fmt: skip
    p.add_argument("--offsets", choices=("fine", "coarse"), default="fine", help="output stride")
    p.add_argument("--no-flip", dest="flips", action="store_false", help="skip the mirror images")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="only the first N images (file-name order, DET: list order) (default: "
                   "all)")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, metavar="FILE", help="the submission file")
    p.add_argument("--score", action="store_true", help="score it now and print the result")
    add_device_flag(p, EVALUATION)
    add_batch_size_flag(p, EVALUATION)
    add_workers_flag(p, EVALUATION)
    add_amp_flag(p, EVALUATION)
    p.add_argument("--merge-workers", type=_merge_workers, default=None, metavar="N",
                   help="processes running the greedy merges beside the next batch's forward "
                   "pass (default: the CPUs this process may use, MERGE_WORKERS; 0: in the main "
                   "process); the output does not depend on it")  # fmt: skip
    p.add_argument("--merge-device", default=None, metavar="DEVICE",
                   help="merge each batch's sets together on DEVICE (cpu, cuda) instead of set by "
                   "set on the CPU (default, MERGE_PATH); the output does not depend on it")  # fmt: skip
    add_progress_flag(p)


def register(subparsers) -> None:
    loc = subparsers.add_parser(
        "localize",
        help="top-5 (label, box) per validation image, §4.3, as a CLS-LOC submission",
        description="Localization (§4.1, §4.3): class scores and regressor boxes at every "
        "window of every scale, the greedy merge, the top 5 (label, box) per image, written as "
        "a devkit or Kaggle CLS-LOC submission for 'python -m evaluation loc'.",
    )
    src = loc.add_mutually_exclusive_group()
    src.add_argument("--classifier", type=Path, metavar="RUN",
                     help="a run of 'overfeat train classifier' (default: the regressor's)")  # fmt: skip
    src.add_argument("--release-weights", type=Path, metavar="DIR",
                     help="the released networks (net_weight_0 fast, net_weight_1 accurate) "
                     "(default: none)")  # fmt: skip
    loc.add_argument("--arch", choices=("fast", "accurate"), default=None,
                     help="which released network (default: the one DIR holds)")  # fmt: skip
    add_meta_flag(loc, use="write ILSVRC2012_IDs in a devkit submission", absent="sorted-WNID "
                  "indices, LOC_LABEL_SPACE; the released networks' class order ships with the "
                  "package")  # fmt: skip
    loc.add_argument("--regressor", type=Path, default=None, metavar="RUN",
                     help="a run of 'overfeat train regressor' on this classifier (default: none)")
    # Decision FLAG_NAMES_SAY_WHAT: "--top-k" read as classify's "top K printed"; it is the
    # classes each scale contributes boxes for. The old spelling still works, with a notice.
    loc.add_argument("--classes-per-scale", type=int, default=None, metavar="K",
                     help="each scale's K best classes have their boxes merged, §4.3 (a) "
                     "(default 5, TOP_K_CLASSES)")  # fmt: skip
    add_deprecated_alias(loc, "--top-k", "--classes-per-scale")
    loc.add_argument("--box-source", choices=("regressor", "window", "image"), default="regressor",
                     help="regressor (§4), each window's own box, or the whole image")  # fmt: skip
    loc.add_argument("--centre-crop", action="store_true",
                     help="Fig. 9's single centred crop instead of every window of every scale")  # fmt: skip
    loc.add_argument("--merge-threshold", type=float, default=None, metavar="T",
                     help="t of the greedy merge (default 0.5, MERGE_THRESHOLD)")  # fmt: skip
    loc.add_argument("--format", dest="fmt", choices=("devkit", "kaggle"), default="devkit",
                     help="devkit lines (positional) or Kaggle CSV (WNIDs, by name)")  # fmt: skip
    _common(loc)
    loc.set_defaults(func=_run_localize)

    det = subparsers.add_parser(
        "detect",
        help="DET detections per validation image, §5, as a DET submission",
        description="Detection (§5): a detector with C + 1 outputs (background last) and a "
        "regressor, every window of every scale, the greedy merge per class, written as an "
        "ILSVRC DET submission for 'python -m evaluation det'.",
    )
    det.add_argument("--detector", type=Path, default=None, metavar="RUN",
                     help="a detector run, a classifier-format run with C + 1 outputs (default: "
                     "none)")  # fmt: skip
    det.add_argument("--regressor", type=Path, default=None, metavar="RUN",
                     help="a regressor run trained on the detector (default: none)")  # fmt: skip
    det.add_argument("--threshold", type=float, default=None, metavar="P",
                     help="a window proposes class c when p(c) >= P (default 0.1, "
                     "DETECTION_THRESHOLD)")  # fmt: skip
    det.add_argument("--box-source", choices=("regressor", "window", "random"), default="regressor",
                     help="regressor (§4), each window's own box, or the random baseline")  # fmt: skip
    det.add_argument("--max-per-image", type=int, default=None, metavar="M",
                     help="detections kept per image (default 100, MAX_DETECTIONS_PER_IMAGE)")  # fmt: skip
    det.add_argument("--merge-threshold", type=float, default=None, metavar="T",
                     help="t of the greedy merge (default 0.5, MERGE_THRESHOLD)")  # fmt: skip
    det.add_argument("--per-image", type=float, default=None, metavar="K",
                     help="random baseline: detections per image (default: none; or --like)")  # fmt: skip
    det.add_argument("--like", type=Path, default=None, metavar="DET_FILE",
                     help="random baseline: as many detections per image as this submission "
                     "(default: none; or --per-image)")  # fmt: skip
    det.add_argument("--seed", type=int, default=0, help="random baseline's seed")
    det.add_argument("--classes", type=Path, default=None, metavar="SYNSETS",
                     help="'WNID words' per line in the detector's class order (default: the "
                     "classes the detector's run recorded, else the data set's "
                     "LOC_synset_mapping.txt)")  # fmt: skip
    det.add_argument("--meta-det", type=Path, default=None, metavar="META_DET_MAT",
                     help="the devkit's meta_det.mat: write the devkit's DET_IDs (default: for "
                     "a detector in the DET label space the one beside --data, DET_DEVKIT_SEARCH; "
                     "else none: class index + 1, DET_IDS_SORTED_INDEX)")  # fmt: skip
    _common(det)
    det.set_defaults(func=_run_detect)


# ------------------------------------------------------------------ shared


class _Refused(ValueError):
    """A user's input that cannot serve the command; the message names the flag and the fix."""


def _command() -> str:
    return "overfeat " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "overfeat"


def _sibling(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def _engine(module: str, name: str, flag: str):
    """``overfeat.engine.<module>.<name>``, or a refusal saying the training side is missing."""
    try:
        return getattr(importlib.import_module(f"overfeat.engine.{module}"), name)
    except ModuleNotFoundError as exc:
        if exc.name != f"overfeat.engine.{module}":
            raise
        raise _Refused(
            f"{flag}: this installation has no overfeat.engine.{module}.{name} (the training "
            f"side of §4–§5); update it, or run a baseline that needs no such run "
            f"(--box-source window)"
        ) from None


def _classifier_run(run: Path, flag: str):
    """The newest readable checkpoint of a classifier-format run → (network in eval mode, label)."""
    from overfeat.engine.checkpoint import find_latest_valid
    from overfeat.models import build_model

    if not run.is_dir():
        raise _Refused(
            f"{flag} {run}: no such folder; pass a run folder (it holds checkpoint-*.pt)"
        )
    found = find_latest_valid(run)
    if found is None:
        raise _Refused(f"{flag} {run}: no readable checkpoint-*.pt; train it first")
    path, state = found
    if "model_config" not in state or "model" not in state:
        raise _Refused(f"{flag} {run}: {path.name} holds no network (model, model_config)")
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model"])
    return model.eval(), f"{run.name} ({path.name})"


def _options(args):
    from overfeat.inference import RunOptions
    from overfeat.merge_workers import default_merge_workers

    workers = default_merge_workers() if args.merge_workers is None else args.merge_workers
    if args.merge_device is not None:  # the main process drives the device's merges
        workers = 0
    amp = effective_amp(args.amp, args.device)
    return RunOptions(args.device, args.batch_size, args.workers, amp, args.progress, workers,
                      args.merge_device)  # fmt: skip


def _time_split(seconds: float, times, workers: int) -> tuple[str, dict]:
    """Where a pass's ``seconds`` went, as a line and as the JSON record's entry."""
    split = {k: round(v, 3) for k, v in times.seconds.items()}
    where = f"in {workers} worker processes" if workers else "in the main process"
    line = (f"time: forward {split.get('forward', 0):.1f} s, decode {split.get('decode', 0):.1f} s, "
            f"merge {split.get('merge', 0):.1f} s waited for ({times.merge_cpu:.1f} CPU s {where}, "
            f"{len(times.merge_sizes)} sets)")  # fmt: skip
    record = {"wall": split, "merge_cpu": round(times.merge_cpu, 3), "merge_workers": workers,
              "merge_sets": len(times.merge_sizes), "merge_boxes": int(sum(times.merge_sizes)),
              "total": round(seconds, 3)}  # fmt: skip
    return line, record


def _write_record(path: Path, record: dict) -> None:
    from evaluation.json_output import nan_as_null

    path.write_text(json.dumps(nan_as_null(record), indent=2, default=str) + "\n",
                    encoding="utf-8")  # fmt: skip


def _refusal(command: str, exc: Exception) -> int:
    print(f"{command}: {exc}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------ localize


def _localize_images(args):
    """The validation images to localize, their classes and words, and their boxes (or ``None``),
    checked against ``--score``."""
    from overfeat.data.readers import devkit_search, find_clsloc_layout, read_synset_mapping
    from overfeat.localize import localization_images

    # A flat val/ is labelled by the devkit's ground truth when it sits beside --meta.
    with devkit_search(Path(args.meta).parent if args.meta else None):
        samples, classes, boxes = localization_images(args.data, args.limit)
    if boxes is None and args.score:
        raise _Refused(
            f"--score: {args.data} has no validation boxes (LOC_val_solution.csv or the CLS-LOC "
            "val XML files), so nothing can score the boxes; drop --score"
        )
    if not samples:
        raise _Refused(f"--data {args.data}: no validation image to localize")
    words = ()
    mapping = find_clsloc_layout(args.data).synset_mapping
    if mapping is not None:
        wnids, text = read_synset_mapping(mapping)
        words = tuple(dict(zip(wnids, text)).get(w, "") for w in classes)
    return samples, classes, words, boxes


def _localize_networks(args, classes, protocol):
    """(classifier, regressor or None, a description of both) for ``localize``, checked."""
    from overfeat.localize import check_regressor

    if args.release_weights is not None:
        from overfeat.network_sources import SourceError, from_release

        try:
            refs = from_release(args.release_weights, classes, args.meta)
        except SourceError as exc:
            raise _Refused(str(exc)) from None
        if args.arch is None and len(refs) > 1:
            raise _Refused(f"--release-weights {args.release_weights} holds both networks; "
                           "pass --arch fast or --arch accurate")  # fmt: skip
        arch = args.arch or next(iter(refs))
        if arch not in refs:
            raise _Refused(f"--release-weights {args.release_weights}: no {arch} network there")
        model, label = refs[arch][0].load(), refs[arch][0].label
    elif args.classifier is not None:
        model, label = _classifier_run(args.classifier, "--classifier")
    elif args.regressor is not None:
        load_classifier_of = _engine("regressor", "load_classifier_of", "--regressor")
        model, label = (
            load_classifier_of(args.regressor).eval(),
            f"the classifier of {args.regressor}",
        )
    else:
        raise _Refused("pass the classifier: --classifier RUN or --release-weights DIR")
    if model.num_classes != len(classes):
        raise _Refused(
            f"the classifier ({label}) has {model.num_classes} classes, --data {args.data} has "
            f"{len(classes)}; localize the data it was trained on"
        )
    regressor, reg_label = None, None
    if protocol.needs_regressor:
        if args.regressor is None:
            raise _Refused("--box-source regressor needs --regressor RUN (a run of 'overfeat train "
                           "regressor'); or use --box-source window")  # fmt: skip
        load_regressor = _engine("regressor", "load_regressor", "--regressor")
        regressor = load_regressor(args.regressor, classifier=model, classifier_label=label).eval()
        check_regressor(model, regressor)
        reg_label = f"{getattr(regressor, 'kind', 'scr')} regressor {args.regressor}"
    elif args.regressor is not None:
        print(f"note: --regressor is unused with --box-source {args.box_source}", file=sys.stderr)
    return model, regressor, {"classifier": label, "regressor": reg_label}


def _run_localize(args) -> int:
    from evaluation.annotations import write_loc_solution_csv
    from overfeat.localize import (
        LocalizationProtocol,
        localize_dataset,
        write_loc_submission,
        write_synsets,
    )

    try:
        kwargs = {k: v for k, v in (("scales", args.scales), ("top_k", args.classes_per_scale),
                                    ("merge_threshold", args.merge_threshold)) if v is not None}  # fmt: skip
        protocol = LocalizationProtocol(
            flips=args.flips, offsets=args.offsets, box_source=args.box_source,
            views="centre" if args.centre_crop else "dense", **kwargs,
        )  # fmt: skip
        samples, classes, words, boxes = _localize_images(args)
        devkit_ids = None
        if args.meta is not None and args.fmt == "devkit":
            from evaluation.labels import ClassLabels

            labels = ClassLabels.from_devkit_meta(args.meta)
            if list(labels.wnids) != list(classes):
                raise _Refused(f"--meta {args.meta}: the data set's {len(classes)} classes are not "
                               "the devkit's 1000; drop --meta")  # fmt: skip
            devkit_ids = labels.index_to_devkit
        model, regressor, networks = _localize_networks(args, classes, protocol)
    except (ValueError, FileNotFoundError) as exc:
        return _refusal("localize", exc)

    options = _options(args)
    result = localize_dataset(model, regressor, samples, protocol, options)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    write_loc_submission(out, result, classes, args.fmt, devkit_ids)
    files = {"submission": str(out)}
    score_args = []
    if boxes:
        gt = _sibling(out, ".gt.csv")
        write_loc_solution_csv(gt, [boxes[n] for n in result.names])
        files["ground_truth"] = str(gt)
        score_args = ["--gt", str(gt), "--pred", str(out)]
    if devkit_ids is not None:
        score_args += ["--meta", str(args.meta)]
    else:
        synsets = _sibling(out, ".synsets.txt")
        write_synsets(synsets, classes, words)
        files["synsets"] = str(synsets)
        if score_args:
            score_args += ["--synsets", str(synsets)]
    rate = len(samples) / max(result.seconds, 1e-9)
    print(f"localized {len(samples)} images ({protocol.summary()}) in {result.seconds:.1f} s "
          f"({rate:.2f} images/s); undecodable, counted wrong: {result.skipped}")  # fmt: skip
    split, stages = _time_split(result.seconds, result.times, options.merge_workers)
    if result.times.merge_sizes:
        print(split)
    print(f"wrote {out}")
    record = {
        "command": _command(),
        "protocol": protocol.to_dict(),
        "networks": networks,
        "data": str(args.data),
        "images": len(samples),
        "skipped": result.skipped,
        "seconds": result.seconds,
        "time_split": stages,
        "files": files,
        "format": args.fmt,
        "label_space": "ILSVRC2012_ID" if devkit_ids is not None else "sorted-WNID index",
    }
    if score_args:
        record["score_command"] = "python -m evaluation loc " + shlex.join(score_args)
        print(f"score it: {record['score_command']}")
    if args.score:
        from evaluation.tasks import evaluate_localization_files

        meta = args.meta if devkit_ids is not None else None
        synsets = files.get("synsets")
        res, extra = evaluate_localization_files(
            files["ground_truth"], out, meta=meta, synsets=synsets
        )
        scores = {**res.to_dict(), **extra}
        record["harness"] = scores
        loc, cls = scores["loc_error_by_guesses"], scores["cls_error_by_guesses"]
        print(f"CLS-LOC error over {res.num_images} images (eval_clsloc.m, no blacklist)")
        print("guesses " + " ".join(f"{k:>8d}" for k in range(1, 6)))
        print("loc     " + " ".join(f"{v:8.5f}" for v in loc))
        print("cls     " + " ".join(f"{v:8.5f}" for v in cls))
        print(f"top-5 localization error: {loc[4]:.4f}")
    _write_record(_sibling(out, ".json"), record)
    return 0


# ------------------------------------------------------------------ detect


def _detector(args):
    """(detector in eval mode, background index, label, (label space, output WNIDs or ``None``))
    of ``--detector`` (DET_LABEL_SPACE: what its run recorded)."""
    load_detector = _engine("detector", "load_detector", "--detector")
    model, background, space = load_detector(args.detector, with_space=True)
    return model.eval(), int(background), f"{args.detector.name}", space


def _detector_classes(args, recorded=None) -> tuple[list[str], list[str]]:
    """The object classes (WNIDs, the detector's order) and their words: ``--classes``, else the
    classes the detector's run recorded (``recorded``: its output WNIDs, words from
    ``--meta-det`` where it names them), else the CLS-LOC classes of ``--data`` (the classes a
    detector trained on it learned)."""
    from overfeat.data.readers import classification_samples, read_synset_mapping

    if args.classes is not None:
        return read_synset_mapping(args.classes)
    try:
        _, classes, layout = classification_samples(args.data, "val")
    except (FileNotFoundError, ValueError):
        if not recorded:
            raise _Refused(f"--data {args.data} has no CLS-LOC class list to name the detector's "
                           "classes; pass --classes FILE ('WNID words' per line, detector order)") from None  # fmt: skip
        classes, layout = recorded, None
    classes = list(recorded or classes)
    words = dict.fromkeys(classes, "")
    if layout is not None and layout.synset_mapping is not None:
        wnids, text = read_synset_mapping(layout.synset_mapping)
        words |= {w: t for w, t in zip(wnids, text) if w in words}
    if recorded and args.meta_det is not None:
        from evaluation.labels import DetLabels

        labels = DetLabels.from_devkit_meta(args.meta_det)
        words |= {w: n for w, n in zip(labels.wnids, labels.names) if w in words}
    return classes, [words[c] for c in classes]


def _det_meta(args, space: str | None) -> Path | None:
    """``--meta-det``, else for a detector in the DET label space the ``meta_det.mat`` found
    beside ``--data`` (DET_DEVKIT_SEARCH): its outputs are DET classes, scored against the
    devkit's 200; a refusal naming ``--meta-det`` when there is none. ``--classes`` names the
    outputs itself, and keeps the numbering it asks for."""
    from overfeat.data.label_space import DET_SPACE, find_det_devkit

    if args.meta_det is not None or args.classes is not None or space != DET_SPACE:
        return args.meta_det
    devkit = find_det_devkit(args.data)
    if devkit is None:
        raise _Refused(f"--detector {args.detector} outputs DET classes, but no meta_det.mat was "
                       f"found beside --data {args.data}; pass --meta-det META_DET_MAT")  # fmt: skip
    return devkit.meta_det


def _image_sizes(paths) -> list[tuple[int, int]]:
    from PIL import Image

    sizes = []
    for p in paths:
        try:
            with Image.open(p) as img:
                sizes.append((img.height, img.width))
        except OSError:
            sizes.append((0, 0))  # undecodable: no detection
    return sizes


def _run_detect(args) -> int:
    import numpy as np

    from evaluation.formats import write_det_submission, write_image_list
    from evaluation.labels import DetLabels
    from overfeat.data import open_detection
    from overfeat.data.readers import find_det_layout
    from overfeat.detect import (
        DetectionProtocol,
        det_ids_for,
        detect_dataset,
        detection_submission,
        random_detections,
        score_detections,
    )
    from overfeat.localize import check_regressor

    try:
        kwargs = {k: v for k, v in (("scales", args.scales), ("threshold", args.threshold),
                                    ("merge_threshold", args.merge_threshold),
                                    ("max_per_image", args.max_per_image)) if v is not None}  # fmt: skip
        source = "window" if args.box_source == "random" else args.box_source
        protocol = DetectionProtocol(
            flips=args.flips, offsets=args.offsets, box_source=source, **kwargs
        )
        dataset = open_detection(args.data, "val")
        xml_dir = find_det_layout(args.data, "val").xml_dir
        samples = dataset.samples[: args.limit] if args.limit else dataset.samples
        if not samples:
            raise _Refused(f"--data {args.data}: no DET validation image")
        names = [ann.image for _, ann in samples]
        paths = [p for p, _ in samples]
        detector = None
        if args.box_source != "random":
            if args.detector is None:
                raise _Refused("pass --detector RUN (or --box-source random)")
            detector = _detector(args)
            # DET_LABEL_SPACE: a run that recorded its outputs names them; --classes overrides.
            space, recorded = detector[3]
            args.meta_det = _det_meta(args, space)
            classes, words = _detector_classes(args, recorded)
        else:
            classes, words = _detector_classes(args)
        det_labels = None
        if args.meta_det is not None:
            det_labels = DetLabels.from_devkit_meta(args.meta_det)
        det_ids = det_ids_for(classes, det_labels)
        networks: dict = {}
        if args.box_source == "random":
            if (args.per_image is None) == (args.like is None):
                raise _Refused("--box-source random needs one of --per-image K or --like DET_FILE "
                               "(the detector's submission on the same images)")  # fmt: skip
            per_image = args.per_image
            if args.like is not None:
                from evaluation.formats import read_det_submission

                per_image = len(read_det_submission(args.like)) / len(names)
            networks = {"random": {"per_image": per_image, "seed": args.seed}}
        else:
            model, background, label, _ = detector
            if model.num_classes != len(classes) + 1:
                named = args.classes or ("its run" if recorded else "the data set")
                raise _Refused(
                    f"--detector {args.detector} has {model.num_classes} outputs; the "
                    f"{len(classes)} classes of {named} and the "
                    "background need one more; pass the classes it was trained on (--classes)"
                )
            regressor = None
            if protocol.box_source == "regressor":
                if args.regressor is None:
                    raise _Refused("--box-source regressor needs --regressor RUN (trained on the "
                                   "detector); or use --box-source window")  # fmt: skip
                load_regressor = _engine("regressor", "load_regressor", "--regressor")
                regressor = load_regressor(args.regressor, classifier=model,
                                           classifier_label=label).eval()  # fmt: skip
                _check_detection_regressor(model, regressor, check_regressor)
            networks = {"detector": label, "background": background,
                        "regressor": str(args.regressor) if regressor is not None else None}  # fmt: skip
    except (ValueError, FileNotFoundError) as exc:
        return _refusal("detect", exc)

    if args.box_source == "random":
        sizes = np.array(_image_sizes(paths), dtype=np.int64).reshape(-1, 2)
        detections = random_detections(sizes, len(classes), per_image, args.seed)
        seconds, skipped = 0.0, int((sizes.min(axis=1) == 0).sum())
        summary = f"random boxes, {per_image:.2f} per image, seed {args.seed}"
    else:
        options = _options(args)
        result = detect_dataset(model, background, regressor, paths, protocol, options)
        detections, sizes = list(result.detections), result.image_sizes
        seconds, skipped, summary = result.seconds, result.skipped, protocol.summary()
        split, stages = _time_split(seconds, result.times, options.merge_workers)
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    sub = detection_submission(detections, sizes, det_ids)
    write_det_submission(out, sub)
    images = _sibling(out, ".images.txt")
    write_image_list(images, names)
    print(f"detected in {len(names)} images ({summary}) in {seconds:.1f} s: {len(sub)} detections, "
          f"{len(sub) / len(names):.2f} per image; undecodable: {skipped}")  # fmt: skip
    if args.box_source != "random":
        print(split)
    print(f"wrote {out}")
    record = {
        "command": _command(),
        "protocol": protocol.to_dict() if args.box_source != "random" else None,
        "box_source": args.box_source,
        "networks": networks,
        "data": str(args.data),
        "images": len(names),
        "skipped": skipped,
        "detections": len(sub),
        "seconds": seconds,
        "time_split": stages if args.box_source != "random" else None,
        "files": {"submission": str(out), "images": str(images)},
        "label_space": "DET_ID (meta_det.mat)" if det_labels else "data set class index + 1",
    }
    if det_labels is not None:
        record["score_command"] = "python -m evaluation det " + shlex.join(
            ["--gt", str(xml_dir), "--images", str(images), "--meta", str(args.meta_det),
             "--pred", str(out)]
        )  # fmt: skip
        print(f"score it: {record['score_command']}")
    else:
        print("score it: overfeat detect ... --score (python -m evaluation det reads the devkit's "
              "200 DET classes from meta_det.mat; this file numbers the data set's own classes)")  # fmt: skip
    if args.score:
        labels = det_labels or DetLabels(
            tuple(classes), tuple(w or c for w, c in zip(words, classes))
        )
        try:
            res = score_detections(out, xml_dir, names, labels)
        except (ValueError, FileNotFoundError) as exc:
            _write_record(_sibling(out, ".json"), record)
            return _refusal("detect --score", exc)
        record["harness"] = {
            "mAP": res.mean_ap,
            "median_ap": res.median_ap,
            "ap": {str(k + 1): float(v) for k, v in enumerate(res.ap)},
            "npos": res.npos.tolist(),
        }
        print(f"{'DET_ID':>6} {'WNID':<10} {'npos':>6} {'dets':>8} {'AP':>7}")
        for k, wnid in enumerate(labels.wnids):
            if res.npos[k] or res.num_dets[k]:
                print(
                    f"{k + 1:>6} {wnid:<10} {res.npos[k]:>6} {res.num_dets[k]:>8} {res.ap[k]:7.4f}"
                )
        print(f"mAP {res.mean_ap:.4f} over {int((~np.isnan(res.ap)).sum())} classes with positives")
    _write_record(_sibling(out, ".json"), record)
    return 0


def _check_detection_regressor(model, regressor, check_regressor) -> None:
    """A regressor trained on a detector of C + 1 outputs boxes its C object classes."""
    if (
        getattr(regressor, "kind", "scr") == "pcr"
        and regressor.num_classes == model.num_classes - 1
    ):
        if regressor.spec != model.spec:
            check_regressor(model, regressor)  # the architecture message
        return
    check_regressor(model, regressor)
