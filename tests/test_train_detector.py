"""``overfeat train detector`` (§5): window labels by hand, the negative selection against a
brute-force one, the network with a background output, the run format (a classifier-format run
plus ``detector``), exact resume, a regressor on a detector run, and bad input.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
from overfeat.engine.checkpoint import list_checkpoints, load_checkpoint
from overfeat.engine.detector import (
    IGNORE,
    DetectorTask,
    choose_windows,
    chosen_count,
    detection_training_images,
    detector_network,
    detector_recipe,
    load_detector,
    window_labels,
)
from overfeat.engine.distributed import DistEnv
from overfeat.engine.spatial import train_spatial

CPU = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
BG = 5


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_tiny_synthetic(tmp_path_factory.mktemp("syn") / "ilsvrc")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    return save_toy_classifier(tmp_path_factory.mktemp("cls") / "run")


def _config(data: Path, classifier: Path, out: Path, **kw):
    base = dict(classifier=str(classifier), data=str(data), out=str(out), epochs=2, batch_size=4,
                scales=(2,), workers=0, log_every=1, progress=False, device="cpu", amp="none")  # fmt: skip
    return detector_recipe("toy", **(base | kw))


def _newest(out: Path) -> dict:
    return torch.load(list_checkpoints(out)[-1], weights_only=True)


@pytest.fixture(scope="module")
def uninterrupted(data, classifier, tmp_path_factory) -> Path:
    """12 images, batches of 4 at scale 2: 3 steps per epoch, 2 epochs; checkpoints every 2."""
    out = tmp_path_factory.mktemp("det") / "run"
    train_spatial(DetectorTask, _config(data, classifier, out, checkpoint_every=2), env=CPU)
    return out


# --------------------------------------------------------------------------- window labels


def test_window_labels_hand_worked():
    # Four 100 × 100 windows (area 10,000) side by side, x 0.., 50.., 200.., 300...
    windows = torch.tensor([[[0, 0, 99, 99], [50, 0, 149, 99], [200, 0, 299, 99],
                             [300, 0, 399, 99]]])  # fmt: skip
    # Box of class 2, 45 × 45 at x 10..54: window 0 sees all of it and it covers 2,025 / 10,000
    # of the window (≥ 0.2): positive. Window 1 (x 50..149) sees columns 50..54, 5 of 45 (0.11
    # of the box, 0.02 of the window, both under 0.2): background.
    # Box of class 1, 20 × 20 at x 210..229: inside window 2 whole, 400 / 10,000 = 0.04 of it,
    # under 0.2; no window does better, and 0.04 is above the 0.02 floor: window 2, its best
    # window, is its positive.
    # Box of an unknown class (-1) filling window 3: never positive, never background.
    boxes = torch.tensor([[10, 10, 54, 54], [210, 40, 229, 59], [300, 0, 399, 99]])
    labels = window_labels(boxes, torch.tensor([2, 1, -1]), windows, BG)
    assert labels.tolist() == [[2, BG, 1, IGNORE]]
    # Box of class 2, 50 × 50 at x 140..189: window 1 sees columns 140..149, 10 of 50, exactly
    # 0.2 of the box: not half (no positive), not under 0.2 (no background): ignored.
    one = torch.tensor([[140, 0, 189, 49]])
    assert window_labels(one, torch.tensor([2]), windows, BG).tolist() == [[BG, IGNORE, BG, BG]]
    # Two boxes a window would take: the one covering more of the window wins.
    two = torch.tensor([[0, 0, 59, 59], [0, 0, 69, 69]])  # 3,600 vs 4,900 of the window
    assert window_labels(two, torch.tensor([0, 3]), windows[:, :1], BG).tolist() == [[3]]
    # No box at all: every window is background.
    assert window_labels(torch.zeros(0, 4), torch.zeros(0), windows, BG).tolist() == [[BG] * 4]


def test_window_labels_small_box_takes_its_best_covering_windows_down_to_the_floor():
    from overfeat.engine.detector import POSITIVE_FLOOR_COVER, POSITIVE_MIN_COVER

    assert (POSITIVE_MIN_COVER, POSITIVE_FLOOR_COVER) == (0.2, 0.02)
    # The same four 100 × 100 windows, x 0.., 50.., 200.., 300.. (windows 0 and 1 share 50..99).
    windows = torch.tensor([[[0, 0, 99, 99], [50, 0, 149, 99], [200, 0, 299, 99],
                             [300, 0, 399, 99]]])  # fmt: skip
    # 20 × 20 at x 40..59: window 0 holds it whole (400 / 10,000 = 0.04 of the window), window 1
    # columns 50..59, half of it (200 / 10,000 = 0.02): both hold half, only window 0 is its best.
    # Window 1 sees half the box: no background either.
    edge = torch.tensor([[40, 0, 59, 19]])
    assert window_labels(edge, torch.tensor([3]), windows, BG).tolist() == [[3, IGNORE, BG, BG]]
    # 20 × 20 at x 60..79: inside windows 0 and 1 whole, 0.04 of each: a tie, both positives.
    shared = torch.tensor([[60, 0, 79, 19]])
    assert window_labels(shared, torch.tensor([3]), windows, BG).tolist() == [[3, 3, BG, BG]]
    # 14 × 14 at x 210..223: 196 / 10,000 = 0.0196 of window 2, under the floor: ignored.
    # 15 × 14 at x 310..324: 210 / 10,000 = 0.021 of window 3, over it: positive.
    tiny = torch.tensor([[210, 0, 223, 13], [310, 0, 324, 13]])
    assert window_labels(tiny, torch.tensor([0, 1]), windows, BG).tolist() == [[BG, BG, IGNORE, 1]]
    # A small box beside a large one of another class in window 0: the 60 × 60 box (0.36 of the
    # window) wins it; the 10 × 20 box (0.02 of it, at x 70..79 also inside window 1 whole) keeps
    # window 1, where the large one is 10 columns of 60 (inside 0.17, cover 0.06: not held).
    both = torch.tensor([[0, 0, 59, 59], [70, 70, 79, 89]])
    assert window_labels(both, torch.tensor([4, 2]), windows, BG).tolist() == [[4, 2, BG, BG]]
    # An object of a class the network lacks makes no positive at any cover.
    assert window_labels(edge, torch.tensor([-1]), windows, BG).tolist() == [[IGNORE, IGNORE, BG, BG]]


# ------------------------------------------------------------------------ negative selection


def _brute_force(labels, offending, priority, k_random, k_offending, background=BG):
    """The selection rule written as plain loops over each image's windows."""
    n, length = labels.shape
    pos = np.zeros((n, length), bool)
    most = np.zeros((n, length), bool)
    rand = np.zeros((n, length), bool)
    for i in range(n):
        eligible = [j for j in range(length) if labels[i, j] == background]
        for j in range(length):
            pos[i, j] = labels[i, j] not in (background, IGNORE)
        hot = sorted(eligible, key=lambda j: (-offending[i, j], j))[:k_offending]
        for j in hot:
            most[i, j] = True
        rest = [j for j in eligible if j not in hot]
        for j in sorted(rest, key=lambda j: (priority[i, j], j))[:k_random]:
            rand[i, j] = True
    return pos, most, rand


@pytest.mark.parametrize("k_random,k_offending", [(3, 4), (0, 2), (5, 0), (40, 40)])
def test_chosen_negatives_are_the_most_offending_plus_random_ones_of_the_rest(k_random, k_offending):
    rng = np.random.default_rng(k_random * 10 + k_offending)
    labels = rng.choice([IGNORE, BG, BG, BG, 0, 3], size=(4, 30))
    labels[3] = IGNORE  # an image without any background window
    labels[2, :3] = BG
    labels[2, 3:] = 1  # only three background windows
    offending = rng.integers(0, 6, size=(4, 30)) / 5  # many ties
    priority = rng.random((4, 30))
    got = choose_windows(torch.from_numpy(labels), torch.from_numpy(offending),
                         torch.from_numpy(priority), BG, k_random, k_offending)  # fmt: skip
    want = _brute_force(labels, offending, priority, k_random, k_offending)
    for g, w, name in zip(got, want, ("positive", "most offending", "random")):
        np.testing.assert_array_equal(g.numpy(), w, err_msg=name)
    assert chosen_count(torch.from_numpy(labels), BG, k_random, k_offending) == sum(
        int(w.sum()) for w in want
    )


def test_the_loss_is_the_cross_entropy_over_the_chosen_windows(data, classifier, tmp_path):
    task = DetectorTask(_config(data, classifier, tmp_path / "r"), CPU, None)
    group = task.collate([task.dataset[(0, i, 0)] for i in range(4)]).groups[0]
    with torch.no_grad():
        loss, (pos, neg, wrong) = task.loss(task.ddp_module, group)
        scores = task.ddp_module(group["images"])  # (n, C + 1, H', W')
    n, c1 = scores.shape[:2]
    flat = scores.permute(0, 2, 3, 1).reshape(n, -1, c1)
    labels = group["labels"].reshape(n, -1).numpy()
    offending = (1 - flat.softmax(-1)[..., CLASSES]).numpy()
    priority = group["priority"].reshape(n, -1).numpy()
    sel = _brute_force(labels, offending, priority, 4, 4, background=CLASSES)
    chosen = sel[0] | sel[1] | sel[2]
    want, count = 0.0, 0
    for i in range(n):
        for j in range(labels.shape[1]):
            if chosen[i, j]:  # the label is the target: the class, or background (C)
                want += F.cross_entropy(flat[i, j][None], torch.tensor([labels[i, j]])).item()
                count += 1
    assert count == task.windows(group) == int(pos + neg) and count > 0
    assert loss.item() == pytest.approx(want, rel=1e-5)


# ------------------------------------------------------------------------------ the network


def test_the_detector_starts_as_the_classifier_plus_a_background_output(classifier):
    cstate = load_checkpoint(list_checkpoints(classifier)[-1])
    model = detector_network(cstate, dropout=0.0, seed=3)
    assert model.num_classes == CLASSES + 1
    mine = model.state_dict()
    for name, value in cstate["model"].items():
        if name.startswith("classifier.fc8"):
            assert torch.equal(mine[name][:CLASSES], value)
        else:
            assert torch.equal(mine[name], value), name
    assert mine["classifier.fc8.bias"][CLASSES] == 0
    row = mine["classifier.fc8.weight"][CLASSES]
    assert 0.005 < row.std().item() < 0.015  # N(0, 1e-2)
    # Seeded: the same seed gives the same row.
    assert torch.equal(detector_network(cstate, 0.0, 3).state_dict()["classifier.fc8.weight"], mine["classifier.fc8.weight"])


# ------------------------------------------------------------------------------ the run


def test_a_detector_run_is_a_classifier_format_run_with_a_background_class(uninterrupted, data, classifier):
    state = _newest(uninterrupted)
    assert state["model_config"]["num_classes"] == CLASSES + 1
    # No devkit: the data set's label space, its sorted class folders (DET_LABEL_SPACE).
    folders = sorted(p.name for p in (data / "ILSVRC/Data/CLS-LOC/train").iterdir())
    assert state["detector"] == {"background_index": CLASSES, "num_object_classes": CLASSES,
                                 "classifier_run": str(classifier.resolve()),
                                 "label_space": "data set", "classes": folders}  # fmt: skip
    for key in ("train_config", "optimizer", "scheduler", "progress"):
        assert key in state
    model, background = load_detector(uninterrupted)
    assert background == CLASSES and not model.training
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 231, 231))
    assert tuple(out.shape) == (1, CLASSES + 1, 1, 1)
    records = metrics(uninterrupted)
    steps = [r for r in records if r["kind"] == "train"]
    assert len(steps) == 6 and all(r["windows"] == r["positives"] + r["negatives"] for r in steps)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["train_images"] for r in epochs] == [12, 12]
    assert environment(uninterrupted)["train_images_source"] == "CLS-LOC train"


def test_stopped_and_resumed_detector_equals_the_uninterrupted_one(uninterrupted, data, classifier, tmp_path):
    out = tmp_path / "run"
    stop = train_spatial(DetectorTask, _config(data, classifier, out, checkpoint_every=2,
                                               stop_after_steps=4), env=CPU)  # fmt: skip
    assert stop["status"] == "stopped"
    train_spatial(DetectorTask, _config(data, classifier, out, checkpoint_every=2),
                  resume="auto", env=CPU)  # fmt: skip
    a, b = _newest(uninterrupted), _newest(out)
    for key in ("model", "optimizer", "scheduler", "progress", "meters", "detector"):
        assert_same_tensors(a[key], b[key], key)
    assert metrics(uninterrupted) == metrics(out)


def test_a_regressor_on_a_detector_run_has_the_object_classes_only(uninterrupted, data, tmp_path):
    out = tmp_path / "pcr"
    argv = ["train", "regressor", "--classifier", str(uninterrupted), "--data", str(data),
            "--out", str(out), "--type", "pcr", "--recipe", "toy", "--batch-size", "4",
            "--workers", "0", "--epochs", "1", "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    state = _newest(out)
    assert state["regressor_config"] == {"kind": "pcr", "num_classes": CLASSES, "width": TOY_WIDTH}
    assert state["classifier_config"]["num_classes"] == CLASSES + 1
    assert state["regressor"]["layers.reg3.weight"].shape[0] == 4 * CLASSES
    from overfeat.engine.regressor import load_classifier_of, load_regressor

    detector, _ = load_detector(uninterrupted)
    assert load_regressor(out, detector).kind == "pcr"
    assert load_classifier_of(out).num_classes == CLASSES + 1


def test_det_training_images_are_used_when_the_data_set_has_them(data, tmp_path):
    # A DET train split made of this set's CLS-LOC training images, each object in its XML.
    root = tmp_path / "with-det"
    shutil.copytree(data, root)
    det = root / "ILSVRC" / "Data" / "DET" / "train"
    xml = root / "ILSVRC" / "Annotations" / "DET" / "train"
    det.mkdir(parents=True)
    xml.mkdir(parents=True)
    names = []
    for img in sorted((root / "ILSVRC/Data/CLS-LOC/train").glob("*/*.JPEG"))[:5]:
        shutil.copy(img, det / img.name)
        src = root / "ILSVRC/Annotations/CLS-LOC/train" / img.parent.name / f"{img.stem}.xml"
        shutil.copy(src, xml / f"{img.stem}.xml")
        names.append(img.stem)
    (root / "ILSVRC/ImageSets/DET/train.txt").write_text(
        "".join(f"{n} {i}\n" for i, n in enumerate(names, start=1))
    )
    source = detection_training_images(root)
    assert source.kind == "DET train" and len(source.records) == 5
    assert all(r.label == -1 and (r.classes >= 0).all() for r in source.records)
    assert detection_training_images(data).kind == "CLS-LOC train"


def test_bad_detector_input_gets_one_line_and_status_2(uninterrupted, data, classifier, tmp_path, capsys):
    def argv(cls, out, *extra):
        return ["train", "detector", "--classifier", str(cls), "--data", str(data), "--out",
                str(out), "--recipe", "toy", "--no-progress", "--device", "cpu", *extra]  # fmt: skip

    assert main(argv(uninterrupted, tmp_path / "a")) == 2
    assert "a detector run already" in capsys.readouterr().err
    assert main(argv(tmp_path / "nowhere", tmp_path / "b")) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(argv(classifier, tmp_path / "c", "--negatives-random", "-1")) == 2
    assert "negatives_random=-1" in capsys.readouterr().err
    with pytest.raises(ValueError, match=rf"{tmp_path}: no readable detector checkpoint"):
        load_detector(tmp_path)


def test_best_positive_cover_hand_worked():
    from overfeat.engine.detector import best_positive_cover

    # Two 100 × 100 windows, side by side with 50 pixels shared.
    windows = torch.tensor([[[0, 0, 99, 99], [50, 0, 149, 99]]])  # (1, 2, 4)
    boxes = torch.tensor([
        [0, 0, 19, 49],      # 20 × 50 = 1,000 px inside the first window: cover 0.1
        [40, 0, 139, 99],    # 100 × 100: the first holds 60 columns (0.6), the second 90 (0.9)
        [0, 0, 299, 299],    # 300 × 300: no window holds half of it (10,000 / 90,000)
    ])  # fmt: skip
    assert best_positive_cover(boxes, windows).tolist() == [0.1, 0.9, 0.0]


def test_a_small_box_reaches_its_area_over_the_window_at_the_fast_largest_scale():
    from overfeat.dense import window_boxes
    from overfeat.engine.detector import (
        POSITIVE_FLOOR_COVER,
        POSITIVE_MIN_COVER,
        best_positive_cover,
    )
    from overfeat.models import build_model
    from overfeat.scales import scale_sizes

    spec = build_model("fast", num_classes=2, width=0.125).spec
    windows = window_boxes(spec, scale_sizes(spec)[-1], "fine")  # 471 × 567
    # A 64 × 64 box inside a 231 × 231 window fills 4,096 / 53,361 of it at best: below 0.2,
    # so the 0.2 cover alone makes it no positive at the largest scale, nor at any smaller one;
    # at 0.077 it is above the floor, and its best windows are its positives.
    best = best_positive_cover(torch.tensor([[100, 100, 163, 163]]), windows)
    assert best.item() == pytest.approx(64 * 64 / 231**2) and best.item() < POSITIVE_MIN_COVER
    assert best.item() >= POSITIVE_FLOOR_COVER


def test_a_detectors_cache_key_names_the_positive_rule_it_was_trained_under(tmp_path, monkeypatch):
    # a detector trained before POSITIVE_FLOOR_COVER is trained again, not reused
    from overfeat.engine.detector import DetectorConfig
    from overfeat.reproduce.networks import config_key

    config = _config(tmp_path / "data", tmp_path / "cls", tmp_path / "out")
    key = config_key(config)
    assert "cover 0.02" in DetectorConfig.TARGETS
    monkeypatch.setattr(DetectorConfig, "TARGETS", "positive: inside >= 0.5, cover >= 0.2")
    assert config_key(config) != key
