"""Shared pieces of the engine tests: a tiny in-memory dataset and a tiny training config.

The dataset draws each image from ``(index)`` only, so every test (and every spawned process)
sees the same data without touching the disk; the tests of the real decode path use
``overfeat make-synthetic``.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from overfeat.engine.config import TrainConfig

TINY_WIDTH = 1 / 32  # fast geometry (231 input, 1×1 output) with 3 … 128 channels


class TinyImages(Dataset):
    """``n`` class-coloured noise images ``(3, size, size)`` of ``num_classes`` classes.

    ``corrupt``: indices that return ``None``, as an undecodable file does.
    """

    def __init__(self, n: int, num_classes: int = 4, size: int = 231, seed: int = 0, corrupt=()):
        self.n, self.size, self.seed = n, size, seed
        self.classes = [f"n{c:08d}" for c in range(num_classes)]
        self.samples = [(f"img{i}", i % num_classes) for i in range(n)]
        self.corrupt = set(corrupt)
        self.epoch = 0
        self.num_skipped = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if i in self.corrupt:
            return None
        label = self.samples[i][1]
        g = torch.Generator().manual_seed(self.seed * 100_003 + i * 31 + self.epoch * 7)
        img = torch.randn(3, self.size, self.size, generator=g) * 0.5
        img[label % 3] += 1.0 + label // 3
        return img, label


def tiny_config(out, **kw) -> TrainConfig:
    base = dict(
        data="",
        out=str(out),
        arch="fast",
        width=TINY_WIDTH,
        epochs=2,
        batch_size=8,
        lr=1e-2,
        momentum=0.6,
        init="he",
        workers=0,
        log_every=1,
        checkpoint_every=0,
        progress=False,
        device="cpu",
    )
    base.update(kw)
    return TrainConfig(**base)
