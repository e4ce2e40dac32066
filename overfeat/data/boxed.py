"""Training images with their boxes, each served at one of the test scales and mirrored at random
(§4.2 regressor training, §5 detection training).

§4.2 trains the regressor "using the same set of scales as described in Section 3", and §5 trains
detection "in a spatial manner": both see whole images at a scale of Table 5, not 231 / 221
crops. A sample is keyed ``(epoch, index, scale)``: the image ``index`` resized to test scale
``scale`` (:func:`overfeat.scales.scale_input_size`, the rectangle turned to the image's
orientation) and mirrored when ``sample_rng(seed, epoch, index)`` says so, with its boxes mapped
into that frame by :func:`overfeat.boxes.original_to_scale_image`. Every random choice is a pure
function of the key, so batches do not depend on the loader's worker count and a resumed run
sees what the uninterrupted one saw.

Where the boxes come from:

- :func:`clsloc_training_images`: the CLS-LOC training images that have boxes (real ILSVRC and
  imagenette-10 box only some of them, the synthetic set all). The image's class comes from the
  classification reader; an image with no box, or whose boxes are all of other classes, is left
  out and counted.
- :func:`det_training_images`: the DET training images (``ILSVRC/Data/DET/train``), every object
  of a class the network knows; objects of other WNIDs are kept with class ``-1`` so that their
  windows can be ignored (neither object nor background).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from evaluation.annotations import Annotation, read_xml_dir
from overfeat.boxes import original_to_scale_image
from overfeat.data import readers
from overfeat.data.decode import CorruptImage, SkipCounter, decode_rgb
from overfeat.data.transforms import FLIP_PROBABILITY, image_to_tensor, sample_rng
from overfeat.models import ArchSpec
from overfeat.scales import resize, scale_input_size

__all__ = [
    "TRAIN_BOX_FOLDERS",
    "BoxedImages",
    "BoxedRecord",
    "BoxedSample",
    "BoxedSource",
    "clsloc_training_images",
    "det_training_images",
    "flip_of",
]

Size = tuple[int, int]

# Decision TRAIN_BOX_FOLDERS: the classic layout (train/<wnid>/*.JPEG) has no standard place for
# training boxes; ILSVRC's own archive unpacks them into per-class XML folders, and imagenette-10
# keeps its 366 boxed training images' XMLs in Annotations/train/. These folders are searched, in
# this order, when the layout reader knows none (XMLs directly inside, or in <wnid>/ sub-folders).
TRAIN_BOX_FOLDERS = ("Annotations/CLS-LOC/train", "Annotations/train", "bbox_train")


@dataclass(frozen=True)
class BoxedRecord:
    """One training image: ``path``; ``label`` its class index (-1 for DET images, which have
    none); ``boxes (M, 4)`` int64 inclusive in the file's pixels; ``classes (M,)`` int64, each
    box's class index, -1 for a WNID outside the network's classes."""

    path: str
    label: int
    boxes: np.ndarray
    classes: np.ndarray


@dataclass(frozen=True)
class BoxedSource:
    """What a reader found: ``records``, the network's ``classes`` (sorted WNIDs), ``kind``
    (``"CLS-LOC train"`` or ``"DET train"``) and ``left_out``, the images not used and why."""

    records: list[BoxedRecord]
    classes: list[str]
    kind: str
    left_out: dict[str, int]


@dataclass
class BoxedSample:
    """``dataset[(epoch, index, scale)]``: ``image (3, h, w)`` float32 normalised, at the scale's
    rectangle; ``boxes (M, 4)`` float64 in that image's frame (mirrored when ``flipped``);
    ``classes (M,)`` int64; ``label``, ``index``, ``epoch`` as the record and key say."""

    image: torch.Tensor
    boxes: torch.Tensor
    classes: torch.Tensor
    label: int
    index: int
    epoch: int
    flipped: bool


def flip_of(seed: int, epoch: int, index: int) -> bool:
    """Whether sample ``index`` is mirrored in ``epoch`` (decision FLIP_PROBABILITY, keyed as the
    classifier's crops are)."""
    return bool(sample_rng(seed, epoch, index).random() < FLIP_PROBABILITY)


class BoxedImages(Dataset):
    """Boxed training images at the test scales ``scales`` ((rows, cols) each, landscape form).

    ``dataset[(epoch, index, scale)]`` → :class:`BoxedSample`, or ``None`` for an undecodable
    file (warned about once and counted, as the classification dataset does).
    """

    def __init__(
        self,
        source: BoxedSource,
        spec: ArchSpec,
        scales: Sequence[Size],
        seed: int = 0,
    ):
        if not source.records:
            raise ValueError("no training images with boxes")
        self.records = list(source.records)
        self.classes = list(source.classes)
        self.kind = source.kind
        self.left_out = dict(source.left_out)
        self.spec = spec
        self.scales = [tuple(int(v) for v in s) for s in scales]
        self.seed = int(seed)
        self._skips = SkipCounter()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_skipped(self) -> int:
        return self._skips.count

    def __getitem__(self, key: tuple[int, int, int]) -> BoxedSample | None:
        epoch, index, scale = (int(k) for k in key)
        record = self.records[index]
        try:
            # No JPEG draft decoding: the boxes are in the file's own pixels.
            img = decode_rgb(record.path)
        except CorruptImage as err:
            self._skips.skip(err)
            return None
        size = (img.height, img.width)
        target = scale_input_size(size, self.scales[scale], self.spec)
        flipped = flip_of(self.seed, epoch, index)
        image = resize(image_to_tensor(img)[None], target)[0]
        if flipped:
            image = image.flip(-1)
        boxes = original_to_scale_image(
            torch.from_numpy(record.boxes).double(), size, target, flipped
        )
        return BoxedSample(
            image=image.contiguous(),
            boxes=boxes,
            classes=torch.from_numpy(record.classes),
            label=record.label,
            index=index,
            epoch=epoch,
            flipped=flipped,
        )


def _class_indices(wnids: Sequence[str], index: dict[str, int]) -> np.ndarray:
    return np.array([index.get(w, -1) for w in wnids], dtype=np.int64)


def _train_boxes(root: str | Path) -> dict[str, Annotation]:
    """The CLS-LOC training boxes by image stem (readers.clsloc_boxes, else TRAIN_BOX_FOLDERS)."""
    try:
        return readers.clsloc_boxes(root, "train")
    except FileNotFoundError:
        pass
    layout = readers.find_clsloc_layout(root)
    for sub in TRAIN_BOX_FOLDERS:
        folder = layout.root / sub
        if not folder.is_dir():
            continue
        with os.scandir(folder) as it:
            entries = sorted((e.name, e.is_dir()) for e in it)
        out: dict[str, Annotation] = {}
        if any(name.endswith(".xml") for name, _ in entries):
            out.update(read_xml_dir(folder))
        for name, is_dir in entries:
            if is_dir and any(p.suffix == ".xml" for p in (folder / name).iterdir()):
                out.update(read_xml_dir(folder / name))
        if out:
            return out
    raise FileNotFoundError(
        f"{layout.root}: no training boxes (LOC_train_solution.csv, "
        f"ILSVRC/Annotations/CLS-LOC/train/ or {', '.join(TRAIN_BOX_FOLDERS)}); training the "
        "regressor or the detector needs boxed training images"
    )


def clsloc_training_images(root: str | Path, index: Mapping[str, int] | None = None) -> BoxedSource:
    """The CLS-LOC training images of ``root`` that have a box of their own class.

    Every box of a known class is kept with its class (the detector treats boxes of other
    classes as objects of those classes); ``left_out`` counts ``"no_box"`` (no annotation, or
    one without objects) and ``"other_class_only"``. ``index``: ``{WNID: class index}`` of
    another label space (a detector's DET classes, DET_TRAINING_CLASS) for the labels and the
    boxes' classes; default: the sorted CLS-LOC classes of ``root``. An image whose class the
    space lacks has no object to learn and counts as ``"other_class_only"``.
    """
    samples, classes, _ = readers.classification_samples(root, "train")
    boxes = _train_boxes(root)
    relabel = index is not None
    if index is None:
        index = {w: i for i, w in enumerate(classes)}
    records, left_out = [], {"no_box": 0, "other_class_only": 0}
    for path, label in samples:
        ann = boxes.get(os.path.splitext(os.path.basename(path))[0])
        if ann is None or len(ann.boxes) == 0:
            left_out["no_box"] += 1
            continue
        if relabel:
            label = index.get(classes[label], -1)
        cls = _class_indices(ann.wnids, index)
        if label < 0 or not (cls == label).any():
            left_out["other_class_only"] += 1
            continue
        records.append(BoxedRecord(path, label, ann.boxes.copy(), cls))
    if not records:
        raise FileNotFoundError(
            f"{root}: none of the {len(samples)} CLS-LOC training images has a box of its own "
            f"class ({left_out['no_box']} without boxes, {left_out['other_class_only']} with "
            "boxes of other classes only); the boxes must name the images' WNIDs"
        )
    return BoxedSource(records, list(classes), "CLS-LOC train", left_out)


def det_training_images(
    root: str | Path, classes: Sequence[str], index: Mapping[str, int] | None = None
) -> BoxedSource:
    """The DET training images of ``root`` with at least one object of ``classes``.

    ``left_out`` counts ``"no_object"`` (images without objects: the paper did not use them,
    §2) and ``"unknown_classes_only"`` (every object of a WNID outside ``classes``). ``index``:
    ``{WNID: class index}`` of another label space (a detector's DET classes,
    DET_TRAINING_CLASS); default: position in ``classes``.
    """
    from overfeat.data.datasets import open_detection

    dataset = open_detection(root, "train")
    if index is None:
        index = {w: i for i, w in enumerate(classes)}
    records, left_out = [], {"no_object": 0, "unknown_classes_only": 0}
    # Decision DET_UNKNOWN_CLASSES: a DET object of a WNID outside the detector's classes (the
    # classifier's C in the data set's label space; in the DET label space, a DET class that
    # covers none of the classifier's, DET_COVERED_OUTPUTS) is class -1: its windows are
    # neither an object's nor background. Decision DET_EMPTY_IMAGES_LEFT_OUT: images without
    # objects are not used, as the paper did not use them (§2: "we have not made use of it").
    for path, ann in dataset.samples:
        if len(ann.boxes) == 0:
            left_out["no_object"] += 1
            continue
        cls = _class_indices(ann.wnids, index)
        if not (cls >= 0).any():
            left_out["unknown_classes_only"] += 1
            continue
        records.append(BoxedRecord(path, -1, ann.boxes.copy(), cls))
    if not records:
        raise FileNotFoundError(
            f"{root}: no DET training image holds an object of the network's {len(classes)} "
            "classes; the DET WNIDs must be among the CLS-LOC classes the classifier learned"
        )
    return BoxedSource(records, list(classes), "DET train", left_out)
