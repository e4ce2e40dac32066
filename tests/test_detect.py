"""Detection (§5): the windows that vote for each class, the merge per class and its
confidences, the DET submission scored by the harness, the random baseline, and
``overfeat detect``.

Expected values are computed here from the detector's own dense outputs (softmax over C + 1)
and from boxes written by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.annotations import Annotation, write_xml
from evaluation.formats import read_det_submission, write_det_submission
from evaluation.labels import DetLabels
from overfeat import build_model
from overfeat.dense import dense_scores
from overfeat.detect import (
    DetectionProtocol,
    Detections,
    det_ids_for,
    detect,
    detection_candidates,
    detection_submission,
    random_detections,
    score_detections,
)
from overfeat.regression import BoxRegressor
from overfeat.scales import resize

WIDTH = 1 / 16


def _detector(classes=3, arch="fast", seed=0):
    """A toy detector of ``classes`` + 1 outputs, He-initialised so its probabilities vary."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=classes + 1, width=WIDTH).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def _image(h, w, seed=1):
    torch.manual_seed(seed)
    return torch.rand(3, h, w) * 4 - 2


def _probs(model, img, size):
    """Softmax over the C + 1 outputs at every window of the scale image and its mirror:
    ``(2, C + 1, H', W')``."""
    x = resize(img.unsqueeze(0), size)
    with torch.no_grad():
        return dense_scores(model, torch.cat([x, x.flip(-1)])).softmax(dim=1)


@pytest.mark.parametrize("background", [3, 0])
def test_windows_vote_for_every_object_class_they_give_at_least_the_threshold(background):
    model = _detector()
    img = _image(240, 300)
    protocol = DetectionProtocol(scales=(1, 2), threshold=0.3, box_source="window")
    c = detection_candidates(model, background, None, [img], protocol)[0]
    objects = [k for k in range(4) if k != background]
    expected = set()
    for scale, size in ((1, (247, 247)), (2, (279, 311))):  # fast scales 1 and 2, landscape
        probs = _probs(model, img, size)
        for f, k, r, col in zip(*np.nonzero(probs.numpy() >= 0.3)):
            if k != background:
                expected.add((scale, bool(f), int(r), int(col), objects.index(k),
                              float(probs[f, k, r, col])))  # fmt: skip
    got = {(int(s), bool(f), int(r), int(col), int(k), float(p))
           for s, f, (r, col), k, p in zip(c.scales, c.flipped, c.windows, c.classes, c.scores)}  # fmt: skip
    assert got == expected and len(expected) > 10
    assert (c.scores >= 0.3).all()


def test_per_class_regressor_of_a_detector_boxes_object_class_c_with_channels_4c():
    model = _detector(classes=3)
    reg = BoxRegressor(model.spec, "pcr", 3, width=WIDTH).eval()
    t = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.125, 0.0, 0.0, 0.0], [0.0, 0.0, -0.25, 0.0]])
    with torch.no_grad():
        reg.layers.reg3.bias.copy_(t.reshape(-1))  # output layer weights are 0 (REGRESSOR_INIT)
    img = _image(247, 247)  # the fast scale 1 itself: no resize
    p = DetectionProtocol(scales=(1,), threshold=0.0, flips=False)
    c = detection_candidates(model, 3, reg, [img], p)[0]
    # window (r, k) is (16k, 16r, 16k + 230, 16r + 230); class c moves its edges by t[c]·231
    for (r, k), cls, box in zip(c.windows, c.classes, c.boxes):
        window = np.array([16 * k, 16 * r, 16 * k + 230, 16 * r + 230], dtype=float)
        expected = np.clip(window + t[cls].numpy() * 231, 0, 246)
        np.testing.assert_allclose(box, expected, atol=1e-9)
    assert sorted(set(c.classes.tolist())) == [0, 1, 2]


def test_confidence_is_the_sum_of_the_merged_windows_probabilities_most_confident_first():
    # 247x247 is the fast scale 1: its 2x2 windows and their mirrors are 4 boxes 16 px apart,
    # which merge into one per class (overfeat/merge.py MATCH_SCORE < 0.5): the mean box.
    model = _detector(classes=3)
    img = _image(247, 247)
    found = detect(model, 3, None, [img], DetectionProtocol(scales=(1,), threshold=0.0,
                                                            box_source="window"))[0]  # fmt: skip
    probs = _probs(model, img, (247, 247)).double()
    sums = probs[:, :3].sum(dim=(0, 2, 3)).numpy()
    order = np.argsort(-sums, kind="stable")
    np.testing.assert_array_equal(found.classes, order)
    np.testing.assert_allclose(found.scores, sums[order], rtol=1e-6)
    np.testing.assert_allclose(found.boxes, np.tile([8.0, 8.0, 238.0, 238.0], (3, 1)), atol=1e-9)
    capped = detect(model, 3, None, [img], DetectionProtocol(scales=(1,), threshold=0.0,
                                                             box_source="window", max_per_image=2))[0]  # fmt: skip
    np.testing.assert_array_equal(capped.classes, order[:2])


def test_an_image_where_no_window_passes_gives_an_empty_valid_submission(tmp_path):
    model = _detector()
    images = [_image(250, 260), _image(260, 250, seed=3)]
    found = detect(model, 3, None, images, DetectionProtocol(scales=(1,), threshold=1.0,
                                                             box_source="window"))  # fmt: skip
    assert [len(d.scores) for d in found] == [0, 0]
    path = tmp_path / "det.txt"
    write_det_submission(path, detection_submission(found, [(250, 260), (260, 250)], [1, 2, 3]))
    with pytest.warns(UserWarning, match="no detections"):
        assert len(read_det_submission(path, num_images=2, num_classes=3)) == 0


# ------------------------------------------------------------------ the DET submission, scored

WNIDS = ("n00000001", "n00000002", "n00000003")
OBJECTS = {  # image: [(class, box)]; image 2 holds no object
    "ILSVRC2013_val_00000001": [(0, [10, 10, 109, 59]), (2, [150, 40, 199, 89])],
    "ILSVRC2013_val_00000002": [],
    "ILSVRC2013_val_00000003": [(1, [0, 0, 79, 79]), (1, [100, 100, 139, 139])],
}


def _det_ground_truth(tmp_path, wnids=WNIDS):
    xml = tmp_path / "xml"
    xml.mkdir()
    for name, objects in OBJECTS.items():
        boxes = np.array([b for _, b in objects]).reshape(-1, 4)
        write_xml(
            xml / f"{name}.xml", Annotation(name, 300, 200, boxes, [wnids[c] for c, _ in objects])
        )
    return xml, list(OBJECTS)


def _as_detections(shift=0):
    out = []
    for objects in OBJECTS.values():
        boxes = np.array([b for _, b in objects], dtype=float).reshape(-1, 4)
        widths = boxes[:, 2] - boxes[:, 0] + 1
        boxes[:, [0, 2]] += (widths * shift)[:, None]
        out.append(Detections(np.array([c for c, _ in objects], dtype=np.int64), boxes,
                              np.linspace(1.0, 0.5, len(objects))))  # fmt: skip
    return out


def test_ground_truth_boxes_as_detections_score_map_1_and_half_shifted_boxes_0(tmp_path):
    xml, names = _det_ground_truth(tmp_path)
    labels = DetLabels(WNIDS, WNIDS)
    sizes = np.array([(200, 300)] * 3)
    pred = tmp_path / "det.txt"
    write_det_submission(pred, detection_submission(_as_detections(), sizes, det_ids_for(WNIDS)))
    result = score_detections(pred, xml, names, labels)
    assert result.mean_ap == 1.0 and result.npos.tolist() == [1, 2, 1]
    # every box moved right by half its width: IoU (w/2)·h / (3/2·w·h) = 1/3 < 0.5
    write_det_submission(pred, detection_submission(_as_detections(0.5), sizes, det_ids_for(WNIDS)))
    assert score_detections(pred, xml, names, labels).mean_ap == 0.0


def test_devkit_det_ids_score_through_python_m_evaluation_det(tmp_path, devkit_dir):
    from evaluation.tasks import evaluate_detection_files

    meta = devkit_dir / "t14" / "meta_det.mat"
    devkit = DetLabels.from_devkit_meta(meta)
    # the detector knows 4 classes: three DET classes (ids 1, 200, 5) and one that is not
    classes = [devkit.wnids[0], devkit.wnids[199], devkit.wnids[4], "n99999999"]
    ids = det_ids_for(classes, devkit)
    np.testing.assert_array_equal(ids, [1, 200, 5, 0])
    xml, names = _det_ground_truth(tmp_path, wnids=classes)
    images = tmp_path / "images.txt"
    images.write_text("".join(f"{n} {i}\n" for i, n in enumerate(names, 1)))
    found = _as_detections()
    found[1] = Detections(np.array([3]), np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([0.9]))
    sub = detection_submission(found, np.array([(200, 300)] * 3), ids)
    assert 2 not in sub.image_index  # the non-DET class's detection is left out
    pred = tmp_path / "det.txt"
    write_det_submission(pred, sub)
    with pytest.warns(UserWarning, match="197 class"):  # DET classes without positives here
        result, _ = evaluate_detection_files(xml, images, meta, pred)
    assert result.mean_ap == 1.0
    with pytest.raises(ValueError, match="none of the detector's 1 classes"):
        det_ids_for(["n99999999"], devkit)


def test_random_baseline_spreads_the_detectors_count_over_the_images_inside_each():
    sizes = np.array([(100, 200), (0, 0), (50, 40), (300, 30)])
    found = random_detections(sizes, 5, per_image=2.75, seed=7)
    counts = [len(d.scores) for d in found]
    assert sum(counts) == 11 and counts[1] == 0 and set(counts) - {0} <= {3, 4}
    for (h, w), d in zip(sizes, found):
        if len(d.scores):
            assert (d.boxes[:, 0] <= d.boxes[:, 2]).all() and (d.boxes[:, 1] <= d.boxes[:, 3]).all()
            assert d.boxes.min() >= 0 and (d.boxes[:, 2] < w).all() and (d.boxes[:, 3] < h).all()
            assert ((0 <= d.classes) & (d.classes < 5)).all() and (np.diff(d.scores) <= 0).all()
    again = random_detections(sizes, 5, per_image=2.75, seed=7)
    assert all(np.array_equal(a.boxes, b.boxes) for a, b in zip(found, again))
    other = random_detections(sizes, 5, per_image=2.75, seed=8)
    assert not all(np.array_equal(a.boxes, b.boxes) for a, b in zip(found, other))


# ------------------------------------------------------------------ overfeat detect


def _detector_run(run, classes, arch="fast"):
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic

    model = _detector(classes, arch)
    save_checkpoint_atomic(
        {"model": model.state_dict(), "model_config": model.config, "train_config": {"epochs": 1},
         "optimizer": {}, "scheduler": {}, "progress": {"epoch": 1, "step_in_epoch": 0,
                                                         "global_step": 1},
         "detector": {"background_index": classes, "num_object_classes": classes,
                      "classifier_run": "none"}},
        checkpoint_path(run, 1),
    )  # fmt: skip
    return run


def _cli(*argv):
    from overfeat.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    root = tmp_path_factory.mktemp("syn")
    write_synthetic(root / "data", SyntheticConfig(classes=3, train_per_class=1, val_per_class=1,
                                                   det_images=4, class_colours=True))  # fmt: skip
    _detector_run(root / "run", 3)
    return root


def test_detect_command_writes_a_scored_submission_and_the_random_baseline(
    synthetic, tmp_path, capsys
):
    out = tmp_path / "det.txt"
    rc = _cli("detect", "--detector", synthetic / "run", "--box-source", "window", "--scales", 1,
              "--threshold", 0.3, "--data", synthetic / "data", "--out", out, "--score",
              "--workers", 0, "--no-progress")  # fmt: skip
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    assert "mAP " in printed.out
    sub = read_det_submission(out, num_images=4, num_classes=3)
    assert len(sub) > 0 and set(sub.image_index) <= {1, 2, 3, 4}
    names = (tmp_path / "det.txt.images.txt").read_text().split()[0::2]
    assert names == [f"ILSVRC2013_val_{i:08d}" for i in range(1, 5)]
    rand = tmp_path / "random.txt"
    rc = _cli("detect", "--box-source", "random", "--like", out, "--seed", 1,
              "--data", synthetic / "data", "--out", rand, "--score")  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert len(read_det_submission(rand, num_images=4, num_classes=3)) == len(sub)


def test_detect_command_refuses_bad_input_before_reading_images(synthetic, tmp_path, capsys):
    out = tmp_path / "det.txt"
    data = ("--data", synthetic / "data", "--out", out)
    assert _cli("detect", "--detector", synthetic / "run", *data) == 2
    assert "needs --regressor" in capsys.readouterr().err
    four = _detector_run(tmp_path / "four", 4)
    assert _cli("detect", "--detector", four, "--box-source", "window", *data) == 2
    assert "has 5 outputs" in capsys.readouterr().err
    assert _cli("detect", "--box-source", "random", *data) == 2
    assert "--per-image K or --like" in capsys.readouterr().err
    assert _cli("detect", "--detector", tmp_path / "none", "--box-source", "window", *data) == 2
    assert "no readable detector checkpoint" in capsys.readouterr().err
    assert not out.exists()
