"""``overfeat train classifier`` end to end on files written by the synthetic ILSVRC generator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from overfeat.cli import main
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.metrics_log import read_metrics


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "ilsvrc"
    # 4 classes × 6 training images, two of them damaged beyond decoding (the generator's
    # damage kinds cycle truncated, garbage, ...), and 4 × 2 validation images.
    config = SyntheticConfig(seed=1, classes=4, train_per_class=6, val_per_class=2,
                             det_images=0, corrupt=2)  # fmt: skip
    summary = write_synthetic(root, config)
    assert sorted(summary.damaged.values()) == ["garbage", "truncated"]
    return root


def test_train_classifier_command_runs_on_an_ilsvrc_layout_and_counts_corrupt_files(
    synthetic_root, tmp_path, capsys
):
    out = tmp_path / "run"
    argv = ["train", "classifier", "--data", str(synthetic_root), "--recipe", "toy",
            "--width", "0.03125", "--epochs", "1", "--batch-size", "8", "--workers", "0",
            "--out", str(out), "--no-progress"]  # fmt: skip
    with pytest.warns(UserWarning, match="skipped 2 training"):
        assert main(argv) == 0
    assert "val top-1 error" in capsys.readouterr().out
    (epoch,) = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    # 24 files in 3 steps of 8: all are visited, 2 cannot be decoded.
    assert (epoch["train_images"], epoch["train_skipped"]) == (22, 2)
    assert (epoch["val_images"], epoch["val_skipped"]) == (8, 0)
    state = torch.load(list_checkpoints(out)[-1], weights_only=True)
    assert state["model_config"]["num_classes"] == 4
    assert state["train_config"]["data"] == str(synthetic_root)


def test_missing_data_directory_is_named_without_a_traceback(tmp_path, capsys):
    argv = ["train", "classifier", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "nowhere: no such directory; pass an ILSVRC-layout root" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # a failed start leaves no run directory behind


@pytest.mark.slow
def test_torchrun_two_processes_count_every_image_once_and_print_once(synthetic_root, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "overfeat", "train", "classifier", "--data", str(synthetic_root),
           "--recipe", "toy", "--width", "0.03125", "--epochs", "1", "--batch-size", "8",
           "--workers", "0", "--out", str(out), "--no-progress", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("val top-1 error") == 1  # rank 0 alone reports
    assert json.loads((out / "environment.json").read_text())["world_size"] == 2
    (epoch,) = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch"]
    # The same totals as one process: 22 decoded + 2 skipped training images, 8 validation.
    assert (epoch["train_images"], epoch["train_skipped"]) == (22, 2)
    assert (epoch["val_images"], epoch["val_skipped"]) == (8, 0)
