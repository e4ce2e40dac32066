"""overfeat.data: ILSVRC readers (Kaggle, classic, devkit and DET layouts), the devkit's class
order shipped with the package (:mod:`overfeat.data.class_order`), robust decoding, the §3.1
transforms, torch datasets, and the synthetic ILSVRC generator (``overfeat make-synthetic``).

The engine's entry points: :func:`open_classification`, :class:`ClassificationDataset`,
:func:`collate_skip_corrupt`, :func:`train_transform` / :func:`eval_transform`.
"""

from overfeat.data.datasets import (
    ClassificationDataset,
    DetectionDataset,
    collate_skip_corrupt,
    open_classification,
    open_detection,
)
from overfeat.data.decode import CorruptImage, CorruptImageWarning, decode_rgb
from overfeat.data.transforms import (
    EvalTransform,
    TrainTransform,
    eval_transform,
    sample_rng,
    train_transform,
)

__all__ = [
    "ClassificationDataset",
    "CorruptImage",
    "CorruptImageWarning",
    "DetectionDataset",
    "EvalTransform",
    "TrainTransform",
    "collate_skip_corrupt",
    "decode_rgb",
    "eval_transform",
    "open_classification",
    "open_detection",
    "sample_rng",
    "train_transform",
]
