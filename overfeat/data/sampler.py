"""Samplers that shard a dataset across processes so results do not depend on the process count.

- ``ShardedTrainSampler``: one seeded permutation per epoch, cut into global mini-batches; rank
  ``r`` of ``W`` takes the ``r``-th slice of each global batch, so step ``s`` sees the same images
  for every ``W``. It starts at any step of an epoch (exact mid-epoch resume).
- ``ExactEvalSampler``: contiguous, non-overlapping shards with no padding, so every validation
  image is counted exactly once whatever the number of processes (torch's ``DistributedSampler``
  pads with duplicates, which changes the metric with W).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ExactEvalSampler", "ShardedTrainSampler", "epoch_permutation"]


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The training order of ``epoch``: ``(num_samples,)`` int64, a pure function of (seed, epoch)."""
    g = torch.Generator()
    # Mix epoch into the seed with a large odd multiplier so (seed, epoch) pairs do not collide.
    g.manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(num_samples, generator=g)


class ShardedTrainSampler(Sampler[int]):
    """Per-rank indices of a seeded per-epoch permutation, in whole global mini-batches.

    Decision DROP_LAST_TRAIN_BATCH: an epoch has ``floor(n / batch_size)`` steps; the last partial
    global batch is dropped (the paper is silent) so that every step averages the same number of
    images and splits evenly over ranks. ``batch_size`` must be divisible by ``world_size``.

    Yields ``steps_per_epoch - start_step`` local batches of ``batch_size / world_size`` indices
    each (flattened), so a ``DataLoader(batch_size=batch_size // world_size)`` reassembles them.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        world_size: int = 1,
        rank: int = 0,
        seed: int = 0,
    ):
        if batch_size % world_size:
            raise ValueError(
                f"global batch {batch_size} is not divisible by {world_size} processes; "
                f"choose --batch-size as a multiple of the process count"
            )
        if num_samples < batch_size:
            raise ValueError(
                f"{num_samples} training samples are fewer than one global batch of {batch_size}; "
                f"lower --batch-size"
            )
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.world_size = world_size
        self.rank = rank
        self.seed = seed
        self.local_batch = batch_size // world_size
        self.steps_per_epoch = num_samples // batch_size
        self.epoch = 0
        self.start_step = 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Iterate ``epoch`` from step ``start_step`` (0 ≤ start_step ≤ steps_per_epoch)."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} outside 0..{self.steps_per_epoch}")
        self.epoch = epoch
        self.start_step = start_step

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.local_batch

    def __iter__(self) -> Iterator[int]:
        perm = epoch_permutation(self.num_samples, self.seed, self.epoch)
        used = perm[: self.steps_per_epoch * self.batch_size]
        # (steps, W, local): row s is global batch s, column r is rank r's share of it.
        shards = used.view(self.steps_per_epoch, self.world_size, self.local_batch)
        mine = shards[self.start_step :, self.rank]
        return iter(mine.reshape(-1).tolist())

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start_step": self.start_step, "seed": self.seed}


class ExactEvalSampler(Sampler[int]):
    """Rank ``r`` of ``W`` gets indices ``[floor(r n / W), floor((r+1) n / W))``: no padding.

    Shard lengths differ by at most one; the union over ranks is ``range(n)`` exactly once.
    """

    def __init__(self, num_samples: int, world_size: int = 1, rank: int = 0):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.start = rank * num_samples // world_size
        self.stop = (rank + 1) * num_samples // world_size

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))
