"""Readers for the ILSVRC file layouts: which image files exist, and their labels and boxes.

Layouts understood (shared/reference/ilsvrc-evaluation.md §2.4 and §4):

- **Kaggle** ("ImageNet Object Localization Challenge", and what ``overfeat make-synthetic``
  writes): ``ILSVRC/Data/CLS-LOC/{train/<wnid>/*.JPEG, val/*.JPEG}``,
  ``ILSVRC/Annotations/CLS-LOC/{train/<wnid>,val}/*.xml``, ``LOC_synset_mapping.txt``,
  ``LOC_val_solution.csv`` (optionally ``LOC_train_solution.csv``), and for DET
  ``ILSVRC/Data/DET/<split>/``, ``ILSVRC/Annotations/DET/<split>/``,
  ``ILSVRC/ImageSets/DET/<split>.txt``.
- **classic** (the ILSVRC2012 tarballs extracted): ``train/<wnid>/*.JPEG``; ``val/*.JPEG`` labelled
  by the validation XMLs (``val/*.xml`` beside the images, or ``Annotations/CLS-LOC/val``,
  or ``bbox_val/``), or by the devkit's ground truth (``ILSVRC2012_validation_ground_truth.txt``,
  or the 2014 kit's ``ILSVRC2014_clsloc_validation_ground_truth.txt``) wherever the devkit was
  unpacked (:func:`devkit_search`, then inside the data root); or ``val/<wnid>/*.JPEG`` (the
  common "valprep" re-arrangement).

Decision DEVKIT_SEARCH: a flat ``val/`` is labelled by the first of ``LOC_val_solution.csv``, the
validation XMLs, the devkit's ground truth; the ground truth is looked for in the folders
:func:`devkit_search` names (``--devkit DIR``, then the folder of ``--meta``), then in the data
root, each folder as itself, ``data/``, ``ILSVRC2012_devkit_t12/data/`` and
``ILSVRC2014_devkit/data/``; its ILSVRC2012_IDs become WNIDs through the meta.mat beside it, else
through the order shipped with the package (:mod:`overfeat.data.class_order`, the same order).

Labels are sorted-WNID indices 0..C-1 (ARCHITECTURE.md "Labels"); the devkit's ILSVRC2012_IDs are
converted only through :mod:`evaluation.labels`. Listings use ``os.scandir`` and the directory
entry's type (no per-file ``stat``), sorted by name so the sample order never depends on the
file system: 1.28 M training files list in seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from evaluation.annotations import Annotation, read_loc_solution_csv, read_xml_dir
from evaluation.labels import ClassLabels, read_synset_mapping

__all__ = [
    "IMAGE_EXTENSIONS",
    "ClsLocLayout",
    "DetLayout",
    "classification_samples",
    "clsloc_boxes",
    "detection_samples",
    "devkit_ground_truth_in",
    "devkit_search",
    "find_clsloc_layout",
    "find_det_layout",
    "list_images",
    "read_image_list",
]

# ILSVRC names every image ``*.JPEG``; ``.jpg``/``.png`` are accepted for re-encoded copies.
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
_WNID = re.compile(r"^n\d{8}$")
_VAL_NUMBER = re.compile(r"_val_(\d{8})$")

# Where the classic layout's validation labels may be, tried in this order.
_VAL_XML_DIRS = ("val", "Annotations/CLS-LOC/val", "bbox_val", "bbox_val/val")
# The devkit's validation ground truth and meta: the 2012 kit's names, then the 2014 kit's (the
# same ids in the same order, ilsvrc-evaluation.md §2.4), in these places under each folder
# searched (decision DEVKIT_SEARCH): the folder holding the files, the unpacked kit, the folder
# the kit was unpacked into.
_GROUND_TRUTH_NAMES = (
    "ILSVRC2012_validation_ground_truth.txt",
    "ILSVRC2014_clsloc_validation_ground_truth.txt",
)
_META_NAMES = ("meta.mat", "meta_clsloc.mat")
_DEVKIT_PLACES = ("", "data", "ILSVRC2012_devkit_t12/data", "ILSVRC2014_devkit/data")

# Folders named by the command being run (``--devkit``, the folder of ``--meta``), searched
# before the data root; a context variable, so that every reader the command calls, however
# deep, sees them without each reproduction passing them along.
_DEVKIT_FOLDERS: ContextVar[tuple[Path, ...]] = ContextVar("devkit_folders", default=())


@contextmanager
def devkit_search(*folders: str | Path | None) -> Iterator[None]:
    """While the block runs, a classic layout's flat ``val/`` also looks for the devkit's ground
    truth in ``folders`` (``None`` entries are skipped), in this order, before the folders of an
    enclosing block and its data root."""
    given = tuple(Path(f).expanduser() for f in folders if f)
    token = _DEVKIT_FOLDERS.set((*given, *_DEVKIT_FOLDERS.get()))
    try:
        yield
    finally:
        _DEVKIT_FOLDERS.reset(token)


def devkit_ground_truth_in(folder: str | Path) -> tuple[Path, Path | None] | None:
    """``(ground truth, meta or None)`` found in ``folder`` (itself, ``data/``,
    ``ILSVRC2012_devkit_t12/data/``, ``ILSVRC2014_devkit/data/``, first found), else ``None``."""
    for place in _DEVKIT_PLACES:
        d = Path(folder) / place
        gt = next((d / n for n in _GROUND_TRUTH_NAMES if (d / n).is_file()), None)
        if gt is not None:
            return gt, next((d / n for n in _META_NAMES if (d / n).is_file()), None)
    return None


def _devkit_folders(root: Path) -> tuple[Path, ...]:
    return (*_DEVKIT_FOLDERS.get(), root)


_EXTENSION_SET = frozenset(e[1:] for e in IMAGE_EXTENSIONS)


def _is_image(name: str) -> bool:
    # String operations only: this runs 1.28 M times when the train set is listed.
    return name.rpartition(".")[2].lower() in _EXTENSION_SET


def list_images(folder: str | Path) -> list[str]:
    """The image file names directly inside ``folder`` (by extension), sorted. One ``scandir``."""
    with os.scandir(folder) as it:
        # is_file() answers from the directory entry's type on Linux: no stat per file.
        return sorted(e.name for e in it if _is_image(e.name) and e.is_file())


def _holds_xml(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.name.endswith(".xml") for e in it)


def _list_class_folders(folder: Path) -> list[str]:
    """Sub-folders of ``folder`` named like WNIDs, sorted."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if _WNID.match(e.name) and e.is_dir())


@dataclass(frozen=True)
class ClsLocLayout:
    """Where one copy of CLS-LOC keeps its files; ``None`` for what it lacks."""

    root: Path
    kind: str  # "kaggle" or "classic"
    train_dir: Path | None
    val_dir: Path | None
    synset_mapping: Path | None = None
    val_solution_csv: Path | None = None
    train_solution_csv: Path | None = None
    val_xml_dir: Path | None = None
    train_xml_dir: Path | None = None
    devkit_ground_truth: Path | None = None
    devkit_meta: Path | None = None  # none beside the ground truth: the shipped order is used


def _existing(path: Path, want_dir: bool) -> Path | None:
    return path if (path.is_dir() if want_dir else path.is_file()) else None


def find_clsloc_layout(root: str | Path) -> ClsLocLayout:
    """Detect the layout under ``root`` (the folder holding ``ILSVRC/`` for Kaggle, or the folder
    holding ``train/`` and ``val/`` for the classic layout)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass the ImageNet root folder")
    if root.name == "ILSVRC" and (root / "Data").is_dir():
        root = root.parent  # the user pointed inside the Kaggle archive
    kaggle = root / "ILSVRC" / "Data" / "CLS-LOC"
    if kaggle.is_dir():
        ann = root / "ILSVRC" / "Annotations" / "CLS-LOC"
        return ClsLocLayout(
            root=root,
            kind="kaggle",
            train_dir=_existing(kaggle / "train", True),
            val_dir=_existing(kaggle / "val", True),
            synset_mapping=_existing(root / "LOC_synset_mapping.txt", False),
            val_solution_csv=_existing(root / "LOC_val_solution.csv", False),
            train_solution_csv=_existing(root / "LOC_train_solution.csv", False),
            val_xml_dir=_existing(ann / "val", True),
            train_xml_dir=_existing(ann / "train", True),
        )
    train, val = _existing(root / "train", True), _existing(root / "val", True)
    if train is None and val is None:
        raise FileNotFoundError(
            f"{root}: no ImageNet layout found; expected ILSVRC/Data/CLS-LOC/ (Kaggle) or "
            "train/<wnid>/*.JPEG and val/ (classic); make one with `overfeat make-synthetic DIR`"
        )
    val_xml = None
    for sub in _VAL_XML_DIRS:
        d = root / sub
        if d.is_dir() and _holds_xml(d):
            val_xml = d
            break
    gt = meta = None
    for folder in _devkit_folders(root):
        found = devkit_ground_truth_in(folder)
        if found is not None:
            gt, meta = found
            break
    return ClsLocLayout(
        root=root,
        kind="classic",
        train_dir=train,
        val_dir=val,
        synset_mapping=_existing(root / "LOC_synset_mapping.txt", False),
        val_xml_dir=val_xml,
        devkit_ground_truth=gt,
        devkit_meta=meta,
    )


def _devkit_order(layout: ClsLocLayout) -> tuple[str, ...]:
    """The WNIDs in ILSVRC2012_ID order: the meta beside the ground truth, else the shipped order."""
    if layout.devkit_meta is not None:
        return ClassLabels.from_devkit_meta(layout.devkit_meta).devkit_wnids
    from overfeat.data.class_order import ilsvrc2012_wnids

    return ilsvrc2012_wnids()


def _classes(layout: ClsLocLayout) -> list[str]:
    """The class WNIDs, sorted: from the synset mapping, else the train (or val) class folders,
    else the devkit's 1000 (its meta, or the shipped order)."""
    if layout.synset_mapping is not None:
        wnids, _ = read_synset_mapping(layout.synset_mapping)
        return sorted(wnids)
    for d in (layout.train_dir, layout.val_dir):
        if d is not None:
            folders = _list_class_folders(d)
            if folders:
                return folders
    if layout.devkit_ground_truth is not None:
        return sorted(_devkit_order(layout))
    if layout.val_dir is not None and layout.val_xml_dir is None:
        # A flat val/ alone: its labels are what is missing, and where they were looked for
        # is what the user needs to know.
        raise FileNotFoundError(_no_labels_message(layout))
    raise FileNotFoundError(
        f"{layout.root}: cannot tell the class list; add LOC_synset_mapping.txt (one "
        "'WNID words' line per class) or a train/<wnid>/ folder per class"
    )


def _folder_samples(folder: Path, index: dict[str, int]) -> list[tuple[str, int]]:
    samples = []
    for wnid in _list_class_folders(folder):
        if wnid not in index:
            raise ValueError(
                f"{folder / wnid}: class folder {wnid} is not in the class list "
                "(LOC_synset_mapping.txt); add it there or remove the folder"
            )
        prefix = f"{folder / wnid}{os.sep}"  # str concatenation: Path("/") costs µs per file
        label = index[wnid]
        samples += [(prefix + name, label) for name in list_images(folder / wnid)]
    return samples


def _val_labels(layout: ClsLocLayout, stems: list[str]) -> tuple[dict[str, str], Path]:
    """WNID per validation image stem, and the file it came from."""
    if layout.val_solution_csv is not None:
        anns = read_loc_solution_csv(layout.val_solution_csv)
        return {k: a.wnids[0] for k, a in anns.items() if a.wnids}, layout.val_solution_csv
    if layout.val_xml_dir is not None:
        anns = read_xml_dir(layout.val_xml_dir, images=stems)
        return {k: a.wnids[0] for k, a in anns.items() if a.wnids}, layout.val_xml_dir
    if layout.devkit_ground_truth is not None:
        devkit = _devkit_order(layout)
        ids = _read_devkit_ground_truth(layout.devkit_ground_truth, len(devkit))
        out = {}
        for stem in stems:
            m = _VAL_NUMBER.search(stem)
            if m is None or not 1 <= int(m.group(1)) <= len(ids):
                raise ValueError(
                    f"{layout.devkit_ground_truth}: no line for image {stem}; the devkit ground "
                    "truth labels ILSVRC2012_val_NNNNNNNN by line number NNNNNNNN"
                )
            out[stem] = devkit[ids[int(m.group(1)) - 1] - 1]
        return out, layout.devkit_ground_truth
    raise FileNotFoundError(_no_labels_message(layout))


def _no_labels_message(layout: ClsLocLayout) -> str:
    """What was looked for, where, and the fixes: the user's ImageNet is laid out some way we
    did not guess, and the message must let them point at it."""
    root = layout.root
    xml_dirs = ", ".join(str(root / d) for d in _VAL_XML_DIRS)
    places = ", ".join(p + "/" for p in _DEVKIT_PLACES if p)
    folders = "; ".join(str(f) for f in _devkit_folders(root))
    return (
        f"{layout.val_dir}: validation images but no labels. Looked for LOC_val_solution.csv in "
        f"{root}; validation XMLs in {xml_dirs}; the devkit's "
        f"{' or '.join(_GROUND_TRUTH_NAMES)} in {folders} (each as itself and its {places}). "
        "Pass --devkit DIR (the unpacked ILSVRC2012_devkit_t12, or any folder holding "
        "ILSVRC2012_validation_ground_truth.txt), or sort the images into val/<wnid>/ folders"
    )


def _read_devkit_ground_truth(path: Path, num_classes: int) -> list[int]:
    """One ILSVRC2012_ID per line (ilsvrc-evaluation.md §2.4)."""
    ids = []
    with path.open(encoding="ascii") as f:
        for lineno, line in enumerate(f, start=1):
            text = line.strip()
            if not text.isdigit() or not 1 <= int(text) <= num_classes:
                raise ValueError(
                    f"{path}:{lineno}: expected one ILSVRC2012_ID in 1..{num_classes}, got {text!r}"
                )
            ids.append(int(text))
    return ids


def classification_samples(
    root: str | Path, split: str
) -> tuple[list[tuple[str, int]], list[str], ClsLocLayout]:
    """``(samples, classes, layout)`` for ``split`` ``"train"`` or ``"val"``.

    ``samples``: ``(path, label)`` with label the sorted-WNID index; ``classes``: sorted WNIDs.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    layout = find_clsloc_layout(root)
    folder = layout.train_dir if split == "train" else layout.val_dir
    if folder is None:
        raise FileNotFoundError(f"{layout.root}: no {split} images in the {layout.kind} layout")
    classes = _classes(layout)
    index = {w: i for i, w in enumerate(classes)}
    if split == "train" or _list_class_folders(folder):
        samples = _folder_samples(folder, index)
    else:
        names = list_images(folder)
        stems = [os.path.splitext(n)[0] for n in names]
        wnid_of, source = _val_labels(layout, stems)
        samples = []
        for name, stem in zip(names, stems):
            wnid = wnid_of.get(stem)
            if wnid is None:
                raise ValueError(
                    f"{source}: no label for {folder / name}; add its row or remove it"
                )
            if wnid not in index:
                raise ValueError(f"{source}: {stem} is labelled {wnid}, not in the class list")
            samples.append((str(folder / name), index[wnid]))
    if not samples:
        raise FileNotFoundError(f"{folder}: holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return samples, classes, layout


def clsloc_boxes(root: str | Path, split: str) -> dict[str, Annotation]:
    """The CLS-LOC boxes of ``split``, keyed by image stem: from ``LOC_{split}_solution.csv`` or
    the XML folders (train XMLs sit in ``<wnid>/`` sub-folders). Real ILSVRC has boxes for only
    part of the train set."""
    layout = find_clsloc_layout(root)
    csv_path = layout.val_solution_csv if split == "val" else layout.train_solution_csv
    if csv_path is not None:
        return read_loc_solution_csv(csv_path)
    xml_dir = layout.val_xml_dir if split == "val" else layout.train_xml_dir
    if xml_dir is None:
        raise FileNotFoundError(f"{layout.root}: no {split} boxes (CSV or XML folder)")
    if split == "val":
        return read_xml_dir(xml_dir)
    out: dict[str, Annotation] = {}
    for wnid in _list_class_folders(xml_dir):
        out.update(read_xml_dir(xml_dir / wnid))
    return out


# ----------------------------------------------------------------------------- DET


@dataclass(frozen=True)
class DetLayout:
    """One DET split: its images, its XMLs, and its image list (``None`` when absent)."""

    image_dir: Path
    xml_dir: Path | None
    image_list: Path | None


def find_det_layout(root: str | Path, split: str = "val") -> DetLayout:
    """The Kaggle-layout DET split under ``root``: ``ILSVRC/Data/DET/<split>``,
    ``ILSVRC/Annotations/DET/<split>``, ``ILSVRC/ImageSets/DET/<split>.txt``."""
    root = Path(root)
    if root.name == "ILSVRC":
        root = root.parent
    base = root / "ILSVRC"
    image_dir = base / "Data" / "DET" / split
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no DET {split} images in the Kaggle layout")
    return DetLayout(
        image_dir=image_dir,
        xml_dir=_existing(base / "Annotations" / "DET" / split, True),
        image_list=_existing(base / "ImageSets" / "DET" / f"{split}.txt", False),
    )


def read_image_list(path: str | Path) -> list[str]:
    """A devkit image list, ``<image_name> <index>`` per line (``det_val_list.txt``, ImageSets
    ``val.txt``): the names in file order. The indices need not run 1, 2, 3: a sub-list of a
    devkit list (ilsvrc-det-val-mini's 180 of val2) keeps the indices its images have there;
    an index listed twice is refused with both lines."""
    path = Path(path)
    names = []
    line_of: dict[int, int] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<image_name> <index>', got {line!r}")
            index = int(parts[1])
            if index in line_of:
                raise ValueError(
                    f"{path}:{lineno}: index {index} already on line {line_of[index]}; each "
                    "image needs its own index"
                )
            line_of[index] = lineno
            names.append(parts[0])
    return names


def detection_samples(
    image_dir: str | Path | None,
    xml_dir: str | Path,
    image_list: str | Path | None = None,
) -> list[tuple[str | None, Annotation]]:
    """``(image path, Annotation)`` per DET image, in the image list's order (else by name).

    With an image list every listed image must have its XML (an image without objects has an XML
    without ``<object>``). ``image_dir=None`` reads annotations only (path ``None``).
    """
    if image_list is not None:
        names = read_image_list(image_list)
        anns = read_xml_dir(xml_dir, images=names)
    else:
        anns = read_xml_dir(xml_dir)
        names = list(anns)
    if image_dir is None:
        return [(None, anns[n]) for n in names]
    image_dir = Path(image_dir)
    present = {os.path.splitext(n)[0]: n for n in list_images(image_dir)}
    for n in names:
        if "/" in n and n not in present:  # DET train lists name <synset folder>/<image>
            found = [
                f"{n}{e}" for e in (".JPEG", ".jpg", ".png") if (image_dir / f"{n}{e}").is_file()
            ]
            if found:
                present[n] = found[0]
    missing = [n for n in names if n not in present]
    if missing:
        raise FileNotFoundError(
            f"{image_dir}: {len(missing)} annotated image(s) missing, first {missing[0]}; "
            "the image folder and the annotations must name the same images"
        )
    return [(str(image_dir / present[n]), anns[n]) for n in names]
