"""A Table 2 row in progress, kept on disk so that an interrupted row continues where it stopped.

At 50,000 images a multi-scale row runs for hours; Ctrl-C, a lost SSH session or a killed job
must not cost more than the last few batches. One folder per set of networks computed together
(``<work>/partial/<digest>/``) holds:

- ``<m>.npy``: network m's class vectors ``(N, C)`` float32, a ``.npy`` file memory-mapped and
  written in place, row by row, as batches finish;
- ``state.npy``: ``(N,)`` int8 per image, 0 not yet computed, 1 computed, 2 undecodable;
- ``seconds.txt``: the seconds the row ran before (its record counts every invocation's).

A save flushes the vectors' new rows to their files, then replaces ``state.npy`` atomically:
the state never claims an image whose vectors are not written, and a run killed between two
saves loses only the batches since the first. When the row is finished the vector files become
the row's ``vectors/<key>.npy`` by a rename, and the folder is removed.

Decision ROW_PROGRESS_SAVED: a row saves its progress after a batch once :data:`SAVE_SECONDS`
have passed since its last save, and at any exception (Ctrl-C included) with every batch that
finished. A save costs the new rows' bytes and one byte per image, so it could run every batch;
the interval bounds the work a hard kill (``kill -9``, power loss) can take to 10 seconds.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["SAVE_SECONDS", "PartialRow"]

SAVE_SECONDS = 10.0
TODO, DONE, SKIPPED = 0, 1, 2


class PartialRow:
    """The progress of ``members`` networks over ``n`` images in ``folder`` (created on the first
    save; an earlier run's progress there is picked up, anything unreadable is started again)."""

    def __init__(self, folder: str | Path, n: int, members: int):
        self.folder = Path(folder)
        self.n, self.members = n, members
        self.state = np.zeros(n, dtype=np.int8)
        self.vectors: list[np.ndarray] | None = None
        self.seconds_before = 0.0  # what earlier invocations ran of this row
        self._started = self._last_save = time.monotonic()
        self._resume()

    # ------------------------------------------------------------------ reading back

    def _member_path(self, m: int) -> Path:
        return self.folder / f"{m}.npy"

    def _resume(self) -> None:
        state_path = self.folder / "state.npy"
        if not state_path.is_file():
            self._discard()  # vectors without a state were never claimed: start clean
            return
        try:
            state = np.load(state_path)
            vectors = None
            if (state == DONE).any():
                vectors = [np.load(self._member_path(m), mmap_mode="r+") for m in range(self.members)]
                if any(v.ndim != 2 or v.shape[0] != self.n or v.dtype != np.float32 for v in vectors):
                    raise ValueError("vectors of another shape")
        except (OSError, ValueError, EOFError):
            self._discard()
            return
        if state.shape != (self.n,) or state.dtype != np.int8:
            self._discard()
            return
        self.state, self.vectors = state, vectors
        try:
            self.seconds_before = float((self.folder / "seconds.txt").read_text())
        except (OSError, ValueError):
            self.seconds_before = 0.0

    def _discard(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)

    # ------------------------------------------------------------------ progress

    def todo(self) -> np.ndarray:
        """Indices of the images not computed yet, in order: ``(K,)`` int64."""
        return np.flatnonzero(self.state == TODO)

    @property
    def done(self) -> int:
        return int((self.state != TODO).sum())

    @property
    def decoded(self) -> np.ndarray:
        """``(N,)`` bool: the images computed (not undecodable, not still to do)."""
        return self.state == DONE

    def record(self, indices: Sequence[int], vectors: Sequence[np.ndarray]) -> None:
        """Network m's class vectors ``vectors[m] (len(indices), C)`` of images ``indices``."""
        if self.vectors is None:
            self._create(vectors[0].shape[1])
        for stored, v in zip(self.vectors, vectors):
            stored[indices] = v
        self.state[indices] = DONE

    def skip(self, indices: Sequence[int]) -> None:
        """Images that cannot be decoded: done, with no vectors."""
        self.state[list(indices)] = SKIPPED

    def _create(self, num_classes: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.vectors = [
            np.lib.format.open_memmap(self._member_path(m), mode="w+", dtype=np.float32,
                                      shape=(self.n, num_classes))  # fmt: skip
            for m in range(self.members)
        ]

    def save(self) -> None:
        """Flush the vectors, then replace the state (the commit point)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for v in self.vectors or ():
            v.flush()
        seconds = self.seconds_before + time.monotonic() - self._started
        (self.folder / "seconds.txt").write_text(f"{seconds:.3f}\n")
        tmp = self.folder / "state.npy.tmp"
        with open(tmp, "wb") as f:
            np.save(f, self.state)
        os.replace(tmp, self.folder / "state.npy")
        self._last_save = time.monotonic()

    def save_if_due(self) -> None:
        """:meth:`save` when :data:`SAVE_SECONDS` have passed since the last one."""
        if time.monotonic() - self._last_save >= SAVE_SECONDS:
            self.save()

    def finish(self, paths: Sequence[Path], num_classes: int) -> np.ndarray:
        """Move network m's vectors to ``paths[m]`` (zeros ``(N, num_classes)`` when no image
        could be decoded), remove the folder → :attr:`decoded`."""
        if (self.state == TODO).any():
            raise RuntimeError(f"{self.folder}: {int((self.state == TODO).sum())} images not computed")
        if self.vectors is None:
            self._create(num_classes)
        for v in self.vectors:
            v.flush()
        self.vectors = None  # unmapped before the files are renamed
        for m, path in enumerate(paths):
            os.replace(self._member_path(m), path)
        decoded = self.decoded
        self._discard()
        try:
            self.folder.parent.rmdir()  # the last row in progress leaves no empty folder behind
        except OSError:
            pass
        return decoded
