"""``python -m evaluation {cls,loc,det}``: the ILSVRC metrics from files, as the official devkits
compute them (shared/reference/ilsvrc-evaluation.md §2). Prints a table; ``--json FILE`` writes the
numbers as JSON (NaN written as null), ``--json -`` writes them to standard output and the table
to standard error; ``det --per-class`` writes the per-class AP as CSV. ``cls`` and ``loc`` take
``--subset``: score only the ground-truth images the submission has a line for.

Examples::

    python -m evaluation cls --gt t12/ILSVRC2012_validation_ground_truth.txt \\
        --pred t12/demo.val.pred.txt
    python -m evaluation cls --gt LOC_val_solution.csv --pred mine.csv --subset --json -
    python -m evaluation loc --gt ILSVRC/Annotations/CLS-LOC/val --meta t12/meta.mat \\
        --pred loc.txt --blacklist t14/ILSVRC2014_clsloc_validation_blacklist.txt
    python -m evaluation det --gt det_val2_xml --images det_val2_list.txt \\
        --meta t14/meta_det.mat --pred det.txt --per-class ap.csv

JSON keys (every task; the older names are kept beside the newer ones):

- ``cls``: ``top1_error``, ``top5_error``, ``error_by_guesses`` (1..5 guesses), ``num_images``
  (images scored), ``num_ground_truth_images``, ``missing`` (ground-truth images without a
  line), ``subset``;
- ``loc``: ``loc_error_1``, ``loc_error_5`` (localization error with 1 and 5 guesses),
  ``cls_error_1``, ``cls_error_5``, ``loc_error_by_guesses``, ``cls_error_by_guesses``,
  ``loc_error`` / ``cls_error`` (the 5-guess values), ``num_images``, ``blacklisted``,
  ``num_ground_truth_images``, ``missing``, ``blacklist``, ``subset``;
- ``det``: ``mean_ap`` (= ``mAP``), ``median_ap``, ``ap`` (DET_ID → AP, null without positives),
  ``classes_without_positives``, ``ignored_detections``, ``num_images`` (listed images),
  ``images_without_detections``, ``blacklist``.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import warnings
from pathlib import Path

from evaluation import tasks
from evaluation.json_output import JSON_HELP, console, write_json

__all__ = ["main", "build_parser"]


def _table_stream(args: argparse.Namespace):
    return console(args.json)


def _over(scored: int, total: int, subset: bool, how: str) -> str:
    """How many images a number is over, and how it was computed."""
    if subset:
        return f"over {scored:,} of {total:,} images (--subset; {how})"
    return f"over {total:,} images ({how})"


def _guesses_table(rows: list[tuple[str, list[float]]]) -> str:
    lines = ["guesses " + " ".join(f"{k:>8d}" for k in range(1, 6))]
    for name, values in rows:
        lines.append(f"{name:<7} " + " ".join(f"{v:8.5f}" for v in values))
    return "\n".join(lines)


def run_cls(args: argparse.Namespace) -> int:
    out = tasks.evaluate_classification_files(
        args.gt, args.pred, args.meta, synsets=args.synsets, subset=args.subset
    )
    stream = _table_stream(args)
    over = _over(out["num_images"], out["num_ground_truth_images"], args.subset, "eval_flat.m")
    print(f"classification error {over}", file=stream)
    print(_guesses_table([("error", out["error_by_guesses"])]), file=stream)
    write_json(args.json, out)
    return 0


def run_loc(args: argparse.Namespace) -> int:
    result, extra = tasks.evaluate_localization_files(
        args.gt,
        args.pred,
        meta=args.meta,
        blacklist=args.blacklist,
        synsets=args.synsets,
        subset=args.subset,
    )
    out = {**result.to_dict(), **extra}
    kept = result.num_images - result.blacklisted
    if args.blacklist:
        which = f"2014 devkit rule: {result.blacklisted} blacklisted images excluded, {kept} scored"
    else:
        which = f"2012 devkit rule: no blacklist, all {result.num_images} images scored"
    stream = _table_stream(args)
    how = f"eval_clsloc.m; localization: {which}; classification: all images"
    over = _over(result.num_images, extra["num_ground_truth_images"], args.subset, how)
    print(f"CLS-LOC error {over}", file=stream)
    print(
        _guesses_table(
            [("loc", out["loc_error_by_guesses"]), ("cls", out["cls_error_by_guesses"])]
        ),
        file=stream,
    )
    write_json(args.json, out)
    return 0


def run_det(args: argparse.Namespace) -> int:
    result, labels = tasks.evaluate_detection_files(
        args.gt, args.images, args.meta, args.pred, args.blacklist, args.blacklist_images
    )
    ap = {str(k + 1): float(v) for k, v in enumerate(result.ap)}
    no_pos = [k + 1 for k in range(len(result.ap)) if math.isnan(result.ap[k])]
    out = {
        "mAP": result.mean_ap,
        "mean_ap": result.mean_ap,
        "median_ap": result.median_ap,
        "ap": ap,
        "classes_without_positives": no_pos,
        "ignored_detections": result.ignored,
        "num_images": result.num_images,
        "images_without_detections": result.images_without_detections,
        "blacklist": args.blacklist,
    }
    stream = _table_stream(args)
    print(f"{'DET_ID':>6} {'WNID':<10} {'name':<24} {'npos':>6} {'dets':>8} {'AP':>7}", file=stream)
    for k, (wnid, name) in enumerate(zip(labels.wnids, labels.names)):
        print(
            f"{k + 1:>6} {wnid:<10} {name[:24]:<24} {result.npos[k]:>6} "
            f"{result.num_dets[k]:>8} {result.ap[k]:7.4f}",
            file=stream,
        )
    rule = f"blacklist {args.blacklist}" if args.blacklist else "no blacklist"
    scored = len(result.ap) - len(no_pos)
    without = result.images_without_detections
    print(
        f"images: {result.num_images:,} listed, {result.num_images - without:,} with detections, "
        f"{without:,} without (their objects count as misses)",
        file=stream,
    )
    print(
        f"mAP {result.mean_ap:.4f}  median AP {result.median_ap:.4f}  over {scored} classes "
        f"with positives ({rule}; eval_detection.m)",
        file=stream,
    )
    if args.per_class:
        with Path(args.per_class).open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["det_id", "wnid", "name", "npos", "num_dets", "ap"])
            for k, (wnid, name) in enumerate(zip(labels.wnids, labels.names)):
                ap_k = "" if math.isnan(result.ap[k]) else f"{result.ap[k]:.6f}"
                writer.writerow([k + 1, wnid, name, result.npos[k], result.num_dets[k], ap_k])
    write_json(args.json, out)
    return 0


SUBSET_HELP = (
    "score only the ground-truth images the submission has a line for (a Kaggle CSV names its "
    "images); without it, an image without a line counts as wrong"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="ILSVRC classification, CLS-LOC and DET metrics as the official devkits.",
    )
    sub = parser.add_subparsers(dest="task", required=True)

    p = sub.add_parser("cls", help="top-1..5 classification error (eval_flat.m)")
    p.add_argument(
        "--gt",
        required=True,
        help="ILSVRC2012_validation_ground_truth.txt, a CLS-LOC XML folder or LOC_val_solution.csv",
    )
    p.add_argument("--pred", required=True, help="devkit lines of integer labels, or Kaggle CSV")
    p.add_argument(
        "--meta",
        help="devkit meta.mat: integer labels are ILSVRC2012_IDs (needed for a Kaggle CSV "
        "against the ground-truth txt)",
    )
    p.add_argument(
        "--synsets",
        help="LOC_synset_mapping.txt: integer labels are indices 0..999 (XML or CSV ground truth)",
    )
    p.add_argument("--subset", action="store_true", help=SUBSET_HELP)
    p.add_argument("--json", help=JSON_HELP)
    p.set_defaults(func=run_cls)

    p = sub.add_parser("loc", help="CLS-LOC localization error (eval_clsloc.m)")
    p.add_argument("--gt", required=True, help="CLS-LOC XML folder or LOC_val_solution.csv")
    p.add_argument("--pred", required=True, help="devkit '<label> <box>' lines, or Kaggle CSV")
    p.add_argument("--meta", help="meta.mat: integer labels are ILSVRC2012_IDs")
    p.add_argument("--synsets", help="LOC_synset_mapping.txt: integer labels are indices 0..999")
    p.add_argument("--blacklist", help="ILSVRC2014_clsloc_validation_blacklist.txt (2014 rule)")
    p.add_argument("--subset", action="store_true", help=SUBSET_HELP)
    p.add_argument("--json", help=JSON_HELP)
    p.set_defaults(func=run_loc)

    p = sub.add_parser("det", help="DET mean average precision (eval_detection.m)")
    p.add_argument("--gt", required=True, help="folder of DET XML files")
    p.add_argument(
        "--images",
        required=True,
        help="image list '<image_name> <image_index>': the devkit's, or any sub-list of it",
    )
    p.add_argument("--meta", required=True, help="meta_det.mat")
    p.add_argument("--pred", required=True, help="DET submission lines")
    p.add_argument("--blacklist", help="ILSVRC2014_det_validation_blacklist.txt")
    p.add_argument(
        "--blacklist-images",
        help="the list the blacklist's indices refer to (default: --images; give the full "
        "det_val_list.txt when --images is a sub-list such as val2)",
    )
    p.add_argument("--json", help=JSON_HELP)
    p.add_argument("--per-class", help="write the per-class AP table as CSV here")
    p.set_defaults(func=run_det)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = (
        _show_warning  # the message names the file; the source line does not help
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:
        # Bad input is the user's to fix: print the message that names the file, no traceback
        # (OSError: a missing file, a folder where a file belongs, a file without read access).
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
