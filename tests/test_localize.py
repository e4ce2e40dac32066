"""Localization (§4.1, §4.3): boxes from every window of every scale mapped to the original
image, the top-k classes per scale, the greedy merge's accumulated scores, the top 5 guesses,
the CLS-LOC submission files scored by the harness, and ``overfeat localize``.

Expected values are computed here from the window arithmetic and the network's own dense
outputs: output (r, c) at stride s has its window at (x, y) = (c·s, r·s), side S = 231 (fast) /
221 (accurate), s = 16 / 12 fine and 32 / 36 coarse; a scale image of w columns mirrors column
edge u to w − u; resizing w → W maps edge u to u·W/w.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.annotations import Annotation, write_loc_solution_csv
from evaluation.formats import read_devkit_loc, read_kaggle_submission
from evaluation.tasks import evaluate_localization_files
from overfeat import build_model
from overfeat.dense import dense_scores
from overfeat.localize import (
    NO_GUESS,
    LocalizationProtocol,
    LocalizationResult,
    candidate_boxes,
    check_regressor,
    localize,
    top_predictions,
    write_loc_submission,
    write_synsets,
)
from overfeat.regression import BoxRegressor
from overfeat.scales import resize

WIDTH = 1 / 16
SIDE = {"fast": 231, "accurate": 221}
STRIDE = {("fast", "fine"): 16, ("fast", "coarse"): 32, ("accurate", "fine"): 12,
          ("accurate", "coarse"): 36}  # fmt: skip
# Table 5's scales 1 and 2 (rows, cols); the fast network's by FAST_SCALE_RULE (README).
SCALES = {"fast": {1: (247, 247), 2: (279, 311)}, "accurate": {1: (245, 245), 2: (281, 317)}}


def _toy(arch, classes=5, seed=0):
    """A toy network, He-initialised so that its class probabilities differ from window to
    window (the paper's N(0, 1e-2) leaves a narrow network's outputs nearly uniform)."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=classes, width=WIDTH).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def _constant_regressor(model, t, kind="scr"):
    """A regressor whose every window outputs ``t`` (4 values, or (C, 4) for PCR): the output
    layer's weights are zero (REGRESSOR_INIT), so its bias is the output."""
    c = model.num_classes
    reg = BoxRegressor(model.spec, kind, c, width=WIDTH).eval()
    with torch.no_grad():
        reg.layers.reg3.bias.copy_(torch.as_tensor(t, dtype=torch.float32).reshape(-1))
    return reg


def _image(h, w, seed=1):
    torch.manual_seed(seed)
    return torch.rand(3, h, w) * 4 - 2


def _scale_image_size(arch, scale, image_hw):
    """SCALE_RESIZE_MODE "fixed": the scale's rectangle turned to the image's orientation."""
    short, long = sorted(SCALES[arch][scale])
    return (short, long) if image_hw[0] <= image_hw[1] else (long, short)


def _expected_box(arch, offsets, scale_hw, image_hw, row, col, t, flipped):
    """Window (row, col) moved by the regressor's edge offsets t (in window sides), mirrored back
    when predicted on the mirror image, resized to the image, clipped (CLIP_TO_IMAGE)."""
    S, s = SIDE[arch], STRIDE[(arch, offsets)]
    (h, w), (H, W) = scale_hw, image_hw
    x1, y1 = col * s + t[0] * S, row * s + t[1] * S
    x2, y2 = col * s + S - 1 + t[2] * S, row * s + S - 1 + t[3] * S
    if flipped:
        x1, x2 = w - 1 - x2, w - 1 - x1
    box = [x1 * W / w, y1 * H / h, (x2 + 1) * W / w - 1, (y2 + 1) * H / h - 1]
    return [min(max(box[0], 0), W - 1), min(max(box[1], 0), H - 1),
            min(max(box[2], 0), W - 1), min(max(box[3], 0), H - 1)]  # fmt: skip


def _map_rows(arch, offsets, scale_hw):
    """Windows per column and row of a Table 5 (tiling) size: ⌊(side − S) / s⌋ + 1."""
    S, s = SIDE[arch], STRIDE[(arch, offsets)]
    return tuple((n - S) // s + 1 for n in scale_hw)


# ------------------------------------------------------------------ boxes in the original image


@pytest.mark.parametrize("arch", ["fast", "accurate"])
@pytest.mark.parametrize("offsets", ["fine", "coarse"])
def test_regressor_boxes_map_to_the_original_image_at_every_scale_offset_and_flip(arch, offsets):
    model = _toy(arch)
    t = (0.0625, -0.125, -0.1875, 0.3125)  # exact in float32, the network's precision
    reg = _constant_regressor(model, t)
    images = [_image(190, 290), _image(300, 200, seed=2)]  # a landscape and a portrait image
    protocol = LocalizationProtocol(scales=(1, 2), offsets=offsets, top_k=2)
    for img, c in zip(images, candidate_boxes(model, reg, images, protocol)):
        image_hw = tuple(img.shape[-2:])
        for scale in (1, 2):
            scale_hw = _scale_image_size(arch, scale, image_hw)
            rows, cols = _map_rows(arch, offsets, scale_hw)
            for flipped in (False, True):
                here = (c.scales == scale) & (c.flipped == flipped)
                # every window of the map, once per class of C_s
                assert here.sum() == 2 * rows * cols
                assert set(map(tuple, c.windows[here])) == {
                    (r, k) for r in range(rows) for k in range(cols)
                }
                expected = [
                    _expected_box(arch, offsets, scale_hw, image_hw, r, k, t, flipped)
                    for r, k in c.windows[here]
                ]
                np.testing.assert_allclose(c.boxes[here], expected, rtol=0, atol=1e-9)


def test_per_class_regressor_boxes_each_class_with_its_own_channels():
    arch, offsets = "accurate", "fine"
    model = _toy(arch, classes=4)
    t = np.array([[0.0, 0.0, 0.0, 0.0], [0.125, 0.125, -0.125, -0.125],
                  [-0.0625, 0.25, 0.125, 0.0], [0.03125, -0.03125, 0.3125, 0.25]])  # fmt: skip
    reg = _constant_regressor(model, t, kind="pcr")
    img = _image(230, 260)
    c = candidate_boxes(model, reg, [img], LocalizationProtocol(scales=(2,), top_k=3))[0]
    assert len(np.unique(c.classes)) == 3
    scale_hw = _scale_image_size(arch, 2, (230, 260))
    expected = [
        _expected_box(arch, offsets, scale_hw, (230, 260), r, k, t[cls], f)
        for (r, k), cls, f in zip(c.windows, c.classes, c.flipped)
    ]
    np.testing.assert_allclose(c.boxes, expected, rtol=0, atol=1e-9)


def test_untrained_regressor_predicts_each_window_like_the_window_baseline():
    model = _toy("fast")
    reg = BoxRegressor(model.spec, "scr", width=WIDTH).eval()  # REGRESSOR_INIT: output 0
    images = [_image(200, 240)]
    p = LocalizationProtocol(scales=(1, 2), top_k=2)
    by_regressor = candidate_boxes(model, reg, images, p)[0]
    by_window = candidate_boxes(model, None, images, LocalizationProtocol(scales=(1, 2), top_k=2,
                                                                          box_source="window"))[0]  # fmt: skip
    np.testing.assert_array_equal(by_regressor.boxes, by_window.boxes)
    np.testing.assert_array_equal(by_regressor.scores, by_window.scores)


# ------------------------------------------------------------------ C_s, merge and top 5


def test_top_k_classes_per_scale_are_the_largest_spatial_maxima_of_image_and_mirror():
    model = _toy("fast", classes=7)
    img = _image(210, 300, seed=19)  # an image whose mirror changes scale 1's top 3
    c = candidate_boxes(model, None, [img], LocalizationProtocol(scales=(1, 2), top_k=3,
                                                                 box_source="window"))[0]  # fmt: skip
    for scale in (1, 2):
        x = resize(img.unsqueeze(0), _scale_image_size("fast", scale, (210, 300)))
        with torch.no_grad():
            probs = dense_scores(model, torch.cat([x, x.flip(-1)])).softmax(dim=1)
        best = probs.amax(dim=(0, 2, 3))
        expected = set(np.argsort(-best.numpy(), kind="stable")[:3].tolist())
        assert set(c.classes[c.scales == scale].tolist()) == expected
        assert len(expected) == 3 and best.max() > 1.5 * best.min()  # the ranking is not a tie
        unmirrored = set(np.argsort(-probs[0].amax(dim=(1, 2)).numpy(), kind="stable")[:3].tolist())
        assert (unmirrored != expected) == (scale == 1)  # the mirror's windows count too


def test_merged_score_is_the_hand_sum_of_its_windows_probabilities_and_top5_is_by_score():
    # A 247x247 image is the fast network's scale 1: 2x2 windows (x, y ∈ {0, 16}, side 231) on the
    # image and 2x2 on its mirror, which maps back onto the same 4 boxes. Every pair scores < 0.5
    # (MATCH_SCORE), so each class's 8 boxes merge into one: the mean box, (8, 8, 238, 238).
    model = _toy("fast", classes=5)
    img = _image(247, 247)
    protocol = LocalizationProtocol(scales=(1,), top_k=5, box_source="window")
    loc = localize(model, None, [img], protocol)[0]
    with torch.no_grad():
        x = img.unsqueeze(0)
        probs = dense_scores(model, torch.cat([x, x.flip(-1)])).softmax(dim=1).double()
    sums = probs.sum(dim=(0, 2, 3)).numpy()  # 8 windows per class
    order = np.argsort(-sums, kind="stable")
    np.testing.assert_array_equal(loc.labels, order)
    np.testing.assert_allclose(loc.scores, sums[order], rtol=1e-6)
    np.testing.assert_allclose(loc.boxes, np.tile([8.0, 8.0, 238.0, 238.0], (5, 1)), atol=1e-9)


def test_top_predictions_take_distinct_labels_first_then_fill_with_next_boxes():
    boxes = np.arange(24, dtype=float).reshape(6, 4)
    classes = np.array([2, 2, 1, 0, 1, 2])
    scores = np.array([5.0, 4.0, 3.0, 1.0, 0.5, 6.0])
    loc = top_predictions(classes, boxes, scores, guesses=5)
    # distinct labels by their best box: 2 (6.0, box 5), 1 (3.0, box 2), 0 (1.0, box 3);
    # then the next-best boxes whatever their label: 2 (5.0, box 0), 2 (4.0, box 1)
    np.testing.assert_array_equal(loc.labels, [2, 1, 0, 2, 2])
    np.testing.assert_array_equal(loc.scores, [6.0, 3.0, 1.0, 5.0, 4.0])
    np.testing.assert_array_equal(loc.boxes, boxes[[5, 2, 3, 0, 1]])
    few = top_predictions(np.array([3, 1]), boxes[:2], np.array([1.0, 1.0]), guesses=5)
    np.testing.assert_array_equal(
        few.labels, [1, 3, NO_GUESS, NO_GUESS, NO_GUESS]
    )  # tie: lower class
    assert np.isnan(few.scores[2:]).all()


def test_whole_image_baseline_boxes_the_image_for_the_table2_class_vector_top5():
    model = _toy("accurate", classes=6)
    img = _image(200, 260)
    loc = localize(model, None, [img], LocalizationProtocol(scales=(1, 2), box_source="image"))[0]
    votes = []
    for scale in (1, 2):
        x = resize(img.unsqueeze(0), _scale_image_size("accurate", scale, (200, 260)))
        with torch.no_grad():
            for view in (x, x.flip(-1)):
                votes.append(dense_scores(model, view).softmax(dim=1).amax(dim=(2, 3))[0])
    vector = torch.stack(votes).mean(dim=0).numpy()
    np.testing.assert_array_equal(loc.labels, np.argsort(-vector, kind="stable")[:5])
    np.testing.assert_allclose(loc.scores, np.sort(vector)[::-1][:5], rtol=1e-5)
    np.testing.assert_array_equal(loc.boxes, np.tile([0, 0, 259, 199], (5, 1)))


def test_centred_crop_boxes_map_through_the_crop_and_the_resize():
    model = _toy("fast", classes=6)
    t = (0.125, -0.0625, -0.125, 0.25)
    reg = _constant_regressor(model, t)
    img = _image(300, 400)
    loc = localize(model, reg, [img], LocalizationProtocol(views="centre"))[0]
    # shorter side 256: 256 x 341 (341 = 256·400 // 300), crop 231 at y = 12, x = 55
    x = resize(img.unsqueeze(0), (256, 341))[:, :, 12:243, 55:286]
    with torch.no_grad():
        probs = model(x).softmax(dim=1)[0, :, 0, 0].numpy()
    np.testing.assert_array_equal(loc.labels, np.argsort(-probs, kind="stable")[:5])
    S = 231
    x1, y1, x2, y2 = 55 + t[0] * S, 12 + t[1] * S, 55 + S - 1 + t[2] * S, 12 + S - 1 + t[3] * S
    rx, ry = 400 / 341, 300 / 256
    box = [
        max(x1 * rx, 0),
        max(y1 * ry, 0),
        min((x2 + 1) * rx - 1, 399),
        min((y2 + 1) * ry - 1, 299),
    ]
    np.testing.assert_allclose(loc.boxes, np.tile(box, (5, 1)), atol=1e-9)


def test_a_regressor_of_another_network_or_class_count_is_refused():
    fast = _toy("fast")
    with pytest.raises(ValueError, match="accurate network.*architecture or --width"):
        check_regressor(fast, BoxRegressor(_toy("accurate").spec, width=WIDTH))
    wider = build_model("fast", num_classes=5, width=1 / 8)
    with pytest.raises(ValueError, match="architecture or --width"):
        check_regressor(fast, BoxRegressor(wider.spec, width=WIDTH))
    with pytest.raises(ValueError, match="per-class regressor of 3 classes.*5 classes"):
        check_regressor(fast, BoxRegressor(fast.spec, "pcr", 3, width=WIDTH))
    with pytest.raises(ValueError, match="needs a regressor run"):
        localize(fast, None, [_image(250, 250)], LocalizationProtocol(scales=(1,)))


# ------------------------------------------------------------------ submission files, scored


WNIDS = ["n00000001", "n00000002", "n00000003"]
TRUTH = {  # image: (class index, boxes)
    "ILSVRC2012_val_00000001": (0, [[10, 20, 109, 69]]),
    "ILSVRC2012_val_00000002": (2, [[0, 0, 49, 49]]),
    "ILSVRC2012_val_00000003": (1, [[5, 5, 44, 24], [100, 100, 139, 119]]),
}


def _ground_truth(tmp_path):
    anns = [Annotation(n, 0, 0, np.array(b), [WNIDS[c]] * len(b)) for n, (c, b) in TRUTH.items()]
    gt = tmp_path / "gt.csv"
    write_loc_solution_csv(gt, anns)
    synsets = tmp_path / "synsets.txt"
    write_synsets(synsets, WNIDS)
    return gt, synsets


def _result(first_guesses):
    """Five guesses per image: the given (label, box) first, then wrong labels."""
    names = tuple(TRUTH)
    labels = np.full((3, 5), NO_GUESS, dtype=np.int64)
    boxes = np.zeros((3, 5, 4), dtype=np.int64)
    for i, (label, box) in enumerate(first_guesses):
        labels[i, 0], boxes[i, 0] = label, box
        wrong = [c for c in range(3) if c != TRUTH[names[i]][0]]
        labels[i, 1:3], boxes[i, 1:3] = wrong, box
    return LocalizationResult(names, labels, boxes, np.zeros((3, 5)), np.ones(3, bool),
                              np.full((3, 2), 300))  # fmt: skip


@pytest.mark.parametrize("fmt", ["devkit", "kaggle"])
def test_written_submission_scores_as_computed_by_hand(tmp_path, fmt):
    gt, synsets = _ground_truth(tmp_path)
    perfect = [(c, b[-1]) for c, b in TRUTH.values()]  # any box of the label will do
    pred = tmp_path / f"perfect.{fmt}"
    write_loc_submission(pred, _result(perfect), WNIDS, fmt)
    result, _ = evaluate_localization_files(gt, pred, synsets=synsets)
    assert result.to_dict()["loc_error_by_guesses"] == [0.0] * 5
    # image 1 right; image 2's box shifted by half its width (IoU 25·50 / (2·2500 − 1250) = 1/3);
    # image 3 a right box with the wrong label
    mixed = [(0, [10, 20, 109, 69]), (2, [25, 0, 74, 49]), (0, [5, 5, 44, 24])]
    write_loc_submission(pred, _result(mixed), WNIDS, fmt)
    result, _ = evaluate_localization_files(gt, pred, synsets=synsets)
    np.testing.assert_allclose(result.to_dict()["loc_error_by_guesses"], [2 / 3] * 5)
    if fmt == "devkit":
        labels, boxes = read_devkit_loc(pred)
        np.testing.assert_array_equal(labels[:, :3], _result(mixed).labels[:, :3])
        np.testing.assert_array_equal(boxes[1, 0], [25, 0, 74, 49])
    else:
        read = read_kaggle_submission(pred)
        assert read["ILSVRC2012_val_00000002"].wnids == ("n00000003", "n00000001", "n00000002")


def test_devkit_submission_with_ilsvrc2012_ids_scores_through_the_devkit_meta(tmp_path, devkit_dir):
    from evaluation.labels import ClassLabels

    meta = devkit_dir / "t12" / "meta.mat"
    labels = ClassLabels.from_devkit_meta(meta)
    name, box = "ILSVRC2012_val_00000001", [111, 108, 441, 193]
    sea_snake = labels.wnid_to_index["n01751748"]  # the image's devkit label, ILSVRC2012_ID 490
    gt = tmp_path / "gt.csv"
    write_loc_solution_csv(gt, [Annotation(name, 0, 0, np.array([box]), ["n01751748"])])
    result = LocalizationResult(
        (name,), np.array([[sea_snake, 0, 1, 2, 3]]), np.array([[box] * 5]), np.zeros((1, 5)),
        np.ones(1, bool), np.array([[375, 500]]),
    )  # fmt: skip
    pred = tmp_path / "loc.txt"
    write_loc_submission(pred, result, labels.wnids, "devkit", labels.index_to_devkit)
    assert pred.read_text().split()[0] == "490"
    scored, _ = evaluate_localization_files(gt, pred, meta=meta)
    assert scored.to_dict()["loc_error_by_guesses"] == [0.0] * 5


# ------------------------------------------------------------------ overfeat localize


def _synthetic(root, det_images=0):
    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    write_synthetic(root, SyntheticConfig(classes=3, train_per_class=1, val_per_class=2,
                                          det_images=det_images, class_colours=True))  # fmt: skip
    return root


def _classifier_run(run, classes, arch="fast"):
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic

    model = _toy(arch, classes=classes)
    save_checkpoint_atomic(
        {"model": model.state_dict(), "model_config": model.config, "train_config": {"epochs": 1},
         "optimizer": {}, "scheduler": {}, "progress": {"epoch": 1, "step_in_epoch": 0,
                                                         "global_step": 1}},
        checkpoint_path(run, 1),
    )  # fmt: skip
    return run


def _cli(*argv):
    from overfeat.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    _synthetic(root / "data")
    _classifier_run(root / "run", 3)
    return root


def test_localize_command_writes_scored_files_and_counts_an_undecodable_image(
    synthetic, tmp_path, capsys
):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic / "data", data)
    damaged = data / "ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000002.JPEG"
    damaged.write_bytes(b"not a JPEG at all")
    out = tmp_path / "loc.txt"
    rc = _cli("localize", "--classifier", synthetic / "run", "--box-source", "window",
              "--scales", "1", "--data", data, "--out", out, "--score", "--workers", 0,
              "--no-progress")  # fmt: skip
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    # named once, with what was done with it
    assert printed.err.count(f"warning: {damaged}: cannot decode") == 1
    assert "skipped: it gets no guess and is scored as wrong" in printed.err
    assert "undecodable, counted wrong: 1" in printed.out
    assert "top-5 localization error" in printed.out
    labels, boxes = read_devkit_loc(out)
    assert labels.shape == (6, 5)
    # 3 classes: 3 distinct labels, then 2 further boxes; the damaged image has no guess
    assert labels[1].tolist() == [0, NO_GUESS, NO_GUESS, NO_GUESS, NO_GUESS]  # devkit "0 0 0 0 0"
    assert all(len(set(row[:3])) == 3 for i, row in enumerate(labels.tolist()) if i != 1)
    assert (boxes[~np.isnan(boxes)] >= 0).all()
    record = (tmp_path / "loc.txt.json").read_text()
    assert '"skipped": 1' in record and '"loc_error_by_guesses"' in record
    again, _ = evaluate_localization_files(tmp_path / "loc.txt.gt.csv", out,
                                           synsets=tmp_path / "loc.txt.synsets.txt")  # fmt: skip
    assert again.to_dict()["loc_error_by_guesses"][4] == pytest.approx(
        float(printed.out.split("top-5 localization error: ")[1].split()[0]), abs=1e-4
    )


def test_localize_command_kaggle_format_names_images_and_wnids(synthetic, tmp_path, capsys):
    out = tmp_path / "loc.csv"
    rc = _cli("localize", "--classifier", synthetic / "run", "--box-source", "image",
              "--scales", "1", "--no-flip", "--data", synthetic / "data", "--out", out,
              "--format", "kaggle", "--limit", 4, "--workers", 0, "--no-progress", "--score")  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    read = read_kaggle_submission(out)
    assert sorted(read) == [f"ILSVRC2012_val_{i:08d}" for i in range(1, 5)]
    mapping = (synthetic / "data" / "LOC_synset_mapping.txt").read_text().splitlines()
    wnids = [line.split()[0] for line in mapping]
    assert all(set(g.wnids) <= set(wnids) and len(g.wnids) == 3 for g in read.values())


def test_localize_command_refuses_bad_input_before_reading_images(synthetic, tmp_path, capsys):
    import shutil

    # a classic layout without validation boxes
    classic = tmp_path / "classic"
    for split in ("train", "val"):
        src = synthetic / "data" / "ILSVRC/Data/CLS-LOC" / split
        for path in sorted(src.rglob("*.JPEG"))[:3]:
            wnid = path.parent.name if split == "train" else "n01472173"
            (classic / split / wnid).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, classic / split / wnid / path.name)
    out = tmp_path / "loc.txt"
    common = ("--box-source", "window", "--out", out, "--workers", 0, "--no-progress")
    assert (
        _cli("localize", "--classifier", synthetic / "run", "--data", classic, "--score", *common)
        == 2
    )
    assert "--score" in (err := capsys.readouterr().err) and "no validation boxes" in err
    assert _cli("localize", "--classifier", synthetic / "run", "--data", synthetic / "data",
                "--out", out) == 2  # fmt: skip
    assert "needs --regressor" in capsys.readouterr().err
    five = _classifier_run(tmp_path / "five", 5)
    assert _cli("localize", "--classifier", five, "--data", synthetic / "data", *common) == 2
    assert "5 classes" in (err := capsys.readouterr().err) and "has 3" in err
    assert (
        _cli("localize", "--classifier", tmp_path / "none", "--data", synthetic / "data", *common)
        == 2
    )
    assert "no such folder" in capsys.readouterr().err
    assert not out.exists()


def _regressor_run(run, classifier_run, classes, arch="fast"):
    """A regressor run in the training side's checkpoint format, on ``classifier_run``."""
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic

    model = _toy(arch, classes=classes)
    reg = BoxRegressor(model.spec, "scr", width=WIDTH)
    save_checkpoint_atomic(
        {"regressor": reg.state_dict(),
         "regressor_config": {"kind": "scr", "num_classes": classes, "width": WIDTH},
         "classifier_run": str(classifier_run), "classifier_config": model.config,
         "classifier_checkpoint": "checkpoint-00000001.pt", "train_config": {"epochs": 1},
         "optimizer": {}, "scheduler": {}, "progress": {"epoch": 1, "step_in_epoch": 0,
                                                         "global_step": 1}},
        checkpoint_path(run, 1),
    )  # fmt: skip
    return run


def test_localize_command_with_a_regressor_run_and_a_mismatched_one(synthetic, tmp_path, capsys):
    def run(*flags, out=tmp_path / "loc.txt"):
        return _cli("localize", "--classifier", synthetic / "run", "--data", synthetic / "data",
                    "--scales", 1, "--out", out, "--workers", 0, "--no-progress", *flags)  # fmt: skip

    good = _regressor_run(tmp_path / "reg3", synthetic / "run", 3)
    assert run("--regressor", good) == 0
    assert run("--box-source", "window", out=tmp_path / "window.txt") == 0
    # an untrained regressor (output 0) predicts each window: the baseline's file exactly
    assert (tmp_path / "loc.txt").read_text() == (tmp_path / "window.txt").read_text()
    capsys.readouterr()
    other = _regressor_run(tmp_path / "reg5", tmp_path / "five", 5)
    assert run("--regressor", other) == 2
    err = capsys.readouterr().err
    assert "does not match" in err and "num_classes 3 (trained on 5)" in err
    accurate = _regressor_run(tmp_path / "reg_acc", tmp_path / "acc", 3, arch="accurate")
    assert run("--regressor", accurate) == 2
    assert "arch 'fast' (trained on 'accurate')" in capsys.readouterr().err


def test_localization_images_are_the_boxed_validation_images_in_name_order(synthetic, tmp_path):
    import shutil

    from overfeat.localize import localization_images

    samples, classes, boxes = localization_images(synthetic / "data", every=2)
    assert [p.rsplit("/", 1)[1] for p, _ in samples] == [
        f"ILSVRC2012_val_{i:08d}.JPEG" for i in (1, 3, 5)
    ]
    assert len(classes) == 3 and len(boxes) == 6
    # a classic layout whose LOC_val_solution.csv beside it boxes 2 of its 3 images
    src = sorted((synthetic / "data" / "ILSVRC/Data/CLS-LOC/val").glob("*.JPEG"))[:3]
    truth = synthetic / "data" / "LOC_val_solution.csv"
    for i, path in enumerate(src):
        wnid = classes[i]
        for split in ("train", "val"):
            (tmp_path / split / wnid).mkdir(parents=True)
            shutil.copy(path, tmp_path / split / wnid / path.name)
    lines = truth.read_text().splitlines()
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join([lines[0], lines[1], lines[3]]) + "\n")
    samples, _, boxes = localization_images(tmp_path)
    assert [p.rsplit("/", 1)[1] for p, _ in samples] == [src[0].name, src[2].name]
    assert sorted(boxes) == [src[0].stem, src[2].stem]
    assert len(localization_images(tmp_path, limit=1)[0]) == 1
