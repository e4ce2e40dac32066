"""Validation during training: top-1 / top-5 error over every image exactly once, and the
running error sums the training loop shares with it.

Errors are fractions in [0, 1] (ILSVRC's top-k error, FACTS §8: the true label is not among the
k highest scores). Decision SKIPPED_NOT_COUNTED: the monitoring errors are over the images that
decoded, with the count of skipped ones reported beside them (the official harness in
``evaluation/`` scores a missing prediction as wrong; these per-epoch figures only track training). The sums are all-reduced over processes, so the figures do not depend on
how many processes computed them (``ExactEvalSampler`` gives each image to exactly one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from overfeat.data.sampler import ExactEvalSampler
from overfeat.data.transforms import DEFAULT_NORMALIZATION, NORMALIZATIONS, normalize_uint8
from overfeat.engine.config import TrainConfig
from overfeat.engine.distributed import DistEnv, all_reduce_sum, loader_workers
from overfeat.flags import effective_amp

__all__ = [
    "ErrorMeters",
    "autocast_for",
    "class_scores",
    "evaluate",
    "summarize",
    "to_device",
    "use_channels_last",
    "wrong_counts",
]


class ErrorMeters:
    """Running sums of an epoch, kept on the device to avoid a host sync every step.

    ``sums``: (5,) float64 = [loss × n, top-1 wrong, top-5 wrong, images, skipped].
    """

    NAMES = ("loss_sum", "top1_wrong", "top5_wrong", "images", "skipped")

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(self.NAMES), dtype=torch.float64, device=device)

    def add(self, logits, labels, loss_sum, skipped: int) -> None:
        top1, top5 = wrong_counts(logits, labels)
        n = labels.numel()
        upd = torch.stack([loss_sum.detach().double(), top1, top5])
        self.sums[:3] += upd
        self.sums[3] += n
        self.sums[4] += skipped

    def reduced(self, env: DistEnv) -> dict:
        vals = all_reduce_sum(self.sums.tolist(), env)
        return dict(zip(self.NAMES, vals))

    def load(self, values: dict, env: DistEnv) -> None:
        # Rank 0 carries the checkpoint's global sums, the others restart at zero, so the next
        # all-reduce gives the same totals as the uninterrupted run.
        if env.is_main:
            self.sums = torch.tensor(
                [values[k] for k in self.NAMES], dtype=torch.float64, device=self.sums.device
            )


def wrong_counts(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits: (N, C)``, ``labels: (N,)`` → number of top-1 and top-5 misses (float64 scalars)."""
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices  # (N, k)
    hit = top == labels[:, None]
    top1 = (~hit[:, 0]).sum().double()
    top5 = (~hit.any(dim=1)).sum().double()
    return top1, top5


def summarize(sums: dict, prefix: str) -> dict:
    """Reduced ``ErrorMeters`` sums → ``{prefix}_loss / _top1_error / _top5_error / _images /
    _skipped`` (NaN errors when no image decoded)."""
    n = sums["images"]
    return {
        f"{prefix}_loss": sums["loss_sum"] / n if n else float("nan"),
        f"{prefix}_top1_error": sums["top1_wrong"] / n if n else float("nan"),
        f"{prefix}_top5_error": sums["top5_wrong"] / n if n else float("nan"),
        f"{prefix}_images": int(n),
        f"{prefix}_skipped": int(sums["skipped"]),
    }


def class_scores(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Training-size crops give a 1×1 output map (§3.1: non-spatial training): ``(N, C)``."""
    out = model(images)
    if out.shape[-2:] != (1, 1):
        raise ValueError(
            f"crops of {tuple(images.shape[-2:])} give a {tuple(out.shape[-2:])} output map; "
            f"training and validation crops must be the network's input size"
        )
    return out.flatten(1)


def autocast_for(config: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA by default (``amp="auto"``); float32 on the CPU unless ``"bf16"``
    (:func:`overfeat.flags.effective_amp`, the one meaning of ``--amp``)."""
    if effective_amp(config.amp, device) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def use_channels_last(config: TrainConfig, device: torch.device) -> bool:
    """NHWC tensors on CUDA by default (faster cuDNN convolutions under bf16); NCHW on the CPU."""
    return config.channels_last == "yes" or (
        config.channels_last == "auto" and device.type == "cuda"
    )


def to_device(images, labels, device, channels_last: bool, normalization=None):
    """``images: (N, 3, H, W)``, ``labels: (N,)`` onto ``device`` (overlapping the copy).

    uint8 images (the training loader's, decision UINT8_BATCHES) are normalised there with
    ``normalization`` (:class:`overfeat.data.transforms.Normalization`; default the release's),
    so the host copies a quarter of the bytes and the float work runs on the device."""
    images = images.to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = normalize_uint8(images, normalization or NORMALIZATIONS[DEFAULT_NORMALIZATION])
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset,
    config: TrainConfig,
    env: DistEnv,
    batch_size: int,
    collate_fn: Callable,
) -> dict:
    """Top-1 / top-5 error and mean loss over the whole ``dataset``, every image counted once.

    Each process evaluates its ``ExactEvalSampler`` shard; the sums are all-reduced, so the
    result does not depend on the process count. Returns ``val_*`` fields (errors in [0, 1]).
    """
    was_training = model.training
    model.eval()
    sampler = ExactEvalSampler(len(dataset), env.world_size, env.rank)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=loader_workers(config.workers),
        collate_fn=collate_fn,
        pin_memory=env.device.type == "cuda",
    )
    meters = ErrorMeters(env.device)
    cl = use_channels_last(config, env.device)
    norm = getattr(getattr(dataset, "transform", None), "normalization", None)
    for images, labels, skipped in loader:
        if labels.numel() == 0:
            meters.sums[4] += skipped
            continue
        images, labels = to_device(images, labels, env.device, cl, norm)
        with autocast_for(config, env.device):
            logits = class_scores(model, images).float()
        loss_sum = F.cross_entropy(logits, labels, reduction="sum")
        meters.add(logits, labels, loss_sum, skipped)
    model.train(was_training)
    return summarize(meters.reduced(env), "val")
