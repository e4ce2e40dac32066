"""Which classes a detector outputs and a detection report scores: the DET label space or the
data set's own (§5).

The ILSVRC DET task scores 200 classes (``meta_det.mat``), 150 of them CLS-LOC classes and 50 their
ancestors (:mod:`evaluation.hierarchy`). Where a devkit with ``meta_det.mat`` and
``meta_clsloc.mat`` is found (:func:`find_det_devkit`), a detector made from a CLS-LOC classifier
outputs DET classes (:func:`det_output_classes`), its training objects are mapped to them
(:func:`det_training_index`), and detections are scored against the 200 DET classes
(:func:`scoring_space`). Without one, as on the synthetic set and imagenette-10, the detector
keeps the classifier's classes and is scored against the data set's own class list; every report
names the space it scored (:attr:`LabelSpace.description`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "DET_SPACE",
    "DATASET_SPACE",
    "DetClasses",
    "DetDevkit",
    "LabelSpace",
    "det_output_classes",
    "det_training_index",
    "find_det_devkit",
    "scoring_space",
]

DET_SPACE = "DET"
DATASET_SPACE = "data set"

# Decision DET_DEVKIT_SEARCH: the DET label space needs the devkit's meta_det.mat (the 200 classes)
# and meta_clsloc.mat (the hierarchy that relates them to a classifier's classes). Neither the
# Kaggle DET layout nor a classic layout carries them, so they are looked for in --det-devkit when
# given, else, for data with a DET split, in the data root and in a devkit folder inside it or
# beside it (a sibling whose name holds "devkit", as the devkit archive unpacks next to the data),
# each folder itself or its data/ or t14/ sub-folder (the 2014 kit keeps its files in data/). The
# first folder holding both wins.
_DEVKIT_SUBFOLDERS = (".", "data", "t14")
DEVKIT_FILES = ("meta_det.mat", "meta_clsloc.mat")
_BLACKLIST = "ILSVRC2014_det_validation_blacklist.txt"
_FULL_LISTS = ("det_val_list.txt", "det_lists/val.txt")


@dataclass(frozen=True)
class DetDevkit:
    """The devkit files of the DET label space: ``meta_det`` and ``meta_clsloc`` paths;
    ``blacklist`` (the 2014 DET validation blacklist) and ``val_list`` (the full DET validation
    list its image indices number), ``None`` where the folder has none."""

    folder: Path
    meta_det: Path
    meta_clsloc: Path
    blacklist: Path | None
    val_list: Path | None


def _devkit_in(folder: Path) -> DetDevkit | None:
    for sub in _DEVKIT_SUBFOLDERS:
        f = (folder / sub).resolve() if sub != "." else folder
        if all((f / name).is_file() for name in DEVKIT_FILES):
            blacklist = f / _BLACKLIST
            val_list = next((f / n for n in _FULL_LISTS if (f / n).is_file()), None)
            return DetDevkit(f, f / "meta_det.mat", f / "meta_clsloc.mat",
                             blacklist if blacklist.is_file() else None, val_list)  # fmt: skip
    return None


def find_det_devkit(data: str | Path | None, devkit: str | Path | None = None) -> DetDevkit | None:
    """The devkit of ``--det-devkit`` (a ``FileNotFoundError`` naming the files when it lacks them),
    else the first found by DET_DEVKIT_SEARCH around ``data`` when it has a DET split
    (``ILSVRC/Data/DET``; a CLS-LOC set such as imagenette-10 stays in its own space even with a
    devkit beside it), else ``None``."""
    if devkit is not None:
        found = _devkit_in(Path(devkit))
        if found is None:
            raise FileNotFoundError(
                f"--det-devkit {devkit}: no {' and '.join(DEVKIT_FILES)} in it or in its "
                f"{', '.join(s for s in _DEVKIT_SUBFOLDERS if s != '.')}/ sub-folder; pass the "
                "ILSVRC2014 devkit's data folder"
            )
        return found
    if data is None:
        return None
    root = Path(data)
    if root.name == "ILSVRC":
        root = root.parent
    if not (root / "ILSVRC" / "Data" / "DET").is_dir():
        return None
    candidates = [root, root / "devkit", root / "ILSVRC" / "devkit"]
    if root.parent.is_dir():
        candidates += sorted(p for p in root.parent.iterdir()
                             if p.is_dir() and "devkit" in p.name.lower() and p != root)  # fmt: skip
    for folder in candidates:
        if folder.is_dir() and (found := _devkit_in(folder)) is not None:
            return found
    return None


@dataclass(frozen=True)
class LabelSpace:
    """The classes detections are scored against: ``kind`` (:data:`DET_SPACE` or
    :data:`DATASET_SPACE`), ``wnids (K,)`` in DET_ID order (id = position + 1), ``names (K,)``,
    and the ``devkit`` of a DET space."""

    kind: str
    wnids: tuple[str, ...]
    names: tuple[str, ...]
    devkit: DetDevkit | None = None

    @property
    def description(self) -> str:
        """One line for a report: which space was scored, and from which file."""
        if self.kind == DET_SPACE:
            return (f"the {len(self.wnids)} DET classes of {self.devkit.meta_det} "
                    "(DET_ID order)")  # fmt: skip
        return f"the data set's own {len(self.wnids)} classes (sorted WNID order, DET_IDS_SORTED_INDEX)"

    def det_labels(self):
        """The :class:`evaluation.labels.DetLabels` the harness scores with."""
        from evaluation.labels import DetLabels

        return DetLabels(self.wnids, tuple(n or w for n, w in zip(self.names, self.wnids)))


def scoring_space(
    detector_classes: Sequence[str], detector_space: str, devkit: DetDevkit | None,
    dataset_classes: Sequence[str] = (), dataset_names: Sequence[str] = (),
) -> LabelSpace:  # fmt: skip
    """The space a detector's detections are scored in: the 200 DET classes of ``devkit`` for a
    detector in the DET space (a ``ValueError`` when no devkit was found, naming ``--det-devkit``),
    and for one in the data set's space whose data has a devkit (its DET classes are scored,
    DET_CLASSES_OUTSIDE_DROPPED); else ``dataset_classes`` (with ``dataset_names``)."""
    if devkit is not None:
        from evaluation.labels import DetLabels

        labels = DetLabels.from_devkit_meta(devkit.meta_det)
        return LabelSpace(DET_SPACE, labels.wnids, labels.names, devkit)
    if detector_space == DET_SPACE:
        raise ValueError(
            f"the detector outputs {len(detector_classes)} DET classes, but no devkit was found "
            f"beside the data ({' and '.join(DEVKIT_FILES)}); pass --det-devkit DIR"
        )
    names = tuple(dataset_names) or ("",) * len(dataset_classes)
    return LabelSpace(DATASET_SPACE, tuple(dataset_classes), names, None)


class DetClasses(NamedTuple):
    """A detector in the DET label space: ``cls_wnids`` the classifier's C classes in output
    order, ``det_wnids`` the D DET classes in output order, ``mapping`` each DET class → the
    classes it covers (:func:`evaluation.hierarchy.det_class_cover`)."""

    cls_wnids: Sequence[str]
    det_wnids: Sequence[str]
    mapping: Mapping[str, Sequence[str]]


def det_output_classes(cls_wnids: Sequence[str], devkit: DetDevkit):
    """The DET outputs of a detector made from a classifier of classes ``cls_wnids`` →
    :class:`DetClasses` (the classifier's classes, the DET classes in
    DET_ID order, what each covers).

    Decision DET_COVERED_OUTPUTS: the detector outputs the DET classes that cover at least one of
    the classifier's classes: all 200 for a 1,000-class ILSVRC classifier, a few for a classifier
    of a subset (imagenette-10's 10 cover 4: chain saw, dog, French horn, golf ball). A DET class
    covering none has no row to start from and no training object to learn from; it is left out
    of the network and scores AP 0 (its objects are all misses), as an output that never fired
    would. A ``ValueError`` when
    the classifier's classes cover no DET class."""
    from evaluation.hierarchy import Hierarchy, det_class_cover
    from evaluation.labels import DetLabels

    det = DetLabels.from_devkit_meta(devkit.meta_det).wnids
    cover = det_class_cover(Hierarchy.from_devkit_meta(devkit.meta_clsloc), det)
    known = set(cls_wnids)
    kept = tuple(d for d in det if known.intersection(cover[d]))
    if not kept:
        raise ValueError(
            f"none of the classifier's {len(cls_wnids)} classes lies at or under a DET class of "
            f"{devkit.meta_det}; its detector cannot output a DET class"
        )
    return DetClasses(tuple(cls_wnids), kept, {d: cover[d] for d in kept})


def det_training_index(det_wnids: Sequence[str], mapping: Mapping[str, Sequence[str]]) -> dict:
    """``{WNID: output index}`` for training objects: a DET class's own WNID → its output; a
    CLS-LOC WNID under a DET class (a dog breed of imagenette's or CLS-LOC's boxes) → the output
    of the DET class covering it. Decision DET_TRAINING_CLASS: where several DET classes cover a
    class, the one covering fewest classes, the most specific (on the 2014 devkit no CLS-LOC class
    lies under two DET classes, so this never chooses there). Other WNIDs are absent: their
    objects are ignored (DET_UNKNOWN_CLASSES)."""
    index: dict[str, int] = {}
    breadth: dict[str, int] = {}
    for k, d in enumerate(det_wnids):
        for w in mapping[d]:
            if w not in index or len(mapping[d]) < breadth[w]:
                index[w], breadth[w] = k, len(mapping[d])
    for k, d in enumerate(det_wnids):
        index[d] = k
    return index
