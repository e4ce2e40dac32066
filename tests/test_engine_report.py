"""The training report is rendered from the run's recorded files, numbers included."""

from __future__ import annotations

import csv
import json

from overfeat.engine.report import chance_top5_error, render_training_report


def test_chance_top5_error_is_one_minus_five_over_classes():
    assert chance_top5_error(10) == 0.5
    assert chance_top5_error(1000) == 0.995
    assert chance_top5_error(4) == 0.0


def test_report_renders_the_recorded_epochs_and_the_chance_level(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    epochs = [
        {"kind": "epoch", "epoch": e, "global_step": 5 * (e + 1), "lr": 0.02,
         "train_loss": 2.0 - e / 10, "train_top1_error": 0.8, "train_top5_error": 0.4,
         "val_loss": 1.9, "val_top1_error": 0.7, "val_top5_error": top5, "train_images": 40,
         "train_skipped": 1, "val_images": 20, "val_skipped": 0, "seconds": 1.5}
        for e, top5 in enumerate([0.45, 0.125, 0.25])
    ]  # fmt: skip
    lines = [{"kind": "train", "epoch": 0, "global_step": 1, "loss": 2.3}, *epochs]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (run / "config.json").write_text(json.dumps({
        "arch": "fast", "width": 0.125, "recipe": "toy", "batch_size": 32, "lr": 0.02,
        "momentum": 0.9, "weight_decay": 1e-5, "dropout": 0.0, "init": "he",
        "lr_milestones": [7, 9], "epochs": 3}))  # fmt: skip
    (run / "command.txt").write_text("overfeat train classifier --data D --recipe toy\n")
    (run / "environment.json").write_text(json.dumps({"num_classes": 10, "device": "x86_64"}))

    md = render_training_report(run, tmp_path / "reports", "toy").read_text()
    assert "overfeat train classifier --data D --recipe toy" in md
    assert "validation top-5 error 0.250 after the last epoch (best 0.125, epoch 1)" in md
    assert "against 0.500 for chance with 10 classes" in md
    with open(tmp_path / "reports" / "toy_epochs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_top5_error"]) for r in rows] == [0.45, 0.125, 0.25]
    assert md.count("\n| ") == 1 + 3  # header + one row per epoch (the train record is not one)


def test_report_of_an_epoch_whose_validation_images_were_all_skipped_names_a_finite_best(tmp_path):
    from overfeat.engine.metrics_log import MetricsLog

    run = tmp_path / "run"
    run.mkdir()
    log = MetricsLog(run / "metrics.jsonl")
    for e, top5 in enumerate([0.4, float("nan"), 0.3]):  # epoch 1: no image decoded
        log.write({"kind": "epoch", "epoch": e, "global_step": e + 1, "lr": 0.02,
                   "val_top1_error": top5, "val_top5_error": top5, "seconds": 1.0})  # fmt: skip
    (run / "config.json").write_text(json.dumps({
        "arch": "fast", "width": 0.125, "recipe": "toy", "batch_size": 32, "lr": 0.02,
        "momentum": 0.9, "weight_decay": 1e-5, "dropout": 0.0, "init": "he",
        "lr_milestones": [7, 9], "epochs": 3}))  # fmt: skip
    (run / "environment.json").write_text(json.dumps({"num_classes": 10}))

    md = render_training_report(run, tmp_path / "reports", "r").read_text()
    assert "validation top-5 error 0.300 after the last epoch (best 0.300, epoch 2)" in md
    assert "| 1 | 2 | 0.02 | nan |" in md
