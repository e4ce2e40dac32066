"""Robust image decoding: every ILSVRC file becomes an RGB image, or a counted, named skip.

ImageNet's JPEGs are not all plain RGB: the train set holds grayscale JPEGs, CMYK JPEGs (some
with Adobe's inverted CMYK) and at least one PNG named ``.JPEG``; a copied or downloaded set can
also hold truncated, empty or garbage files. Decoding sniffs the format from the bytes (never
from the name), converts every mode to RGB, and turns any failure into :class:`CorruptImage`
carrying the file and the reason. :class:`SkipCounter` turns those into one warning per file and
a count, so a data loader never crashes deep inside a worker on one bad file.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = [
    "DRAFT_SHORT_SIDE_FACTOR",
    "PIL_ERRORS",
    "CorruptImage",
    "CorruptImageWarning",
    "SkipCounter",
    "decode_rgb",
    "decode_uint8",
    "pil_errors_as_corrupt",
    "plain_jpeg",
    "skip_warning",
]

# A JPEG may be decoded at 1/2, 1/4 or 1/8 of its size straight from the DCT coefficients
# (PIL ``draft``), several times faster for large photographs. Decision JPEG_DRAFT: allowed only
# while the decoded short side stays >= DRAFT_SHORT_SIDE_FACTOR x the size the transform resizes
# to, so the final antialiased resize still downsamples by at least 2 and the result is visually
# the same as a full decode. Most ILSVRC images (about 500x375) are never drafted at 256.
DRAFT_SHORT_SIDE_FACTOR = 2


class CorruptImage(Exception):
    """A file that cannot be decoded into an image: ``path`` and a one-line ``reason``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot decode image ({reason})")


# What PIL raises for a file it cannot read: truncation and bad markers as OSError, some
# malformed headers as SyntaxError/ValueError, an absurd size as DecompressionBombError.
PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@contextmanager
def pil_errors_as_corrupt(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, PIL's failures to read ``path`` become :class:`CorruptImage`."""
    try:
        yield
    except CorruptImage:
        raise
    except UnidentifiedImageError:
        raise CorruptImage(path, "not an image format PIL recognises") from None
    except PIL_ERRORS as exc:
        raise CorruptImage(path, f"{type(exc).__name__}: {exc}") from None


class CorruptImageWarning(UserWarning):
    """Issued once per undecodable file; the file is skipped and counted."""


def decode_rgb(
    path: str | os.PathLike, short_side: int | None = None, data: bytes | None = None
) -> Image.Image:
    """Decode ``path`` into a fully loaded RGB ``PIL.Image`` (any size, the file's own pixels).

    Grayscale (L, I;16, 1), palette (P), CMYK (incl. Adobe inverted CMYK, which PIL undoes),
    YCbCr and alpha (RGBA/LA, alpha dropped: decision ALPHA_DROPPED, ILSVRC has no meaningful
    alpha) images are converted to RGB. The format comes from the file's bytes, so a PNG named
    ``.JPEG`` decodes. ``short_side``: the short side the caller will resize to; lets a large JPEG
    be decoded at a reduced scale (decision JPEG_DRAFT above).

    ``data``: the file's bytes, when the caller has read them already (they are decoded instead of
    reading ``path`` again; ``path`` then only names the file in errors).

    Raises :class:`CorruptImage` for an empty, truncated, unidentifiable or otherwise broken file.
    """
    with pil_errors_as_corrupt(path):
        if (len(data) if data is not None else os.path.getsize(path)) == 0:
            raise CorruptImage(path, "empty file")
        with Image.open(path if data is None else io.BytesIO(data)) as img:
            if short_side is not None and img.format == "JPEG":
                want = DRAFT_SHORT_SIDE_FACTOR * short_side
                # draft keeps both sides >= the requested box, so the short side stays >= want.
                img.draft("RGB", (want, want))
            # load() inside the ``with`` so the whole file is read (and truncation detected: PIL
            # raises "image file is truncated" unless ImageFile.LOAD_TRUNCATED_IMAGES is set,
            # which this project never sets) before the file is closed.
            img.load()
            if img.mode == "RGB":
                return img  # fully loaded, so usable after the file is closed
            if img.mode in ("RGBA", "LA", "PA"):
                img = img.convert(img.mode[:-1] if img.mode != "PA" else "P")
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit grayscale: PIL's convert("RGB") clips instead of scaling.
                img = img.point(lambda v: v / 256).convert("L")
            return img.convert("RGB")


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"

# torchvision 0.29 warns on every decode that its decoders will move to TorchCodec; the warning
# names no problem of this project's use (one JPEG at a time, on the CPU) and would repeat per
# image in every loader worker.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision are deprecated",
    category=DeprecationWarning,
)


def plain_jpeg(data: bytes, mode: str) -> bool:
    """Whether ``data`` (a file's bytes, whose header PIL reads as ``mode``) is a complete RGB or
    grey JPEG, the file other decoders than PIL may take (FAST_JPEG_PATH; the DALI loader's
    DALI_DECODES_PLAIN_JPEG): not another format, not truncated, no trailing bytes, and not CMYK
    or YCCK (Adobe's inverted CMYK included), which PIL knows how to undo."""
    return data.startswith(_JPEG_START) and data.endswith(_JPEG_END) and mode in ("RGB", "L")


def _fast_jpeg(data: bytes, short_side: int | None) -> torch.Tensor | None:
    """``data`` decoded by libjpeg-turbo through ``torchvision.io.decode_jpeg``, or ``None``
    where :func:`decode_rgb` must decide (decision FAST_JPEG_PATH in :func:`decode_uint8`)."""
    if not data.startswith(_JPEG_START):
        return None  # not a JPEG: no header to read
    try:
        with Image.open(io.BytesIO(data)) as header:  # the header only: mode and size
            mode, size = header.mode, header.size
    except PIL_ERRORS:
        return None
    if not plain_jpeg(data, mode):
        return None
    if short_side is not None and min(size) >= 2 * DRAFT_SHORT_SIDE_FACTOR * short_side:
        return None  # PIL's draft decodes this one at a reduced scale, faster still
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                           mode=ImageReadMode.RGB)  # fmt: skip
    except RuntimeError:
        return None


def decode_uint8(path: str | os.PathLike, short_side: int | None = None) -> torch.Tensor:
    """:func:`decode_rgb` as a ``(3, H, W)`` uint8 tensor (the training loader's input).

    Decision FAST_JPEG_PATH: a complete baseline RGB or grayscale JPEG (ILSVRC's usual file) is
    decoded by libjpeg-turbo through ``torchvision.io.decode_jpeg`` (about 1.4x PIL's decode
    here), into a tensor with no PIL image in between. Every other file, including any the fast
    path would have to guess about (CMYK, truncated, trailing bytes, large enough for PIL's
    reduced-scale draft, not a JPEG), goes through :func:`decode_rgb`, which decides and raises
    :class:`CorruptImage` exactly as before. Both decode the same pixels (libjpeg-turbo with the
    same IDCT), which the tests check.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CorruptImage(path, f"{type(exc).__name__}: {exc}") from None
    if not data:
        raise CorruptImage(path, "empty file")
    fast = _fast_jpeg(data, short_side)
    if fast is not None:
        return fast
    pixels = np.asarray(decode_rgb(path, short_side, data))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def skip_warning(error: CorruptImage) -> str:
    """What a data set says about a file it cannot decode: the file, why, and what was done.

    No advice to delete it: a deleted file silently changes the data set (its class counts, an
    epoch's steps, what a run's numbers are over), where a skipped one is counted."""
    return (
        f"{error.path}: cannot decode ({error.reason}); skipped for this epoch and counted (a "
        "training run's metrics.jsonl gives the counts, train_skipped / val_skipped); every "
        "later epoch skips and counts it again without naming it again; the file is left as it is"
    )


class SkipCounter:
    """Counts undecodable files in this process and warns once per file.

    One instance lives in each dataset; in a ``DataLoader`` each worker process holds its own copy,
    so the authoritative per-batch count is the one :func:`overfeat.data.collate_skip_corrupt`
    returns.
    """

    def __init__(self) -> None:
        self.count = 0
        self._warned: set[str] = set()

    def skip(self, error: CorruptImage) -> None:
        self.count += 1
        if error.path not in self._warned:
            self._warned.add(error.path)
            warnings.warn(skip_warning(error), CorruptImageWarning, stacklevel=3)

    @property
    def files(self) -> list[str]:
        """The distinct files skipped so far, sorted."""
        return sorted(self._warned)
