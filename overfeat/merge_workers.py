"""The greedy merges of a pass over images (§4.3), run in worker processes beside the forward
passes instead of between them.

Localization and detection merge, per image, the boxes of each class (MERGE_PER_CLASS). In one
process those merges run after a batch's forward pass and before the next one starts, so the
network (a GPU above all) waits for them. A :class:`MergePool` takes a batch's box sets as soon
as they are decoded and merges them in worker processes while the main process runs the next
batch's forward pass; the caller collects them one batch later (:attr:`MergePool.lag`).

The results are exactly those of the main process: :func:`merge_boxes` is a pure function of
the boxes and the threshold (:func:`overfeat.merge.greedy_merge`, the same code on the same
float64 inputs in every process), and each image's merged boxes are assembled by the caller in
the order the one-process run assembles them.

Decision MERGE_WORKERS: ``overfeat localize`` and ``overfeat detect`` merge in as many worker
processes as the CPUs this process may run on (``len(os.sched_getaffinity(0))``), ``0`` merging
in the main process; the library's :class:`overfeat.inference.RunOptions` keeps ``0``.

Decision MERGE_PATH (the fastest exact path, measured): merges run as
:func:`overfeat.merge.greedy_merge`, one set at a time on the CPU, in the merge workers, unless
a device is asked for (``--merge-device``, ``RunOptions.merge_device``), where
:func:`overfeat.merge_batched.batched_greedy_merge` merges a batch's sets together in torch.
Both give the literal loop's result bit for bit. On a 2-core CPU greedy_merge is 2 to 8 times
faster than the batched merge on the CPU at localize's sizes (``benchmarks/merge_speed.py``,
README "Performance"); the batched merge on a GPU is timed by ``nox -s gpu_check``, and this
default changes only where that measurement favours it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np

from overfeat.merge import greedy_merge

__all__ = [
    "MERGE_PATH",
    "MERGE_WORKERS",
    "MergePool",
    "MergedSet",
    "PendingMerges",
    "default_merge_workers",
    "merge_boxes",
    "pool_or",
]

MERGE_WORKERS = "the CPUs this process may run on"
MERGE_PATH = "greedy_merge on the CPU in the merge workers, unless a merge device is asked for"

# A worker task holds sets until it has this many boxes: a set of a few dozen boxes merges in
# well under a millisecond, less than sending it to a process costs.
_TASK_BOXES = 1024


def default_merge_workers() -> int:
    """Decision MERGE_WORKERS: the CPUs this process may run on (its affinity mask, which a
    container or ``taskset`` narrows; ``os.cpu_count()`` where the platform has no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class MergedSet(NamedTuple):
    """One set's greedy merge: ``boxes (M, 4)`` float64 merged boxes (BOX_MERGE), ``assignment
    (N,)`` int64 the merged box of each input box (:class:`overfeat.merge.MergeResult`'s);
    ``cpu_seconds``: the merge's CPU time in the thread that ran it."""

    boxes: np.ndarray
    assignment: np.ndarray
    cpu_seconds: float


def merge_boxes(boxes: np.ndarray, threshold: float) -> MergedSet:
    """:func:`overfeat.merge.greedy_merge` of ``boxes (N, 4)``: the clusters and merged boxes
    depend on the boxes alone, so no scores travel to a worker (each class sums its own over
    the assignment)."""
    start = time.thread_time()
    merged = greedy_merge(boxes, np.zeros(len(boxes)), threshold)
    return MergedSet(merged.boxes, merged.assignment, time.thread_time() - start)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches the whole process group: the main process stops the pool itself, and a
    # worker's own KeyboardInterrupt would only add its traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _merge_task(sets: list[np.ndarray], threshold: float) -> list[MergedSet]:
    return [merge_boxes(b, threshold) for b in sets]


class PendingMerges:
    """The merges of one :meth:`MergePool.submit`: :meth:`result` → one :class:`MergedSet` per
    set, in the order submitted (blocks until the workers have merged them)."""

    def __init__(self, done: list[MergedSet] | None = None, futures: Sequence[Future] = (),
                 positions: Sequence[int] = ()):  # fmt: skip
        self._done, self._futures, self._positions = done, list(futures), list(positions)

    def result(self) -> list[MergedSet]:
        if self._done is None:
            merged = [m for f in self._futures for m in f.result()]
            out: list = [None] * len(merged)
            for position, m in zip(self._positions, merged):
                out[position] = m
            self._done = out
        return self._done


class MergePool:
    """Greedy merges of box sets in ``workers`` processes, or in this one (``workers=0``).

    ``submit(sets, threshold)`` → :class:`PendingMerges`. With workers, the sets are sent at
    once and merged while the caller goes on; :attr:`lag` is 1: a caller keeps one batch's
    merges in flight and collects them after its next forward pass. Without, they are merged
    in ``submit`` and :attr:`lag` is 0. Use as a context manager; closing stops the workers.
    """

    def __init__(self, workers: int):
        if workers < 0:
            raise ValueError(f"merge workers must be 0 (the main process) or more, got {workers}")
        self.workers = workers
        self.lag = 1 if workers else 0
        self._executor = None
        if workers:
            # forkserver: workers forked from a fresh server, not from this process with its
            # torch threads, CUDA context and DataLoader; the server imports the merge once
            # (and torch with the package), so each worker starts in milliseconds.
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["overfeat.merge_workers"])
            self._executor = ProcessPoolExecutor(workers, mp_context=context,
                                                 initializer=_ignore_interrupts)

    def submit(self, sets: Sequence[np.ndarray], threshold: float) -> PendingMerges:
        if self._executor is None:
            return PendingMerges([merge_boxes(b, threshold) for b in sets])
        # Largest first, in tasks of about _TASK_BOXES boxes, so that the workers finish
        # together; the results go back to the order submitted.
        order = sorted(range(len(sets)), key=lambda i: -len(sets[i]))
        tasks: list[list[int]] = []
        size = _TASK_BOXES
        for i in order:
            if size >= _TASK_BOXES:
                tasks.append([])
                size = 0
            tasks[-1].append(i)
            size += len(sets[i])
        futures = [
            self._executor.submit(_merge_task, [sets[i] for i in task], threshold)
            for task in tasks
        ]
        return PendingMerges(None, futures, [i for task in tasks for i in task])

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> MergePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pool_or(merges: MergePool | None, workers: int, device: str | None = None):
    """A context giving ``merges`` as it is (its owner closes it), else new merges closed when
    the context ends: on ``device`` (:class:`overfeat.merge_batched.DeviceMerges`) where one is
    given, else a pool of ``workers`` (decision MERGE_PATH)."""
    if merges is not None:
        return nullcontext(merges)
    if device is not None:
        from overfeat.merge_batched import DeviceMerges

        return DeviceMerges(device)
    return MergePool(workers)
