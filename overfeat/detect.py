"""Detection, §5: every window of every scale votes for the classes it sees, boxes are merged per
class, and each merged box is one detection of the ILSVRC DET submission.

    image (3, H, W)
      └─ per scale and mirror image: one pass of layers 1–5 (detector + regressor)
         ─► softmax over C + 1 outputs (the C classes, then background) (F, C + 1, H', W')
      └─ for each object class c: the windows with p(c) ≥ threshold (DETECTION_THRESHOLD);
         their boxes for c (SCR, or PCR channels 4c..4c+3), mapped to the original image,
         ordered and clipped (overfeat.localize.window_boxes_in_image), scored p(c)
      └─ greedy_merge per class (MERGE_PER_CLASS); a merged box's confidence is the sum of
         its windows' p(c) (DETECTION_CONFIDENCE)
      └─ the image's MAX_DETECTIONS_PER_IMAGE most confident boxes

Labels are object-class indices 0..C−1 (the detector's outputs without the background);
the submission gives each its 1-based DET_ID (:func:`det_ids_for`). The random baseline
(:func:`random_detections`) is the floor the report's mAP is compared against.

The decisions named here: DETECTION_THRESHOLD, DETECTION_CONFIDENCE, MAX_DETECTIONS_PER_IMAGE,
RANDOM_BOXES, DET_IDS_SORTED_INDEX, DET_CLASSES_OUTSIDE_DROPPED.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from overfeat.boxes import to_pixel_boxes
from overfeat.inference import RunOptions, StageTimes
from overfeat.localize import (
    LOCALIZATION_SCALES,
    Candidates,
    _as_list,
    class_values,
    image_batches,
    merge_per_class,
    merged_batches,
    scale_passes,
    window_boxes_in_image,
)
from overfeat.merge import MERGE_THRESHOLD
from overfeat.merge_workers import MergePool, pool_or
from overfeat.scales import RESIZE_MODES, SCALE_RESIZE_MODE, TABLE5_SIZES, _evaluating

__all__ = [
    "DETECTION_BOX_SOURCES",
    "DETECTION_THRESHOLD",
    "MAX_DETECTIONS_PER_IMAGE",
    "DetectionProtocol",
    "DetectionResult",
    "Detections",
    "det_ids_for",
    "detect",
    "detect_dataset",
    "detection_candidates",
    "detection_submission",
    "random_detections",
    "score_detections",
]

# Decision DETECTION_THRESHOLD (§5 gives no rule for which windows vote; FACTS §6.5): a window
# proposes class c when its probability of c is at least 0.1. With the background among the
# C + 1 outputs, that excludes windows that see nothing of c, while at most 10 classes per window
# can pass, so the merge's input stays within 10× the windows. A lower threshold adds boxes of
# low confidence, which can only lengthen the tail of the precision–recall curve.
DETECTION_THRESHOLD = 0.1

# Decision DETECTION_CONFIDENCE (§4.3's "cumulatively adding the detection class outputs"): a
# detection's confidence is the plain sum of its windows' probabilities, not normalised. Under
# SCALE_RESIZE_MODE "fixed" every image has the same windows, so sums compare across images, and
# the count of agreeing windows and scales is the evidence §4.3 accumulates; a mean would rank a
# box seen by one window at 0.9 above one seen by fifty at 0.8.
DETECTION_CONFIDENCE = "sum of the merged windows' probabilities"

# Decision MAX_DETECTIONS_PER_IMAGE (the devkit has no cap): the 100 most confident detections of
# an image are kept (COCO's cap), so a submission stays bounded at 100 lines per image; the rest,
# least confident, add at most the tail of the precision–recall curve.
MAX_DETECTIONS_PER_IMAGE = 100

DETECTION_BOX_SOURCES = ("regressor", "window")


@dataclass(frozen=True)
class DetectionProtocol:
    """How one detection run sees an image (§5 with §4.3's merge).

    ``scales``: 1-based indices into :func:`overfeat.scales.scale_sizes` (LOCALIZATION_SCALES);
    ``flips``, ``offsets``, ``resize_mode``: as :class:`overfeat.localize.LocalizationProtocol`;
    ``threshold``: DETECTION_THRESHOLD; ``box_source``: ``"regressor"`` or ``"window"`` (each
    window's own box); ``merge_threshold``: MERGE_THRESHOLD; ``max_per_image``:
    MAX_DETECTIONS_PER_IMAGE.
    """

    scales: tuple[int, ...] = LOCALIZATION_SCALES
    flips: bool = True
    offsets: str = "fine"
    threshold: float = DETECTION_THRESHOLD
    box_source: str = "regressor"
    merge_threshold: float = MERGE_THRESHOLD
    max_per_image: int = MAX_DETECTIONS_PER_IMAGE
    resize_mode: str = SCALE_RESIZE_MODE

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(int(s) for s in self.scales))
        if not self.scales or any(not 1 <= s <= len(TABLE5_SIZES) for s in self.scales):
            raise ValueError(f"scales must be indices 1..{len(TABLE5_SIZES)}, got {self.scales}")
        if self.offsets not in ("fine", "coarse"):
            raise ValueError(f"offsets must be 'fine' or 'coarse', got {self.offsets!r}")
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be a probability in 0..1, got {self.threshold}")
        if self.box_source not in DETECTION_BOX_SOURCES:
            raise ValueError(
                f"box_source must be one of {DETECTION_BOX_SOURCES}, got {self.box_source!r}"
            )
        if not self.merge_threshold < 1:
            raise ValueError(f"merge_threshold must be < 1, got {self.merge_threshold}")
        if self.max_per_image < 1:
            raise ValueError(f"max_per_image must be at least 1, got {self.max_per_image}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")

    def summary(self) -> str:
        scales = ",".join(str(s) for s in self.scales)
        flips = ", flips" if self.flips else ""
        return (
            f"{self.box_source} boxes, scales {scales}, {self.offsets}{flips}, "
            f"p >= {self.threshold:g}"
        )

    def to_dict(self) -> dict:
        return asdict(self)


class Detections(NamedTuple):
    """One image's detections, most confident first: ``classes (D,)`` int64 object-class indices,
    ``boxes (D, 4)`` float64 in the original image, ``scores (D,)`` float64 confidences;
    ``merged``: how many boxes the per-class merge produced before the ``max_per_image`` cut."""

    classes: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    merged: int = 0

    @staticmethod
    def empty() -> Detections:
        return Detections(np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0))


def _object_classes(num_outputs: int, background: int) -> torch.Tensor:
    if not 0 <= background < num_outputs:
        raise ValueError(f"background index {background} outside the {num_outputs} outputs")
    return torch.tensor([c for c in range(num_outputs) if c != background], dtype=torch.long)


def detection_candidates(
    model: nn.Module,
    background: int,
    regressor: nn.Module | None,
    images,
    protocol: DetectionProtocol = DetectionProtocol(),
    times: StageTimes | None = None,
) -> list[Candidates]:
    """Every window's box of every object class it gives at least ``protocol.threshold``, for
    each image (a list of ``(3, H, W)`` of any sizes, or ``(N, 3, H, W)``).

    ``model`` has C + 1 outputs, the background at ``background``; candidate classes are object
    indices 0..C−1 (output index, less one past the background), also the class of a per-class
    regressor of C classes. ``regressor=None`` or ``box_source="window"`` gives each window's own
    box. The candidates' fields are :class:`overfeat.localize.Candidates`'. ``times``: the
    forward passes and the decoding are timed there.
    """
    times = times if times is not None else StageTimes()
    items = _as_list(images)
    use = regressor if protocol.box_source == "regressor" else None
    if protocol.box_source == "regressor" and regressor is None:
        raise ValueError("box_source 'regressor' needs a regressor; pass one or use 'window'")
    parts: list[list[Candidates]] = [[] for _ in items]
    with _evaluating(model), _evaluating(use) if use is not None else nullcontext():
        passes = scale_passes(
            model, use, items, protocol.scales, protocol.flips, protocol.offsets,
            protocol.resize_mode,
        )  # fmt: skip
        for p in times.timed(passes, "forward"):
            with times.stage("decode"):
                outputs = _object_classes(p.probs.shape[2], background)
                for j, i in enumerate(p.images):
                    probs = p.probs[:, j][:, outputs]  # (F, C, H', W'), object classes only
                    passing = probs >= protocol.threshold
                    classes = torch.nonzero(passing.flatten(2).any(-1).any(0)).flatten()  # (k,)
                    if not len(classes):
                        continue
                    values = None if p.values is None else p.values[:, j]
                    vals = class_values(values, classes, probs.shape)  # (F, k, 4, H', W')
                    size = tuple(items[i].shape[-2:])
                    boxes = window_boxes_in_image(vals, model.spec, p.size, size, protocol.offsets)
                    keep = passing[:, classes]  # (F, k, H', W')
                    f_idx, k_idx, rows, cols = torch.nonzero(keep, as_tuple=True)
                    parts[i].append(
                        Candidates(
                            boxes=boxes[f_idx, k_idx, rows, cols].numpy(),
                            scores=probs[:, classes][keep].double().numpy(),
                            classes=classes[k_idx].numpy(),
                            scales=np.full(len(rows), p.scale, dtype=np.int64),
                            flipped=(f_idx == 1).numpy(),
                            windows=torch.stack([rows, cols], -1).numpy(),
                        )
                    )
    with times.stage("decode"):
        return [Candidates.concat(c) for c in parts]


def _most_confident(classes, boxes, scores, limit: int) -> Detections:
    """The ``limit`` most confident detections; ties: lower class, then the order given."""
    order = np.lexsort((np.arange(len(scores)), classes, -scores))[:limit]
    return Detections(classes[order], boxes[order], scores[order])


def detect(
    model: nn.Module,
    background: int,
    regressor: nn.Module | None,
    images,
    protocol: DetectionProtocol = DetectionProtocol(),
) -> list[Detections]:
    """§5 for each image: the candidates (:func:`detection_candidates`) merged per class
    (MERGE_PER_CLASS), each merged box scored by its windows' summed probabilities
    (DETECTION_CONFIDENCE), the ``max_per_image`` most confident kept. An image where no window
    passes the threshold gets no detection."""
    return [
        _kept(merge_per_class(c, protocol.merge_threshold), protocol.max_per_image)
        for c in detection_candidates(model, background, regressor, images, protocol)
    ]


def _kept(merged: tuple, limit: int) -> Detections:
    """The ``limit`` most confident of :func:`merge_per_class`'s output, with the count it
    merged to."""
    return _most_confident(*merged, limit)._replace(merged=len(merged[0]))


# ------------------------------------------------------------------ over a data set


@dataclass(frozen=True)
class DetectionResult:
    """A detection run over N images (the DET image list's order): ``names (N,)``;
    ``detections``: one :class:`Detections` per image (empty where undecodable); ``decoded
    (N,)`` bool; ``image_sizes (N, 2)`` (rows, cols), 0 when not decoded; ``seconds``;
    ``times``: where they went (:class:`overfeat.inference.StageTimes`)."""

    names: tuple[str, ...]
    detections: tuple[Detections, ...]
    decoded: np.ndarray
    image_sizes: np.ndarray
    seconds: float = 0.0
    times: StageTimes | None = None

    @property
    def merged(self) -> np.ndarray:
        """``(N,)`` int64: boxes each image's merge produced (:attr:`Detections.merged`)."""
        return np.array([d.merged for d in self.detections], dtype=np.int64)

    @property
    def skipped(self) -> int:
        return int((~self.decoded).sum())

    @property
    def count(self) -> int:
        return sum(len(d.scores) for d in self.detections)


def detect_dataset(
    model: nn.Module,
    background: int,
    regressor: nn.Module | None,
    paths: Sequence[str],
    protocol: DetectionProtocol,
    options: RunOptions | None = None,
    merges: MergePool | None = None,
) -> DetectionResult:
    """:func:`detect` over the image files ``paths`` in the order given, decoded at full size in a
    DataLoader (``options``: :class:`overfeat.inference.RunOptions`). The merges run in
    ``options.merge_workers`` processes beside the next batch's forward pass
    (:func:`overfeat.localize.merged_batches`; ``merges``: another pool), with the result of
    merging in this process. An undecodable image is skipped, warned about once, and gets no
    detection. The result's ``times`` says where the time went."""
    options = options or RunOptions()
    device = torch.device(options.device)
    model = model.to(device).eval()
    if regressor is not None:
        regressor = regressor.to(device).eval()
    n = len(paths)
    found: list[Detections] = [Detections.empty() for _ in range(n)]
    decoded = np.zeros(n, dtype=bool)
    sizes = np.zeros((n, 2), dtype=np.int64)
    times = StageTimes()
    start = time.perf_counter()
    missed = "it gets no detection, so its objects count as missed"
    batches = image_batches(paths, options, f"detect ({protocol.summary()})", missed)

    def candidates(images):
        return detection_candidates(model, background, regressor, images, protocol, times)

    with pool_or(merges, options.merge_workers, options.merge_device) as pool:
        per_batch = merged_batches(batches, candidates, pool, protocol.merge_threshold, times)
        for indices, images, per_image in per_batch:
            for i, img, m in zip(indices, images, per_image):
                sizes[i] = tuple(img.shape[-2:])
                decoded[i] = True
                found[i] = _kept(m, protocol.max_per_image)
    names = tuple(Path(p).stem for p in paths)
    return DetectionResult(
        names, tuple(found), decoded, sizes, time.perf_counter() - start, times
    )


def random_detections(
    image_sizes: np.ndarray, num_classes: int, per_image: float, seed: int = 0
) -> list[Detections]:
    """The random baseline: ``round(per_image · N)`` detections spread over the N images of
    ``image_sizes (N, 2)`` (rows, cols; images of size 0 get none), each of a uniformly random
    class, box and confidence.

    Decision RANDOM_BOXES: each image gets ⌊per_image⌋ or ⌈per_image⌉ detections (which images get
    the extra one is random), so the total matches the detector's; a box's x1 ≤ x2 are the
    sorted pair of two uniform pixel columns, likewise y; confidences uniform in [0, 1). The
    numbers depend on ``seed`` only.
    """
    rng = np.random.default_rng(seed)
    sizes = np.asarray(image_sizes, dtype=np.int64).reshape(-1, 2)
    usable = np.flatnonzero(sizes.min(axis=1) > 0)
    total = int(round(per_image * len(sizes)))
    counts = np.zeros(len(sizes), dtype=np.int64)
    if len(usable):
        counts[usable] = total // len(usable)
        counts[rng.permutation(usable)[: total % len(usable)]] += 1
    out = []
    for (h, w), k in zip(sizes, counts):
        if k == 0:
            out.append(Detections.empty())
            continue
        xs = np.sort(rng.integers(0, w, size=(k, 2)), axis=1)
        ys = np.sort(rng.integers(0, h, size=(k, 2)), axis=1)
        boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], 1).astype(np.float64)
        classes = rng.integers(0, num_classes, size=k)
        scores = rng.random(k)
        out.append(_most_confident(classes, boxes, scores, k))
    return out


# ------------------------------------------------------------------ the DET submission


def det_ids_for(classes: Sequence[str], det_labels=None) -> np.ndarray:
    """The 1-based DET_ID of each object class ``classes (C,)`` (WNIDs, the detector's order).

    With ``det_labels`` (:class:`evaluation.labels.DetLabels` from the devkit's
    ``meta_det.mat``) the devkit's ids. Decision DET_CLASSES_OUTSIDE_DROPPED: a class that is not
    a DET class (most of the 1000 CLS-LOC classes are not among the 200) gets id 0, and
    :func:`detection_submission` leaves its detections out, since the DET task cannot score
    them; a detector none of whose classes is a DET class is refused. Decision
    DET_IDS_SORTED_INDEX: without ``det_labels``, class c's id is c + 1, the data set's own class
    order (as DEVKIT_FILES_SORTED_INDEX for classification), scored against the data set's
    class list.
    """
    if det_labels is None:
        return np.arange(1, len(classes) + 1, dtype=np.int64)
    ids = np.array([det_labels.wnid_to_det_id.get(w, 0) for w in classes], dtype=np.int64)
    if len(ids) and not ids.any():
        raise ValueError(
            f"--meta-det: none of the detector's {len(classes)} classes is a DET class of it; "
            "drop --meta-det to number the data set's own classes 1..C"
        )
    return ids


def detection_submission(
    detections: Sequence[Detections], image_sizes: np.ndarray, det_ids: np.ndarray
):
    """Detections of the images in the DET list's order → an
    :class:`evaluation.formats.DetSubmission`: image index = position + 1, DET_ID =
    ``det_ids[class]`` (detections of id 0 left out, DET_CLASSES_OUTSIDE_DROPPED), boxes
    rounded to pixels inside the image (PIXEL_BOX_ROUNDING)."""
    from evaluation.formats import DetSubmission

    det_ids = np.asarray(det_ids, dtype=np.int64)
    index, ids, conf, boxes = [], [], [], []
    for i, (d, size) in enumerate(zip(detections, np.asarray(image_sizes).reshape(-1, 2))):
        keep = det_ids[d.classes] > 0 if len(d.classes) else np.zeros(0, bool)
        if not keep.any():
            continue
        index.append(np.full(int(keep.sum()), i + 1, dtype=np.int64))
        ids.append(det_ids[d.classes[keep]])
        conf.append(d.scores[keep])
        pixels = to_pixel_boxes(torch.from_numpy(d.boxes[keep]), tuple(int(v) for v in size))
        boxes.append(pixels.numpy())
    if not index:
        return DetSubmission(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 4), np.int64)
        )
    return DetSubmission(
        np.concatenate(index), np.concatenate(ids), np.concatenate(conf), np.concatenate(boxes)
    )


def score_detections(
    pred: str | Path, xml_dir: str | Path, names: Sequence[str], det_labels, blacklist=None
):
    """Score a DET submission file as ``python -m evaluation det`` does (the same readers and
    :func:`evaluation.detection.evaluate_detection`), for any class list: ``det_labels`` is a
    :class:`evaluation.labels.DetLabels` (the devkit's 200 classes, or the data set's own
    classes in DET_IDS_SORTED_INDEX order); ``names``: the image list, index = position + 1;
    ``blacklist``: ``(B, 2)`` (position in ``names``, DET_ID - 1) pairs left out
    (:func:`evaluation.tasks.det_blacklist_pairs`), or ``None``.
    Returns the :class:`evaluation.detection.DetResult`."""
    from evaluation.detection import evaluate_detection
    from evaluation.formats import read_det_submission
    from evaluation.tasks import load_det_ground_truth

    truth = load_det_ground_truth(xml_dir, list(names), det_labels)
    sub = read_det_submission(pred, num_images=len(names), num_classes=len(det_labels.wnids))
    return evaluate_detection(
        sub.image_index - 1, sub.det_id - 1, sub.confidence, sub.boxes,
        truth.box_image, truth.box_labels, truth.boxes,
        num_classes=len(det_labels.wnids), class_names=det_labels.names, blacklist=blacklist,
    )  # fmt: skip
