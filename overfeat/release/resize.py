"""ImageMagick 6's ``-resize``, as the release's ``convert IMG -resize 231x231^ ppm:-`` runs it.

The release resizes every image with ImageMagick's default filter (overfeat-release.md §1.3).
ImageMagick 6 (``magick/resize.c``: ``ResizeImage``, ``HorizontalFilter``, ``VerticalFilter``;
``magick/geometry.c``: ``ParseMetaGeometry``) does, in its default Q16 build without HDRI
(checked here against ``convert`` 6.9.11-60 Q16):

- **geometry** ``SxS^``: scale = max(S / width, S / height), each side ``floor(scale·side + ½)``;
- **filter**: Mitchell–Netravali (cubic B = C = 1/3, support 2) when the area grows
  (``x_factor · y_factor > 1``) or the image is grey, bilevel, palette or has alpha (ImageMagick
  holds those as PseudoClass or matte); else Lanczos (sinc windowed by sinc, support 3);
- **two separable passes**, horizontal first when ``x_factor > y_factor``, else vertical; each
  output sample centred at ``(i + ½) / factor``, contributions from input pixels
  ``floor(centre − support + ½)`` to ``floor(centre + support + ½) − 1``, clipped to the image and
  renormalised; when shrinking, the support is widened and the filter stretched by 1 / factor;
- **16-bit samples**: 8-bit input becomes ``v · 257``; each pass rounds and clamps to 0…65535
  (``ClampToQuantum``), the writer scales back to 8 bits (``ScaleQuantumToChar``). The clamp
  between the passes matters: without it, ringing on high-contrast content differs by up to 19.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

__all__ = [
    "FILTER_SUPPORT",
    "MITCHELL_B",
    "MITCHELL_C",
    "PSEUDO_CLASS_OR_ALPHA_MODES",
    "contributions",
    "default_filter",
    "fill_size",
    "filter_weight",
    "imagemagick_resize",
    "resample",
]

# Mitchell & Netravali 1988, ImageMagick's "Mitchell": the cubic with B = C = 1/3.
MITCHELL_B = MITCHELL_C = 1.0 / 3.0
FILTER_SUPPORT = {"mitchell": 2.0, "lanczos": 3.0}

# Pillow modes ImageMagick reads as PseudoClass (grey, bilevel, palette: verified on PNG and
# JPEG with ImageMagick 6.9.11) or with an alpha channel (matte); ``ResizeImage`` then takes
# Mitchell whichever way the image is resized.
PSEUDO_CLASS_OR_ALPHA_MODES = frozenset({"1", "L", "P", "LA", "La", "PA", "RGBA", "RGBa"})

_QUANTUM_RANGE = 65535.0  # Q16
_QUANTUM_PER_CHAR = 257  # 255 · 257 = 65535
_MAGICK_EPSILON = 1e-12  # ImageMagick 6.9's MagickEpsilon, added to each sample centre


def fill_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(width, height)`` after ImageMagick's geometry ``{size}x{size}^`` (fill the square): the
    shorter side becomes ``size``, the other ``floor(scale · side + ½)`` (``ParseMetaGeometry``)."""
    scale = max(size / width, size / height)
    return max(math.floor(scale * width + 0.5), 1), max(math.floor(scale * height + 0.5), 1)


def default_filter(mode: str, x_factor: float, y_factor: float) -> str:
    """ImageMagick's default ``-resize`` filter for a Pillow ``mode`` scaled by the two factors."""
    if mode in PSEUDO_CLASS_OR_ALPHA_MODES or x_factor * y_factor > 1.0:
        return "mitchell"
    return "lanczos"


def filter_weight(x: np.ndarray, kind: str) -> np.ndarray:
    """The filter at distances ``x`` (any shape, in input pixels of the unstretched filter)."""
    x = np.abs(x)
    if kind == "mitchell":
        b, c = MITCHELL_B, MITCHELL_C
        # Mitchell & Netravali's two cubic pieces, each divided by 6 (as ImageMagick's CubicBC).
        near = (6 - 2 * b) / 6 + x * x * ((-18 + 12 * b + 6 * c) / 6 + x * (12 - 9 * b - 6 * c) / 6)
        far = (8 * b + 24 * c) / 6 + x * (
            (-12 * b - 48 * c) / 6 + x * ((6 * b + 30 * c) / 6 + x * (-b - 6 * c) / 6)
        )
        return np.where(x < 1, near, np.where(x < 2, far, 0.0))
    if kind == "lanczos":
        # ImageMagick evaluates sinc by a polynomial fit (SincFast, relative error < 2.2e-8 in
        # Q16), far below one 16-bit step; the exact sinc is used here.
        return np.where(x < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    raise ValueError(f"filter must be 'mitchell' or 'lanczos', got {kind!r}")


def contributions(n_in: int, n_out: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """One pass's input pixels and weights: ``(index (n_out, T), weight (n_out, T))``, each row's
    weights summing to 1; unused taps hold weight 0 (and a valid index)."""
    factor = n_out / n_in
    stretch = max(1.0 / factor + _MAGICK_EPSILON, 1.0)  # widened only when shrinking
    support = stretch * FILTER_SUPPORT[kind]
    centre = (np.arange(n_out) + 0.5) / factor + _MAGICK_EPSILON
    start = np.maximum(centre - support + 0.5, 0.0).astype(np.int64)
    stop = np.minimum(centre + support + 0.5, float(n_in)).astype(np.int64)
    index = start[:, None] + np.arange(int((stop - start).max()))[None, :]
    used = index < stop[:, None]
    weight = np.where(used, filter_weight((index - centre[:, None] + 0.5) / stretch, kind), 0.0)
    density = weight.sum(axis=1, keepdims=True)
    weight /= np.where(density == 0.0, 1.0, density)  # ImageMagick leaves a zero sum alone
    return np.minimum(index, n_in - 1), weight


def _pass(samples: np.ndarray, axis: int, n_out: int, kind: str) -> np.ndarray:
    """Filter 16-bit ``samples`` (uint16) along ``axis`` in float64; rounded and clamped back to
    uint16 as ``ClampToQuantum`` does."""
    index, weight = contributions(samples.shape[axis], n_out, kind)
    shape = [1] * samples.ndim
    shape[axis] = n_out
    out = np.zeros(samples.shape[:axis] + (n_out,) + samples.shape[axis + 1 :])
    for t in range(index.shape[1]):  # a few taps (2·support + 3 at most), each a whole array
        out += np.take(samples, index[:, t], axis=axis) * weight[:, t].reshape(shape)
    return np.floor(np.clip(out, 0.0, _QUANTUM_RANGE) + 0.5).astype(np.uint16)


def resample(pixels: np.ndarray, width: int, height: int, kind: str) -> np.ndarray:
    """``pixels: (H, W, C)`` uint8 → ``(height, width, C)`` uint8 by ``kind``, in ImageMagick's two
    16-bit passes."""
    h, w = pixels.shape[:2]
    x_factor, y_factor = width / w, height / h
    samples = pixels.astype(np.uint16) * np.uint16(_QUANTUM_PER_CHAR)  # ScaleCharToQuantum
    if x_factor > y_factor:
        samples = _pass(_pass(samples, 1, width, kind), 0, height, kind)
    else:
        samples = _pass(_pass(samples, 0, height, kind), 1, width, kind)
    q = samples.astype(np.int64) + 128
    return ((q - (q >> 8)) >> 8).astype(np.uint8)  # ScaleQuantumToChar


def imagemagick_resize(image: Image.Image, width: int, height: int) -> np.ndarray:
    """``convert IMAGE -resize {width}x{height}!``: ``(height, width, 3)`` uint8 RGB.

    The filter is ImageMagick's default for the image's mode and the scale factors
    (:func:`default_filter`); an image already of that size is returned unchanged. Colours of
    partly transparent pixels are resampled unweighted (ImageMagick weights them by alpha; the
    release's ILSVRC inputs are opaque JPEGs).
    """
    pixels = np.asarray(image.convert("RGB"))
    w, h = image.size
    if (width, height) == (w, h):
        return pixels.copy()
    return resample(pixels, width, height, default_filter(image.mode, width / w, height / h))
