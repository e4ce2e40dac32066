"""The greedy merge of §4.3 over many box sets at once, in torch on any device (FACTS §6.4).

Localization and detection merge one set per (image, class) (MERGE_PER_CLASS): a batch of
images gives dozens of sets. :func:`batched_greedy_merge` runs §4.3's loop on all of them
together, one merge of every set per step, in float64 tensors on the device the network runs
on, so that a CUDA network's merges need no CPU core. Its result is
:func:`overfeat.merge.greedy_merge`'s, bit for bit, which is the literal loop's:

- a step is the loop's argmin over the sets' ``(S, N, N)`` matrices of pair scores, kept as in
  :func:`overfeat.merge._dense_merge`: ``scores[s, a, b]`` for slots ``a < b`` (+inf where the
  pair scores > t, a slot is empty, or a set has fewer than N boxes), each row's minimum
  ``least`` and its first column ``best``. The first row holding a set's smallest minimum is
  the loop's pair, ties going to the smaller, then larger, slot (``torch.argmin`` returns the
  first minimum on every device); the merged box keeps the smaller slot;
- scores are computed from the per-box terms of :func:`overfeat.merge._features` by the
  operations of :func:`overfeat.merge._feature_scores`, in the same order, each one a correctly
  rounded IEEE float64 operation on CPU and CUDA alike (separate kernels: nothing is fused), so
  every score has the loop's bits; a merged box is the sum of its input boxes, added merge by
  merge as greedy_merge adds them, over their count (BOX_MERGE);
- a merge rescores its box's row and column and rescans only the rows whose minimum was in
  one of the two changed columns.

Cost per step: a few dozen tensor operations on ``(S, N)`` tensors, whatever S; steps: the
largest number of merges of a set in the batch. Memory: ``S·N²`` float64; sets go in chunks of
at most ``max_pairs`` matrix entries, sorted by size so a chunk's sets pad little.
``benchmarks/merge_speed.py`` times it against greedy_merge: on a CPU it is the slower
(decision MERGE_PATH, :mod:`overfeat.merge_workers`); :class:`DeviceMerges` gives a pass's merges
this way where a merge device is asked for (``--merge-device``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from overfeat.merge import MERGE_THRESHOLD, _check

__all__ = ["DeviceMerges", "batched_greedy_merge"]

# The matrices of one chunk hold at most this many entries (float64: 8 bytes each, 512 MiB).
_MAX_PAIRS = 2**26
# The first scores are computed this many at a time (their temporaries: a few times as many).
_BLOCK = 2**20
# The per-box terms, as overfeat.merge._features orders them.
_X1, _Y1, _X2, _Y2, _CX, _CY, _QUARTER_SIDES, _AREA = range(8)


def _features(boxes: torch.Tensor) -> torch.Tensor:
    """``boxes: (..., 4)`` → ``(..., 8)`` terms, the operations of overfeat.merge._features."""
    low, high = boxes[..., :2], boxes[..., 2:]
    sides = (high - low) + 1
    w, h = sides[..., :1], sides[..., 1:]
    centre = (low + high) * 0.5
    return torch.cat([boxes, centre, (w + h) * 0.25, w * h], dim=-1)


def _feature_scores(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """match_score from terms ``a: (..., 8)``, ``b: (..., 8)`` (broadcast), the operations of
    overfeat.merge._feature_scores in their order → ``(...)``."""
    dx = a[..., _CX] - b[..., _CX]
    dy = a[..., _CY] - b[..., _CY]
    distance = torch.sqrt(dx * dx + dy * dy)
    distance = distance / (a[..., _QUARTER_SIDES] + b[..., _QUARTER_SIDES])
    iw = torch.minimum(a[..., _X2], b[..., _X2]) - torch.maximum(a[..., _X1], b[..., _X1])
    ih = torch.minimum(a[..., _Y2], b[..., _Y2]) - torch.maximum(a[..., _Y1], b[..., _Y1])
    inter = (iw + 1).clamp_(min=0.0) * (ih + 1).clamp_(min=0.0)
    union = (a[..., _AREA] + b[..., _AREA]) - inter
    return (distance + 1.0) - inter / union


def _merge_chunk(
    sets: list[np.ndarray], threshold: float, device: torch.device
) -> list[np.ndarray]:
    """The loop on ``S`` sets padded to N boxes → for each set, ``(G,)`` int64 the slot of the
    merged box each input box ends in (the smallest input index behind it)."""
    s_count, n = len(sets), max(len(b) for b in sets)
    boxes = torch.zeros((s_count, n, 4), dtype=torch.float64)
    valid = torch.zeros((s_count, n), dtype=torch.bool)
    for s, b in enumerate(sets):
        boxes[s, : len(b)] = torch.from_numpy(b)
        valid[s, : len(b)] = True
    boxes, valid = boxes.to(device), valid.to(device)
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=device)
    empty = torch.tensor([float("inf")] * 2 + [float("-inf")] * 2 + [float("inf")] * 2 + [0.0] * 2,
                         dtype=torch.float64, device=device)  # fmt: skip
    terms = torch.where(valid[..., None], _features(boxes), empty)
    slots = torch.arange(n, device=device)
    upper = slots[:, None] < slots[None, :]
    # A block of rows at a time, so that the temporaries stay small next to the matrix.
    scores = torch.empty((s_count, n, n), dtype=torch.float64, device=device)
    rows = max(1, _BLOCK // (s_count * n))
    for r in range(0, n, rows):
        block = _feature_scores(terms[:, r : r + rows, None], terms[:, None])
        keep = upper[r : r + rows] & valid[:, r : r + rows, None] & valid[:, None]
        scores[:, r : r + rows] = torch.where(keep & (block <= threshold), block, inf)
    best = scores.argmin(dim=2)
    least = torch.gather(scores, 2, best[..., None])[..., 0]
    sums, counts = boxes.clone(), valid.to(torch.float64)
    parent = slots.expand(s_count, n).clone()
    live = torch.arange(s_count, device=device)
    while True:
        # each live set's pair: the first row holding its smallest minimum
        a = least[live].argmin(dim=1)
        low = least[live, a]
        live = live[low <= threshold]  # step (f): a set with no pair ≤ t is done
        if live.numel() == 0:
            break
        a = a[low <= threshold]
        b = best[live, a]
        parent[live, b] = a
        sums[live, a] = sums[live, a] + sums[live, b]
        counts[live, a] = counts[live, a] + counts[live, b]
        merged = sums[live, a] / counts[live, a, None]
        terms[live, a] = _features(merged)
        terms[live, b] = empty
        new = _feature_scores(terms[live, a][:, None], terms[live])  # (L, N)
        is_a = slots[None, :] == a[:, None]
        new = torch.where(is_a | (new > threshold), inf, new)
        scores[live, b] = inf
        scores[live, :, b] = inf
        scores[live, a] = torch.where(slots[None, :] > a[:, None], new, inf)
        above = slots[None, :] < a[:, None]
        scores[live, :, a] = torch.where(above, new, inf)
        least[live, b] = inf
        old_least, old_best = least[live], best[live]
        stale = ((old_best == a[:, None]) | (old_best == b[:, None]) | is_a) & (
            slots[None, :] != b[:, None]
        )
        wins = above & ((new < old_least) | ((new == old_least) & (a[:, None] < old_best)))
        least[live] = torch.where(wins, new, old_least)
        best[live] = torch.where(wins, a[:, None], old_best)
        k, r = torch.nonzero(stale, as_tuple=True)
        sets_k = live[k]
        rescanned = scores[sets_k, r]
        best[sets_k, r] = first = rescanned.argmin(dim=1)
        least[sets_k, r] = torch.gather(rescanned, 1, first[:, None])[:, 0]
    # follow the parent links to their roots (pointer jumping)
    while True:
        up = torch.gather(parent, 1, parent)
        if torch.equal(up, parent):
            break
        parent = up
    parent = parent.cpu().numpy()
    return [parent[s, : len(b)] for s, b in enumerate(sets)]


def _merge_chunks(checked, order, roots, threshold, device, max_pairs) -> None:
    """Merge the sets ``checked[i]``, ``i`` in ``order`` (ascending size), largest first, as
    many at a time as fit in ``max_pairs`` matrix entries (at least one), into ``roots``."""
    while order:
        n = len(checked[order[-1]])
        take = max(1, min(len(order), max_pairs // (n * n)))
        chunk, order = order[-take:], order[:-take]
        for i, root in zip(chunk, _merge_chunk([checked[i] for i in chunk], threshold, device)):
            roots[i] = root


def batched_greedy_merge(
    box_sets: Sequence,
    threshold: float = MERGE_THRESHOLD,
    device: torch.device | str = "cpu",
    max_pairs: int = _MAX_PAIRS,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """§4.3's greedy merge of every set of ``box_sets`` (each ``(N_i, 4)`` inclusive pixel boxes,
    numpy, torch or lists) on ``device`` → for each set ``(boxes (M_i, 4) float64, assignment
    (N_i,) int64)``, exactly :func:`overfeat.merge.greedy_merge`'s ``boxes`` and ``assignment``
    (merged boxes ordered by their first input box; module docstring). Scores are not needed:
    the clusters depend on the boxes alone, and each class sums its own over the assignment.
    """
    if not threshold < 1:
        raise ValueError(f"threshold must be < 1, got {threshold} (MERGE_THRESHOLD)")
    device = torch.device(device)
    checked = [_check(b, np.zeros(len(b)))[0] for b in box_sets]
    roots: list[np.ndarray | None] = [None] * len(checked)
    for i, b in enumerate(checked):
        if len(b) < 2:
            roots[i] = np.arange(len(b))
    order = sorted((i for i, r in enumerate(roots) if r is None), key=lambda i: len(checked[i]))
    # On a CPU the steps' tensors hold a few thousand numbers: threads cost more than they
    # save (tens of times more on a loaded machine), so the merge runs on one.
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        _merge_chunks(checked, order, roots, threshold, device, max_pairs)
    finally:
        torch.set_num_threads(threads)
    out = []
    for b, root in zip(checked, roots):
        firsts, assignment = np.unique(root, return_inverse=True)
        counts = np.bincount(assignment, minlength=len(firsts)).astype(np.float64)
        sums = np.stack([np.bincount(assignment, b[:, k], len(firsts)) for k in range(4)], 1)
        out.append((sums.reshape(-1, 4) / counts[:, None], assignment.astype(np.int64)))
    return out


class DeviceMerges:
    """The merges of a pass on ``device`` (decision MERGE_PATH, :mod:`overfeat.merge_workers`),
    in the interface of :class:`overfeat.merge_workers.MergePool`: ``submit(sets, threshold)``
    merges a batch's sets together with :func:`batched_greedy_merge` and returns them as
    :class:`~overfeat.merge_workers.PendingMerges`; :attr:`lag` 0 (the device runs them in
    order with the forward passes)."""

    lag = 0

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)

    def submit(self, sets: Sequence[np.ndarray], threshold: float):
        from overfeat.merge_workers import MergedSet, PendingMerges

        start = time.thread_time()
        merged = batched_greedy_merge(sets, threshold, self.device)
        # the batch's CPU time, spread over its sets by their boxes (what a set costs is not
        # separable when they run together)
        cpu = time.thread_time() - start
        total = max(1, sum(len(s) for s in sets))
        return PendingMerges([MergedSet(b, a, cpu * len(s) / total)
                              for s, (b, a) in zip(sets, merged)])  # fmt: skip

    def close(self) -> None:
        pass

    def __enter__(self) -> DeviceMerges:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
