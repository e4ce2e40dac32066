"""``overfeat train regressor`` (§4.2): targets through the data path, frozen layers 1–5, the
loss falling below the untrained regressor's, exact resume, the checkpoint contract and the
messages for bad input.

Expected values are computed here from the window arithmetic (fast network, fine stride:
windows 231 px wide, 16 px apart) and the resize / mirror rules written out by hand.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from PIL import Image
from train_spatial_support import (
    CLASSES,
    TOY_WIDTH,
    assert_same_tensors,
    environment,
    metrics,
    save_toy_classifier,
    write_tiny_synthetic,
)

from overfeat.cli import main
from overfeat.data.boxed import BoxedImages, BoxedRecord, BoxedSource
from overfeat.data.transforms import image_to_tensor
from overfeat.engine.checkpoint import list_checkpoints, load_checkpoint
from overfeat.engine.distributed import DistEnv
from overfeat.engine.regressor import (
    REGRESSOR_REQUIRED_KEYS,
    RegressorCollate,
    RegressorTask,
    load_classifier_of,
    load_regressor,
    regressor_recipe,
)
from overfeat.engine.spatial import _step, train_spatial
from overfeat.models import FAST, build_model
from overfeat.regression import BoxRegressor, dense_boxes

SCALE2 = (279, 311)  # the fast network's scale 2: 4 × 6 windows at fine stride
CPU = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_synthetic(tmp_path_factory.mktemp("syn") / "ilsvrc")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return save_toy_classifier(tmp_path_factory.mktemp("cls") / "run")


def _config(data: Path, classifier: Path, out: Path, **kw):
    base = dict(classifier=str(classifier), data=str(data), out=str(out), epochs=2, batch_size=4,
                workers=0, log_every=1, progress=False, device="cpu", amp="none")  # fmt: skip
    return regressor_recipe("toy", **(base | kw))


class _Recording(RegressorTask):
    """The task as the loop built it, kept for inspection after the run."""

    made: list = []

    def __init__(self, *args):
        super().__init__(*args)
        _Recording.made.append(self)


def _newest(out: Path) -> dict:
    return torch.load(list_checkpoints(out)[-1], weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(data, classifier, tmp_path_factory):
    """12 images, batches of 4: 3 steps per epoch, 2 epochs; checkpoints every 2 steps."""
    out = tmp_path_factory.mktemp("reg") / "run"
    _Recording.made.clear()
    train_spatial(_Recording, _config(data, classifier, out, checkpoint_every=2), env=CPU)
    return out, _Recording.made[-1]


# ------------------------------------------------------------------- targets, by hand


def test_targets_of_a_resized_and_mirrored_image_are_the_hand_worked_ones(tmp_path):
    # A 400 × 300 image; the box of its class (0) spans x 40..139, y 50..249; a larger box of
    # class 1 sits where every window sees more of it, and must not be a target.
    path = tmp_path / "img.png"
    pixels = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    boxes = np.array([[40, 50, 139, 249], [150, 0, 399, 299]])
    record = BoxedRecord(str(path), 0, boxes, np.array([0, 1]))
    dataset = BoxedImages(BoxedSource([record], ["a", "b"], "CLS-LOC train", {}), FAST,
                          [(247, 247), SCALE2], seed=7)  # fmt: skip
    # The mirror rule (FLIP_PROBABILITY 1/2 from numpy's generator keyed (seed, epoch, index)):
    # find an epoch in which this image is mirrored.
    epoch = next(e for e in range(50) if np.random.default_rng([7, e, 0]).random() < 0.5)
    sample = dataset[(epoch, 0, 1)]
    assert sample.flipped and tuple(sample.image.shape) == (3, 279, 311)
    # The image: resized to 279 × 311 (bilinear, antialiased), then mirrored.
    want = F.interpolate(image_to_tensor(Image.open(path).convert("RGB"))[None], size=SCALE2,
                         mode="bilinear", align_corners=False, antialias=True)[0].flip(-1)  # fmt: skip
    torch.testing.assert_close(sample.image, want, rtol=0, atol=0)
    # The box: x edges 40 and 140 (= 139 + 1) times 311/400 → 31.1, 108.85, so x 31.1..107.85;
    # y edges 50 and 250 times 279/300 → 46.5, 232.5, so y 46.5..231.5; mirrored in a 311-wide
    # image: x1 = 310 − 107.85 = 202.15, x2 = 310 − 31.1 = 278.9.
    np.testing.assert_allclose(sample.boxes[0].numpy(), [202.15, 46.5, 278.9, 231.5], atol=1e-9)
    group = RegressorCollate(FAST, "fine")([sample]).groups[0]
    targets, trained = group["targets"][0], group["trained"][0]
    assert tuple(trained.shape) == (4, 6)
    # Window (r=1, c=3) spans x 48..278, y 16..246: edge offsets over 231.
    want_t = np.array([202.15 - 48, 46.5 - 16, 278.9 - 278, 231.5 - 246]) / 231
    np.testing.assert_allclose(targets[1, 3].numpy(), want_t, rtol=1e-6)
    # Inside fraction in x (y is whole): c = 0 (x 0..230) sees 230 − 202.15 + 1 = 28.85 of the
    # box's 77.75 columns, 0.37: left out; c = 1 (x 16..246) 44.85 / 77.75 = 0.58: trained.
    assert not trained[:, 0].any()
    assert trained[:, 1:].all()
    np.testing.assert_array_equal(group["classes"].numpy(), [0])


# ---------------------------------------------------------------------- what training changes


def test_layers_1_to_5_stay_bit_identical_and_only_the_regressor_learns(uninterrupted, classifier):
    out, task = uninterrupted
    original = load_checkpoint(list_checkpoints(classifier)[-1])["model"]
    for name, value in task.features_net.features.state_dict().items():
        assert torch.equal(value, original[f"features.{name}"]), name
    assert all(p.grad is None and not p.requires_grad for p in task.features_net.parameters())
    assert not task.features_net.training
    # The regressor moved from its seeded initial weights; the checkpoint holds what it learned.
    torch.manual_seed(0)
    fresh = BoxRegressor(task.features_net.spec, "scr", CLASSES, TOY_WIDTH)
    state = _newest(out)
    assert_same_tensors(state["regressor"], task.module.state_dict())
    changed = [k for k, v in fresh.state_dict().items() if not torch.equal(v, state["regressor"][k])]
    assert sorted(changed) == sorted(fresh.state_dict())


def test_a_per_class_regressor_learns_only_the_channels_of_the_image_s_class(data, classifier, tmp_path):
    task = RegressorTask(_config(data, classifier, tmp_path / "r", kind="pcr"), CPU, None)
    batch = task.collate([task.dataset[(0, i, 0)] for i in (0, 5)])  # classes 0 and 1
    group = batch.groups[0]
    np.testing.assert_array_equal(group["classes"].numpy(), [0, 1])
    loss, _ = task.loss(task.module, group)
    loss.backward()
    grad = task.module.layers.reg3.weight.grad.flatten(1).abs().sum(1)  # (4 · 3,)
    assert (grad[:8] > 0).all() and (grad[8:] == 0).all()


def test_portrait_and_landscape_images_form_two_groups_and_one_mean_loss(data, classifier,
                                                                        tmp_path):  # fmt: skip
    task = RegressorTask(_config(data, classifier, tmp_path / "r"), CPU, None)
    sizes = [Image.open(r.path).size for r in task.dataset.records]  # (W, H)
    portrait = next(i for i, (w, h) in enumerate(sizes) if h > w)
    landscape = next(i for i, (w, h) in enumerate(sizes) if h <= w)
    batch = task.collate([task.dataset[(0, i, 1)] for i in (portrait, landscape)])
    assert [tuple(g["images"].shape) for g in batch.groups] == [(1, 3, 279, 311), (1, 3, 311, 279)]
    # One step with plain SGD at lr 1: the parameter change is minus the gradient of the mean
    # squared distance over the windows of both images together.
    before = {k: v.clone() for k, v in task.module.state_dict().items()}
    optimizer = torch.optim.SGD(task.module.parameters(), lr=1.0)
    _step(task, task.module, optimizer, batch, _config(data, classifier, tmp_path), CPU, 5)
    reference = BoxRegressor(task.features_net.spec, "scr", CLASSES, TOY_WIDTH)
    reference.load_state_dict(before)
    errors = []
    for group in batch.groups:
        out = dense_boxes(task.features_net, reference, group["images"]).permute(0, 2, 3, 1)
        errors.append((out - group["targets"]).pow(2).sum(-1)[group["trained"]])
    torch.cat(errors).mean().backward()
    for name, p in reference.named_parameters():
        torch.testing.assert_close(before[name] - task.module.state_dict()[name], p.grad,
                                   rtol=1e-4, atol=1e-7)  # fmt: skip


def _loss_over_training_images(regressor, network, dataset) -> float:
    """The ℓ2 loss (squared distance of the 4 values, mean over trained windows) over every
    training image at scale 1 as epoch 0 shows it, computed here without the training loop."""
    collate = RegressorCollate(network.spec, "fine")
    errs = []
    for i in range(len(dataset)):
        group = collate([dataset[(0, i, 0)]]).groups[0]
        with torch.no_grad():
            out = dense_boxes(network, regressor, group["images"]).permute(0, 2, 3, 1)
        d = (out - group["targets"]).pow(2).sum(-1)
        errs.append(d[group["trained"]])
    return torch.cat(errs).mean().item()


def test_a_toy_regressor_ends_below_the_untrained_one_s_loss(data, classifier, tmp_path):
    out = tmp_path / "run"
    # 4 epochs of a few tiny images on the two smallest scales, where they have most of their
    # trained windows
    train_spatial(RegressorTask, _config(data, classifier, out, epochs=4, scales=(1, 2)), env=CPU)
    network = load_classifier_of(out)
    trained = load_regressor(out, network)
    untrained = BoxRegressor(network.spec, "scr", CLASSES, TOY_WIDTH).eval()  # predicts windows
    dataset = RegressorTask(_config(data, classifier, tmp_path / "x"), CPU, None).dataset
    before = _loss_over_training_images(untrained, network, dataset)
    after = _loss_over_training_images(trained, network, dataset)
    assert after < 0.8 * before, (before, after)
    # The log's own comparison agrees: each epoch, the loss beside the untrained one's.
    last = [r for r in metrics(out) if r["kind"] == "epoch"][-1]
    assert last["train_loss"] < last["train_window_loss"]


# ------------------------------------------------------------------------------ resume


@pytest.mark.parametrize("stop", [2, 4])
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(uninterrupted, data, classifier,
                                                              tmp_path, stop):  # fmt: skip
    reference, _ = uninterrupted
    out = tmp_path / "run"
    config = _config(data, classifier, out, checkpoint_every=2)
    stopped = train_spatial(RegressorTask, _config(data, classifier, out, checkpoint_every=2,
                                                   stop_after_steps=stop), env=CPU)  # fmt: skip
    assert stopped == {"status": "stopped", "global_step": stop, "epoch": (stop - 1) // 3}
    train_spatial(RegressorTask, config, resume="auto", env=CPU)
    a, b = _newest(reference), _newest(out)
    for key in ("regressor", "optimizer", "scheduler", "progress", "meters", "regressor_config"):
        assert_same_tensors(a[key], b[key], key)
    assert metrics(reference) == metrics(out)


def test_a_fresh_run_refuses_an_existing_run_folder(uninterrupted, data, classifier):
    out, _ = uninterrupted
    with pytest.raises(FileExistsError, match="--resume auto"):
        train_spatial(RegressorTask, _config(data, classifier, out), env=CPU)


# ---------------------------------------------------------------------- the checkpoint


def test_the_checkpoint_holds_the_contract_keys_and_loads_back(uninterrupted, classifier):
    out, task = uninterrupted
    state = _newest(out)
    assert set(REGRESSOR_REQUIRED_KEYS) <= set(state)
    assert state["regressor_config"] == {"kind": "scr", "num_classes": CLASSES, "width": TOY_WIDTH}
    assert state["classifier_run"] == str(classifier.resolve())
    assert state["classifier_checkpoint"] == list_checkpoints(classifier)[-1].name
    assert state["classifier_config"] == {"arch": "fast", "num_classes": CLASSES,
                                          "width": TOY_WIDTH, "activation": "relu"}  # fmt: skip
    network = load_classifier_of(out)
    assert_same_tensors(network.state_dict(), load_checkpoint(list_checkpoints(classifier)[-1])["model"])
    reg = load_regressor(out)
    assert not reg.training
    assert_same_tensors(reg.state_dict(), state["regressor"])
    env = environment(out)
    assert env["train_images_source"] == "CLS-LOC train" and env["train_samples"] == 12
    assert env["left_out"] == {"no_box": 0, "other_class_only": 0}


def test_load_regressor_refuses_a_classifier_of_another_shape(uninterrupted):
    out, _ = uninterrupted
    for other, word in ((build_model("accurate", CLASSES, TOY_WIDTH), "arch"),
                        (build_model("fast", CLASSES, 1 / 8), "width"),
                        (build_model("fast", CLASSES + 1, TOY_WIDTH), "num_classes")):  # fmt: skip
        with pytest.raises(ValueError, match=rf"{out}: the classifier given does not match.*{word}"):
            load_regressor(out, other)
    # Same shape, other weights: refused, naming the regressor run, its classifier and the fix.
    with pytest.raises(ValueError, match=rf"regressor run {out} was trained on the layers 1–5 of "
                       r".*\(a fresh network\) has other layer 1–5 weights.*overfeat train regressor"):  # fmt: skip
        load_regressor(out, build_model("fast", CLASSES, TOY_WIDTH), "a fresh network")


def test_loading_from_a_folder_without_a_regressor_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match=rf"{tmp_path}: no readable regressor checkpoint.*overfeat train regressor"):
        load_regressor(tmp_path)


# ------------------------------------------------------------------------- the command


def _argv(data, classifier, out, *extra):
    return ["train", "regressor", "--classifier", str(classifier), "--data", str(data), "--out",
            str(out), "--recipe", "toy", "--batch-size", "4", "--workers", "0", "--epochs", "1",
            "--no-progress", "--device", "cpu", *extra]  # fmt: skip


def test_the_command_trains_a_pcr_regressor_and_records_the_run(data, classifier, tmp_path, capsys):
    out = tmp_path / "pcr"
    assert main(_argv(data, classifier, out, "--type", "pcr", "--scales", "2", "--log-every", "1")) == 0
    assert "train loss" in capsys.readouterr().out
    state = _newest(out)
    assert state["regressor_config"]["kind"] == "pcr"
    assert tuple(state["regressor"]["layers.reg3.weight"].shape[:1]) == (4 * CLASSES,)
    assert state["train_config"]["scales"] == [2]
    # The command line as the shell gave it (sys.argv: here pytest's own).
    assert (out / "command.txt").read_text().startswith("overfeat ")
    assert {r["scale"] for r in metrics(out) if r["kind"] == "train"} == {2}


def test_build_spatial_config_reads_the_command_s_flags_over_the_recipe(data, classifier):
    from overfeat.engine.cli import build_spatial_config

    config = build_spatial_config(_argv(data, classifier, "out", "--type", "pcr", "--scales", "1,3"))
    assert config == regressor_recipe("toy", classifier=str(classifier.resolve()), data=str(data),
                                      out="out", kind="pcr", scales=(1, 3), batch_size=4,
                                      lr=5e-3 * 4 / 16, workers=0, epochs=1, progress=False,
                                      device="cpu")  # fmt: skip
    with pytest.raises(SystemExit):
        build_spatial_config(["train", "regressor", "--data", str(data)])  # no --classifier


def test_bad_input_gets_one_line_and_status_2(data, classifier, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_argv(data, empty, tmp_path / "a")) == 2
    err = capsys.readouterr().err
    assert "no readable classifier checkpoint" in err and "Traceback" not in err
    assert err.count("\n") == 1 and not (tmp_path / "a").exists()
    # A data set whose training images have no boxes.
    unboxed = tmp_path / "unboxed"
    shutil.copytree(data, unboxed, ignore=shutil.ignore_patterns("LOC_train_solution.csv", "train"))
    shutil.copytree(data / "ILSVRC/Data/CLS-LOC/train", unboxed / "ILSVRC/Data/CLS-LOC/train")
    assert main(_argv(unboxed, classifier, tmp_path / "b")) == 2
    assert "no training boxes" in capsys.readouterr().err
    # A classifier of another class count than the data.
    four = save_toy_classifier(tmp_path / "four", num_classes=4)
    assert main(_argv(data, four, tmp_path / "c")) == 2
    assert "3 classes, but the network" in capsys.readouterr().err
    # Resuming with another regressor width than the run was started with.
    assert main(_argv(data, classifier, tmp_path / "d", "--stop-after-steps", "1",
                "--checkpoint-every", "1")) == 0
    capsys.readouterr()
    assert main(_argv(data, classifier, tmp_path / "d", "--resume", "auto", "--width", "0.25")) == 2
    assert "cannot resume" in capsys.readouterr().err
    assert main(_argv(data, classifier, tmp_path / "d")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(_argv(data, classifier, tmp_path / "e", "--scales", "0,7")) == 2
    assert "--scales" in capsys.readouterr().err


# ------------------------------------------------------------------------------ DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world))  # fmt: skip
    torch.set_num_threads(1)
    from overfeat.engine.regressor import train_regressor

    train_regressor(config)


@pytest.mark.slow
def test_two_gloo_processes_train_the_regressor_as_one_process_does(data, classifier, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(1)
    train_spatial(RegressorTask, _config(data, classifier, one), env=CPU)
    mp.spawn(_worker, args=(2, _free_port(), _config(data, classifier, two)), nprocs=2, join=True)
    a, b = _newest(one), _newest(two)
    for k in a["regressor"]:
        torch.testing.assert_close(a["regressor"][k], b["regressor"][k], rtol=1e-4, atol=1e-6)
    assert environment(two)["world_size"] == 2
    ra, rb = metrics(one), metrics(two)
    assert [r["windows"] for r in ra if r["kind"] == "train"] == [
        r["windows"] for r in rb if r["kind"] == "train"
    ]


def test_a_regressors_cache_key_names_the_rule_it_was_trained_under(tmp_path, monkeypatch):
    # a regressor trained under an earlier REGRESSOR_OVERLAP_RULE is trained again, not reused
    from dataclasses import replace

    from overfeat.engine.regressor import RegressorConfig
    from overfeat.reproduce.networks import config_key

    config = _config(tmp_path / "data", tmp_path / "cls", tmp_path / "out")
    key = config_key(config)
    assert config_key(replace(config, out=str(tmp_path / "elsewhere"), workers=2)) == key
    assert config_key(replace(config, lr=config.lr / 2)) != key
    monkeypatch.setattr(RegressorConfig, "TARGETS", "an earlier rule")
    assert config_key(config) != key
