"""Moved to :mod:`overfeat.progress`, which the training engine and the data tools share; these
names stay importable from here."""

from overfeat.progress import LOG_EVERY_PERCENT, Progress, progress

__all__ = ["LOG_EVERY_PERCENT", "Progress", "progress"]
