"""Shared pieces of the regressor and detector training tests: a tiny synthetic ILSVRC on disk,
a freshly built toy classifier saved as a run, and small spatial configs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic
from overfeat.engine.config import TrainConfig
from overfeat.engine.metrics_log import read_metrics
from overfeat.engine.train import TIMING_KEYS, he_initialisation
from overfeat.models import build_model

TOY_WIDTH = 1 / 16  # fast geometry with 6 … 256 channels
CLASSES = 3


def write_tiny_synthetic(root: Path, classes: int = CLASSES, per_class: int = 4) -> Path:
    """``classes × per_class`` boxed CLS-LOC training images (about 500 × 375 each)."""
    write_synthetic(root, SyntheticConfig(seed=5, classes=classes, train_per_class=per_class,
                                          val_per_class=1, det_images=0, class_colours=True))  # fmt: skip
    return root


def save_toy_classifier(run: Path, num_classes: int = CLASSES, arch: str = "fast",
                        width: float = TOY_WIDTH, seed: int = 0) -> Path:  # fmt: skip
    """A freshly built (He-initialised) toy network saved as a classifier run's checkpoint."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=num_classes, width=width)
    he_initialisation(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    config = TrainConfig(out=str(run), arch=arch, width=width, epochs=1)
    save_checkpoint_atomic(
        {
            "model": model.state_dict(),
            "model_config": model.config,
            "train_config": config.to_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": {},
            "progress": {"epoch": 1, "step_in_epoch": 0, "global_step": 1},
        },
        checkpoint_path(run, 1),
    )
    return run


def metrics(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS}
            for r in read_metrics(out / "metrics.jsonl")]  # fmt: skip


def environment(out: Path) -> dict:
    return json.loads((out / "environment.json").read_text())


def assert_same_tensors(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
