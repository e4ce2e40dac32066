"""Robust image decoding: every ILSVRC file becomes an RGB image, or a counted, named skip.

ImageNet's JPEGs are not all plain RGB: the train set holds grayscale JPEGs, CMYK JPEGs (some
with Adobe's inverted CMYK) and at least one PNG named ``.JPEG``; a copied or downloaded set can
also hold truncated, empty or garbage files. Decoding sniffs the format from the bytes (never
from the name), converts every mode to RGB, and turns any failure into :class:`CorruptImage`
carrying the file and the reason. :class:`SkipCounter` turns those into one warning per file and
a count, so a data loader never crashes deep inside a worker on one bad file.
"""

from __future__ import annotations

import os
import warnings

from PIL import Image, UnidentifiedImageError

__all__ = [
    "DRAFT_SHORT_SIDE_FACTOR",
    "CorruptImage",
    "CorruptImageWarning",
    "SkipCounter",
    "decode_rgb",
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


class CorruptImageWarning(UserWarning):
    """Issued once per undecodable file; the file is skipped and counted."""


def decode_rgb(path: str | os.PathLike, short_side: int | None = None) -> Image.Image:
    """Decode ``path`` into a fully loaded RGB ``PIL.Image`` (any size, the file's own pixels).

    Grayscale (L, I;16, 1), palette (P), CMYK (incl. Adobe inverted CMYK, which PIL undoes),
    YCbCr and alpha (RGBA/LA, alpha dropped: decision ALPHA_DROPPED, ILSVRC has no meaningful
    alpha) images are converted to RGB. The format comes from the file's bytes, so a PNG named
    ``.JPEG`` decodes. ``short_side``: the short side the caller will resize to; lets a large JPEG
    be decoded at a reduced scale (decision JPEG_DRAFT above).

    Raises :class:`CorruptImage` for an empty, truncated, unidentifiable or otherwise broken file.
    """
    try:
        if os.path.getsize(path) == 0:
            raise CorruptImage(path, "empty file")
        with Image.open(path) as img:
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
    except CorruptImage:
        raise
    except UnidentifiedImageError:
        raise CorruptImage(path, "not an image format PIL recognises") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # PIL reports truncation and bad markers as OSError, some malformed headers as
        # SyntaxError/ValueError.
        raise CorruptImage(path, f"{type(exc).__name__}: {exc}") from None


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
            warnings.warn(
                f"{error.path}: skipped, cannot decode ({error.reason}); "
                "re-download or delete the file to silence this warning",
                CorruptImageWarning,
                stacklevel=3,
            )

    @property
    def files(self) -> list[str]:
        """The distinct files skipped so far, sorted."""
        return sorted(self._warned)
