"""Speed of the evaluation harness at ILSVRC scale, measured against pycocotools in one run.

DET: a synthetic ILSVRC-DET-sized case (default 20,000 images, 200 classes, ~56,000 boxes,
1,000,000 detections: jittered copies of the boxes, duplicates and background boxes) evaluated by
evaluation.detection.evaluate_detection and by pycocotools COCOeval in the configuration of
evaluation/coco_check.py (IoU 0.5 only, one area range, no per-image cap); both start from arrays
in memory (pycocotools' time is all of coco_check.run_pycocotools: building its lists of dicts,
about 1.5 s per million detections, then loadRes, evaluate and accumulate). The true positives
of both are compared.
CLS-LOC: 50,000 images with 5 guesses and boxes.

    python benchmarks/eval_speed.py                 # full size (pycocotools takes minutes)
    taskset -c 0 python benchmarks/eval_speed.py    # one core
    python benchmarks/eval_speed.py --scale 0.1     # a quick look

Prints one line per measurement and the ratio; ``--json OUT`` writes them (``--json -``: to
standard output, the lines then on standard error).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

from evaluation.clsloc import localization_errors
from evaluation.detection import evaluate_detection, match_detections
from evaluation.json_output import JSON_HELP, console, write_json
from overfeat.flags import DefaultsHelpFormatter


def synthetic_det(n_img: int, n_cls: int, n_det: int, seed: int = 0):
    """GT ``(M,)``/``(M, 4)`` with 1-6 boxes per image (2.8 on average, as ILSVRC DET val) of
    30..300 px; detections ``(D,)``/``(D, 4)``: ~40% jittered copies of a GT box of the image
    (some duplicates), the rest background boxes anywhere, random labels."""
    rng = np.random.default_rng(seed)
    per_img = rng.integers(1, 5, n_img) + (rng.random(n_img) < 0.3) * rng.integers(0, 3, n_img)
    gi = np.repeat(np.arange(n_img), per_img)
    m = len(gi)
    gl = rng.integers(0, n_cls, m)
    xy = rng.integers(0, 200, (m, 2))
    gb = np.c_[xy, xy + rng.integers(30, 300, (m, 2)) - 1]
    n_tp = int(0.4 * n_det)
    k = rng.integers(0, m, n_tp)
    tb = gb[k] + rng.normal(0, 0.15, (n_tp, 1)) * (gb[k, 2:] - gb[k, :2]).repeat(2, 1)
    tb[:, 2:] = np.maximum(tb[:, 2:], tb[:, :2] + 1)
    n_bg = n_det - n_tp
    bxy = rng.uniform(0, 400, (n_bg, 2))
    bb = np.c_[bxy, bxy + rng.uniform(20, 300, (n_bg, 2))]
    di = np.r_[gi[k], rng.integers(0, n_img, n_bg)]
    dl = np.r_[gl[k], rng.integers(0, n_cls, n_bg)]
    dc = rng.random(n_det)
    order = np.argsort(di, kind="stable")  # a submission file lists images in order
    return di[order], dl[order], dc[order], np.r_[tb, bb][order], gi, gl, gb


def synthetic_clsloc(n_img: int, n_cls: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_cls, n_img)
    per_img = rng.integers(1, 4, n_img)
    bi = np.repeat(np.arange(n_img), per_img)
    xy = rng.integers(0, 200, (len(bi), 2))
    gb = np.c_[xy, xy + rng.integers(10, 300, (len(bi), 2))]
    guesses = rng.integers(0, n_cls, (n_img, 5))
    hit = rng.random(n_img) < 0.7
    guesses[hit, rng.integers(0, 5, hit.sum())] = labels[hit]
    first = np.searchsorted(bi, np.arange(n_img))
    boxes = gb[first][:, None, :] + rng.normal(0, 20, (n_img, 5, 4))
    blacklist = rng.random(n_img) < 0.035
    return labels, bi, labels[bi], gb, guesses, boxes, blacklist


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    parser.add_argument("--skip-coco", action="store_true", help="time the harness only")
    parser.add_argument("--json", help=JSON_HELP)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.redirect_stdout(console(args.json)):
        out = measure(args)
    write_json(args.json, out)
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Run every measurement ``args`` asks for, printing a line each; → the numbers."""
    n_img, n_det = int(20000 * args.scale), int(1_000_000 * args.scale)
    di, dl, dc, db, gi, gl, gb = synthetic_det(n_img, 200, n_det)
    print(f"DET: {n_img} images, 200 classes, {len(gi)} boxes, {len(di)} detections")
    t = time.perf_counter()
    res = evaluate_detection(di, dl, dc, db, gi, gl, gb, 200)
    t_ours = time.perf_counter() - t
    print(f"harness  evaluate_detection       {t_ours:8.2f} s   mAP {res.mean_ap:.4f}")
    out = {"det_images": n_img, "det_boxes": len(gi), "det_detections": len(di),
           "harness_det_s": t_ours}  # fmt: skip
    if not args.skip_coco:
        from evaluation.coco_check import run_pycocotools

        t = time.perf_counter()
        coco_tp, _, _ = run_pycocotools(di, dl, dc, db, gi, gl, gb, n_img, 200)
        t_coco = time.perf_counter() - t
        tp, _ = match_detections(di, dl, dc, db, gi, gl, gb, 200)
        agree = bool((tp == coco_tp).all())
        print(f"pycocotools COCOeval (IoU 0.5)    {t_coco:8.2f} s   same true positives: {agree}")
        print(f"ratio pycocotools / harness       {t_coco / t_ours:8.1f} x")
        out.update(pycocotools_det_s=t_coco, ratio=t_coco / t_ours, same_true_positives=agree)

    n_cl = int(50000 * max(args.scale, 0.02))
    labels, bi, bl, gbox, guesses, boxes, black = synthetic_clsloc(n_cl)
    t = time.perf_counter()
    loc = localization_errors(labels, bi, bl, gbox, guesses, boxes, black)
    t_loc = time.perf_counter() - t
    print(f"CLS-LOC: {n_cl} images x 5 guesses  {t_loc:8.2f} s   loc error {loc.loc_error:.4f}")
    out.update(clsloc_images=n_cl, harness_clsloc_s=t_loc)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
