"""The engine's GPU path: bf16 autocast and channels_last on CUDA (skips itself without CUDA)."""

from __future__ import annotations

import math

import pytest
import torch
from test_engine_support import TinyImages, tiny_config

from overfeat.data import collate_skip_corrupt
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.train import train_classifier


@pytest.mark.gpu
def test_bf16_channels_last_run_trains_and_resumes_exactly_on_cuda(tmp_path):
    def run(out, **kw):
        config = tiny_config(out, device="cuda", amp="auto", channels_last="auto",
                             checkpoint_every=3, **kw)  # fmt: skip
        return train_classifier(
            config,
            train_set=TinyImages(40),
            val_set=TinyImages(13, seed=1),
            collate_fn=collate_skip_corrupt,
            **({"resume": "auto"} if kw.get("stop_after_steps") is None else {}),
        )

    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    full = run(tmp_path / "full")
    assert full["status"] == "finished" and math.isfinite(full["train_loss"])
    run(tmp_path / "part", stop_after_steps=7)
    run(tmp_path / "part")
    a = torch.load(list_checkpoints(tmp_path / "full")[-1], weights_only=True)
    b = torch.load(list_checkpoints(tmp_path / "part")[-1], weights_only=True)
    for name, w in a["model"].items():
        assert torch.equal(w, b["model"][name]), name
