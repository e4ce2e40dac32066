"""overfeat.engine: classification training (§3.1) on one CPU, N GPUs or many nodes.

- ``config``: ``TrainConfig`` (the paper's recipe as defaults) and the named toy recipe;
- ``train``: ``train_classifier`` (the loop, validation, checkpoints, exact resume);
- ``sampler``: shards that make results independent of the process count;
- ``distributed``: torchrun / DDP set-up (NCCL on GPU, gloo on CPU);
- ``checkpoint``: atomic checkpoints of plain values, ``--resume auto``;
- ``metrics_log``: the JSONL metrics log; ``report``: renders a run into reports/training/;
- ``cli``: ``overfeat train classifier`` and ``overfeat train report``.
"""

from overfeat.engine.config import RECIPES, TrainConfig, recipe
from overfeat.engine.train import evaluate, train_classifier

__all__ = ["RECIPES", "TrainConfig", "evaluate", "recipe", "train_classifier"]
