"""The released networks' class order, and its conversion to the project's sorted-WNID index.

The release's 1000 outputs follow the ILSVRC2012 devkit's ``ILSVRC2012_ID`` order: output ``i``
is the class with ILSVRC2012_ID ``i + 1`` (0 = n02119789 kit fox, 999 = n03255030 dumbbell), not
the sorted-WNID order of torchvision and of this project (overfeat-release.md §1.4). The release
ships names only, no WNIDs, and the name "crane" occurs twice (428 the bird, 544 the machine;
sermanet/OverFeat issue #28), so every mapping here goes by **position** through a
:class:`evaluation.labels.ClassLabels` in ILSVRC2012_ID order (the devkit meta the user points
at, or the order shipped with the package, :func:`overfeat.data.class_order.ilsvrc2012_labels`),
never by name.

Permutations are ``(1000,)`` int64 arrays used as ``scores[:, perm]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from evaluation.labels import ClassLabels

__all__ = [
    "permute_classifier_to_sorted",
    "release_names",
    "release_to_sorted",
    "release_wnids",
    "sorted_to_release",
]


def _devkit_wnids(labels: ClassLabels) -> tuple[str, ...]:
    if labels.devkit_wnids is None:
        raise ValueError(
            "the release's class order is the devkit's ILSVRC2012_ID order; read the labels with "
            "ClassLabels.from_devkit_meta(meta.mat), a sorted synset mapping cannot place them"
        )
    return labels.devkit_wnids


def release_wnids(labels: ClassLabels) -> tuple[str, ...]:
    """The WNID of each release output: ``release_wnids(labels)[i]`` has ILSVRC2012_ID ``i + 1``."""
    return _devkit_wnids(labels)


def release_names(labels: ClassLabels) -> tuple[str, ...]:
    """The devkit meta's ``words`` of each release output, in release order (by position).

    Decision CLASSIFY_NAMES: the release's own name list is compiled into its header, which its
    licence forbids copying, so names come from the devkit meta the user supplies; by position,
    which keeps the two "crane" classes (release outputs 428 and 544) apart.
    """
    return tuple(labels.words[j] for j in sorted_to_release(labels))


def release_to_sorted(labels: ClassLabels) -> np.ndarray:
    """``(1000,)`` permutation ``perm`` with ``scores_sorted = scores_release[:, perm]``:
    ``perm[j]`` is the release output of the class whose sorted-WNID index is ``j``."""
    _devkit_wnids(labels)
    return labels.index_to_devkit - 1


def sorted_to_release(labels: ClassLabels) -> np.ndarray:
    """``(1000,)`` inverse permutation, ``scores_release = scores_sorted[:, perm]``: ``perm[i]``
    is the sorted-WNID index of release output ``i``."""
    _devkit_wnids(labels)
    return labels.devkit_to_index[1:].copy()


@torch.no_grad()
def permute_classifier_to_sorted(model: nn.Module, labels: ClassLabels) -> None:
    """Reorder the last classifier layer's output rows (weight and bias) in place, so the
    network's outputs follow the sorted-WNID index (overfeat-release.md §1.2 checklist item 6)."""
    last = [m for m in model.classifier.modules() if isinstance(m, nn.Conv2d)][-1]
    perm = torch.from_numpy(release_to_sorted(labels))
    if last.out_channels != len(perm):
        raise ValueError(f"the classifier has {last.out_channels} outputs, the labels {len(perm)}")
    last.weight.copy_(last.weight[perm])
    last.bias.copy_(last.bias[perm])
