"""Boxed CLS-LOC validation images as a detection task (§5 scored where a data set has no DET
split), decision DET_FROM_CLSLOC_BOXES.

A data set such as imagenette-10 has no ``ILSVRC/Data/DET/val`` but has the official CLS-LOC
boxes of some of its validation images (134 of 1,134). :func:`clsloc_detection_images` makes
those images a detection task in the classifier's own label space: each image's objects are its
boxes, every one of the image's class, since in CLS-LOC all boxes of an image are of its one
class (the ILSVRC2012 localization task boxes every instance of the image's single label, and
nothing else). :func:`write_det_ground_truth` writes them as the DET XMLs the harness
(:func:`overfeat.detect.score_detections`, ``eval_detection.m``'s rules) reads, so the images are
scored exactly as DET validation images would be.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["clsloc_detection_images", "write_det_ground_truth"]


def clsloc_detection_images(data: str | Path, limit: int | None = None, every: int = 1):
    """The boxed validation images of the CLS-LOC data set at ``data`` as DET samples →
    ``(samples [(path, Annotation)], classes (C,) sorted WNIDs)``, in file-name order, then
    every ``every``-th, then the first ``limit`` (the selection of
    :func:`overfeat.localize.localization_images`, LOCALIZE_BOXED_IMAGES).

    Each Annotation holds the image's boxes ``(K, 4)`` (inclusive pixels of the image as stored),
    each labelled with the image's class (DET_FROM_CLSLOC_BOXES), and the image's size read from
    its header (a Kaggle CSV does not carry it). A box whose own WNID is another class's
    contradicts the CLS-LOC rule the decision rests on, and is refused naming the image; a data
    set without validation boxes is refused too (``FileNotFoundError``), since nothing could be
    scored.
    """
    from evaluation.annotations import Annotation
    from overfeat.inference_cli import _image_sizes
    from overfeat.localize import localization_images

    samples, classes, boxes = localization_images(data, limit, every)
    if not boxes:
        raise FileNotFoundError(f"{data}: no DET validation split (ILSVRC/Data/DET/val) and no "
                                "CLS-LOC validation boxes (LOC_val_solution.csv or validation "
                                "XMLs) to score as detection")  # fmt: skip
    out = []
    for (path, label), (height, width) in zip(samples, _image_sizes([p for p, _ in samples])):
        stem = Path(path).stem
        ann = boxes[stem]
        wnid = classes[label]
        others = sorted(set(ann.wnids) - {wnid})
        if others:
            raise ValueError(f"{data}: validation image {stem} of class {wnid} has boxes of "
                             f"{', '.join(others)}; DET_FROM_CLSLOC_BOXES takes every box of an "
                             "image to be of the image's one class")  # fmt: skip
        out.append((path, Annotation(stem, width, height, ann.boxes, (wnid,) * len(ann.boxes))))
    return out, list(classes)


def write_det_ground_truth(samples, folder: str | Path) -> Path:
    """Write each sample's Annotation as ``folder/<image>.xml`` (the VOC XML the DET harness
    reads), after removing the ``*.xml`` a previous selection left there; returns ``folder``."""
    from evaluation.annotations import write_xml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.xml"):
        old.unlink()
    for _, ann in samples:
        write_xml(folder / f"{ann.image}.xml", ann, folder="val", database="ILSVRC_2012")
    return folder
