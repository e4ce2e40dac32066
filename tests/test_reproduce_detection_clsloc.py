"""Detection scored on boxed CLS-LOC validation images where a data set has no DET split (§5,
decision DET_FROM_CLSLOC_BOXES), as on imagenette-10: which images and objects the harness
scores, an oracle submission's mAP, ``--every``/``--limit``, and the refusals.

The expected objects are read here from ``LOC_val_solution.csv`` with the ``csv`` module and
the images' sizes with PIL, never through the code under test.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.labels import DetLabels
from evaluation.tasks import load_det_ground_truth
from overfeat.data.label_space import DATASET_SPACE
from overfeat.detect import Detections
from overfeat.reproduce import detection as reproduction
from overfeat.reproduce.detection import DetectionRequest, reproduce_detection
from overfeat.reproduce.runner import RunOptions

CLASSES = 3
UNBOXED = 1  # the second validation image in file-name order loses its boxes (as imagenette-10's
# 1,000 unboxed validation images have none)


def _csv_objects(path: Path) -> dict[str, list[tuple[str, list[int]]]]:
    """``{image stem: [(wnid, [x1, y1, x2, y2])]}`` read from a Kaggle ``LOC_val_solution.csv``."""
    out = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            parts = row["PredictionString"].split()
            out[row["ImageId"]] = [(parts[k], [int(v) for v in parts[k + 1 : k + 5]])
                                   for k in range(0, len(parts), 5)]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def clsloc(tmp_path_factory):
    """imagenette-10's layout in small: a synthetic set (3 classes, 3 validation images each, no
    DET split) rearranged as ``train/<wnid>/``, ``val/<wnid>/`` and a root
    ``LOC_val_solution.csv`` that boxes all validation images but one; and a toy detector run."""
    from test_detect import _detector_run

    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    root = tmp_path_factory.mktemp("clsloc-det")
    kaggle, data = root / "kaggle", root / "data"
    write_synthetic(kaggle, SyntheticConfig(seed=3, classes=CLASSES, train_per_class=1,
                                            val_per_class=3, det_images=0, class_colours=True))  # fmt: skip
    assert not (kaggle / "ILSVRC" / "Data" / "DET").exists()
    shutil.copytree(kaggle / "ILSVRC" / "Data" / "CLS-LOC" / "train", data / "train")
    shutil.copy(kaggle / "LOC_synset_mapping.txt", data)
    lines = (kaggle / "LOC_val_solution.csv").read_text().splitlines()
    stems = sorted(line.split(",")[0] for line in lines[1:])
    dropped = stems[UNBOXED]
    for line in lines[1:]:
        stem, boxes = line.split(",")
        (data / "val" / boxes.split()[0]).mkdir(parents=True, exist_ok=True)
        shutil.copy(kaggle / "ILSVRC" / "Data" / "CLS-LOC" / "val" / f"{stem}.JPEG",
                    data / "val" / boxes.split()[0])  # fmt: skip
    (data / "LOC_val_solution.csv").write_text(
        "\n".join(ln for ln in lines if not ln.startswith(dropped + ",")) + "\n"
    )
    _detector_run(root / "det", CLASSES)
    wnids = [line.split()[0] for line in (data / "LOC_synset_mapping.txt").read_text().splitlines()]
    return {"root": root, "data": data, "det": root / "det", "dropped": dropped,
            "objects": _csv_objects(data / "LOC_val_solution.csv"), "wnids": sorted(wnids)}  # fmt: skip


def _request(c, name, **extra):
    return DetectionRequest(
        data=str(c["data"]), checkpoints=(f"detector={c['det']}",), name=name,
        cache=str(c["root"] / "cache"), reports=str(c["root"] / "reports"),
        options=RunOptions(progress=False, workers=0), **extra,
    )  # fmt: skip


def _meta(csv_path: Path) -> dict:
    meta = json.loads(csv_path.with_suffix(".json").read_text())
    return meta.get("meta", meta)


def test_the_objects_scored_are_the_boxed_images_clsloc_boxes_and_an_oracle_scores_map_1(
    clsloc, monkeypatch
):
    objects, wnids = clsloc["objects"], clsloc["wnids"]
    names = sorted(objects)  # the boxed images in file-name order
    assert clsloc["dropped"] not in names and len(names) == CLASSES * 3 - 1
    index = {w: i for i, w in enumerate(wnids)}
    real_detections = reproduction._detections

    def oracle(row, source, *args, **kwargs):
        # Each window row's detections replaced by the CSV's boxes, class = the box's WNID.
        if source == "random":
            return real_detections(row, source, *args, **kwargs)
        dets = []
        for n in names:
            boxes = np.array([b for _, b in objects[n]], dtype=float).reshape(-1, 4)
            dets.append(Detections(np.array([index[w] for w, _ in objects[n]], dtype=np.int64),
                                   boxes, np.ones(len(boxes))))  # fmt: skip
        return dets, 0, 0.0

    monkeypatch.setattr(reproduction, "_detections", oracle)
    meta = _meta(reproduce_detection(_request(clsloc, "oracle")))
    # The harness's ground truth: every CSV box of every boxed image, of the image's class.
    xml_dir = clsloc["root"] / "cache" / "detection" / "oracle" / "ground-truth"
    truth = load_det_ground_truth(xml_dir, names, DetLabels(tuple(wnids), tuple(wnids)))
    scored = sorted((names[i], wnids[c], tuple(b)) for i, c, b in
                    zip(truth.box_image, truth.box_labels, truth.boxes.tolist()))  # fmt: skip
    expected = sorted((n, w, tuple(b)) for n in names for w, b in objects[n])
    assert scored == expected
    assert sorted(p.stem for p in xml_dir.glob("*.xml")) == names
    for n in names:  # each object is of its image's one class (the CSV's own first WNID)
        assert {w for w, _ in objects[n]} == {objects[n][0][0]}
    assert meta["label_space"] == DATASET_SPACE and meta["classes"] == wnids
    win = meta["rows"]["DET-WIN"]
    counts = np.bincount([index[w] for n in names for w, _ in objects[n]], minlength=CLASSES)
    assert win["npos"] == counts.tolist()
    assert win["mAP"] == 1.0 and win["ap"] == [1.0] * CLASSES
    assert win["detections"] == len(expected)
    assert f"{len(names)} boxed CLS-LOC validation images" in meta["data_description"]
    assert f"({len(expected)} boxes)" in meta["data_description"]
    assert "DET_FROM_CLSLOC_BOXES" in meta["data_description"]


def test_every_and_limit_pick_the_boxed_images_in_file_name_order(clsloc, capsys):
    from overfeat.cli import main

    argv = ["reproduce", "detection", "--data", clsloc["data"], "--checkpoints",
            f"detector={clsloc['det']}", "--every", 2, "--limit", 3, "--name", "spread",
            "--cache", clsloc["root"] / "cache", "--reports", clsloc["root"] / "reports",
            "--workers", 0, "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    names = sorted(clsloc["objects"])[::2][:3]
    xml_dir = clsloc["root"] / "cache" / "detection" / "spread" / "ground-truth"
    assert sorted(p.stem for p in xml_dir.glob("*.xml")) == names
    meta = _meta(clsloc["root"] / "reports" / "detection" / "spread.csv")
    assert meta["rows"]["DET-WIN"]["npos"] == np.bincount(
        [clsloc["wnids"].index(w) for n in names for w, _ in clsloc["objects"][n]],
        minlength=CLASSES).tolist()  # fmt: skip
    assert "(every 2nd in file-name order) (the first 3)" in meta["data_description"]


def test_det_devkit_is_refused_where_the_data_has_no_det_split(clsloc, capsys):
    from overfeat.cli import main

    argv = ["reproduce", "detection", "--data", clsloc["data"], "--checkpoints",
            f"detector={clsloc['det']}", "--det-devkit", clsloc["root"], "--cache",
            clsloc["root"] / "cache", "--reports", clsloc["root"] / "reports", "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "has no DET split" in err and "drop --det-devkit" in err


def test_a_box_of_another_class_is_refused_naming_the_image(clsloc, tmp_path):
    data = shutil.copytree(clsloc["data"], tmp_path / "data")
    solution = data / "LOC_val_solution.csv"
    lines = solution.read_text().splitlines()
    image, boxes = lines[1].split(",")
    own = boxes.split()[0]
    other = next(w for w in clsloc["wnids"] if w != own)
    solution.write_text(
        "\n".join([lines[0], f"{image},{boxes} {other} 0 0 9 9", *lines[2:]]) + "\n"
    )
    request = _request(clsloc, "mixed")
    request.data = str(data)
    with pytest.raises(
        reproduction.SourceError, match=f"{image} of class {own} has boxes of {other}"
    ):
        reproduce_detection(request)


def test_a_set_without_det_split_or_validation_boxes_is_refused(tmp_path, clsloc):
    data = tmp_path / "classic"
    for split in ("train", "val"):
        for k, wnid in enumerate(clsloc["wnids"][:2]):
            (data / split / wnid).mkdir(parents=True)
            Image.new("RGB", (64, 48), (80 * k, 0, 0)).save(
                data / split / wnid / f"{wnid}_{k}.JPEG"
            )
    request = _request(clsloc, "unboxed")
    request.data = str(data)
    with pytest.raises(reproduction.SourceError, match="no CLS-LOC validation boxes"):
        reproduce_detection(request)


def test_every_on_a_det_split_takes_every_kth_listed_image(clsloc, tmp_path):
    import xml.etree.ElementTree as ET

    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    data = tmp_path / "det"
    write_synthetic(data, SyntheticConfig(seed=4, classes=CLASSES, train_per_class=1,
                                          val_per_class=1, det_images=5, class_colours=True))  # fmt: skip
    request = _request(clsloc, "det-every", every=2)
    request.data = str(data)
    meta = _meta(reproduce_detection(request))
    det = data / "ILSVRC"
    listed = (det / "ImageSets" / "DET" / "val.txt").read_text().split()[0::2]
    picked = listed[::2]  # the 1st, 3rd and 5th listed images
    counts = np.zeros(CLASSES, int)
    for name in picked:
        for obj in ET.parse(det / "Annotations" / "DET" / "val" / f"{name}.xml").iter("object"):
            counts[meta["classes"].index(obj.findtext("name"))] += 1
    assert meta["rows"]["DET-WIN"]["npos"] == counts.tolist()
    assert (
        f": {len(picked)} DET validation images ({counts.sum()} objects)"
        in meta["data_description"]
    )
    assert "(every 2nd in list order)" in meta["data_description"]
