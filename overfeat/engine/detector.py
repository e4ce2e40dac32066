"""``overfeat train detector``: detection training, §5.

"Detection training is similar to classification training but in a spatial manner. Multiple
location of an image may be trained simultaneously" (§5), with a background class "when no
object is present", and negatives chosen on the fly: "a few interesting negative examples per
image such as random ones or most offending ones". The network is the classifier with one more
output, the background class (index C for C object classes), started from a classifier run's
weights and fine-tuned whole, every window of the dense output map labelled from the boxes:

    window_labels: (H', W') per image, class c (an object), C (background) or IGNORE
    choose_windows: the positives + K most offending + K random background windows
    loss: cross-entropy over the chosen windows, the mean over the global batch's

A detector run is a classifier-format run (checkpoint keys ``model``, ``model_config`` with
``num_classes = C + 1``, ``train_config``, ``optimizer``, ``scheduler``, ``progress``) plus
``detector = {"background_index": C, "num_object_classes": C, "classifier_run": str}``, so that
``overfeat train regressor --classifier DETECTOR_RUN`` trains a regressor on its features.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from overfeat.data import readers
from overfeat.data.boxed import (
    BoxedImages,
    BoxedSource,
    clsloc_training_images,
    det_training_images,
)
from overfeat.data.label_space import (
    DATASET_SPACE,
    DET_SPACE,
    DetClasses,
    det_output_classes,
    det_training_index,
    find_det_devkit,
)
from overfeat.data.sampler import epoch_permutation
from overfeat.dense import dense_scores, window_boxes
from overfeat.engine.checkpoint import REQUIRED_KEYS, find_latest_valid
from overfeat.engine.det_classes import det_class_layer
from overfeat.engine.distributed import DistEnv
from overfeat.engine.spatial import (
    SpatialBatch,
    SpatialConfig,
    SpatialTask,
    classifier_checkpoint,
    group_by_shape,
    spatial_recipe,
)
from overfeat.models import ArchSpec, OverFeat, build_model
from overfeat.regression import REGRESSOR_OVERLAP
from overfeat.scales import scale_sizes

__all__ = [
    "BACKGROUND_INIT_STD",
    "DETECTOR_RECIPES",
    "DETECTOR_REQUIRED_KEYS",
    "IGNORE",
    "NEGATIVE_MAX_OVERLAP",
    "POSITIVE_FLOOR_COVER",
    "POSITIVE_MIN_COVER",
    "POSITIVE_MIN_INSIDE",
    "best_positive_cover",
    "DenseScores",
    "DetClasses",
    "DetectorConfig",
    "DetectorTask",
    "choose_windows",
    "detection_training_images",
    "detector_network",
    "detector_recipe",
    "load_detector",
    "train_detector",
    "window_labels",
]

DETECTOR_REQUIRED_KEYS = (*REQUIRED_KEYS, "detector")

# A window that is neither an object's nor background: left out of the loss.
IGNORE = -1

# Decision DETECTOR_POSITIVE_RULE (FACTS §6.5: the paper gives no thresholds). A window is a
# positive of class c when it sees at least POSITIVE_MIN_INSIDE of a box of class c (the
# regressor's threshold, REGRESSOR_OVERLAP_RULE, taken on the box's side only: a window inside
# an object larger than itself sees only a part of it, and is left to a smaller scale) and that
# visible part covers at least POSITIVE_MIN_COVER of the window's area (about 45% of its side,
# as a 231-pixel training crop of §3.1 held its object). A box that no window of this scale
# brings to POSITIVE_MIN_COVER (a small object; 35% of the DET val2 objects are such at every
# one of the six scales, the largest included) makes positives of its best-covering windows instead,
# those whose cover equals its best at this scale, when that best is at least
# POSITIVE_FLOOR_COVER: a box about one step of the unrefined output map on a side (32 of the
# fast network's 231 pixels, 0.019; 36 of the accurate's 221, 0.027). Under the floor the box
# is smaller than the step between two windows of layer 5's unrefined output, a speck in what
# the window sees; it stays ignored (no positive, no background). Measured on DET val2
# (benchmarks/positive_reach.py): the floor raises the objects that are a positive at some scale
# from 65% to 93%. Several qualifying boxes: the class of the one covering most of the window
# (the first on a tie).
POSITIVE_MIN_INSIDE = REGRESSOR_OVERLAP
POSITIVE_MIN_COVER = 0.2
POSITIVE_FLOOR_COVER = 0.02

# Decision DETECTOR_NEGATIVE_RULE: a window is background when every box (of any class, known
# or not) shares less than NEGATIVE_MAX_OVERLAP of its own area and of the window's with the
# window: a window holding a small object whole, or lying inside a large one, is no negative.
# Windows between the two rules are ignored.
NEGATIVE_MAX_OVERLAP = 0.2

# Decision DETECTOR_BACKGROUND_INIT: the new background output starts as §3.1 starts every
# output, weights ~ N(0, 1e-2) and bias 0 (BIAS_INIT_ZERO), drawn from the run's seed; the
# C object rows keep the classifier's weights.
BACKGROUND_INIT_STD = 1e-2


@dataclass(frozen=True)
class DetectorConfig(SpatialConfig):
    """A detector run's settings: the spatial loop's, ``negatives_random`` and
    ``negatives_offending`` (K of each per image and scale), the classifier's ``dropout`` and
    ``det_devkit``, the folder of ``meta_det.mat`` and ``meta_clsloc.mat`` that puts the detector in
    the DET label space (:func:`overfeat.data.label_space.find_det_devkit`; ``None``: found
    beside a DET training split, else the classifier's classes)."""

    negatives_random: int = 4
    negatives_offending: int = 4
    dropout: float = 0.5
    det_devkit: str | None = None

    # Which windows are positives and background (DETECTOR_POSITIVE_RULE, DETECTOR_NEGATIVE_RULE):
    # part of a run's cache key (overfeat.reproduce.networks.config_key), so that detectors
    # trained under an earlier rule are trained again rather than reused.
    TARGETS: ClassVar[str] = (
        f"positive: inside >= {POSITIVE_MIN_INSIDE}, cover >= {POSITIVE_MIN_COVER}, else a small "
        f"box's best windows down to cover {POSITIVE_FLOOR_COVER}; background: both overlaps < "
        f"{NEGATIVE_MAX_OVERLAP}"
    )

    def __post_init__(self):
        super().__post_init__()
        if min(self.negatives_random, self.negatives_offending) < 0 or not (
            0.0 <= self.dropout < 1.0
        ):
            raise ValueError(
                f"invalid detector setting(s): negatives_random={self.negatives_random}, "
                f"negatives_offending={self.negatives_offending} (≥ 0 each), "
                f"dropout={self.dropout} (in [0, 1))"
            )


# Decision DETECTOR_RECIPE (FACTS §6.5: no rate, schedule or negative count is given; "detection
# fine-tuning is not as long" since the features come from classification):
# - "paper": §3.1's SGD (momentum 0.6, weight decay 1e-5, batch 128 images, dropout 0.5) at a
#   tenth of its initial rate, 5e-3, as fine-tuning from trained weights; 10 epochs halved after
#   6 and 8; all six scales; 4 random and 4 most offending negatives per image and scale ("a
#   few"). Not run at full size here.
# - "toy": CPU-sized, tried on the synthetic set from the toy classifier (width 1/8): batch 16,
#   lr 1e-3 with momentum 0.9 (at 5e-3 the loss rose over 2 epochs, 1.76 → 1.83; at 1e-3 it fell,
#   1.69 → 1.41 in 3), dropout 0 (as the toy classifier's), 6 epochs halved after 4 and 5, 4 + 4
#   negatives, scales 2 and 3 (scale 1 has 2 × 2 windows, nearly all on the object of a CLS-LOC
#   image; even at scales 2–3 only about 3% of the chosen windows are background there).
DETECTOR_RECIPES: dict[str, dict] = {
    "paper": {
        "scales": (1, 2, 3, 4, 5, 6),
        "epochs": 10,
        "lr_milestones": (6, 8),
        "batch_size": 128,
        "lr": 5e-3,
        "momentum": 0.6,
        "weight_decay": 1e-5,
        "dropout": 0.5,
        "negatives_random": 4,
        "negatives_offending": 4,
    },
    "toy": {
        "scales": (2, 3),
        "epochs": 6,
        "lr_milestones": (4, 5),
        "batch_size": 16,
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 1e-5,
        "dropout": 0.0,
        "negatives_random": 4,
        "negatives_offending": 4,
    },
}


def detector_recipe(name: str, **overrides) -> DetectorConfig:
    """A :class:`DetectorConfig` for recipe ``name`` (DETECTOR_RECIPE) with ``overrides``."""
    return spatial_recipe(DetectorConfig, DETECTOR_RECIPES, name, **overrides)


# ------------------------------------------------------------------- labels and negatives


def _overlaps(boxes: torch.Tensor, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes: (M, 4)``, ``windows: (..., 4)`` → ``(inside, cover)``, each ``(..., M)``
    float64: the share of each box a window sees, and the share of the window that part fills."""
    b = boxes.double().reshape(-1, 4)
    w = windows.double().unsqueeze(-2)  # (..., 1, 4)
    iw = torch.minimum(b[:, 2], w[..., 2]) - torch.maximum(b[:, 0], w[..., 0]) + 1
    ih = torch.minimum(b[:, 3], w[..., 3]) - torch.maximum(b[:, 1], w[..., 1]) + 1
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    box_area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    window_area = (w[..., 2] - w[..., 0] + 1) * (w[..., 3] - w[..., 1] + 1)
    return inter / box_area, inter / window_area


def window_labels(
    boxes: torch.Tensor, classes: torch.Tensor, windows: torch.Tensor, background: int
) -> torch.Tensor:
    """The label of every window at one scale (DETECTOR_POSITIVE_RULE, DETECTOR_NEGATIVE_RULE).

    ``boxes: (M, 4)`` in the frame the network sees, ``classes: (M,)`` (-1: an object of a class
    the network does not have, never a positive but never background either), ``windows:
    (H', W', 4)`` (:func:`overfeat.dense.window_boxes`) → ``(H', W')`` int64: the object class,
    ``background``, or :data:`IGNORE`.
    """
    boxes = torch.as_tensor(boxes).double().reshape(-1, 4)
    classes = torch.as_tensor(classes).long().reshape(-1)
    if len(boxes) == 0:
        return torch.full(windows.shape[:2], background, dtype=torch.int64)
    inside, cover = _overlaps(boxes, windows)  # (H', W', M)
    held = inside >= POSITIVE_MIN_INSIDE
    best = _best_cover(held, cover)  # (M,)
    small = (best < POSITIVE_MIN_COVER) & (best >= POSITIVE_FLOOR_COVER)
    qualifies = (cover >= POSITIVE_MIN_COVER) | (small & (cover >= best))
    positive = held & qualifies & (classes >= 0)
    top, which = torch.where(positive, cover, torch.full_like(cover, -1.0)).max(dim=-1)
    labels = torch.full(windows.shape[:2], IGNORE, dtype=torch.int64)
    clear = ((inside < NEGATIVE_MAX_OVERLAP) & (cover < NEGATIVE_MAX_OVERLAP)).all(dim=-1)
    labels[clear] = background
    labels[top >= 0] = classes[which[top >= 0]]
    return labels


def _best_cover(held: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """``held, cover: (..., M)`` → ``(M,)``: each box's largest cover over the windows that hold
    at least POSITIVE_MIN_INSIDE of it, 0 where none does."""
    cover = torch.where(held, cover, 0.0).reshape(-1, cover.shape[-1])
    return cover.max(dim=0).values if len(cover) else cover.new_zeros(cover.shape[-1])


def best_positive_cover(boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """How close each box comes to being a positive at one scale: ``boxes: (M, 4)``, ``windows:
    (H', W', 4)`` → ``(M,)`` float64, the largest ``cover`` (the share of a window's area the
    box fills) over the windows that hold at least POSITIVE_MIN_INSIDE of it, 0 where none
    does. A box is a positive somewhere at this scale iff this is ≥ POSITIVE_FLOOR_COVER (≥
    POSITIVE_MIN_COVER before the floor); it measures which objects DETECTOR_POSITIVE_RULE
    leaves out (benchmarks/positive_reach.py)."""
    boxes = torch.as_tensor(boxes).double().reshape(-1, 4)
    inside, cover = _overlaps(boxes, windows.reshape(-1, 4))  # (L, M)
    return _best_cover(inside >= POSITIVE_MIN_INSIDE, cover)


def _ranks(key: torch.Tensor, descending: bool) -> torch.Tensor:
    """The position of each entry of ``key: (N, L)`` in its row's stable sort."""
    order = torch.sort(key, dim=1, descending=descending, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(key.shape[1], device=key.device).expand_as(order))
    return ranks


def choose_windows(
    labels: torch.Tensor,
    offending: torch.Tensor,
    priority: torch.Tensor,
    background: int,
    k_random: int,
    k_offending: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """§5's windows of each image: positives, most offending and random negatives.

    ``labels: (N, L)`` (:func:`window_labels`, flattened), ``offending: (N, L)`` each window's
    non-background probability under the current network (no gradient), ``priority: (N, L)``
    the image's random draw per window → ``(positive, most_offending, random)``, each ``(N, L)``
    bool. Per image: every object window; the ``k_offending`` background windows of highest
    ``offending`` (the first on a tie); then ``k_random`` of the remaining background windows,
    those of lowest ``priority``. Fewer background windows than asked: all of them.
    """
    positive = (labels >= 0) & (labels != background)
    eligible = labels == background
    n_eligible = eligible.sum(dim=1, keepdim=True)
    hot = torch.where(eligible, offending, torch.full_like(offending, -float("inf")))
    most = eligible & (_ranks(hot, descending=True) < n_eligible.clamp(max=k_offending))
    rest = eligible & ~most
    cold = torch.where(rest, priority, torch.full_like(priority, float("inf")))
    n_rest = rest.sum(dim=1, keepdim=True)
    random = rest & (_ranks(cold, descending=False) < n_rest.clamp(max=k_random))
    return positive, most, random


def chosen_count(labels: torch.Tensor, background: int, k_random: int, k_offending: int) -> int:
    """How many windows :func:`choose_windows` picks from ``labels (N, ...)``, known before the
    network runs (it depends on counts only)."""
    flat = labels.reshape(labels.shape[0], -1)
    pos = ((flat >= 0) & (flat != background)).sum(dim=1)
    neg = (flat == background).sum(dim=1)
    most = neg.clamp(max=k_offending)
    return int((pos + most + (neg - most).clamp(max=k_random)).sum())


# ------------------------------------------------------------------------------ the network


class DenseScores(nn.Module):
    """``model``'s dense class scores as a module's forward (what DDP wraps): ``x (N, 3, H, W)``
    → ``(N, C + 1, H', W')`` (:func:`overfeat.dense.dense_scores`)."""

    def __init__(self, model: OverFeat, offsets: str = "fine"):
        super().__init__()
        self.model, self.offsets = model, offsets

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dense_scores(self.model, x, self.offsets)


def _last_layer(model: OverFeat) -> nn.Conv2d:
    return [m for m in model.classifier if isinstance(m, nn.Conv2d)][-1]


def detector_network(
    cstate: dict, dropout: float, seed: int, det_classes: DetClasses | None = None
) -> OverFeat:
    """The classifier of checkpoint ``cstate`` with one more output, the background class at
    index C (DETECTOR_BACKGROUND_INIT), every other weight the classifier's.

    ``det_classes``: the classifier's classes, the D DET classes and what each covers
    (:class:`DetClasses`): the class layer is then :func:`det_class_layer`'s, D DET classes and
    background at index D; the rest of the network is the same."""
    cfg = dict(cstate["model_config"])
    c = int(cfg["num_classes"])
    model = build_model(**(cfg | {"num_classes": c + 1}))
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = dropout
    weights = model.state_dict()
    last = _last_layer(model)
    names = {id(p): n for n, p in model.named_parameters()}
    w_name, b_name = names[id(last.weight)], names[id(last.bias)]
    g = torch.Generator().manual_seed(seed)
    for name, value in cstate["model"].items():
        if name in (w_name, b_name):
            weights[name][:c] = value
        else:
            weights[name] = value
    weights[w_name][c] = torch.randn(weights[w_name][c].shape, generator=g) * BACKGROUND_INIT_STD
    weights[b_name][c] = 0.0
    if det_classes is not None:
        model = build_model(**(cfg | {"num_classes": len(det_classes.det_wnids) + 1}))
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = dropout
        weights[w_name], weights[b_name] = det_class_layer(
            weights[w_name], weights[b_name], *det_classes
        )
    model.load_state_dict(weights)
    return model


# ------------------------------------------------------------------------------ the task


def detection_training_images(root: str | Path, det_classes: DetClasses | None = None) -> BoxedSource:
    """The DET training images when ``root`` has them (``ILSVRC/Data/DET/train``), else the
    CLS-LOC training images with boxes (one object class per image; the rest of the image
    supplies background). Classes are the CLS-LOC classes of ``root``; with ``det_classes`` they
    are its DET classes, each object of a class they cover given the DET class's index
    (:func:`overfeat.data.label_space.det_training_index`)."""
    index = None
    if det_classes is not None:
        index = det_training_index(det_classes.det_wnids, det_classes.mapping)
    try:
        readers.find_det_layout(root, "train")
    except FileNotFoundError:
        source = clsloc_training_images(root, index)
    else:
        _, classes, _ = readers.classification_samples(root, "train")
        source = det_training_images(root, classes, index)
    if det_classes is not None:
        source = replace(source, classes=list(det_classes.det_wnids))
    return source


def _has_det_split(root: str | Path, split: str) -> bool:
    try:
        readers.find_det_layout(root, split)
    except FileNotFoundError:
        return False
    return True


class DetectorCollate:
    """Samples → :class:`SpatialBatch` whose groups hold ``images (n, 3, h, w)``, ``labels
    (n, H', W')`` (:func:`window_labels`) and ``priority (n, H', W')``, each image's random
    order for the random negatives, drawn from (seed, epoch, index) so it does not depend on
    the process count or on resuming."""

    def __init__(self, spec: ArchSpec, offsets: str, background: int, seed: int):
        self.spec, self.offsets, self.background, self.seed = spec, offsets, background, seed

    def __call__(self, batch) -> SpatialBatch:
        kept = [b for b in batch if b is not None]
        groups = []
        for size, samples in group_by_shape(kept):
            windows = window_boxes(self.spec, size, self.offsets)
            shape = windows.shape[:2]
            labels = [window_labels(s.boxes, s.classes, windows, self.background) for s in samples]
            priority = [
                torch.from_numpy(
                    np.random.default_rng([self.seed, s.epoch, s.index, 0xDE7]).random(shape)
                ).float()
                for s in samples
            ]
            groups.append({
                "images": torch.stack([s.image for s in samples]),
                "labels": torch.stack(labels),
                "priority": torch.stack(priority),
            })  # fmt: skip
        return SpatialBatch(groups, len(kept), len(batch) - len(kept))


class DetectorTask(SpatialTask):
    """§5 as a task of the spatial loop: the whole network (C + 1 outputs) fine-tuned."""

    REQUIRED_KEYS = DETECTOR_REQUIRED_KEYS
    stat_names = ("positives", "negatives", "wrong")

    def __init__(self, config: DetectorConfig, env: DistEnv, state: dict | None):
        _, cls_wnids, _ = readers.classification_samples(config.data, "train")
        if state is None:
            run, name, cstate = classifier_checkpoint(config.classifier)
            if "detector" in cstate:
                raise ValueError(
                    f"--classifier {config.classifier}: a detector run already; pass the "
                    "classifier run it came from, or continue it with --resume auto"
                )
            if len(cls_wnids) != int(cstate["model_config"]["num_classes"]):
                raise ValueError(
                    f"--data {config.data}: {len(cls_wnids)} classes, but the classifier {run} "
                    f"has {cstate['model_config']['num_classes']}; pass the data set it was "
                    "trained on"
                )
            det_classes = None
            if _has_det_split(config.data, "train") or config.det_devkit is not None:
                devkit = find_det_devkit(config.data, config.det_devkit)
                if devkit is not None:
                    det_classes = det_output_classes(cls_wnids, devkit)
            model = detector_network(cstate, config.dropout, config.seed, det_classes)
        else:
            run, name = Path(state["detector"]["classifier_run"]), state.get("classifier_checkpoint")
            model = build_model(**state["model_config"])
            for m in model.modules():
                if isinstance(m, nn.Dropout):
                    m.p = config.dropout
            model.load_state_dict(state["model"])
            det_classes = None
            if state["detector"].get("label_space") == DET_SPACE:
                det_classes = DetClasses(tuple(cls_wnids), tuple(state["detector"]["classes"]),
                                         {d: tuple(v) for d, v in state["detector"]["det_cover"].items()})  # fmt: skip
        self.classifier_run, self.classifier_name = run, name
        self.det_classes = det_classes
        self.background = model.num_classes - 1
        # Decision DET_LABEL_SPACE: with a devkit (DET_DEVKIT_SEARCH) the detector's objects are
        # DET classes (DET_COVERED_OUTPUTS), and every training object of a class they cover
        # trains the covering DET class (DET_TRAINING_CLASS); without one, the classifier's.
        source = detection_training_images(config.data, det_classes)
        if config.max_train_samples and config.max_train_samples < len(source.records):
            keep = epoch_permutation(len(source.records), config.seed, -1)
            keep = keep[: config.max_train_samples].sort().values.tolist()
            source = replace(source, records=[source.records[i] for i in keep])
        sizes = scale_sizes(model.spec)
        self.dataset = BoxedImages(source, model.spec, [sizes[s - 1] for s in config.scales],
                                   config.seed)  # fmt: skip
        self.module = model
        self.ddp_module = DenseScores(model, config.offsets)
        self.k_random, self.k_offending = config.negatives_random, config.negatives_offending
        self.collate = DetectorCollate(model.spec, config.offsets, self.background, config.seed)

    def windows(self, group: dict) -> int:
        return chosen_count(group["labels"], self.background, self.k_random, self.k_offending)

    def loss(self, net: nn.Module, group: dict):
        scores = net(group["images"]).float()  # (n, C + 1, H', W')
        n, c1 = scores.shape[:2]
        flat = scores.permute(0, 2, 3, 1).reshape(n, -1, c1)
        labels = group["labels"].reshape(n, -1)  # window_boxes' map is dense_scores' map
        # Decision OFFENDING_FROM_THE_STEP_S_FORWARD: the most offending negatives are scored
        # by this step's own forward pass (the current network, in training mode: with the
        # paper recipe's dropout), not by a second pass, and the choice carries no gradient.
        with torch.no_grad():
            offending = 1.0 - flat.softmax(dim=-1)[..., self.background]
        positive, most, random = choose_windows(
            labels, offending, group["priority"].reshape(n, -1), self.background,
            self.k_random, self.k_offending,
        )  # fmt: skip
        chosen = positive | most | random
        target = torch.where(positive, labels, torch.full_like(labels, self.background))[chosen]
        picked = flat[chosen]
        loss_sum = F.cross_entropy(picked, target, reduction="sum")
        wrong = (picked.detach().argmax(dim=-1) != target).sum()
        return loss_sum, [positive.sum(), (most | random).sum(), wrong]

    def empty_loss(self, net: nn.Module) -> torch.Tensor:
        side = scale_sizes(self.module.spec)[0]
        device = next(self.module.parameters()).device
        return net(torch.zeros(1, 3, *side, device=device)).sum() * 0.0

    def checkpoint_state(self) -> dict:
        return {
            "model": self.module.state_dict(),
            "model_config": self.module.config,
            "detector": {
                "background_index": self.background,
                "num_object_classes": self.background,
                "classifier_run": str(self.classifier_run),
            } | self._label_space(),
            "classifier_checkpoint": self.classifier_name,
        }

    def _label_space(self) -> dict:
        """What the detector's outputs 0..background-1 are (DET_LABEL_SPACE), as plain values."""
        if self.det_classes is None:
            return {"label_space": DATASET_SPACE, "classes": list(self.dataset.classes)}
        return {
            "label_space": DET_SPACE,
            "classes": list(self.det_classes.det_wnids),
            "det_cover": {d: list(self.det_classes.mapping[d]) for d in self.det_classes.det_wnids},
        }

    def summarize(self, sums: dict) -> dict:
        n = sums["windows"]
        return {
            "train_positives": int(sums["positives"]),
            "train_negatives": int(sums["negatives"]),
            "train_error": sums["wrong"] / n if n else float("nan"),
        }

    def environment(self) -> dict:
        return {
            "task": "detector",
            "background_index": self.background,
            "label_space": self._label_space()["label_space"],
            "object_classes": len(self.dataset.classes),
            "classifier_run": str(self.classifier_run),
            "classifier_checkpoint": self.classifier_name,
            "scale_sizes": [list(s) for s in self.dataset.scales],
        }


def train_detector(config: DetectorConfig, resume: str | None = None, env=None,
                   command: str | None = None) -> dict:  # fmt: skip
    """Train (or resume) a detector run, §5 (:func:`overfeat.engine.spatial.train_spatial`)."""
    from overfeat.engine.spatial import train_spatial

    return train_spatial(DetectorTask, config, resume, env, command)


def load_detector(run_dir: str | os.PathLike, with_space: bool = False):
    """The trained detector of ``run_dir`` (newest readable checkpoint), in eval mode, and its
    background class index; a ``ValueError`` naming the folder when there is none.
    ``with_space``: a third value, ``(label space, output WNIDs)`` (DET_LABEL_SPACE); a run
    written before the detector recorded them is in the data set's space, classes unknown
    (``None``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the message below says what is missing
        found = find_latest_valid(run_dir, required=DETECTOR_REQUIRED_KEYS)
    if found is None:
        raise ValueError(
            f"{run_dir}: no readable detector checkpoint (checkpoint-*.pt written by 'overfeat "
            f"train detector'); train one with 'overfeat train detector --classifier RUN "
            f"--data DIR --out {run_dir}', or pass the folder such a run wrote"
        )
    _, state = found
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model"])
    background = int(state["detector"]["background_index"])
    if not with_space:
        return model.eval(), background
    info = state["detector"]
    classes = info.get("classes")
    space = (info.get("label_space", DATASET_SPACE), list(classes) if classes else None)
    return model.eval(), background, space
