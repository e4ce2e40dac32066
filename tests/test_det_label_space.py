"""The DET label space end to end (overfeat/data/label_space.py, decision DET_LABEL_SPACE): a
tiny synthetic DET layout in tmp with a devkit of its own (1,000 CLS-LOC leaves, one ancestor,
200 DET classes), a detector trained in it from a 3-class classifier, and `reproduce detection`
scoring it against the 200 DET classes; then the same path on the real ilsvrc-det-val-mini.

The facts checked are worked out by hand from the files written here: which DET classes the
3 classes cover, what each training object becomes, how many objects of each DET class the two
validation XMLs hold, and which (image, class) pair the blacklist removes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from train_spatial_support import save_toy_classifier, write_tiny_synthetic

from evaluation.formats import read_det_submission
from overfeat.data.label_space import (
    DET_SPACE,
    det_output_classes,
    det_training_index,
    find_det_devkit,
)
from overfeat.data.readers import classification_samples
from overfeat.engine.checkpoint import list_checkpoints
from overfeat.engine.detector import DetectorTask, detection_training_images, detector_recipe
from overfeat.engine.distributed import DistEnv
from overfeat.engine.spatial import train_spatial

CPU = DistEnv(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
ANCESTOR = "n09990000"  # a DET class above the synthetic set's classes 0 and 1, as dog above breeds
FAKE = [f"n0999{i:04d}" for i in range(1, 998)]  # the other 997 CLS-LOC leaves


def _write_meta(devkit: Path, cls: list[str]) -> list[str]:
    """meta_clsloc.mat (leaves cls[0..2] + FAKE, ILSVRC2014_ID 1..1000; ANCESTOR id 1001 over
    ids 1 and 2) and meta_det.mat (DET_ID 1 ANCESTOR, 2 cls[2], 3..200 FAKE[0..197]); returns
    the DET WNIDs in DET_ID order."""
    import scipy.io

    devkit.mkdir(parents=True)
    leaves = [*cls, *FAKE]
    out = np.zeros((1, 1001), dtype=[("ILSVRC2014_ID", "O"), ("WNID", "O"), ("words", "O"),
                                     ("children", "O")])  # fmt: skip
    for i, w in enumerate(leaves):
        out[0, i] = (float(i + 1), w, w, np.zeros(0))
    out[0, 1000] = (1001.0, ANCESTOR, "ancestor", np.array([1.0, 2.0]))
    scipy.io.savemat(str(devkit / "meta_clsloc.mat"), {"synsets": out})
    det = [ANCESTOR, cls[2], *FAKE[:198]]
    out = np.zeros((1, 200), dtype=[("ILSVRC2013_DET_ID", "O"), ("WNID", "O"), ("name", "O")])
    for i, w in enumerate(det):
        out[0, i] = (float(i + 1), w, f"class {i + 1}")
    scipy.io.savemat(str(devkit / "meta_det.mat"), {"synsets": out})
    return det


def _xml(path: Path, name: str, objects) -> None:
    objs = "".join(
        f"<object><name>{w}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for w, b in objects
    )
    path.write_text(f"<annotation><filename>{name}</filename><size><width>500</width>"
                    f"<height>375</height></size>{objs}</annotation>")  # fmt: skip


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A synthetic CLS-LOC set with a DET val split of 2 images (val.txt indices 7 and 9, as a
    sub-list keeps them) and a devkit folder beside it (found by DET_DEVKIT_SEARCH)."""
    top = tmp_path_factory.mktemp("det-space")
    root = write_tiny_synthetic(top / "ilsvrc")
    _, cls, _ = classification_samples(root, "train")
    det = _write_meta(top / "ilsvrc-devkit", list(cls))
    val = root / "ILSVRC/Data/DET/val"
    xml = root / "ILSVRC/Annotations/DET/val"
    val.mkdir(parents=True, exist_ok=True)
    xml.mkdir(parents=True, exist_ok=True)
    images = sorted((root / "ILSVRC/Data/CLS-LOC/train").glob("*/*.JPEG"))[:2]
    for img, name in zip(images, ("img_a", "img_b")):
        shutil.copy(img, val / f"{name}.JPEG")
    # img_a: the ancestor (a DET class that is no CLS-LOC class) and a DET class the classifier
    # does not cover; img_b: cls[2], a DET class that is a CLS-LOC class, twice.
    _xml(xml / "img_a.xml", "img_a", [(ANCESTOR, (10, 10, 300, 300)), (FAKE[5], (0, 0, 50, 50))])
    _xml(xml / "img_b.xml", "img_b", [(cls[2], (20, 30, 400, 350)), (cls[2], (0, 0, 99, 99))])
    (root / "ILSVRC/ImageSets/DET").mkdir(parents=True, exist_ok=True)
    (root / "ILSVRC/ImageSets/DET/val.txt").write_text("img_a 7\nimg_b 9\n")
    devkit = top / "ilsvrc-devkit"
    (devkit / "det_val_list.txt").write_text("".join(f"other_{i} {i}\n" for i in range(1, 7))
                                             + "img_a 7\nother_8 8\nimg_b 9\n")  # fmt: skip
    (devkit / "ILSVRC2014_det_validation_blacklist.txt").write_text(f"9 {cls[2]}\n3 {ANCESTOR}\n")
    return {"root": root, "devkit": devkit, "cls": list(cls), "det": det, "top": top}


def test_devkit_is_found_beside_a_det_layout_only(layout, tmp_path):
    found = find_det_devkit(layout["root"])
    assert found is not None and found.meta_det == layout["devkit"] / "meta_det.mat"
    assert found.blacklist is not None and found.val_list == layout["devkit"] / "det_val_list.txt"
    # A CLS-LOC set (no ILSVRC/Data/DET) stays in its own space even with a devkit beside it.
    plain = tmp_path / "plain"
    shutil.copytree(layout["root"] / "ILSVRC/Data/CLS-LOC", plain / "ILSVRC/Data/CLS-LOC")
    shutil.copytree(layout["devkit"], tmp_path / "devkit")
    assert find_det_devkit(plain) is None
    assert find_det_devkit(plain, tmp_path / "devkit") is not None  # named: always used


def test_three_classes_cover_the_ancestor_and_one_leaf(layout):
    cls, det = layout["cls"], layout["det"]
    out = det_output_classes(cls, find_det_devkit(layout["root"]))
    # DET_COVERED_OUTPUTS: DET_ID 1 (over cls 0 and 1) and DET_ID 2 (cls 2 itself), DET_ID order.
    assert out.det_wnids == (ANCESTOR, cls[2])
    assert set(out.mapping[ANCESTOR]) == {cls[0], cls[1]} and out.mapping[cls[2]] == (cls[2],)
    index = det_training_index(out.det_wnids, out.mapping)
    assert index == {cls[0]: 0, cls[1]: 0, cls[2]: 1, ANCESTOR: 0}
    assert det[:2] == [ANCESTOR, cls[2]]


def test_training_objects_take_the_det_class_covering_them(layout):
    cls = layout["cls"]
    out = det_output_classes(cls, find_det_devkit(layout["root"]))
    source = detection_training_images(layout["root"], out)
    plain = detection_training_images(layout["root"])
    assert source.classes == [ANCESTOR, cls[2]] and len(source.records) == len(plain.records)
    for r, p in zip(source.records, plain.records):
        # CLS-LOC class 0 or 1 → output 0 (the ancestor); class 2 → output 1.
        assert r.label == (0 if p.label < 2 else 1)
        assert r.classes.tolist() == [0 if c < 2 else 1 for c in p.classes.tolist()]


@pytest.fixture(scope="module")
def det_detector(layout, tmp_path_factory) -> Path:
    """A detector trained one tiny epoch (4 images, scale 2) in the DET space."""
    top = tmp_path_factory.mktemp("det-run")
    classifier = save_toy_classifier(top / "cls")
    out = top / "det"
    config = detector_recipe(
        "toy", classifier=str(classifier), data=str(layout["root"]), out=str(out), epochs=1,
        batch_size=4, scales=(2,), workers=0, log_every=0, progress=False, device="cpu",
        amp="none", max_train_samples=4, det_devkit=str(layout["devkit"]),
    )  # fmt: skip
    train_spatial(DetectorTask, config, env=CPU)
    return out


def test_the_detector_records_its_det_outputs(det_detector, layout):
    state = torch.load(list_checkpoints(det_detector)[-1], weights_only=True)
    assert state["model_config"]["num_classes"] == 3  # 2 DET classes + background
    d = state["detector"]
    assert d["label_space"] == DET_SPACE and d["classes"] == [ANCESTOR, layout["cls"][2]]
    assert d["background_index"] == 2


def _reproduce(layout, detector, tmp_path, name, *extra):
    from overfeat.reproduce.detection import DetectionRequest, reproduce_detection
    from overfeat.reproduce.runner import RunOptions

    request = DetectionRequest(
        data=str(layout["root"]), checkpoints=(f"detector={detector}",), name=name,
        cache=str(tmp_path / "cache"), reports=str(tmp_path / "reports"),
        options=RunOptions(progress=False), **dict(extra),
    )  # fmt: skip
    csv = reproduce_detection(request)
    return json.loads(csv.with_suffix(".json").read_text())


def test_reproduce_detection_scores_the_200_det_classes(det_detector, layout, tmp_path):
    meta = _reproduce(layout, det_detector, tmp_path, "space")
    meta = meta.get("meta", meta)
    assert meta["label_space"] == DET_SPACE and meta["classes"] == layout["det"]
    win = meta["rows"]["DET-WIN"]
    npos = np.array(win["npos"])
    # By hand from the two XMLs: DET_ID 1 (ancestor) 1 object, 2 (cls 2) 2, 8 (FAKE[5], the
    # 6th fake after DET_IDs 1 and 2) 1.
    want = np.zeros(200, int)
    want[[0, 1, 7]] = [1, 2, 1]
    assert len(win["ap"]) == 200 and npos.tolist() == want.tolist()
    sub = read_det_submission(win["submission"])
    assert set(sub.det_id.tolist()) <= {1, 2}  # the detector's two DET outputs only


def test_the_2014_blacklist_option_removes_its_pair(det_detector, layout, tmp_path):
    meta = _reproduce(layout, det_detector, tmp_path, "blacklisted", ("blacklist", True))
    meta = meta.get("meta", meta)
    # Line "9 cls[2]": img_b is index 9 of det_val_list.txt → both of its cls[2] objects leave
    # DET_ID 2's positives; line "3 ancestor" names an image not evaluated and is dropped.
    assert meta["rows"]["DET-WIN"]["npos"][:2] == [1, 0]


def test_real_det_val_mini_scores_in_the_200_class_space(det_val_mini, devkit_dir, tmp_path):
    """ilsvrc-det-val-mini (real DET val2 photos and XMLs, person and dog among them) with a
    detector built from a 3-class toy classifier whose classes are real CLS-LOC classes: a
    Chihuahua (under dog, an ancestor), a golf ball and a French horn (DET classes themselves)."""
    from overfeat.data.label_space import find_det_devkit as find
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic
    from overfeat.engine.detector import detector_network

    classifier = save_toy_classifier(tmp_path / "cls")
    cstate = torch.load(list_checkpoints(classifier)[-1], weights_only=True)
    devkit = find(None, devkit_dir / "t14")
    dc = det_output_classes(["n02085620", "n03445777", "n03394916"], devkit)
    # meta_det.mat: DET_ID 58 dog, 71 french horn, 76 golf ball (DET_ID order).
    assert dc.det_wnids == ("n02084071", "n03394916", "n03445777")
    model = detector_network(cstate, 0.0, 0, dc)
    run = tmp_path / "det"
    save_checkpoint_atomic(cstate | {
        "model": model.state_dict(), "model_config": model.config,
        "detector": {"background_index": 3, "num_object_classes": 3, "classifier_run": "",
                     "label_space": DET_SPACE, "classes": list(dc.det_wnids)},
    }, checkpoint_path(run, 1))  # fmt: skip
    from overfeat.reproduce.detection import DetectionRequest, reproduce_detection
    from overfeat.reproduce.runner import RunOptions

    csv = reproduce_detection(DetectionRequest(
        data=str(det_val_mini), checkpoints=(f"detector={run}",), limit=6, name="mini",
        det_devkit=str(devkit_dir / "t14"), cache=str(tmp_path / "cache"),
        reports=str(tmp_path / "reports"), options=RunOptions(progress=False),
    ))  # fmt: skip
    meta = json.loads(csv.with_suffix(".json").read_text())
    meta = meta.get("meta", meta)
    assert meta["label_space"] == DET_SPACE and len(meta["classes"]) == 200
    # The positives per DET class equal a count of the first 6 listed images' XML objects.
    import xml.etree.ElementTree as ET

    names = [line.split()[0] for line in
             (det_val_mini / "ILSVRC/ImageSets/DET/val.txt").read_text().splitlines()[:6]]  # fmt: skip
    counts: dict[str, int] = {}
    for n in names:
        for obj in ET.parse(det_val_mini / f"ILSVRC/Annotations/DET/val/{n}.xml").iter("object"):
            counts[obj.findtext("name")] = counts.get(obj.findtext("name"), 0) + 1
    npos = meta["rows"]["DET-WIN"]["npos"]
    assert {meta["classes"][k]: v for k, v in enumerate(npos) if v} == counts


def test_detect_reads_the_det_classes_the_detector_recorded(det_detector, layout, tmp_path, capsys):
    """`overfeat detect` with a DET-space detector and no --classes: the outputs are the run's
    two DET classes, written as the devkit's DET_IDs (1 the ancestor, 2 cls[2]) and scored
    against its 200 classes, the same objects per class as counted by hand above."""
    from overfeat.cli import main

    out = tmp_path / "det.txt"
    rc = main([str(a) for a in ("detect", "--detector", det_detector, "--box-source", "window",
                                "--scales", 1, "--threshold", 0.0, "--data", layout["root"],
                                "--out", out, "--score", "--workers", 0, "--no-progress")])  # fmt: skip
    printed = capsys.readouterr()
    assert rc == 0, printed.err
    sub = read_det_submission(out, num_images=2, num_classes=200)
    assert len(sub) > 0 and set(sub.det_id.tolist()) <= {1, 2}
    record = json.loads(out.with_name("det.txt.json").read_text())
    assert record["label_space"] == "DET_ID (meta_det.mat)"
    assert str(layout["devkit"] / "meta_det.mat") in record["score_command"]
    npos = np.array(record["harness"]["npos"])
    want = np.zeros(200, int)
    want[[0, 1, 7]] = [1, 2, 1]
    assert npos.tolist() == want.tolist()
    # Without a devkit beside the data, a DET-space detector is refused, naming --meta-det.
    moved = tmp_path / "alone" / "ilsvrc"
    shutil.copytree(layout["root"], moved)
    rc = main([str(a) for a in ("detect", "--detector", det_detector, "--box-source", "window",
                                "--data", moved, "--out", tmp_path / "x.txt")])  # fmt: skip
    assert rc == 2 and "pass --meta-det" in capsys.readouterr().err


def _train_regressor(detector: Path, data: Path, out: Path, kind: str) -> dict:
    from overfeat.cli import main

    argv = ["train", "regressor", "--classifier", detector, "--data", data, "--out", out,
            "--type", kind, "--recipe", "toy", "--scales", "1", "--batch-size", "4",
            "--max-train-samples", "4", "--workers", "0", "--epochs", "1", "--no-progress",
            "--device", "cpu"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return torch.load(list_checkpoints(out)[-1], weights_only=True)


def test_regressors_on_a_det_detector_train_in_its_label_space(det_detector, layout, tmp_path):
    """REGRESSOR_DET_SPACE: a PCR on the DET detector has one box per DET output (2: the
    ancestor over cls 0 and 1, and cls 2), each training image relabelled as the detector's
    objects are; an SCR names no class and keeps every boxed image."""
    from train_spatial_support import TOY_WIDTH

    from overfeat.data.boxed import clsloc_training_images
    from overfeat.engine.detector import load_detector
    from overfeat.engine.regressor import load_regressor, regressor_training_images
    from overfeat.inference_cli import _check_detection_regressor
    from overfeat.localize import check_regressor

    root, cls = layout["root"], layout["cls"]
    dstate = torch.load(list_checkpoints(det_detector)[-1], weights_only=True)
    plain = clsloc_training_images(root)
    pcr_source = regressor_training_images(root, dstate, "pcr")
    assert pcr_source.classes == [ANCESTOR, cls[2]] and len(pcr_source.records) == len(plain.records)
    for r, p in zip(pcr_source.records, plain.records):
        assert r.label == (0 if p.label < 2 else 1)
        assert r.classes.tolist() == [0 if c < 2 else 1 for c in p.classes.tolist()]
    scr_source = regressor_training_images(root, dstate, "scr")
    assert scr_source.classes == cls
    assert [r.label for r in scr_source.records] == [p.label for p in plain.records]

    pcr = _train_regressor(det_detector, root, tmp_path / "pcr", "pcr")
    assert pcr["regressor_config"] == {"kind": "pcr", "num_classes": 2, "width": TOY_WIDTH}
    assert pcr["regressor"]["layers.reg3.weight"].shape[0] == 4 * 2
    scr = _train_regressor(det_detector, root, tmp_path / "scr", "scr")
    assert scr["regressor"]["layers.reg3.weight"].shape[0] == 4
    detector, _ = load_detector(det_detector)
    for run in ("pcr", "scr"):  # both box the detector's outputs: no refusal
        _check_detection_regressor(detector, load_regressor(tmp_path / run, detector), check_regressor)

    # An ancestor covering more classes than the data set has (dog over 118 breeds, imagenette-10
    # with one) still has images to learn from: accepted.
    wider = dstate | {"detector": dstate["detector"] | {
        "det_cover": dstate["detector"]["det_cover"] | {
            ANCESTOR: [*dstate["detector"]["det_cover"][ANCESTOR], "n01234567"]}}}  # fmt: skip
    assert len(regressor_training_images(root, wider, "pcr").records) == len(plain.records)
    # A DET output that covers no class of the data set is not the detector's data: refused.
    other = dstate | {"detector": dstate["detector"] | {
        "det_cover": dstate["detector"]["det_cover"] | {cls[2]: ["n01234567"]}}}  # fmt: skip
    with pytest.raises(ValueError, match="1 of the detector's DET outputs cover no class.*"
                                         "n01234567.*pass the data set"):  # fmt: skip
        regressor_training_images(root, other, "scr")
