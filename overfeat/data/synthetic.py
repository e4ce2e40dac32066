"""A synthetic ILSVRC, written in the real files' layouts and formats (``overfeat make-synthetic``).

It exists so that every reader, the training engine and the evaluation harness run end to end
without ImageNet. What it writes under ``OUT`` is the Kaggle layout
(shared/reference/ilsvrc-evaluation.md §4), so the real readers read it unchanged:

```
LOC_synset_mapping.txt                       "WNID words", sorted by WNID (line = class index)
LOC_train_solution.csv, LOC_val_solution.csv "ImageId,PredictionString" (WNID x1 y1 x2 y2 ...)
ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_<k>.JPEG
ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_<8 digits>.JPEG
ILSVRC/Data/DET/val/ILSVRC2013_val_<8 digits>.JPEG
ILSVRC/Annotations/CLS-LOC/{train/<wnid>,val}/*.xml, ILSVRC/Annotations/DET/val/*.xml (VOC XML)
ILSVRC/ImageSets/CLS-LOC/{train_cls,val}.txt, ILSVRC/ImageSets/DET/val.txt  "<name> <index>"
synthetic.json                               the parameters, and the deliberately damaged files
```

What the images hold (shape × texture classes, box sizes, clutter) is
:mod:`overfeat.data.drawing`'s; this module lays them out as files.

Every image is a pure function of ``(seed, split, index)``: the same seed writes byte-identical
files, in any order and in any number of processes.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import sys
import time
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from evaluation.annotations import Annotation, write_loc_solution_csv, write_xml
from overfeat.data.drawing import (
    MAX_CLASSES,
    SHAPES,
    TEXTURES,
    SyntheticClass,
    render_clsloc_image,
    render_det_image,
    synthetic_classes,
)
from overfeat.flags import SYNTHETIC, add_workers_flag

__all__ = [
    "DAMAGE_KINDS",
    "MAX_CLASSES",
    "SHAPES",
    "TEXTURES",
    "SyntheticClass",
    "SyntheticConfig",
    "SyntheticSummary",
    "register",
    "render_clsloc_image",
    "render_det_image",
    "synthetic_classes",
    "write_synthetic",
]

JPEG_QUALITY = 90
# The kinds of damaged file --corrupt cycles through; the first three cannot be decoded (skipped
# and counted), the last three decode (ImageNet holds grayscale, CMYK and PNG-named-JPEG files).
DAMAGE_KINDS = ("truncated", "garbage", "empty", "grayscale", "cmyk", "png")
UNDECODABLE_KINDS = ("truncated", "garbage", "empty")

_SPLIT_CODE = {"train": 1, "val": 2, "det": 3, "damage": 4}


@dataclass(frozen=True)
class SyntheticConfig:
    """What ``overfeat make-synthetic`` writes; every count is per class except ``det_images``."""

    seed: int = 0
    classes: int = 10
    train_per_class: int = 20
    val_per_class: int = 5
    det_images: int = 50
    corrupt: int = 0
    jpeg_quality: int = JPEG_QUALITY
    class_colours: bool = False  # decision CLASS_COLOURS (overfeat.data.drawing)

    def __post_init__(self) -> None:
        if not 2 <= self.classes <= MAX_CLASSES:
            raise ValueError(f"--classes must be in 2..{MAX_CLASSES}, got {self.classes}")
        for name in ("train_per_class", "val_per_class", "det_images", "corrupt", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"--jpeg-quality must be in 1..95, got {self.jpeg_quality}")
        if self.corrupt > self.classes * self.train_per_class:
            raise ValueError("--corrupt cannot exceed the number of training images")


# ----------------------------------------------------------------------------- writing


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buf = BytesIO()
    # Baseline JPEG with fixed settings: libjpeg's output is a pure function of the pixels.
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _damage(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """The bytes of one damaged (or unusual but valid) version of a JPEG file."""
    if kind == "truncated":
        return data[: len(data) // 2]
    if kind == "garbage":
        return rng.bytes(max(64, len(data) // 4))
    if kind == "empty":
        return b""
    img = Image.open(BytesIO(data))
    buf = BytesIO()
    if kind == "grayscale":
        img.convert("L").save(buf, format="JPEG", quality=JPEG_QUALITY)
    elif kind == "cmyk":
        img.convert("CMYK").save(buf, format="JPEG", quality=JPEG_QUALITY)
    elif kind == "png":
        img.save(buf, format="PNG")
    else:
        raise ValueError(f"unknown damage kind {kind!r}")
    return buf.getvalue()


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`write_synthetic` wrote. ``damaged``: ``{relative path: kind}``."""

    images: int
    seconds: float
    damaged: dict[str, str]

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def _progress(total: int, enabled: bool):
    """A bar on a terminal, a line per 10% in a log (decision PROGRESS_LOG_LINES)."""
    from overfeat.progress import progress

    return progress(total, "make-synthetic", enabled, unit="img", leave=True)


@dataclass(frozen=True)
class _Job:
    """One image to render and write; ``index`` keys its generator within ``split``."""

    split: str  # "train", "val" or "det"
    index: int
    cls: int  # class index; -1 for DET (classes drawn per object)
    stem: str
    image_rel: str
    xml_rel: str
    xml_folder: str
    database: str
    damage: str | None = None


def _run_job(out: Path, classes: list[SyntheticClass], seed: int, quality: int, job: _Job):
    """Render, encode and write one image and its XML; returns its :class:`Annotation`."""
    rng = np.random.default_rng([seed, _SPLIT_CODE[job.split], job.index])
    if job.split == "det":
        image, boxes, wnids = render_det_image(classes, rng)
    else:
        image, boxes = render_clsloc_image(classes[job.cls], rng)
        wnids = [classes[job.cls].wnid] * len(boxes)
    payload = _jpeg(image, quality)
    if job.damage is not None:
        payload = _damage(payload, job.damage, rng)
    (out / job.image_rel).write_bytes(payload)
    ann = Annotation(job.stem, *image.size, boxes, wnids)
    write_xml(out / job.xml_rel, ann, folder=job.xml_folder, database=job.database)
    return ann


def _jobs(config: SyntheticConfig, classes: list[SyntheticClass]) -> list[_Job]:
    """Every image of the set, in the order the lists and CSVs name them."""
    n_train = config.classes * config.train_per_class
    # Which training files get damaged, and how: a pure function of the seed.
    picks = np.random.default_rng([config.seed, _SPLIT_CODE["damage"]]).permutation(n_train)
    damage_of = {
        int(i): DAMAGE_KINDS[j % len(DAMAGE_KINDS)] for j, i in enumerate(picks[: config.corrupt])
    }
    jobs = []
    for c, cls in enumerate(classes):
        for k in range(config.train_per_class):
            i, stem = c * config.train_per_class + k, f"{cls.wnid}_{k + 1}"
            jobs.append(
                _Job("train", i, c, stem, f"ILSVRC/Data/CLS-LOC/train/{cls.wnid}/{stem}.JPEG",
                     f"ILSVRC/Annotations/CLS-LOC/train/{cls.wnid}/{stem}.xml", cls.wnid,
                     "ILSVRC_2012", damage_of.get(i))
            )  # fmt: skip
    # Validation images come in a seeded random class order, as ILSVRC's do.
    val_labels = np.random.default_rng([config.seed, _SPLIT_CODE["val"]]).permutation(
        np.repeat(np.arange(config.classes), config.val_per_class)
    )
    for i, label in enumerate(val_labels.tolist()):
        stem = f"ILSVRC2012_val_{i + 1:08d}"
        jobs.append(
            _Job("val", i, label, stem, f"ILSVRC/Data/CLS-LOC/val/{stem}.JPEG",
                 f"ILSVRC/Annotations/CLS-LOC/val/{stem}.xml", "val", "ILSVRC_2012")
        )  # fmt: skip
    for i in range(config.det_images):
        stem = f"ILSVRC2013_val_{i + 1:08d}"
        jobs.append(
            _Job("det", i, -1, stem, f"ILSVRC/Data/DET/val/{stem}.JPEG",
                 f"ILSVRC/Annotations/DET/val/{stem}.xml", "ILSVRC2013_val", "ILSVRC_2013")
        )  # fmt: skip
    return jobs


def write_synthetic(
    out: str | Path, config: SyntheticConfig, progress: bool = False, workers: int = 0
) -> SyntheticSummary:
    """Write the synthetic set for ``config`` under ``out`` (which must be empty or absent).

    ``workers`` > 1 renders in that many processes; the files are the same for any count, since
    each image depends on ``(seed, split, index)`` alone.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: not empty; choose a new folder (files are never overwritten)"
        )
    classes = synthetic_classes(config.classes, config.class_colours)
    jobs = _jobs(config, classes)
    for folder in sorted({str(Path(p).parent) for j in jobs for p in (j.image_rel, j.xml_rel)}):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for folder in ("ILSVRC/ImageSets/CLS-LOC", "ILSVRC/ImageSets/DET"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    (out / "LOC_synset_mapping.txt").write_text(
        "".join(f"{c.wnid} {c.words}\n" for c in classes), encoding="utf-8"
    )
    start = time.perf_counter()
    run = functools.partial(_run_job, out, classes, config.seed, config.jpeg_quality)
    anns: list[Annotation] = []
    with _progress(len(jobs), progress) as bar:
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for ann in pool.imap(run, jobs, chunksize=8):
                    anns.append(ann)
                    bar.update()
        else:
            for job in jobs:
                anns.append(run(job))
                bar.update()
    seconds = time.perf_counter() - start

    by_split: dict[str, list[tuple[_Job, Annotation]]] = {"train": [], "val": [], "det": []}
    for job, ann in zip(jobs, anns):
        by_split[job.split].append((job, ann))
    write_loc_solution_csv(out / "LOC_train_solution.csv", [a for _, a in by_split["train"]])
    write_loc_solution_csv(out / "LOC_val_solution.csv", [a for _, a in by_split["val"]])
    sets = out / "ILSVRC" / "ImageSets"
    _write_list(
        sets / "CLS-LOC" / "train_cls.txt",
        [f"{classes[j.cls].wnid}/{j.stem}" for j, _ in by_split["train"]],
    )
    _write_list(sets / "CLS-LOC" / "val.txt", [j.stem for j, _ in by_split["val"]])
    _write_list(sets / "DET" / "val.txt", [j.stem for j, _ in by_split["det"]])
    damaged = {j.image_rel: j.damage for j in jobs if j.damage is not None}
    manifest = {
        "config": asdict(config),
        "damaged": damaged,
        "classes": [asdict(c) for c in classes],
    }
    # No timing in the manifest: the same seed must give byte-identical files.
    (out / "synthetic.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return SyntheticSummary(images=len(jobs), seconds=seconds, damaged=damaged)


def _write_list(path: Path, names: list[str]) -> None:
    """A devkit-style list: ``<name> <1-based index>`` per line."""
    path.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names, start=1)))


# ----------------------------------------------------------------------------- CLI


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-synthetic",
        help="write a synthetic ILSVRC (CLS-LOC + DET) in the Kaggle layout",
        description="Write a synthetic ILSVRC (CLS-LOC train/val with boxes, DET val) under OUT "
        "in the Kaggle layout, readable by every reader of the project. The same seed writes "
        "byte-identical files.",
    )
    d = SyntheticConfig()
    p.add_argument("out", type=Path, metavar="OUT", help="an empty or new folder")
    p.add_argument("--seed", type=int, default=d.seed, help="(default %(default)s)")
    p.add_argument(
        "--classes",
        type=int,
        default=d.classes,
        help=f"shape x texture classes, 2..{MAX_CLASSES} (default %(default)s)",
    )
    p.add_argument(
        "--train-per-class",
        type=int,
        default=d.train_per_class,
        metavar="K",
        help="training images per class (default %(default)s)",
    )
    p.add_argument(
        "--val-per-class",
        type=int,
        default=d.val_per_class,
        metavar="K",
        help="validation images per class (default %(default)s)",
    )
    p.add_argument(
        "--det-images",
        type=int,
        default=d.det_images,
        metavar="K",
        help="DET validation images, 0 to 6 objects each (default %(default)s)",
    )
    p.add_argument(
        "--corrupt",
        type=int,
        default=d.corrupt,
        metavar="K",
        help=f"damage K training files, cycling through {', '.join(DAMAGE_KINDS)} "
        "(default %(default)s)",
    )
    p.add_argument(
        "--jpeg-quality",
        type=int,
        default=d.jpeg_quality,
        metavar="Q",
        help="JPEG quality 1..95 (default %(default)s)",
    )
    p.add_argument(
        "--class-colours",
        action="store_true",
        help="give each class's objects their own hue (decision CLASS_COLOURS; default off)",
    )
    add_workers_flag(p, SYNTHETIC)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    try:
        config = SyntheticConfig(
            seed=args.seed,
            classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            det_images=args.det_images,
            corrupt=args.corrupt,
            jpeg_quality=args.jpeg_quality,
            class_colours=args.class_colours,
        )
        summary = write_synthetic(args.out, config, progress=True, workers=args.workers)
    except (ValueError, FileExistsError) as exc:
        print(f"make-synthetic: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary.images} images to {args.out} in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.0f} images/s); damaged: {len(summary.damaged)}"
    )
    return 0
