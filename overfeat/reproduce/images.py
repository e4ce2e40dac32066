"""Moved to :mod:`overfeat.inference` (localization and detection read their images the same
way); this name stays for code that imports it from here."""

from overfeat.inference import (
    SCORED_AS_WRONG,
    ValidationImages,
    autocast,
    collate_images,
    image_batches,
    skip_message,
)

__all__ = [
    "SCORED_AS_WRONG",
    "ValidationImages",
    "autocast",
    "collate_images",
    "image_batches",
    "skip_message",
]
