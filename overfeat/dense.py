"""Dense (sliding-window) evaluation at one scale with offset max-pooling, §3.3 Fig. 3 and §3.5.

The network is applied to the whole image at once: layers 1–5 run once, the last max-pool is
applied at every offset (Δx, Δy), the classifier (its "fully-connected" layers are convolutions,
§3.5) slides over each pooled map, and the per-offset maps are interleaved into one output map
whose outputs are ``output_stride`` pixels apart (16 fast / 12 accurate fine, 32 / 36 coarse).

    x (N, 3, H, W)
      └─ model.features ─► layer-5 map            (N, C5, h5, w5)            §3.3 (a)
      └─ offset_max_pool ─► pooled maps           (d²·N, C5, hp, wp)          §3.3 (b)–(c)
      └─ model.classifier ─► classifier maps      (d²·N, C, hc, wc)           §3.3 (d)
      └─ interleave_offsets ─► output map         (N, C, hc·d, wc·d)          §3.3 (e), Fig. 3e

All d² offsets go through the classifier in one batched call (offset-major in the batch).

What dense evaluation computes for one output equals the network applied to that output's
window (:func:`window_boxes`) *except* through the zero-padding of the 3×3 layers: inside an
image those layers see the real neighbouring cells where an isolated crop sees zeros, so an
output also depends on up to 48 pixels of context around its window
(:func:`overfeat.geometry.receptive_field` with ``padding_context=True``). This is inherent to
the architecture of Tables 1 and 3, and is the same in the released networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from overfeat.geometry import (
    offsets_per_side,
    output_map_size,
    output_stride,
    receptive_field,
)
from overfeat.models import ArchSpec

__all__ = ["dense_scores", "interleave_offsets", "offset_max_pool", "window_boxes"]


def offset_max_pool(layer5: torch.Tensor, k: int, offsets: str = "fine") -> torch.Tensor:
    """The last k×k max-pool applied at every offset (Δy, Δx) ∈ {0..k−1}², §3.3 (b)–(c).

    ``layer5: (N, C, h5, w5)`` → ``(d²·N, C, hp, wp)``, offset-major: batch index
    ``(Δy·d + Δx)·N + n``; ``d = k`` (fine) or 1 (coarse, Δ = 0 only). Every offset is cropped
    to ``hp = (h5 − (d − 1)) // k`` rows (likewise columns), the count the largest offset has,
    so the maps interleave into a regular grid (decision OFFSET_COMMON_CROP): at sizes that are
    not tiling sizes, smaller offsets lose their last pooled row/column at the bottom/right
    border, and the windows behind it go unevaluated (:func:`overfeat.geometry.dropped_border`).

    Pooling at offset Δ is a stride-1 k×k max-pool sampled every k cells from Δ: one stride-1
    pool computes every offset's cells at once, and a reshape moves the offsets into the batch.
    """
    if offsets not in ("fine", "coarse"):
        raise ValueError(f"offsets must be 'fine' or 'coarse', got {offsets!r}")
    n, c, h5, w5 = layer5.shape
    d = k if offsets == "fine" else 1
    hp, wp = (h5 - (d - 1)) // k, (w5 - (d - 1)) // k
    if hp < 1 or wp < 1:
        raise ValueError(
            f"layer-5 map {h5}x{w5} is smaller than one {k}x{k} pool at every offset; "
            "use a larger input image"
        )
    if d == 1:
        return F.max_pool2d(layer5[:, :, : hp * k, : wp * k], k, k)
    # every k×k maximum: cell (y, x) is the max over layer5[y : y + k, x : x + k]
    every = F.max_pool2d(layer5, k, stride=1)[:, :, : hp * k, : wp * k]
    # (N, C, hp·k, wp·k) → (N, C, hp, Δy, wp, Δx): cell (i, Δy) is row Δy + k·i
    every = every.reshape(n, c, hp, k, wp, k)
    return every.permute(3, 5, 0, 1, 2, 4).reshape(k * k * n, c, hp, wp)


def interleave_offsets(maps: torch.Tensor, d: int) -> torch.Tensor:
    """Interleave the per-offset classifier maps into one output map, §3.3 (e) and Fig. 3e.

    ``maps: (d²·N, C, hc, wc)`` offset-major as :func:`offset_max_pool` orders them →
    ``(N, C, hc·d, wc·d)`` with ``out[n, :, i·d + Δy, j·d + Δx] = maps[(Δy·d + Δx)·N + n, :, i, j]``:
    output row ``r`` is the window whose layer-5 origin is row ``r`` (offset Δ plus k·i, with k = d
    at fine stride), so neighbouring outputs are one layer-5 cell apart.
    """
    b, c, hc, wc = maps.shape
    if b % (d * d):
        raise ValueError(f"batch {b} is not a multiple of d² = {d * d} offsets")
    n = b // (d * d)
    out = maps.reshape(d, d, n, c, hc, wc).permute(2, 3, 4, 0, 5, 1)
    return out.reshape(n, c, hc * d, wc * d)


def dense_scores(model: nn.Module, x: torch.Tensor, offsets: str = "fine") -> torch.Tensor:
    """Raw class scores of every window of ``x`` at fine or coarse stride, §3.3 and §3.5.

    ``x: (N, 3, H, W)`` → ``(N, C, H', W')`` with ``(H', W') =
    overfeat.geometry.output_map_size(model.spec, (H, W), offsets)``; output ``(r, c)`` belongs
    to the input window ``window_boxes(model, (H, W), offsets)[r, c]``. No softmax is applied.
    """
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (N, 3, H, W), got {tuple(x.shape)}")
    spec: ArchSpec = model.spec
    d = offsets_per_side(spec, offsets)
    pooled = offset_max_pool(model.features(x), spec.last_pool, offsets)
    if min(pooled.shape[-2:]) < spec.classifier_kernel:
        raise ValueError(
            f"input {x.shape[-2]}x{x.shape[-1]} gives {pooled.shape[-2]}x{pooled.shape[-1]} pooled "
            f"cells per offset, fewer than the classifier's {spec.classifier_kernel}x"
            f"{spec.classifier_kernel}; the {spec.name} network needs at least "
            f"{receptive_field(spec)} pixels (+ {output_stride(spec, offsets) * (d - 1)} at "
            f"{offsets} stride) per side"
        )
    return interleave_offsets(model.classifier(pooled), d)


def window_boxes(
    model: nn.Module | ArchSpec, size: tuple[int, int], offsets: str = "fine"
) -> torch.Tensor:
    """Input window behind each output of :func:`dense_scores`, as inclusive pixel boxes.

    ``size = (H, W)`` → ``(H', W', 4)`` int64, ``[r, c] = (x1, y1, x2, y2)`` with
    ``x1 = c·s``, ``y1 = r·s`` (``s`` = :func:`overfeat.geometry.output_stride`) and side
    :func:`overfeat.geometry.receptive_field` (231 fast, 221 accurate), 0-based and inclusive
    as every box in the project (ARCHITECTURE.md). The window is what the network sees as a
    training crop; the output additionally depends on up to 48 pixels of padding context around
    it (module docstring).
    """
    spec: ArchSpec = model if isinstance(model, ArchSpec) else model.spec
    rows, cols = output_map_size(spec, size, offsets)
    s = output_stride(spec, offsets)
    side = receptive_field(spec)
    y1 = (torch.arange(rows, dtype=torch.int64) * s).view(rows, 1).expand(rows, cols)
    x1 = (torch.arange(cols, dtype=torch.int64) * s).view(1, cols).expand(rows, cols)
    return torch.stack([x1, y1, x1 + side - 1, y1 + side - 1], dim=-1)
