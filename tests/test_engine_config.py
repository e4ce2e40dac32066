"""The training recipe: §3.1's numbers as defaults, the schedule, the CLI, the named decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_engine_support import TinyImages, tiny_config

from overfeat.cli import build_parser
from overfeat.data import collate_skip_corrupt
from overfeat.engine.cli import build_config
from overfeat.engine.config import PAPER_EPOCHS, TrainConfig, recipe
from overfeat.engine.metrics_log import read_metrics
from overfeat.engine.train import train_classifier


def test_default_config_is_the_paper_recipe_of_section_3_1():
    # FACTS.md §6.1, quoted from §3.1 of the paper.
    c = TrainConfig()
    assert (c.momentum, c.weight_decay, c.lr, c.batch_size) == (0.6, 1e-5, 5e-2, 128)
    assert (c.lr_milestones, c.lr_gamma, c.dropout) == ((30, 50, 60, 70, 80), 0.5, 0.5)
    assert (c.init, c.init_std, c.epochs) == ("normal", 1e-2, PAPER_EPOCHS)


def test_learning_rate_is_halved_after_each_milestone_epoch(tmp_path):
    # §3.1: "decreased by a factor of 0.5 after (30, 50, 60, 70, 80) epochs", on a short
    # schedule with the same rule: milestones (1, 3) over 4 epochs, hand-worked.
    config = tiny_config(tmp_path, epochs=4, lr=0.01, lr_milestones=(1, 3), batch_size=8)
    train_classifier(config, train_set=TinyImages(16), val_set=None, collate_fn=collate_skip_corrupt)
    logged = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["lr"] for r in logged] == pytest.approx([0.01, 0.005, 0.005, 0.0025])
    # The paper's default milestones are the ones the engine's scheduler receives.
    assert TrainConfig().to_dict()["lr_milestones"] == [30, 50, 60, 70, 80]


def test_toy_recipe_halves_at_the_papers_fractions_of_any_run_length():
    # Decision TOY_SCHEDULE, hand-worked: §3.1's milestones 30, 50, 60, 70, 80 of 90 epochs
    # (1/3, 5/9, 2/3, 7/9, 8/9). 6 epochs: 2.0, 3.33, 4.0, 4.67, 5.33 → 2, 3, 4, 5, 5;
    # 20 epochs: 6.67, 11.1, 13.3, 15.6, 17.8 → 7, 11, 13, 16, 18.
    assert recipe("toy", epochs=6).lr_milestones == (2, 3, 4, 5, 5)
    assert recipe("toy").lr_milestones == (7, 11, 13, 16, 18)
    # A 2-epoch run still halves inside the run; explicit milestones win; the paper's stay.
    assert recipe("toy", epochs=2).lr_milestones == (1, 1, 1, 1, 1)
    assert recipe("toy", epochs=6, lr_milestones=(12, 16)).lr_milestones == (12, 16)
    assert recipe("paper", epochs=10).lr_milestones == (30, 50, 60, 70, 80)
    args = build_parser().parse_args(
        ["train", "classifier", "--data", "d", "--recipe", "toy", "--lr-milestones", "3,5"])
    assert build_config(args).lr_milestones == (3, 5)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "classifier", "--data", "d", "--lr-milestones", "5,3"])


def test_toy_schedule_ends_the_embedded_default_at_1_32_of_its_rate(tmp_path):
    # Five halvings inside a 6-epoch run: the last epoch runs at lr / 2^5 (MultiStepLR counts the
    # repeated milestone 5 twice).
    milestones = recipe("toy", epochs=6).lr_milestones
    config = tiny_config(tmp_path, epochs=6, lr=0.02, lr_milestones=milestones)
    train_classifier(config, train_set=TinyImages(8), val_set=None, collate_fn=collate_skip_corrupt)
    logged = [r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"]
    assert logged == pytest.approx([0.02, 0.02, 0.01, 0.005, 0.0025, 0.02 / 32])


def test_config_round_trips_through_plain_values():
    c = recipe("toy", arch="accurate", width=0.25, seed=3)
    d = c.to_dict()
    assert all(isinstance(v, (int, float, str, bool, list, type(None))) for v in d.values())
    assert TrainConfig.from_dict(d) == c


def test_unknown_or_invalid_settings_are_named():
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="momentum|arch='vgg'"):
        TrainConfig(arch="vgg")


def test_cli_builds_the_paper_recipe_and_scales_lr_linearly_with_the_global_batch():
    parse = build_parser().parse_args
    paper = build_config(parse(["train", "classifier", "--data", "D"]))
    # --device auto is resolved before the run (FLAGS_CHECKED_BEFORE_RUN): CUDA when present.
    here = "cuda" if torch.cuda.is_available() else "cpu"
    assert paper == replace(TrainConfig(data="D"), device=here)
    big = build_config(parse(["train", "classifier", "--data", "D", "--batch-size", "1024"]))
    assert big.lr == pytest.approx(0.4)  # 5e-2 × 1024 / 128 (decision LINEAR_LR_SCALING)
    given = build_config(
        parse(["train", "classifier", "--data", "D", "--batch-size", "256", "--lr", "0.01"])
    )
    assert given.lr == 0.01
    toy = build_config(parse(["train", "classifier", "--data", "D", "--recipe", "toy"]))
    assert toy.recipe == "toy" and toy.init == "he" and toy.weight_decay == 1e-5


def test_loader_workers_are_capped_by_the_cpus_each_rank_of_the_node_may_use(monkeypatch):
    import os

    from overfeat.engine.distributed import loader_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers(4) == 4  # fewer asked than 16 CPUs: as asked
    assert loader_workers(32) == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun, 8 ranks share the 16 CPUs
    assert loader_workers(8) == 2
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")  # more ranks than CPUs: still one each
    assert loader_workers(8) == 1
    assert loader_workers(0) == 0  # 0 keeps loading in the main process


def test_toy_recipe_gives_the_accurate_network_its_own_learning_rate():
    # Decision TOY_ACCURATE_LR: 5e-3 for the accurate network, 2e-2 for the fast one; linear
    # scaling (decision LINEAR_LR_SCALING) starts from the network's own rate: 5e-3 × 64 / 32.
    assert recipe("toy", arch="accurate").lr == 5e-3
    assert recipe("toy", arch="fast").lr == 2e-2
    assert recipe("toy", arch="accurate", batch_size=64).lr == pytest.approx(1e-2)
    assert recipe("toy", arch="accurate", lr=0.1).lr == 0.1
    assert recipe("paper", arch="accurate").lr == 5e-2
