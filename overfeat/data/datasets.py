"""Torch datasets over the ILSVRC readers: classification (train/val) and detection.

Determinism contract (issue 4): the random choices of sample ``i`` in epoch ``e`` come from
``sample_rng(seed, e, i)`` only, so any number of ``DataLoader`` workers, and a run resumed at
epoch ``e``, give bit-identical batches. ``set_epoch(e)`` must be called before the loader's
iterator is created (workers copy the dataset then; with ``persistent_workers=True`` index the
dataset with ``(epoch, i)`` pairs instead, e.g. from a sampler, which needs no ``set_epoch``).

An undecodable file gives ``None`` (one warning per file, counted in ``num_skipped``);
:func:`collate_skip_corrupt` drops those and reports how many it dropped.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from evaluation.annotations import Annotation
from overfeat.data import readers
from overfeat.data.decode import CorruptImage, SkipCounter, decode_rgb, decode_uint8
from overfeat.data.transforms import (
    eval_transform,
    image_to_tensor,
    sample_rng,
    train_transform,
)

__all__ = [
    "DEFAULT_ARCH",
    "ClassificationDataset",
    "DetectionDataset",
    "collate_skip_corrupt",
    "open_classification",
    "open_detection",
]

# transform=None needs some crop size; decision DEFAULT_ARCH: the fast model's (231), the model
# Table 2 reports first. Pass a transform (train_transform("accurate"), ...) to choose.
DEFAULT_ARCH = "fast"

Transform = Callable[..., torch.Tensor]


def _apply(transform: Transform, img, rng: np.random.Generator, seed_ints: tuple[int, ...]):
    """Call a project transform with its generator; for a foreign (e.g. torchvision) transform,
    which draws from torch's (or Python's) global RNG, seed those from the same
    ``(seed, epoch, index)`` and restore them afterwards, so the caller's RNG state is untouched."""
    if hasattr(transform, "takes_rng"):
        return transform(img, rng)
    derived = int(np.random.SeedSequence(seed_ints).generate_state(1, np.uint64)[0])
    py_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived)
            random.seed(derived)
            return transform(img)
    finally:
        random.setstate(py_state)


class ClassificationDataset(Dataset):
    """CLS-LOC images with class labels.

    ``samples``: ``[(path, label)]``, label = index of the image's WNID in ``classes``;
    ``classes``: sorted WNIDs (``len(classes)`` = the network's ``num_classes``);
    ``num_skipped``: undecodable files met so far by this process's copy.

    ``dataset[i]`` (or ``dataset[(epoch, i)]``) → ``(image (3, h, w) float32, label)`` or ``None``
    (uint8 for a transform with ``output="uint8"``, decoded by
    :func:`overfeat.data.decode.decode_uint8`). ``epoch_keys``: ``(epoch, i)`` keys are understood,
    so persistent loader workers need no ``set_epoch``.
    """

    epoch_keys = True

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        transform: Transform,
        seed: int = 0,
    ):
        self.samples = samples  # the setter also builds the compact arrays below
        self.classes = list(classes)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self._skips = SkipCounter()

    @property
    def samples(self) -> list[tuple[str, int]]:
        """``[(path, label)]``. Assign a new list to change it (in-place edits are not seen)."""
        return self._samples

    @samples.setter
    def samples(self, value: Sequence[tuple[str, int]]) -> None:
        self._samples = list(value)
        # Loading reads these numpy arrays, never the list: a forked worker that touched 1.28 M
        # Python objects would copy every page their reference counts live on (copy-on-write),
        # one private copy of the list per worker; the arrays hold no Python objects.
        self._paths = np.array([os.fsencode(p) for p, _ in self._samples], dtype=np.bytes_)
        self._labels = np.array([label for _, label in self._samples], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._labels)

    @property
    def num_skipped(self) -> int:
        return self._skips.count

    @property
    def skipped_files(self) -> list[str]:
        return self._skips.files

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips ``dataset[i]`` returns."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        index = int(index)
        if index < 0:
            index += len(self._labels)
        path, label = os.fsdecode(self._paths[index]), int(self._labels[index])
        short = getattr(self.transform, "resize", None)
        decode = decode_uint8 if getattr(self.transform, "output", None) == "uint8" else decode_rgb
        try:
            img = decode(path, short_side=short if isinstance(short, int) else None)
        except CorruptImage as err:
            self._skips.skip(err)
            return None
        ints = (self.seed, int(epoch), index)
        return _apply(self.transform, img, sample_rng(*ints), ints), label

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.samples)} images, {len(self.classes)} classes, "
            f"seed={self.seed}, epoch={self.epoch}, transform={self.transform!r})"
        )


def collate_skip_corrupt(
    batch: Sequence[tuple[torch.Tensor, int] | None],
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack a batch, dropping undecodable samples (``None``).

    Returns ``images (B, 3, h, w)`` (the samples' dtype), ``labels (B,)`` int64 and ``n_skipped``; B may be 0
    (then ``images`` is ``(0, 3, 0, 0)``), and the caller decides what an empty batch means.
    """
    kept = [b for b in batch if b is not None]
    n_skipped = len(batch) - len(kept)
    if not kept:
        return torch.empty(0, 3, 0, 0), torch.empty(0, dtype=torch.int64), n_skipped
    images = torch.stack([b[0] for b in kept])
    labels = torch.tensor([b[1] for b in kept], dtype=torch.int64)
    return images, labels, n_skipped


def open_classification(
    root: str | Path,
    split: str = "train",
    transform: Transform | None = None,
    seed: int = 0,
) -> ClassificationDataset:
    """The CLS-LOC ``split`` ("train" or "val") under ``root``, any layout
    :func:`overfeat.data.readers.find_clsloc_layout` knows.

    ``transform=None``: the §3.1 train transform (random crop + flip) for "train", the centre-crop
    eval transform for "val", at ``DEFAULT_ARCH``'s input size.
    """
    samples, classes, _ = readers.classification_samples(root, split)
    if transform is None:
        make = train_transform if split == "train" else eval_transform
        transform = make(DEFAULT_ARCH)
    return ClassificationDataset(samples, classes, transform, seed=seed)


class DetectionDataset(Dataset):
    """DET images with all their objects (zero or more, several classes).

    ``samples``: ``[(path, Annotation)]``; ``dataset[i]`` → ``(image (3, H, W) float32 at the
    file's own size, normalised as ``transform`` says, Annotation)`` or ``None`` if undecodable.
    Boxes stay in the image's own pixels; multi-scale resizing belongs to inference.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, Annotation]],
        transform: Transform | None = None,
    ):
        self.samples = list(samples)
        self.transform = transform
        self._skips = SkipCounter()

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_skipped(self) -> int:
        return self._skips.count

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Annotation] | None:
        path, ann = self.samples[index]
        try:
            img = decode_rgb(path)
        except CorruptImage as err:
            self._skips.skip(err)
            return None
        if self.transform is None:
            return image_to_tensor(img), ann
        return self.transform(img), ann


def open_detection(
    root: str | Path, split: str = "val", transform: Transform | None = None
) -> DetectionDataset:
    """The Kaggle-layout DET ``split`` under ``root`` (images, XMLs, and the ImageSets list)."""
    layout = readers.find_det_layout(root, split)
    if layout.xml_dir is None:
        raise FileNotFoundError(f"{layout.image_dir}: DET images without an annotation folder")
    samples = readers.detection_samples(layout.image_dir, layout.xml_dir, layout.image_list)
    return DetectionDataset(samples, transform)
