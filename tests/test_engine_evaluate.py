"""Top-1 / top-5 error counting against a brute-force ranking written here."""

from __future__ import annotations

import pytest
import torch

from overfeat.engine.evaluate import wrong_counts


def _brute_force_misses(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    misses = 0
    for row, label in zip(logits.tolist(), labels.tolist()):
        ranked = sorted(range(len(row)), key=lambda c: -row[c])
        misses += label not in ranked[:k]
    return misses


@pytest.mark.parametrize("num_classes", [3, 5, 10, 1000])
def test_top1_and_top5_misses_equal_a_brute_force_ranking(num_classes):
    g = torch.Generator().manual_seed(num_classes)
    logits = torch.randn(64, num_classes, generator=g)
    labels = torch.randint(0, num_classes, (64,), generator=g)
    top1, top5 = wrong_counts(logits, labels)
    assert top1.item() == _brute_force_misses(logits, labels, 1)
    # With fewer than five classes every guess list holds the truth: top-5 error is 0.
    assert top5.item() == _brute_force_misses(logits, labels, min(5, num_classes))


def test_hand_worked_top5_case():
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1], [1.0, 2, 3, 4, 5, 6]])
    labels = torch.tensor([5, 5])  # row 0: label ranked 6th (miss); row 1: ranked 1st (hit)
    assert [t.item() for t in wrong_counts(logits, labels)] == [1.0, 1.0]
