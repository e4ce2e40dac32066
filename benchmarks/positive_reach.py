"""How many DET objects can be a detector's positive at some training scale (§5,
DETECTOR_POSITIVE_RULE), measured on the DET val2 annotations.

For every object of every XML, at each of the six scales of Table 5 (``scale_sizes``; the image
resized as training resizes it, ``scale_input_size``), the windows of the dense output map
(``window_boxes``, fine offsets) are laid over it, and :func:`best_positive_cover` gives the
largest share of a window's area the object fills among the windows holding at least
POSITIVE_MIN_INSIDE of it. An object is reachable under a minimum cover ``t`` when that best
cover is at least ``t`` at some scale: ``t`` = POSITIVE_MIN_COVER is the rule without its
floor (every positive window covered ≥ 0.2), ``t`` = POSITIVE_FLOOR_COVER the rule with it (a
small box's best-covering windows down to the floor). Printed and written as JSON: the fraction
reachable per architecture, threshold and largest scale; the XMLs' size fields give the image
sizes (no photo is read). ``--limit N`` measures N images drawn with a fixed seed (``--seed``)
instead of all, and the output says so::

    PYTHONPATH=. python benchmarks/positive_reach.py ../shared/data/ilsvrc-devkit/det_val2_xml \\
        --out reports/benchmarks/positive_reach-det_val2.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from evaluation.annotations import read_xml_dir
from overfeat.boxes import original_to_scale_image
from overfeat.dense import window_boxes
from overfeat.engine.detector import (
    POSITIVE_FLOOR_COVER,
    POSITIVE_MIN_COVER,
    best_positive_cover,
)
from overfeat.models import build_model
from overfeat.scales import scale_input_size, scale_sizes

THRESHOLDS = tuple(sorted({POSITIVE_MIN_COVER, 0.1, 0.05, POSITIVE_FLOOR_COVER, 0.02, 0.01, 0.0},
                          reverse=True))  # fmt: skip
# ../shared/data beside the project root, where the project's shared data sets live.
DEFAULT_XML_DIR = Path(__file__).resolve().parents[2] / "shared/data/ilsvrc-devkit/det_val2_xml"
RULES = {"without_floor": POSITIVE_MIN_COVER, "with_floor": POSITIVE_FLOOR_COVER}


def best_covers(anns, arch: str) -> np.ndarray:
    """``(M, 6)``: each object's best positive cover at each scale (0 where none holds half)."""
    spec = build_model(arch, num_classes=2, width=0.125).spec
    scales = scale_sizes(spec)
    out = []
    for ann in anns:
        if not len(ann.boxes):
            continue
        size = (ann.height, ann.width)
        row = []
        for scale in scales:
            target = scale_input_size(size, scale, spec)
            boxes = original_to_scale_image(torch.from_numpy(ann.boxes).double(), size, target)
            row.append(best_positive_cover(boxes, window_boxes(spec, target, "fine")).numpy())
        out.append(np.stack(row, axis=1))
    return np.concatenate(out)


def _relative(path: Path) -> str:
    """``path`` as seen from the current folder (a report names no machine's absolute paths)."""
    import os

    return os.path.relpath(path.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("xml_dir", type=Path, nargs="?", default=DEFAULT_XML_DIR,
                        help=f"the DET val2 XMLs (default: {DEFAULT_XML_DIR})")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--arch", choices=("fast", "accurate"), action="append", default=None,
                        help="network(s) to measure (default: both)")
    parser.add_argument("--limit", type=int, default=None,
                        help="measure this many images, drawn with --seed, instead of all")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.xml_dir.is_dir():
        # nox -s benchmark runs every benchmark with its defaults; without the shared data
        # there is nothing to measure, which is no failure.
        print(f"skipped: {args.xml_dir} is not a folder (the ILSVRC devkit's DET val2 XMLs)")
        return
    started = time.perf_counter()
    anns = list(read_xml_dir(args.xml_dir).values())
    total = len(anns)
    if args.limit is not None and args.limit < total:
        keep = np.sort(np.random.default_rng(args.seed).choice(total, args.limit, replace=False))
        anns = [anns[i] for i in keep]
        print(f"a sample of {len(anns)} of {total} images (seed {args.seed})", flush=True)
    result = {"xml_dir": _relative(args.xml_dir), "images": len(anns), "images_in_dir": total,
              "sample_seed": args.seed if len(anns) < total else None,
              "objects": int(sum(len(a.boxes) for a in anns)), "rules": RULES,
              "archs": {}}  # fmt: skip
    for arch in args.arch or ("fast", "accurate"):
        arch_started = time.perf_counter()
        cover = best_covers(anns, arch)
        rows = {}
        for t in THRESHOLDS:
            ok = cover >= t if t > 0 else cover > 0
            rows[str(t)] = {
                "reachable_any_scale": float(ok.any(axis=1).mean()),
                "reachable_at_largest_scale": float(ok[:, -1].mean()),
            }
            print(f"{arch:8s} min cover {t:<5}: reachable at some scale "
                  f"{100 * rows[str(t)]['reachable_any_scale']:.1f}%, at scale 6 "
                  f"{100 * rows[str(t)]['reachable_at_largest_scale']:.1f}%", flush=True)  # fmt: skip
        result["archs"][arch] = rows
        print(f"{arch:8s} DETECTOR_POSITIVE_RULE reaches "
              + ", ".join(f"{100 * rows[str(t)]['reachable_any_scale']:.1f}% {name} (≥ {t})"
                          for name, t in RULES.items())
              + f"; {time.perf_counter() - arch_started:.0f} s", flush=True)  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{result['objects']} objects in {result['images']} images, {result['seconds']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
