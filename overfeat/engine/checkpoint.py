"""Training checkpoints: dicts of plain values, written atomically, found again by ``--resume auto``.

A checkpoint (``checkpoint-SSSSSSSS.pt``, S = optimizer steps taken) holds::

    format, version        "overfeat-train-checkpoint", 1
    model                  state_dict of the bare network (no DDP / torch.compile prefixes)
    model_config           OverFeat.config: build_model(**model_config) rebuilds the network
    train_config           TrainConfig.to_dict()
    optimizer, scheduler   their state_dicts
    progress               {"epoch", "step_in_epoch", "global_step"}: where to continue
    meters                 the running sums of the epoch in progress (exact mid-epoch metrics)
    rng                    {"seed", "global_step", "torch_cpu"}: every random draw of a step is
                           re-seeded from (seed, rank, global_step), see train.step_seed
    world_size             processes that wrote it (informational; resume works with any W that
                           divides the global batch)

Everything loads with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_path",
    "find_latest_valid",
    "list_checkpoints",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint_atomic",
]

CHECKPOINT_FORMAT = "overfeat-train-checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")
REQUIRED_KEYS = ("model", "model_config", "train_config", "optimizer", "scheduler", "progress")


def checkpoint_path(run_dir: str | os.PathLike, global_step: int) -> Path:
    return Path(run_dir) / f"checkpoint-{global_step:08d}.pt"


def save_checkpoint_atomic(state: dict, path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` so that a reader sees the old file or the whole new one.

    The bytes go to ``path.tmp`` in the same directory, are flushed and fsync'ed, then
    ``os.replace`` renames them over ``path`` (atomic on POSIX); a crash leaves at worst a
    stray ``.tmp`` that ``list_checkpoints`` ignores.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def load_checkpoint(
    path: str | os.PathLike,
    map_location="cpu",
    required: tuple[str, ...] = REQUIRED_KEYS,
    mmap: bool = False,
) -> dict:
    """Read and check one checkpoint; a clear ``ValueError`` names the file when it is unusable.

    ``required``: the keys the checkpoint must hold (a classifier's by default; the regressor
    runs of ``overfeat.engine.regressor`` name their own). ``mmap``: map the file instead of
    reading it (copy-on-write), so the processes of one node resuming from one 1.2 GB file share
    its pages in the page cache instead of each holding a private copy."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # truncated zip, bad pickle, disallowed global, I/O error
        raise ValueError(
            f"{path}: not a readable checkpoint ({type(e).__name__}: {e}); it is probably "
            f"truncated by an interrupted copy; delete it or resume from an earlier one"
        ) from e
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an overfeat training checkpoint (no format tag)")
    missing = [k for k in required if k not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}; it was not written by this engine")
    return state


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints in ``run_dir``, oldest first (by the step in the name)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest_valid(
    run_dir: str | os.PathLike, map_location="cpu", required: tuple[str, ...] = REQUIRED_KEYS
) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``run_dir`` that loads (and holds ``required``); unreadable ones
    are skipped with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load_checkpoint(path, map_location=map_location, required=required)
        except ValueError as e:
            warnings.warn(f"skipping checkpoint: {e}", stacklevel=2)
    return None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps all).

    Decision KEEP_CHECKPOINTS (default 3): a full-width checkpoint with momentum is ~1.2 GB, so
    90 epochs of them would fill a disk; keeping more than one survives a corrupt newest file.
    """
    if keep <= 0:
        return
    for path in list_checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)
