"""Localization, §4.1 and §4.3: a box at every window of every scale, the greedy merge, and the
top 5 (label, box) guesses of each image.

    image (3, H, W)
      └─ per scale s (Table 5) and its mirror image: one pass of layers 1–5 for the classifier and
         the regressor (dense_scores_and_boxes) ─► probabilities (F, C, H', W'),
                                                    box values    (F, 4 or 4C, H', W')
      └─ C_s: the top-k classes by their maximum over the windows of scale s        §4.3 (a)
      └─ B_s: every window's box for each class of C_s (decode_boxes), mapped to the
         original image (scale_image_to_original, mirror undone), ordered and clipped,
         scored with that window's probability of the class                       §4.3 (b)
      └─ B = ∪_s B_s                                                                §4.3 (c)
      └─ greedy_merge of B, one class at a time; a merged box scores the sum of its
         windows' probabilities (over a data set: in merge workers, beside the next
         batch's forward pass, merged_batches)                                     §4.3 (d)–(g)
      └─ the 5 merged boxes with the highest scores, distinct labels first         §4.3, §2

F = 2 with flips (the scale image, then its mirror image), else 1. Baselines (``box_source``):
``"window"`` (each window's own box instead of the regressor's, merged the same way),
``"image"`` (the whole image as the box of each of the top 5 classes of Table 2's class vector),
and the single centred crop of Fig. 9 (``views="centre"``).

Boxes are inclusive pixel boxes ``(x1, y1, x2, y2)`` of the original image (ARCHITECTURE.md,
"Boxes"): real-valued up to :func:`localize_dataset`, which rounds them with
:func:`overfeat.boxes.to_pixel_boxes`. Labels are the data set's sorted-WNID indices 0..C−1, the
network's outputs; ``NO_GUESS`` (−1) marks a guess that could not be filled.

The decisions named here: TOP_K_CLASSES, LOCALIZATION_SCALES, SCALE_CLASSES_OVER_FLIPS,
CLIP_TO_IMAGE, WINDOW_BASELINE, MERGE_PER_CLASS, TOP5_DISTINCT_LABELS, CENTRE_CROP_VIEW,
LOCALIZE_BOXED_IMAGES, LOC_LABEL_SPACE.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from evaluation.clsloc import NO_GUESS
from overfeat.boxes import (
    ordered_boxes,
    resize_boxes,
    scale_image_to_original,
    to_pixel_boxes,
)
from overfeat.dense import dense_scores, window_boxes
from overfeat.inference import SCORED_AS_WRONG, RunOptions, StageTimes
from overfeat.merge import MERGE_THRESHOLD
from overfeat.merge_workers import MergedSet, MergePool, merge_boxes, pool_or
from overfeat.models import ArchSpec
from overfeat.regression import decode_boxes, dense_scores_and_boxes, window_side
from overfeat.scales import (
    FOUR_SCALES,
    RESIZE_MODES,
    SCALE_RESIZE_MODE,
    TABLE5_SIZES,
    TEN_VIEW_SHORTER_SIDE,
    _evaluating,
    multiscale_class_vector,
    resize,
    resize_shorter_side,
    scale_input_size,
    scale_sizes,
)

__all__ = [
    "BOX_SOURCES",
    "GUESSES",
    "LOCALIZATION_SCALES",
    "NO_GUESS",
    "TOP_K_CLASSES",
    "VIEWS",
    "Candidates",
    "ClassSets",
    "Localization",
    "LocalizationProtocol",
    "LocalizationResult",
    "ScalePass",
    "candidate_boxes",
    "centre_crop_predictions",
    "check_regressor",
    "class_sets",
    "class_values",
    "clip_boxes",
    "image_batches",
    "image_predictions",
    "localization_images",
    "localize",
    "localize_dataset",
    "validation_boxes",
    "merge_per_class",
    "merged_batches",
    "merged_per_class",
    "scale_passes",
    "top_classes",
    "top_predictions",
    "window_boxes_in_image",
    "write_loc_submission",
    "write_synsets",
]

Size = tuple[int, int]

# The devkits score up to 5 guesses per image (§2: "5 guesses are allowed").
GUESSES = 5

# Decision TOP_K_CLASSES (§4.3 (a): "the set of classes in the top k for each scale"; k unstated,
# FACTS §6.4): k = 5. The final answer is 5 (label, box) guesses, so every scale proposes as many
# classes as can be guessed; with k < 5 a one-scale protocol could not fill 5 distinct labels.
TOP_K_CLASSES = 5

# Decision LOCALIZATION_SCALES (FACTS §10: which scales make Fig. 9's "4 scales" is unstated): the
# 4 scales of Table 2's rows, (1, 2, 4, 6) (ACCURATE_FOUR_SCALES), so classification and
# localization are compared on the same image sizes.
LOCALIZATION_SCALES = FOUR_SCALES

BOX_SOURCES = ("regressor", "window", "image")
VIEWS = ("dense", "centre")


@dataclass(frozen=True)
class LocalizationProtocol:
    """How one localization run sees an image (§4.3, Fig. 9).

    ``scales``: 1-based indices into :func:`overfeat.scales.scale_sizes`; ``flips``: the mirror
    image too; ``offsets``: ``"fine"`` or ``"coarse"`` stride; ``top_k``: classes per scale
    (TOP_K_CLASSES); ``box_source``: ``"regressor"`` (§4), ``"window"`` (each window's own box)
    or ``"image"`` (the whole image); ``merge_threshold``: t of the greedy merge (MERGE_THRESHOLD);
    ``views``: ``"dense"`` (every window of every scale) or ``"centre"`` (Fig. 9's single centred
    crop; ``scales``, ``flips`` and ``offsets`` unused); ``resize_mode``: SCALE_RESIZE_MODE.
    """

    scales: tuple[int, ...] = LOCALIZATION_SCALES
    flips: bool = True
    offsets: str = "fine"
    top_k: int = TOP_K_CLASSES
    box_source: str = "regressor"
    merge_threshold: float = MERGE_THRESHOLD
    views: str = "dense"
    resize_mode: str = SCALE_RESIZE_MODE

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(int(s) for s in self.scales))
        if not self.scales or any(not 1 <= s <= len(TABLE5_SIZES) for s in self.scales):
            raise ValueError(f"scales must be indices 1..{len(TABLE5_SIZES)}, got {self.scales}")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError(f"scales must not repeat, got {self.scales}")
        if self.offsets not in ("fine", "coarse"):
            raise ValueError(f"offsets must be 'fine' or 'coarse', got {self.offsets!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.box_source not in BOX_SOURCES:
            raise ValueError(f"box_source must be one of {BOX_SOURCES}, got {self.box_source!r}")
        if self.views not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {self.views!r}")
        if self.views == "centre" and self.box_source == "image":
            raise ValueError(
                "the centred crop has its own box; use box_source 'regressor' or 'window'"
            )
        if not self.merge_threshold < 1:
            raise ValueError(f"merge_threshold must be < 1, got {self.merge_threshold}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")

    def sizes(self, spec: ArchSpec) -> tuple[Size, ...]:
        """The scales' (rows, cols) for the network ``spec``."""
        every = scale_sizes(spec)
        return tuple(every[s - 1] for s in self.scales)

    @property
    def needs_regressor(self) -> bool:
        return self.box_source == "regressor"

    def summary(self) -> str:
        """The protocol in words: ``"regressor boxes, scales 1,2,4,6, fine, flips, top-5"``."""
        if self.views == "centre":
            return f"{self.box_source} box, single centred crop"
        scales = ",".join(str(s) for s in self.scales)
        flips = ", flips" if self.flips else ""
        per_scale = "" if self.box_source == "image" else f", top-{self.top_k} classes per scale"
        return f"{self.box_source} boxes, scales {scales}, {self.offsets}{flips}{per_scale}"

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ windows → original image


class ScalePass(NamedTuple):
    """One scale's dense pass over the images that share a scale image size.

    ``scale``: 1-based scale index; ``size``: the scale image's (rows, cols); ``images``: the
    positions of the ``n`` images in the caller's list; ``probs``: ``(F, n, C, H', W')``
    softmax over classes at every window (F = 2 with flips: scale image, then mirror image);
    ``values``: ``(F, n, 4 or 4C, H', W')`` regressor outputs, ``None`` without a regressor.
    """

    scale: int
    size: Size
    images: list[int]
    probs: torch.Tensor
    values: torch.Tensor | None


def _as_list(images) -> list[torch.Tensor]:
    """A batch ``(N, 3, H, W)`` or a list of ``(3, H, W)`` images → list of ``(3, H, W)``."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        return list(images)
    out = [img[0] if img.dim() == 4 else img for img in images]
    for img in out:
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"each image must be (3, H, W), got {tuple(img.shape)}")
    return out


def scale_passes(
    model: nn.Module,
    regressor: nn.Module | None,
    images,
    scales: Sequence[int],
    flips: bool = True,
    offsets: str = "fine",
    resize_mode: str = SCALE_RESIZE_MODE,
) -> Iterator[ScalePass]:
    """Every scale's dense pass, §3.3 and §4.1: the images (a list of ``(3, H, W)`` of any sizes,
    or ``(N, 3, H, W)``) resized to each scale (:func:`overfeat.scales.scale_input_size`), those
    of one size batched with their mirror images into one call of layers 1–5 shared by the
    classifier and the regressor. ``scales``: 1-based indices into ``scale_sizes(model.spec)``.
    Runs without gradients; the networks should be in eval mode."""
    items = _as_list(images)
    every = scale_sizes(model.spec)
    for scale in scales:
        groups: dict[Size, list[int]] = {}
        for i, img in enumerate(items):
            target = scale_input_size(
                tuple(img.shape[-2:]), every[scale - 1], model.spec, resize_mode
            )
            groups.setdefault(target, []).append(i)
        for target, idx in groups.items():
            x = torch.cat([resize(items[i].unsqueeze(0), target) for i in idx])
            if flips:
                x = torch.cat([x, x.flip(-1)])
            f = 2 if flips else 1
            with torch.no_grad():
                if regressor is None:
                    scores, values = dense_scores(model, x, offsets), None
                else:
                    scores, values = dense_scores_and_boxes(model, regressor, x, offsets)
            # The merge runs on the CPU in float64; the maps are small next to the images.
            probs = scores.float().softmax(dim=1).cpu()
            probs = probs.reshape(f, len(idx), *probs.shape[1:])
            if values is not None:
                values = values.float().cpu().reshape(f, len(idx), *values.shape[1:])
            yield ScalePass(scale, target, idx, probs, values)


def class_values(values: torch.Tensor | None, classes: torch.Tensor, shape) -> torch.Tensor:
    """The 4 box values of each of ``classes (k,)`` at every window: ``values (F, 4 or 4C, H',
    W')`` of one image → ``(F, k, 4, H', W')`` (SCR: the shared 4 values for every class; PCR:
    channels 4c..4c+3, PCR_CHANNELS). ``values=None`` gives zeros of ``shape = (F, C, H', W')``'s
    windows: decision WINDOW_BASELINE, the window's own box is the regressor output 0
    (BOX_PARAMETERISATION), so the "each window's own box" baseline runs through the same
    decoding, mapping and merge as the regressor's boxes."""
    k = len(classes)
    if values is None:
        f, _, h, w = shape
        return torch.zeros(f, k, 4, h, w, dtype=torch.float64)
    f, channels, h, w = values.shape
    if channels == 4:
        return values.unsqueeze(1).expand(f, k, 4, h, w)
    if channels % 4:
        raise ValueError(f"regressor outputs must have 4 or 4·C channels, got {channels}")
    return values.reshape(f, channels // 4, 4, h, w)[:, classes.long()]


def clip_boxes(boxes: torch.Tensor, image_size: Size) -> torch.Tensor:
    """``(..., 4)`` ordered boxes → clipped to the image's pixels 0..W−1 × 0..H−1.

    Decision CLIP_TO_IMAGE: boxes are clipped to the image before the merge, so a merged box is
    the mean of boxes the image can hold (a regressor's edge 100 px beyond the border would pull
    the mean outside, and the devkit scores the intersection with a box inside the image anyway).
    Clipping each coordinate keeps x1 ≤ x2; a box wholly outside becomes one pixel wide on the
    border, which :func:`overfeat.merge.greedy_merge` accepts.
    """
    h, w = image_size
    limit = boxes.new_tensor([w - 1, h - 1, w - 1, h - 1])
    return torch.minimum(boxes.clamp(min=0), limit)


def window_boxes_in_image(
    values: torch.Tensor, spec: ArchSpec, scale_size: Size, image_size: Size, offsets: str
) -> torch.Tensor:
    """Regressor values of one image at one scale → its boxes in the original image, §4.2–§4.3.

    ``values: (F, K, 4, H', W')`` (:func:`class_values`; F = 2: the scale image, then its mirror
    image) → ``(F, K, H', W', 4)`` float64: decoded against each output's window
    (:func:`overfeat.regression.decode_boxes`), the mirror undone and the scale image resized
    back to ``image_size`` (:func:`overfeat.boxes.scale_image_to_original`), edges ordered
    (ORDERED_EDGES) and clipped (CLIP_TO_IMAGE).
    """
    f, k, _, h, w = values.shape
    windows = window_boxes(spec, scale_size, offsets)
    boxes = decode_boxes(values.reshape(f * k, 4, h, w).double(), windows, window_side(spec))
    boxes = boxes.reshape(f, k, h, w, 4)
    mapped = torch.stack(
        [
            scale_image_to_original(boxes[i], scale_size, image_size, flipped=i == 1)
            for i in range(f)
        ]
    )
    return clip_boxes(ordered_boxes(mapped), image_size)


def top_classes(class_max: torch.Tensor, k: int) -> torch.Tensor:
    """§4.3 (a): the ``k`` classes with the largest ``class_max (C,)``, best first; ties go to the
    lower class index (stable). Fewer than ``k`` classes give them all."""
    return torch.argsort(-class_max, stable=True)[:k]


# ------------------------------------------------------------------ B: the candidate boxes


@dataclass(frozen=True)
class Candidates:
    """B of §4.3 (c) for one image: K boxes, each predicted at one window of one scale.

    ``boxes (K, 4)`` float64 in the original image; ``scores (K,)`` float64, the window's
    probability of the box's class; ``classes (K,)`` int64; ``scales (K,)`` int64 1-based scale
    index; ``flipped (K,)`` bool (predicted on the mirror image); ``windows (K, 2)`` int64 the
    output's (row, col) in that scale's (mirror) image's output map.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    scales: np.ndarray
    flipped: np.ndarray
    windows: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        if not parts:
            return Candidates(
                np.zeros((0, 4)), np.zeros(0), *(np.zeros(0, np.int64) for _ in range(2)),
                np.zeros(0, bool), np.zeros((0, 2), np.int64),
            )  # fmt: skip
        return Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("boxes", "scores", "classes", "scales", "flipped", "windows")


def _pass_candidates(
    p: ScalePass, j: int, spec: ArchSpec, image_size: Size, classes: torch.Tensor, offsets: str
) -> Candidates:
    """Every window's box of each of ``classes (k,)`` for image ``j`` of the pass ``p``, class
    by class, then mirror, then row, then column."""
    probs = p.probs[:, j]  # (F, C, H', W')
    f, _, h, w = probs.shape
    values = class_values(None if p.values is None else p.values[:, j], classes, probs.shape)
    boxes = window_boxes_in_image(values, spec, p.size, image_size, offsets)  # (F, k, H', W', 4)
    k = len(classes)
    rows = torch.arange(h).view(1, 1, h, 1).expand(k, f, h, w)
    cols = torch.arange(w).view(1, 1, 1, w).expand(k, f, h, w)
    mirror = torch.arange(f).view(1, f, 1, 1).expand(k, f, h, w) == 1
    return Candidates(
        boxes=boxes.permute(1, 0, 2, 3, 4).reshape(-1, 4).numpy(),
        scores=probs[:, classes.long()].permute(1, 0, 2, 3).reshape(-1).double().cpu().numpy(),
        classes=classes.long().view(k, 1).expand(k, f * h * w).reshape(-1).cpu().numpy(),
        scales=np.full(k * f * h * w, p.scale, dtype=np.int64),
        flipped=mirror.reshape(-1).numpy(),
        windows=torch.stack([rows, cols], -1).reshape(-1, 2).numpy(),
    )


def candidate_boxes(
    model: nn.Module,
    regressor: nn.Module | None,
    images,
    protocol: LocalizationProtocol,
    times: StageTimes | None = None,
) -> list[Candidates]:
    """§4.3 (a)–(c) for each image (a list of ``(3, H, W)`` of any sizes, or ``(N, 3, H, W)``):
    at every scale, the top-k classes C_s and every window's box for each of them.

    Decision SCALE_CLASSES_OVER_FLIPS (§4.3 (a): "the maximum detection class outputs across
    spatial locations for that scale"): C_s ranks classes by their maximum over every window of
    scale s, those of the scale image and of its mirror image alike, since both are that
    scale's locations. ``regressor=None`` or ``box_source="window"`` gives each window's own box
    (WINDOW_BASELINE). ``times``: the forward passes and the decoding are timed there.
    """
    times = times if times is not None else StageTimes()
    items = _as_list(images)
    parts: list[list[Candidates]] = [[] for _ in items]
    use = regressor if protocol.box_source == "regressor" else None
    if protocol.box_source == "regressor" and regressor is None:
        raise ValueError("box_source 'regressor' needs a regressor; pass one or use 'window'")
    with _evaluating(model), _evaluating(use) if use is not None else nullcontext():
        passes = scale_passes(
            model, use, items, protocol.scales, protocol.flips, protocol.offsets,
            protocol.resize_mode,
        )  # fmt: skip
        for p in times.timed(passes, "forward"):
            with times.stage("decode"):
                for j, i in enumerate(p.images):
                    top = top_classes(p.probs[:, j].amax(dim=(0, 2, 3)), protocol.top_k)
                    size = tuple(items[i].shape[-2:])
                    parts[i].append(
                        _pass_candidates(p, j, model.spec, size, top, protocol.offsets)
                    )
    with times.stage("decode"):
        return [Candidates.concat(c) for c in parts]


# ------------------------------------------------------------------ merge and top 5


class Localization(NamedTuple):
    """One image's guesses, best first: ``labels (G,)`` int64 (``NO_GUESS`` where none),
    ``boxes (G, 4)`` float64 in the original image (zeros where none), ``scores (G,)`` float64
    (NaN where none); G = :data:`GUESSES`; ``merged``: how many boxes the per-class merge
    produced over all classes (0 where no merge ran: the whole-image and centred-crop views)."""

    labels: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    merged: int = 0


class ClassSets(NamedTuple):
    """The merges MERGE_PER_CLASS makes of one image's candidates: ``classes`` in ascending
    order, ``rows`` each class's candidates (indices, in their order), ``sets`` the distinct box
    sets to merge (``(G, 4)`` float64 each), ``set_of`` the set of each class."""

    classes: list[int]
    rows: list[np.ndarray]
    sets: list[np.ndarray]
    set_of: list[int]


def class_sets(c: Candidates) -> ClassSets:
    """The box sets :func:`merge_per_class` merges for the candidates ``c``, each once.

    greedy_merge's clusters depend on the boxes alone (MATCH_SCORE, BOX_MERGE): classes whose
    candidate boxes are identical (every class of a single-class regressor, or of the window
    baseline, at the same scales) share one merge, and each sums its own scores over it.
    """
    classes, rows, sets, set_of = [], [], [], []
    seen: dict[bytes, int] = {}
    for cls in np.unique(c.classes):
        mine = np.flatnonzero(c.classes == cls)
        boxes = np.ascontiguousarray(c.boxes[mine])
        key = boxes.tobytes()
        if key not in seen:
            seen[key] = len(sets)
            sets.append(boxes)
        classes.append(int(cls))
        rows.append(mine)
        set_of.append(seen[key])
    return ClassSets(classes, rows, sets, set_of)


def merged_per_class(
    c: Candidates, plan: ClassSets, merged: Sequence[MergedSet]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The merged boxes of each class of ``plan`` (:func:`class_sets` of ``c``), given the
    merges of its sets ``merged`` (in ``plan.sets``' order, wherever they ran) → what
    :func:`merge_per_class` returns."""
    if not plan.classes:
        return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0)
    out_classes, out_boxes, out_scores = [], [], []
    for cls, rows, k in zip(plan.classes, plan.rows, plan.set_of):
        boxes, assignment = merged[k].boxes, merged[k].assignment
        out_classes.append(np.full(len(boxes), cls, dtype=np.int64))
        out_boxes.append(boxes)
        out_scores.append(np.bincount(assignment, c.scores[rows], len(boxes)))
    return np.concatenate(out_classes), np.concatenate(out_boxes), np.concatenate(out_scores)


def merge_per_class(
    c: Candidates, threshold: float = MERGE_THRESHOLD
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """§4.3 (d)–(g) and the final scores: the greedy merge of each class's candidates →
    ``classes (M,)`` int64, ``boxes (M, 4)`` float64, ``scores (M,)`` float64 (the sum of the
    merged windows' probabilities, MERGED_SCORE), class by class in ascending class order.

    Decision MERGE_PER_CLASS (§4.3 merges "B", the union over classes, and scores a merged box by
    its "class scores"): boxes merge only with boxes of their own class. A merged box's score is
    the accumulated output of ONE class, which is what its label claims; a bear box merged into a
    whale box would add outputs of two classes into one number with no label. For a
    single-class regressor, whose boxes are the same for every class of a window, this merges
    the same geometry once per class, scored by that class's outputs (:func:`class_sets`).
    """
    plan = class_sets(c)
    return merged_per_class(c, plan, [merge_boxes(b, threshold) for b in plan.sets])


def merged_batches(
    batches: Iterable[tuple[list[int], list[torch.Tensor]]],
    candidates_of: Callable[[list[torch.Tensor]], list[Candidates]],
    pool: MergePool,
    threshold: float,
    times: StageTimes,
) -> Iterator[tuple[list[int], list[torch.Tensor], list[tuple]]]:
    """``(indices, images)`` batches → ``(indices, images, merged)``, ``merged`` holding
    :func:`merge_per_class`'s output for each image, batch by batch in order.

    Each batch's candidates come from ``candidates_of(images)`` (forward passes and decoding,
    here); their sets (:func:`class_sets`) go to ``pool``. With merge workers the merges of one
    batch run while ``candidates_of`` runs the next batch's forward passes: a batch is yielded
    once the following one has been submitted (``pool.lag``). The output is the same either way.
    """
    pending: deque = deque()

    def finish():
        indices, images, cands, plans, handle = pending.popleft()
        with times.stage("merge"):
            done = handle.result()
        times.merge_cpu += sum(m.cpu_seconds for m in done)
        merged, at = [], 0
        for c, plan in zip(cands, plans):
            merged.append(merged_per_class(c, plan, done[at : at + len(plan.sets)]))
            at += len(plan.sets)
        return indices, images, merged

    for indices, images in batches:
        cands = candidates_of(images)
        plans = [class_sets(c) for c in cands]
        sets = [b for plan in plans for b in plan.sets]
        times.merge_sizes.extend(len(b) for b in sets)
        with times.stage("merge"):
            handle = pool.submit(sets, threshold)
        pending.append((indices, images, cands, plans, handle))
        while len(pending) > pool.lag:
            yield finish()
    while pending:
        yield finish()


def top_predictions(
    classes: np.ndarray, boxes: np.ndarray, scores: np.ndarray, guesses: int = GUESSES
) -> Localization:
    """The final prediction of §4.3: ``guesses`` (label, box) pairs from the merged boxes
    ``classes (M,)``, ``boxes (M, 4)``, ``scores (M,)``.

    Decision TOP5_DISTINCT_LABELS (§4.3: "the merged bounding boxes with maximum class scores";
    the devkit takes up to 5 guesses and counts one right label with one right box): first the
    best box of each label, labels ranked by that box's score; the devkit gains nothing from a
    second box of a label while another label is untried. When fewer than ``guesses`` labels
    have a box, the rest are filled with the next-best boxes of labels already guessed, by score
    (the devkit tests every guess, so a second box of the likeliest label is the best remaining
    chance); when fewer boxes exist than guesses, the rest stay ``NO_GUESS``. Ties: higher score
    first, then lower class, then the order given.
    """
    classes = np.asarray(classes, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.lexsort((np.arange(len(scores)), classes, -scores))
    seen: set[int] = set()
    first, rest = [], []
    for i in order:
        (rest if int(classes[i]) in seen else first).append(i)
        seen.add(int(classes[i]))
    chosen = (first + rest)[:guesses]
    labels = np.full(guesses, NO_GUESS, dtype=np.int64)
    out_boxes = np.zeros((guesses, 4))
    out_scores = np.full(guesses, np.nan)
    labels[: len(chosen)] = classes[chosen]
    out_boxes[: len(chosen)] = boxes[chosen]
    out_scores[: len(chosen)] = scores[chosen]
    return Localization(labels, out_boxes, out_scores)


# ------------------------------------------------------------------ the protocols


def image_predictions(
    model: nn.Module, images, protocol: LocalizationProtocol, guesses: int = GUESSES
) -> list[Localization]:
    """The whole-image baseline: the top ``guesses`` classes of Table 2's class vector (§3.3
    steps i–iii under the protocol's scales, flips and offsets), each with the whole image
    ``(0, 0, W − 1, H − 1)`` as its box and its class-vector value as its score."""
    items = _as_list(images)
    sizes = protocol.sizes(model.spec)
    vectors = multiscale_class_vector(
        model, items, sizes, protocol.flips, protocol.offsets, resize_mode=protocol.resize_mode
    )
    out = []
    for img, v in zip(items, vectors.cpu()):
        h, w = img.shape[-2:]
        top = top_classes(v, guesses).numpy()
        whole = np.tile([0.0, 0.0, w - 1.0, h - 1.0], (len(top), 1))
        out.append(top_predictions(top, whole, v[top].double().numpy(), guesses))
    return out


def centre_crop_predictions(
    model: nn.Module, regressor: nn.Module | None, images, guesses: int = GUESSES
) -> list[Localization]:
    """Fig. 9's "SCR, centered crop": one window, the centred training-size crop, and its box.

    Decision CENTRE_CROP_VIEW (the paper says only "a single centered crop"): the image's shorter
    side is resized to 256 (as §3.1's training images and Table 2's 10 views), the centred
    crop of the window side (231 fast, 221 accurate) starting at ``((h − s) // 2, (w − s) // 2)``
    is the network's one window (coarse stride: exactly one output), no mirror image. Its top
    ``guesses`` classes by probability each get the regressor's box for that class (the crop
    itself with ``regressor=None``), mapped back through the crop and the resize.
    """
    spec = model.spec
    s = window_side(spec)
    crops, frames = [], []
    for img in _as_list(images):
        h0, w0 = img.shape[-2:]
        shorter = resize_shorter_side(img.unsqueeze(0), TEN_VIEW_SHORTER_SIDE)
        h, w = shorter.shape[-2:]
        y, x = (h - s) // 2, (w - s) // 2
        crops.append(shorter[:, :, y : y + s, x : x + s])
        frames.append(((h0, w0), (h, w), (x, y)))
    batch = torch.cat(crops)
    with _evaluating(model), torch.no_grad():
        if regressor is None:
            scores, values = dense_scores(model, batch, "coarse"), None
        else:
            with _evaluating(regressor):
                scores, values = dense_scores_and_boxes(model, regressor, batch, "coarse")
    if scores.shape[-2:] != (1, 1):
        raise ValueError(f"a {s}x{s} crop must give one window, got {tuple(scores.shape)}")
    probs = scores.float().softmax(dim=1).cpu()
    values = None if values is None else values.float().cpu()
    out = []
    for n, (original, resized, (x, y)) in enumerate(frames):
        top = top_classes(probs[n, :, 0, 0], guesses)
        vals = class_values(
            None if values is None else values[n : n + 1], top, (1, *probs.shape[1:])
        )
        window = window_boxes(spec, (s, s), "coarse")  # (1, 1, 4): the crop itself
        boxes = decode_boxes(vals.reshape(-1, 4, 1, 1).double(), window, s).reshape(-1, 4)
        boxes = boxes + boxes.new_tensor([x, y, x, y])
        boxes = clip_boxes(ordered_boxes(resize_boxes(boxes, resized, original)), original)
        out.append(
            top_predictions(
                top.numpy(), boxes.numpy(), probs[n, top, 0, 0].double().numpy(), guesses
            )
        )
    return out


def localize(
    model: nn.Module,
    regressor: nn.Module | None,
    images,
    protocol: LocalizationProtocol = LocalizationProtocol(),
    guesses: int = GUESSES,
) -> list[Localization]:
    """§4.3 for each image (a list of ``(3, H, W)`` normalised images of any sizes, or ``(N, 3,
    H, W)``): its ``guesses`` (label, box) pairs, best first, boxes real-valued in the image's own
    pixels. ``model`` supplies layers 1–5 and the classifier, ``regressor`` the boxes (unused for
    the ``"window"`` and ``"image"`` baselines). Networks vote in eval mode without gradients,
    their modes restored after."""
    if protocol.box_source == "regressor":
        check_regressor(model, regressor)
    if protocol.views == "centre":
        use = regressor if protocol.box_source == "regressor" else None
        return centre_crop_predictions(model, use, images, guesses)
    if protocol.box_source == "image":
        return image_predictions(model, images, protocol, guesses)
    return [
        _guesses(merge_per_class(c, protocol.merge_threshold), guesses)
        for c in candidate_boxes(model, regressor, images, protocol)
    ]


def _guesses(merged: tuple, guesses: int) -> Localization:
    """The top ``guesses`` of :func:`merge_per_class`'s output, with the count it merged to."""
    return top_predictions(*merged, guesses)._replace(merged=len(merged[0]))


def check_regressor(
    model: nn.Module, regressor: nn.Module | None, flag: str = "--regressor"
) -> None:
    """Refuse a regressor that cannot read ``model``'s layer 5 or name its classes: it must be
    built on the same (scaled) architecture, and a per-class one must have one box per class."""
    if regressor is None:
        raise ValueError(f"{flag}: box source 'regressor' needs a regressor run; pass {flag} RUN "
                         "or use --box-source window")  # fmt: skip
    if regressor.spec != model.spec:
        raise ValueError(
            f"{flag}: the regressor was built on a {regressor.spec.name} network of other layer "
            f"widths than the classifier's {model.spec.name} network (architecture or --width "
            "differ); train the regressor on this classifier"
        )
    if getattr(regressor, "kind", "scr") == "pcr" and regressor.num_classes != model.num_classes:
        raise ValueError(
            f"{flag}: a per-class regressor of {regressor.num_classes} classes cannot box the "
            f"classifier's {model.num_classes} classes; train it on this classifier's data"
        )


# ------------------------------------------------------------------ over a data set


def validation_boxes(layout) -> dict | None:
    """The validation boxes ``{image stem: Annotation}`` of a CLS-LOC layout
    (:func:`overfeat.data.readers.find_clsloc_layout`), or ``None`` when it has none: its own
    (``LOC_val_solution.csv`` or the XML folder), else a ``LOC_val_solution.csv`` beside a
    classic layout (as imagenette-10 ships its boxes)."""
    from evaluation.annotations import read_loc_solution_csv
    from overfeat.data.readers import clsloc_boxes

    try:
        return clsloc_boxes(layout.root, "val")
    except FileNotFoundError:
        csv = Path(layout.root) / "LOC_val_solution.csv"
        return read_loc_solution_csv(csv) if csv.is_file() else None


def localization_images(data, limit: int | None = None, every: int = 1):
    """The validation images of the data set at ``data`` to localize, in file-name order →
    ``(samples [(path, label)], classes (sorted WNIDs), boxes {stem: Annotation} | None)``.

    Decision LOCALIZE_BOXED_IMAGES: where a data set has validation boxes, only the images that
    have them are localized, since only they can be scored (imagenette-10 boxes 134 of its
    1,134 validation images; ILSVRC boxes every one); without boxes, every image. Then every
    ``every``-th image, then the first ``limit`` (as the Table 2 runner samples).
    """
    from overfeat.data.readers import classification_samples

    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    samples, classes, layout = classification_samples(data, "val")
    samples = sorted(samples, key=lambda s: (Path(s[0]).stem, s[0]))
    boxes = validation_boxes(layout)
    if boxes:
        samples = [s for s in samples if Path(s[0]).stem in boxes]
    samples = samples[::every]
    if limit:
        samples = samples[:limit]
    return samples, list(classes), boxes


@dataclass(frozen=True)
class LocalizationResult:
    """A localization run over N images (file-name order).

    ``names (N,)`` image stems; ``labels (N, 5)`` int64 sorted-WNID indices (``NO_GUESS`` where
    none, and on every guess of an undecodable image); ``boxes (N, 5, 4)`` int64 inclusive pixel
    boxes of the original images (PIXEL_BOX_ROUNDING); ``scores (N, 5)`` float64 accumulated
    scores (NaN where none); ``decoded (N,)`` bool; ``image_sizes (N, 2)`` (rows, cols), 0 when
    not decoded; ``seconds``: wall-clock of the pass; ``merged (N,)`` int64: boxes each image's
    merge produced (:attr:`Localization.merged`); ``times``: where the pass's time went
    (:class:`overfeat.inference.StageTimes`).
    """

    names: tuple[str, ...]
    labels: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    decoded: np.ndarray
    image_sizes: np.ndarray
    seconds: float = 0.0
    merged: np.ndarray | None = None
    times: StageTimes | None = None

    @property
    def skipped(self) -> int:
        return int((~self.decoded).sum())


def image_batches(paths: Sequence[str], options, desc: str, consequence: str | None = None):
    """The image files ``paths`` decoded at full size in a DataLoader (``options``:
    :class:`overfeat.inference.RunOptions`: batch size, workers, device, amp, progress bar
    ``desc``) → ``(indices, [(3, H, W) on the device])`` per batch, undecodable files left out
    (each named once, with ``consequence``: what its skip means for the numbers). The caller's
    work between batches runs under the options' autocast."""
    from overfeat import inference

    consequence = consequence or SCORED_AS_WRONG
    for indices, images, _ in inference.image_batches(paths, options, desc, consequence):
        if indices:
            yield indices, images


def localize_dataset(
    model: nn.Module,
    regressor: nn.Module | None,
    samples: Sequence[tuple[str, int]],
    protocol: LocalizationProtocol,
    options: RunOptions | None = None,
    guesses: int = GUESSES,
    merges: MergePool | None = None,
) -> LocalizationResult:
    """:func:`localize` over ``samples [(path, label)]`` in the order given, with a DataLoader
    decoding full-size images (``options``: :class:`overfeat.inference.RunOptions`: device,
    batch size, workers, amp, progress bar, merge workers). The merges run in
    ``options.merge_workers`` processes beside the next batch's forward pass
    (:func:`merged_batches`; ``merges``: another :class:`~overfeat.merge_workers.MergePool`),
    with the result of merging in this process. An undecodable image is skipped, warned about
    once, and gets no guess (SKIPPED_IMAGE_COUNTS_AS_ERROR). The result's ``times`` says where
    the time went."""
    options = options or RunOptions()
    if protocol.box_source == "regressor":
        check_regressor(model, regressor)
    device = torch.device(options.device)
    model = model.to(device).eval()
    if regressor is not None:
        regressor = regressor.to(device).eval()
    n = len(samples)
    labels = np.full((n, guesses), NO_GUESS, dtype=np.int64)
    boxes = np.zeros((n, guesses, 4), dtype=np.int64)
    scores = np.full((n, guesses), np.nan)
    decoded = np.zeros(n, dtype=bool)
    sizes = np.zeros((n, 2), dtype=np.int64)
    merged = np.zeros(n, dtype=np.int64)
    times = StageTimes()
    start = time.perf_counter()
    paths = [p for p, _ in samples]
    batches = image_batches(paths, options, f"localize ({protocol.summary()})")
    dense = protocol.views == "dense" and protocol.box_source != "image"
    with pool_or(merges, options.merge_workers if dense else 0,
                 options.merge_device if dense else None) as pool:  # fmt: skip
        if dense:

            def candidates(images):
                return candidate_boxes(model, regressor, images, protocol, times)

            per_batch = merged_batches(batches, candidates, pool, protocol.merge_threshold, times)
            done = ((indices, images, [_guesses(m, guesses) for m in per_image])
                    for indices, images, per_image in per_batch)  # fmt: skip
        else:  # one box per class and no merge (the whole image, the centred crop)
            done = ((indices, images, localize(model, regressor, images, protocol, guesses))
                    for indices, images in batches)  # fmt: skip
        for indices, images, locs in done:
            for i, img, loc in zip(indices, images, locs):
                size = tuple(img.shape[-2:])
                sizes[i] = size
                decoded[i] = True
                labels[i] = loc.labels
                scores[i] = loc.scores
                merged[i] = loc.merged
                kept = loc.labels != NO_GUESS
                boxes[i][kept] = to_pixel_boxes(torch.from_numpy(loc.boxes[kept]), size).numpy()
    names = tuple(Path(p).stem for p, _ in samples)
    return LocalizationResult(
        names, labels, boxes, scores, decoded, sizes, time.perf_counter() - start, merged, times
    )


# ------------------------------------------------------------------ submission files


def write_loc_submission(
    path: str | Path,
    result: LocalizationResult,
    classes: Sequence[str],
    fmt: str = "devkit",
    devkit_ids: np.ndarray | None = None,
) -> None:
    """Write ``result`` as a CLS-LOC submission that ``python -m evaluation loc`` scores.

    ``fmt="devkit"``: one line per image in ``result``'s order, up to 5 groups ``<label> <x1> <y1>
    <x2> <y2>``; labels are ``devkit_ids[label]`` (ILSVRC2012_IDs: ``ClassLabels.index_to_devkit``,
    scored with ``--meta``) when given, else the data set's sorted-WNID index 0..C−1 (scored with
    ``--synsets``, the data set's class list). ``fmt="kaggle"``: ``ImageId,PredictionString``
    with WNIDs (``classes[label]``), paired by name. An image without guesses gets the devkit's
    "no guess" line, or an empty Kaggle prediction; either counts as wrong.

    Decision LOC_LABEL_SPACE: without ILSVRC2012_IDs a devkit file holds the sorted index itself,
    0-based, the space ``python -m evaluation loc --synsets`` reads against the data set's own
    ground truth (DEVKIT_FILES_SORTED_INDEX's index + 1 belongs to the classification files
    scored against a ground-truth file the runner writes beside them).
    """
    from evaluation.formats import KaggleGuesses, write_devkit_loc, write_kaggle_submission

    if fmt == "devkit":
        labels = result.labels
        if devkit_ids is not None:
            labels = np.where(labels == NO_GUESS, NO_GUESS, np.asarray(devkit_ids)[labels])
        write_devkit_loc(path, labels, result.boxes)
    elif fmt == "kaggle":
        guesses = {}
        for name, labels, boxes in zip(result.names, result.labels, result.boxes):
            kept = labels != NO_GUESS
            wnids = tuple(classes[int(c)] for c in labels[kept])
            guesses[name] = KaggleGuesses(wnids, boxes[kept].astype(np.float64))
        write_kaggle_submission(path, guesses)
    else:
        raise ValueError(f"fmt must be 'devkit' or 'kaggle', got {fmt!r}")


def write_synsets(path: str | Path, classes: Sequence[str], words: Sequence[str] = ()) -> None:
    """The data set's class list as ``LOC_synset_mapping.txt`` (``WNID words`` per line, line =
    sorted-WNID index): the label space of a devkit submission written without ILSVRC2012_IDs."""
    words = list(words) or [""] * len(classes)
    lines = (f"{w} {t}".rstrip() for w, t in zip(classes, words))
    Path(path).write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
