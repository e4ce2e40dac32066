"""How an inference pass over image files runs: its options, the images decoded for the
networks in a DataLoader at full size, the pass's precision, its progress, and every image it
cannot decode named where the pass is watched.

Localization (:mod:`overfeat.localize`), detection (:mod:`overfeat.detect`) and every
reproduction built on them or on Table 2's protocols read their images through
:func:`image_batches`, configured by one :class:`RunOptions`. An undecodable file is skipped,
and the skip is reported by the main process, once per file, with what the skip means for the
numbers (``consequence``): a row or bar scores it as wrong, detection misses its objects
(decision SKIPPED_IMAGE_COUNTS_AS_ERROR). The decoding workers only say which file failed and
why; a warning raised inside a worker would be printed with the DataLoader's own source line
and no word of what happened next.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from overfeat.data.decode import CorruptImage, decode_rgb
from overfeat.data.transforms import DEFAULT_NORMALIZATION, NORMALIZATIONS
from overfeat.progress import progress

__all__ = [
    "SCORED_AS_WRONG",
    "RunOptions",
    "StageTimes",
    "ValidationImages",
    "autocast",
    "collate_images",
    "image_batches",
    "skip_message",
]

SCORED_AS_WRONG = (
    "it gets no guess and is scored as wrong, like any image without one "
    "(decision SKIPPED_IMAGE_COUNTS_AS_ERROR)"
)



@dataclass(frozen=True)
class RunOptions:
    """How an inference pass runs: ``device`` ``"cpu"`` or ``"cuda"``; ``batch_size`` images per
    batch (each becomes 2 × scales network inputs); ``workers`` decoding processes; ``amp``
    ``"none"`` (float32) or ``"bf16"`` (autocast on the device); ``progress`` a bar or log
    lines; ``merge_workers`` processes running the greedy merges of localization and detection
    beside the next batch's forward pass (0: in the main process, between forward passes;
    :mod:`overfeat.merge_workers`; their results are the same either way; a script that sets
    it starts worker processes, so its entry point must sit under ``if __name__ ==
    "__main__":``, as for any multiprocessing that does not fork); ``merge_device`` ``None``
    (greedy_merge on the CPU, in ``merge_workers`` processes) or a device on which a batch's
    merges run together (:func:`overfeat.merge_batched.batched_greedy_merge`): the same merges
    bit for bit, decision MERGE_PATH (:mod:`overfeat.merge_workers`).

    Decision REPRODUCE_FLOAT32: float32 unless ``amp="bf16"`` is asked for; bf16's effect on
    Table 2's numbers has not been measured on a GPU, so the reference stays float32.
    """

    device: str = "cpu"
    batch_size: int = 8
    workers: int = 2
    amp: str = "none"
    progress: bool = True
    # 0 keeps the library's callers (the reproductions, the gate) in one process as before;
    # the commands pass MERGE_WORKERS (overfeat.merge_workers).
    merge_workers: int = 0
    merge_device: str | None = None


@dataclass
class StageTimes:
    """Where a pass's time went: ``seconds`` per stage (wall-clock in the main process:
    ``"forward"`` the networks' passes with the maps' copy to the host, ``"decode"`` the boxes
    of every window, ``"merge"`` merging, or waiting for the merge workers), ``merge_cpu`` the
    merges' CPU seconds wherever they ran, ``merge_sizes`` the boxes of every set merged."""

    seconds: dict[str, float] = field(default_factory=dict)
    merge_cpu: float = 0.0
    merge_sizes: list[int] = field(default_factory=list)

    @contextlib.contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def timed(self, items: Iterable, name: str) -> Iterator:
        """``items`` with the time each one takes to produce counted under ``name``."""
        items = iter(items)
        while True:
            with self.stage(name):
                item = next(items, _END)
            if item is _END:
                return
            yield item


_END = object()


# Files already named in this process: a file every row skips is named once per run.
_NAMED: set[str] = set()


class ValidationImages(Dataset):
    """``samples [(path, label)]`` → ``(index, image (3, H, W) float32 normalised)``, or
    ``(index, reason)`` (a one-line ``str``) for a file that cannot be decoded.

    Images stay at full size (each protocol resizes them itself).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], normalization: str = DEFAULT_NORMALIZATION):
        self.paths = [p for p, _ in samples]
        norm = NORMALIZATIONS[normalization]
        self.mean = torch.tensor(norm.mean).view(3, 1, 1)
        self.std = torch.tensor(norm.std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        try:
            img = decode_rgb(self.paths[i])
        except CorruptImage as err:
            return i, err.reason
        pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()
        return i, (pixels - self.mean) / self.std


def collate_images(batch):
    """→ ``(indices [B'], images [(3, H, W)] of any sizes, skipped [(index, reason)])``: the
    decodable images of the batch, and the others."""
    kept = [(i, x) for i, x in batch if not isinstance(x, str)]
    skipped = [(i, x) for i, x in batch if isinstance(x, str)]
    return [i for i, _ in kept], [x for _, x in kept], skipped


def skip_message(path: str, reason: str, consequence: str = SCORED_AS_WRONG) -> str:
    """What a run prints about an undecodable image: the file, why, what was done with it."""
    return (f"warning: {path}: cannot decode ({reason}); skipped: {consequence}. Replace the "
            "file with a good copy to have it scored.")  # fmt: skip


def autocast(options, device: torch.device):
    """bf16 autocast on ``device`` when ``options.amp == "bf16"``, else nothing (float32)."""
    if options.amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def image_batches(
    paths: Sequence[str],
    options,
    desc: str,
    consequence: str = SCORED_AS_WRONG,
    total: int | None = None,
) -> Iterator[tuple[list[int], list[torch.Tensor], list[int]]]:
    """The image files ``paths`` decoded at full size in a DataLoader (``options``:
    :class:`RunOptions`: batch size, workers, device, amp, progress)
    → per batch ``(indices, [(3, H, W) on the device], skipped indices)`` (indices into
    ``paths``). Each undecodable file is named once, with ``consequence``. Progress is shown
    under ``desc`` out of ``total`` images (default ``len(paths)``; a resumed pass counts the
    images done before). The caller's work between batches runs under the options' autocast."""
    device = torch.device(options.device)
    dataset = ValidationImages([(p, 0) for p in paths])
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=collate_images,
        pin_memory=device.type == "cuda",
    )
    total = len(paths) if total is None else total
    with progress(total, desc, options.progress, initial=total - len(paths)) as bar:
        with autocast(options, device):
            for indices, images, skipped in loader:
                for i, reason in skipped:
                    if dataset.paths[i] not in _NAMED:
                        _NAMED.add(dataset.paths[i])
                        bar.write(skip_message(dataset.paths[i], reason, consequence))
                bar.update(len(indices) + len(skipped))
                yield indices, [x.to(device, non_blocking=True) for x in images], [i for i, _ in skipped]
