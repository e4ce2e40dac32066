"""Box geometry between the frames a predicted box passes through (§4.1–§4.3).

A box lives in one of three frames: the original image (``H × W``), a scale image (the original
resized to ``h × w``, Table 5, :func:`overfeat.scales.scale_input_size`), and the mirror image of
a scale image (§3.3's flips). Boxes are inclusive pixel boxes ``(x1, y1, x2, y2)`` as everywhere
in the project (ARCHITECTURE.md, "Boxes"): the box covers the pixel columns x1..x2, i.e. the
continuous span ``[x1, x2 + 1)`` between pixel edges. Coordinates may be real-valued inside the
model; :func:`to_pixel_boxes` is the one place they become integer pixels.

Every mapping works on the continuous edges ``x1`` and ``x2 + 1``:

- resizing ``w → W`` (bilinear resizing with ``align_corners=False`` maps pixel edge ``u`` to
  ``u · W / w``): ``x1' = x1 · W/w``, ``x2' = (x2 + 1) · W/w − 1``, and likewise in y with the
  heights;
- mirroring an image of width ``w`` maps edge ``u`` to ``w − u``: ``x1' = w − 1 − x2``,
  ``x2' = w − 1 − x1`` (y unchanged).

Arrays are torch tensors ``(..., 4)``; sizes are ``(rows, cols)`` = ``(H, W)``.
"""

from __future__ import annotations

import torch

__all__ = [
    "MIN_BOX_SIDE",
    "flip_boxes",
    "ordered_boxes",
    "original_to_scale_image",
    "resize_boxes",
    "scale_image_to_original",
    "to_pixel_boxes",
]

Size = tuple[int, int]

# Decision ORDERED_EDGES: a regressor can put a box's right edge left of its left edge (nothing
# in the ℓ2 loss forbids it). Such a pair of edges is read as the span between them, and a span
# under MIN_BOX_SIDE pixels is widened about its centre to that, so every box handed to the merge
# has a positive area.
MIN_BOX_SIDE = 1.0


def _float(boxes) -> torch.Tensor:
    boxes = torch.as_tensor(boxes)
    if boxes.shape[-1:] != (4,):
        raise ValueError(f"boxes must be (..., 4) as (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    return boxes if boxes.is_floating_point() else boxes.double()


def _size(size) -> Size:
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (rows, cols) with both ≥ 1, got {size!r}")
    return int(size[0]), int(size[1])


def resize_boxes(boxes, from_size: Size, to_size: Size) -> torch.Tensor:
    """``boxes: (..., 4)`` in an image of ``from_size`` → the same boxes after the image is
    resized to ``to_size`` (continuous edges scale: ``x1' = x1·r``, ``x2' = (x2 + 1)·r − 1``)."""
    boxes = _float(boxes)
    (fh, fw), (th, tw) = _size(from_size), _size(to_size)
    scale = boxes.new_tensor([tw / fw, th / fh, tw / fw, th / fh])
    shift = boxes.new_tensor([0.0, 0.0, 1.0, 1.0])
    return (boxes + shift) * scale - shift


def flip_boxes(boxes, width: int) -> torch.Tensor:
    """``boxes: (..., 4)`` in an image ``width`` pixels wide → the same boxes in its mirror image
    (``x1' = width − 1 − x2``, ``x2' = width − 1 − x1``). Its own inverse."""
    boxes = _float(boxes)
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([width - 1 - x2, y1, width - 1 - x1, y2], dim=-1)


def scale_image_to_original(
    boxes, scale_size: Size, image_size: Size, flipped: bool = False
) -> torch.Tensor:
    """Boxes predicted on a scale image of ``scale_size`` (its mirror image when ``flipped``)
    → the original image's frame, ``image_size``. ``(..., 4)`` → ``(..., 4)``, real-valued."""
    boxes = _float(boxes)
    if flipped:
        boxes = flip_boxes(boxes, _size(scale_size)[1])
    return resize_boxes(boxes, scale_size, image_size)


def original_to_scale_image(
    boxes, image_size: Size, scale_size: Size, flipped: bool = False
) -> torch.Tensor:
    """Boxes in the original image (ground truth) → a scale image of ``scale_size`` (its mirror
    image when ``flipped``): the inverse of :func:`scale_image_to_original`."""
    boxes = resize_boxes(boxes, image_size, scale_size)
    return flip_boxes(boxes, _size(scale_size)[1]) if flipped else boxes


def ordered_boxes(boxes, min_side: float = MIN_BOX_SIDE) -> torch.Tensor:
    """``(..., 4)`` → boxes with ``x2 − x1 + 1 ≥ min_side`` and likewise in y (ORDERED_EDGES):
    each pair of edges is sorted, and a span under ``min_side`` is widened about its centre."""
    boxes = _float(boxes)
    lo = torch.minimum(boxes[..., :2], boxes[..., 2:] + 1)  # continuous edges
    hi = torch.maximum(boxes[..., :2], boxes[..., 2:] + 1)
    centre, half = (lo + hi) / 2, ((hi - lo) / 2).clamp(min=min_side / 2)
    return torch.cat([centre - half, centre + half - 1], dim=-1)


def to_pixel_boxes(boxes, image_size: Size) -> torch.Tensor:
    """Real-valued boxes ``(..., 4)`` → int64 inclusive pixel boxes inside an image of
    ``image_size``, the form the devkits read (PIXEL_BOX_ROUNDING)."""
    # Decision PIXEL_BOX_ROUNDING: each coordinate is rounded to the nearest pixel (halves to
    # even, as torch.round) and clipped to 0..W−1 / 0..H−1, since the devkits score boxes inside
    # the image; a box left with x2 < x1 (wholly outside the image, or inverted) gets x2 = x1
    # (likewise y), one pixel wide, so that every prediction is a valid box.
    boxes = _float(boxes)
    h, w = _size(image_size)
    limit = boxes.new_tensor([w - 1, h - 1, w - 1, h - 1])
    out = torch.minimum(boxes.round().clamp(min=0), limit).long()
    return torch.cat([out[..., :2], torch.maximum(out[..., 2:], out[..., :2])], dim=-1)
