"""Moved to :mod:`overfeat.data.sampler` (the DALI loader in :mod:`overfeat.data` uses it too, and
the data layer imports nothing from the engine); this name stays for code that imports it from
here."""

from overfeat.data.sampler import ExactEvalSampler, ShardedTrainSampler, epoch_permutation

__all__ = ["ExactEvalSampler", "ShardedTrainSampler", "epoch_permutation"]
