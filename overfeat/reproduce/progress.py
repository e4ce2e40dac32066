"""Moved to :mod:`overfeat.progress` (inference and the reproductions share it); this name stays
for code that imports it from here."""

from overfeat.progress import LOG_EVERY_PERCENT, Progress, progress

__all__ = ["LOG_EVERY_PERCENT", "Progress", "progress"]
