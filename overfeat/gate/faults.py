"""Faults the gate must catch: in the code (a seam of the pipeline patched) and in the data (a
copy of a data set rewritten as a user's data can be wrong), each with the metrics it must fail.

This registry is what the fault tests (tests/test_regression_gate.py) run, each against a small
gate configuration with the committed tolerances, and what the README's gate table renders as
"the faults shown to move it". A fault names the metrics that must fail; the test asserts that
they do, that the gate exits 1 naming them, and that a clean rerun passes.

Code faults take ``patch(owner, name, value)`` (pytest's ``monkeypatch.setattr``); data faults
rewrite a copy of a data set in place (:func:`faulty_copy`), keeping its folder name and image
counts, so the baselines' data check still compares it and the metrics are what must see the
fault.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CODE_FAULTS", "DATA_FAULTS", "CodeFault", "DataFault", "faulty_copy"]

Patch = Callable[[object, str, object], None]


@dataclass(frozen=True)
class CodeFault:
    """``inject(patch)`` breaks one seam; ``suite`` is the suite that must see it, ``fails`` the
    metrics it must fail there (a metric named with ``{row}`` is one per row of the suite)."""

    name: str
    description: str
    suite: str
    fails: tuple[str, ...]
    inject: Callable[[Patch], None]


@dataclass(frozen=True)
class DataFault:
    """``rewrite(root)`` corrupts the data set at ``root`` (a copy); ``kind`` is what of a
    user's data it stands for: labels, class order, boxes or image decoding."""

    name: str
    kind: str
    description: str
    suite: str
    fails: tuple[str, ...]
    rewrite: Callable[[Path], None]


# ----------------------------------------------------------------------------- code faults


def _offset_zero_only(patch: Patch) -> None:
    import overfeat.dense

    original = overfeat.dense.offset_max_pool

    def offset_zero_only(layer5, k, offsets="fine"):
        pooled = original(layer5, k, offsets)
        if offsets == "coarse":
            return pooled
        n = layer5.shape[0]
        return pooled[:n].repeat(k * k, 1, 1, 1)  # every offset's map is Δ = (0, 0)'s

    patch(overfeat.dense, "offset_max_pool", offset_zero_only)


def _no_flips(patch: Patch) -> None:
    import overfeat.scales

    original = overfeat.scales.multiscale_class_vector

    def without_flips(model, images, sizes, flips=True, *args, **kwargs):
        return original(model, images, sizes, False, *args, **kwargs)

    patch(overfeat.scales, "multiscale_class_vector", without_flips)


def _slow_lr(patch: Patch) -> None:
    from dataclasses import replace

    import overfeat.engine.config

    original = overfeat.engine.config.recipe

    def slow(name, **overrides):
        config = original(name, **overrides)
        return replace(config, lr=config.lr / 10)

    patch(overfeat.engine.config, "recipe", slow)


def _label_shift(patch: Patch) -> None:
    import overfeat.data.readers

    original = overfeat.data.readers.classification_samples

    def shifted(root, split):
        samples, classes, layout = original(root, split)
        return [(p, (label + 1) % len(classes)) for p, label in samples], classes, layout

    patch(overfeat.data.readers, "classification_samples", shifted)


def _iou_0_7(patch: Patch) -> None:
    import evaluation.clsloc

    patch(evaluation.clsloc, "LOC_IOU_THRESHOLD", 0.7)


def _never_merges(patch: Patch) -> None:
    import overfeat.merge_workers
    from overfeat.merge import MergeResult

    def never(boxes, scores, threshold=None) -> MergeResult:
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        return MergeResult(boxes.copy(), np.asarray(scores, dtype=np.float64).copy(),
                           np.arange(len(boxes)))  # fmt: skip

    # Every merge of localization and detection goes through merge_workers.merge_boxes; the
    # gate merges in its own process (RunOptions' 0 merge workers), where the patch holds.
    patch(overfeat.merge_workers, "greedy_merge", never)


def _coarse_stride(patch: Patch) -> None:
    import overfeat.dense

    original = overfeat.dense.output_stride

    def doubled(spec, offsets="fine"):  # fine outputs placed at the coarse stride (16 → 32)
        return 2 * original(spec, offsets)

    patch(overfeat.dense, "output_stride", doubled)


CODE_FAULTS: tuple[CodeFault, ...] = (
    CodeFault("offset-pooling-delta-zero", "offset max-pooling keeps only Δ = (0, 0) (§3.3)",
              "synthetic", ("pinned T2-3 true-class score",), _offset_zero_only),
    CodeFault("flips-dropped", "the vote leaves out the mirror images",
              "synthetic", ("pinned T2-2 true-class score", "pinned T2-3 true-class score"),
              _no_flips),
    CodeFault("lr-divided-by-10", "the recipe's learning rate ten times too small",
              "synthetic", ("train loss, last epoch",), _slow_lr),
    CodeFault("reader-label-shift", "the reader shifts every class index by one",
              "pretrained-real", ("top-1 error", "top-5 error"), _label_shift),
    CodeFault("loc-iou-0.7", "the localization criterion at IoU 0.7 instead of 0.5",
              "pretrained-real", ("loc error, 5 guesses, 2012 rule",
                                  "loc error, 5 guesses, 2014 blacklist"), _iou_0_7),
    CodeFault("merge-never-merges", "the greedy merge (§4.3) never merges",
              "loc-real", ("pinned F9-4 merged boxes per image",), _never_merges),
    CodeFault("merge-never-merges-det", "the greedy merge (§4.3) never merges",
              "det-synthetic", ("pinned merged boxes per image",), _never_merges),
    CodeFault("coarse-stride-decode", "boxes decoded at twice the output stride",
              "loc-real", ("pinned F9-4 first-guess IoU",), _coarse_stride),
    CodeFault("coarse-stride-decode-det", "boxes decoded at twice the output stride",
              "det-synthetic", ("pinned merged boxes per image",), _coarse_stride),
)  # fmt: skip


# ----------------------------------------------------------------------------- data faults


def _val_solution(root: Path) -> Path:
    path = root / "LOC_val_solution.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the data faults rewrite a Kaggle-layout data set")
    return path


def _rewrite_val_annotations(root: Path, change) -> None:
    """Apply ``change(Annotation) -> Annotation`` to every validation annotation: the Kaggle
    CSV and, where present, the validation XMLs."""
    from evaluation.annotations import (
        read_loc_solution_csv,
        read_xml,
        write_loc_solution_csv,
        write_xml,
    )

    csv_path = _val_solution(root)
    anns = read_loc_solution_csv(csv_path)
    write_loc_solution_csv(csv_path, [change(a) for a in anns.values()])
    xml_dir = root / "ILSVRC" / "Annotations" / "CLS-LOC" / "val"
    for xml in sorted(xml_dir.glob("*.xml")) if xml_dir.is_dir() else ():
        write_xml(xml, change(read_xml(xml)))


def _classes(root: Path) -> list[str]:
    from evaluation.labels import read_synset_mapping

    wnids, _ = read_synset_mapping(root / "LOC_synset_mapping.txt")
    return sorted(wnids)


def _shift_val_labels(root: Path) -> None:
    """Every validation image labelled with the next class (boxes kept)."""
    from evaluation.annotations import Annotation

    classes = _classes(root)
    nxt = {w: classes[(i + 1) % len(classes)] for i, w in enumerate(classes)}
    _rewrite_val_annotations(root, lambda a: Annotation(
        a.image, a.width, a.height, a.boxes, tuple(nxt[w] for w in a.wnids)))  # fmt: skip


TEXT_SUFFIXES = (".csv", ".txt", ".xml", ".json")


def _rename_first_class(root: Path) -> None:
    """The first class (sorted WNID) renamed to one that sorts last, everywhere: folders, file
    names and every text file. The data set stays consistent with itself; its sorted class
    order, which is what a network's outputs mean, moves every other class by one."""
    old = _classes(root)[0]
    new = "n09999999"
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            text = path.read_text(encoding="utf-8")
            if old in text:
                path.write_text(text.replace(old, new), encoding="utf-8")
        if old in path.name:
            path.rename(path.with_name(path.name.replace(old, new)))


def _val_images(root: Path) -> list[Path]:
    folder = root / "ILSVRC" / "Data" / "CLS-LOC" / "val"
    return sorted(p for p in folder.iterdir() if p.suffix.upper() == ".JPEG")


def _bgr_val_images(root: Path) -> None:
    """Every validation JPEG stored with its red and blue channels exchanged (a pipeline that
    wrote OpenCV's BGR arrays as RGB)."""
    from PIL import Image

    for path in _val_images(root):
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(buf, format="JPEG", quality=95)
        path.write_bytes(buf.getvalue())


def _truncate_val_images(root: Path) -> None:
    """Every other validation JPEG cut to its first 200 bytes (an interrupted copy): undecodable,
    so skipped and counted as wrong (SKIPPED_IMAGE_COUNTS_AS_ERROR)."""
    for path in _val_images(root)[::2]:
        path.write_bytes(path.read_bytes()[:200])


def _shift_val_boxes(root: Path) -> None:
    """Every validation box moved right by its own width (clipped to the image): boxes written
    in another image's frame, or x and width confused."""
    from PIL import Image

    from evaluation.annotations import Annotation

    sizes = {}
    for p in _val_images(root):
        with Image.open(p) as im:
            sizes[p.stem] = im.size

    def moved(a):
        w = sizes.get(a.image, (a.width, a.height))[0]
        b = a.boxes.copy()
        width = b[:, 2] - b[:, 0] + 1
        b[:, 0] = np.minimum(b[:, 0] + width, w - 1)
        b[:, 2] = np.minimum(b[:, 2] + width, w - 1)
        return Annotation(a.image, a.width, a.height, b, a.wnids)

    _rewrite_val_annotations(root, moved)


DATA_FAULTS: tuple[DataFault, ...] = (
    DataFault("val-labels-shifted", "labels", "every validation label moved to the next class",
              "train-real", ("pinned T2-2 top-1 error",), _shift_val_labels),
    DataFault("class-renamed", "class order",
              "one class's WNID renamed so that it sorts last: every other class's index moves",
              "train-real", ("pinned T2-2 top-1 error",), _rename_first_class),
    DataFault("val-images-bgr", "image decoding",
              "validation JPEGs stored with red and blue exchanged",
              "train-real", ("pinned T2-2 true-class score",), _bgr_val_images),
    DataFault("val-images-truncated", "image decoding",
              "every other validation JPEG truncated (undecodable)",
              "train-real", ("pinned T2-2 top-1 error",), _truncate_val_images),
    DataFault("val-boxes-shifted", "boxes", "every validation box moved right by its width",
              "loc-real", ("pinned F9-4 top-5 loc error", "pinned F9-4 first-guess IoU"),
              _shift_val_boxes),
)  # fmt: skip


def faulty_copy(data: Path, fault: DataFault, where: Path) -> Path:
    """A copy of the data set ``data`` under ``where`` (same folder name), rewritten by
    ``fault``; returns its root."""
    root = Path(where) / Path(data).resolve().name
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(data, root)
    fault.rewrite(root)
    return root


def fault_table() -> list[dict]:
    """One row per (suite, metric) that a registered fault must fail: the faults shown to move
    it, for the README's gate table."""
    rows: dict[tuple[str, str], list[str]] = {}
    for f in (*CODE_FAULTS, *DATA_FAULTS):
        kind = "code" if isinstance(f, CodeFault) else f"data ({f.kind})"
        for metric in f.fails:
            rows.setdefault((f.suite, metric), []).append(f"{f.description} [{kind}]")
    return [{"suite": s, "metric": m, "faults": v} for (s, m), v in rows.items()]

