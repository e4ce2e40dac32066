"""The sample index of a training run: every image and label of a split, listed once per run.

Listing ILSVRC's training split means walking 1,000 folders and 1.28 M files (minutes on a
network filesystem), and the validation labels come from parsing 50 k XML files or a CSV. Every
process of every node doing that itself, at every start and every resume, multiplies the cost by
the process count. Decision SAMPLE_INDEX_PER_RUN: process 0 lists each split once, when the run
starts, into ``<run>/index-<split>.npz`` (paths relative to ``--data``, labels, classes); the
other processes wait at a barrier and read that file, and a resumed run reads it instead of
listing again. Relative paths keep ``--data`` a resumable change (the set moved to another disk).
A set that gained or lost files during a run is not re-listed; delete the file to list it again.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from overfeat.engine.distributed import DistEnv

__all__ = ["index_path", "sample_index"]

INDEX_VERSION = 1


def index_path(out: str | os.PathLike, split: str) -> Path:
    return Path(out) / f"index-{split}.npz"


def _write(path: Path, root: Path, samples, classes) -> None:
    rel = [os.path.relpath(p, root) for p, _ in samples]
    tmp = path.with_name(path.name + ".partial.npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        tmp,
        version=np.array(INDEX_VERSION),
        paths=np.array([os.fsencode(p) for p in rel], dtype=np.bytes_),
        labels=np.array([label for _, label in samples], dtype=np.int64),
        classes=np.array(list(classes), dtype=np.str_),
    )
    os.replace(tmp, path)  # atomic: a reader sees the whole index or none


def _read(path: Path, root: Path):
    with np.load(path) as f:
        if int(f["version"]) != INDEX_VERSION:
            raise ValueError(f"{path}: index version {int(f['version'])}, expected {INDEX_VERSION}")
        paths = [os.path.join(root, os.fsdecode(p)) for p in f["paths"]]
        samples = list(zip(paths, f["labels"].tolist()))
        return samples, [str(c) for c in f["classes"]]


def _barrier(env: DistEnv) -> None:
    if env.distributed:
        torch.distributed.barrier()


def sample_index(root: str | os.PathLike, split: str, out: str | os.PathLike, env: DistEnv,
                 lister=None):  # fmt: skip
    """``(samples [(path, label)], classes)`` of ``split`` under ``root`` (decision
    SAMPLE_INDEX_PER_RUN): read from ``<out>/index-<split>.npz`` when the run has one, else
    listed by process 0 (``lister``, default :func:`overfeat.data.readers.classification_samples`)
    and written there for every other process and every resume."""
    if lister is None:
        from overfeat.data.readers import classification_samples as lister
    root, path = Path(root), index_path(out, split)
    error = None
    if env.is_main and not path.is_file():
        try:
            samples, classes, _ = lister(root, split)
            _write(path, root, samples, classes)
        except BaseException as exc:  # the others must not wait forever at the barrier
            error = exc
    _barrier(env)
    if error is not None:
        raise error
    if not path.is_file():
        raise FileNotFoundError(f"{path}: process 0 wrote no sample index (see its error)")
    return _read(path, root)
