"""The detector's class layer in the DET label space: 200 DET classes + background.

A detector made from a CLS-LOC classifier (:func:`overfeat.engine.detector.detector_network`) has
C + 1 outputs, the classifier's 1,000 classes and background. The DET challenge scores 200
classes, 150 of them CLS-LOC classes and 50 their ancestors (:mod:`evaluation.hierarchy`).
:func:`det_class_layer` turns the last layer's C + 1 rows into 200 + 1 rows so that each DET
output starts as the network's belief in "this class or any class under it".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

__all__ = ["det_class_layer"]


def det_class_layer(
    weight: torch.Tensor,
    bias: torch.Tensor,
    cls_wnids: Sequence[str],
    det_wnids: Sequence[str],
    mapping: Mapping[str, Sequence[str]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a (C + 1)-output layer → rows of a (D + 1)-output layer.

    ``weight: (C + 1, ...)`` and ``bias: (C + 1,)``, rows 0..C-1 the classes ``cls_wnids`` and
    row C background; ``det_wnids`` the D DET classes in output order; ``mapping`` each DET class
    → the classes of ``cls_wnids`` it covers (:func:`evaluation.hierarchy.det_class_cover`) →
    ``(weight (D + 1, ...), bias (D + 1,))``, new tensors, row D background (the old row C).

    A DET class that is a class of ``cls_wnids`` takes its row exactly; an ancestor takes
    DET_ANCESTOR_INIT. A ``ValueError`` names a DET class that covers none of ``cls_wnids``.
    """
    c = len(cls_wnids)
    if weight.shape[0] != c + 1 or bias.shape != (c + 1,):
        raise ValueError(
            f"weight {tuple(weight.shape)} / bias {tuple(bias.shape)}: expected {c + 1} rows, "
            f"the {c} classes of cls_wnids and background"
        )
    row = {w: i for i, w in enumerate(cls_wnids)}
    empty = [d for d in det_wnids if not any(w in row for w in mapping.get(d, ()))]
    if empty:
        raise ValueError(f"DET classes covering none of the network's classes: {', '.join(empty)}")
    new_w = weight.new_empty((len(det_wnids) + 1, *weight.shape[1:]))
    new_b = bias.new_empty(len(det_wnids) + 1)
    for k, d in enumerate(det_wnids):
        rows = [row[w] for w in mapping[d] if w in row]
        if rows == [row.get(d)]:
            new_w[k], new_b[k] = weight[rows[0]], bias[rows[0]]
            continue
        # Decision DET_ANCESTOR_INIT: an ancestor's score should start as log Σ exp(s_d) over
        # its n descendants d, so that its softmax mass is theirs summed. That is not linear in
        # the features; the linear layer's nearest choice is the mean of the descendants' rows
        # with log n added to the bias: s = mean(s_d) + log n, which equals log Σ exp(s_d)
        # when the descendants score alike and never exceeds it (Jensen), so an ancestor never
        # starts more confident than its descendants together. With n = 1 this is the leaf
        # rule, so a DET class with a single CLS-LOC descendant takes that row exactly too.
        idx = torch.tensor(rows, device=weight.device)
        new_w[k] = weight.index_select(0, idx).mean(dim=0)
        new_b[k] = bias.index_select(0, idx).mean() + math.log(len(rows))
    new_w[-1], new_b[-1] = weight[c], bias[c]
    return new_w, new_b
