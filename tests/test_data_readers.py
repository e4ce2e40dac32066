"""The readers read the real layouts: the Kaggle val-mini (1,300 real images), the classic
train/val folders labelled by XML, by the devkit's ground truth + meta.mat, or by sub-folders, and
the real DET val2 annotations. Expected labels are computed here from the files themselves
(csv / ElementTree / scipy), independently of evaluation.annotations and evaluation.labels."""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from overfeat.data import decode_rgb, open_classification
from overfeat.data.readers import (
    classification_samples,
    detection_samples,
    devkit_search,
    find_clsloc_layout,
    read_image_list,
)


def _sorted_wnids_from_mapping(path: Path) -> list[str]:
    return sorted(line.split()[0] for line in path.read_text().splitlines() if line.strip())


def test_val_mini_labels_agree_with_loc_val_solution_csv(val_mini_dir):
    ds = open_classification(val_mini_dir, "val")
    wnids = _sorted_wnids_from_mapping(val_mini_dir / "LOC_synset_mapping.txt")
    with open(val_mini_dir / "LOC_val_solution.csv", newline="") as f:
        truth = {row["ImageId"]: row["PredictionString"].split()[0] for row in csv.DictReader(f)}
    assert len(ds) == 1300 and len(truth) == 1300
    assert ds.classes == wnids and len(ds.classes) == 1000
    for path, label in ds.samples:
        assert wnids[label] == truth[Path(path).stem]
    assert len({label for _, label in ds.samples}) == 725  # README: 725 classes


def test_val_mini_labels_agree_with_its_xml_files(val_mini_dir):
    ds = open_classification(val_mini_dir, "val")
    xml_dir = val_mini_dir / "ILSVRC" / "Annotations" / "CLS-LOC" / "val"
    for path, label in ds.samples[::13]:
        root = ET.parse(xml_dir / f"{Path(path).stem}.xml").getroot()
        assert ds.classes[label] == root.find("object").findtext("name")


def test_every_val_mini_image_decodes_as_227_square_rgb(val_mini_dir):
    ds = open_classification(val_mini_dir, "val")
    for path, _ in ds.samples:
        img = decode_rgb(path)
        assert img.mode == "RGB" and img.size == (227, 227)  # README: resized whole to 227x227


def _tiny_jpeg(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (20, 16), (value, 0, 0)).save(path, format="JPEG")


def _val_xml(path: Path, stem: str, wnid: str) -> None:
    path.write_text(
        f"<annotation><folder>val</folder><filename>{stem}</filename><size><width>20</width>"
        f"<height>16</height></size><object><name>{wnid}</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
        "<xmax>10</xmax><ymax>12</ymax></bndbox></object></annotation>"
    )


def test_classic_layout_train_folders_and_val_xml_beside_the_images(tmp_path):
    wnids = ["n01440764", "n01443537", "n09999999"]
    for w in wnids:
        for k in range(3):
            _tiny_jpeg(tmp_path / "train" / w / f"{w}_{k}.JPEG")
    (tmp_path / "train" / "n01440764" / "notes.txt").write_text("not an image")
    val_truth = {"ILSVRC2012_val_00000001": "n09999999", "ILSVRC2012_val_00000002": "n01440764"}
    for stem, w in val_truth.items():
        _tiny_jpeg(tmp_path / "val" / f"{stem}.JPEG")
        _val_xml(tmp_path / "val" / f"{stem}.xml", stem, w)
    train = open_classification(tmp_path, "train")
    assert train.classes == wnids
    assert [(Path(p).name, label) for p, label in train.samples] == [
        (f"{w}_{k}.JPEG", i) for i, w in enumerate(wnids) for k in range(3)
    ]
    val = open_classification(tmp_path, "val")
    assert [(Path(p).stem, val.classes[label]) for p, label in val.samples] == sorted(
        val_truth.items()
    )
    assert find_clsloc_layout(tmp_path).kind == "classic"


def test_classic_val_labelled_by_devkit_ground_truth_and_meta_mat(tmp_path, devkit_dir):
    import scipy.io

    data = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    data.mkdir(parents=True)
    # Read in place through links: shared data is never copied.
    os.symlink(devkit_dir / "t12" / "meta.mat", data / "meta.mat")
    gt = devkit_dir / "t12" / "ILSVRC2012_validation_ground_truth.txt"
    os.symlink(gt, data / "ILSVRC2012_validation_ground_truth.txt")
    numbers = [1, 2, 50000]
    for n in numbers:
        _tiny_jpeg(tmp_path / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
    ds = open_classification(tmp_path, "val")

    synsets = scipy.io.loadmat(str(devkit_dir / "t12" / "meta.mat"), squeeze_me=True)["synsets"]
    by_id = {
        int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["ILSVRC2012_ID"]) <= 1000
    }
    lines = gt.read_text().split()
    expected = [by_id[int(lines[n - 1])] for n in numbers]
    assert expected[0] == "n01751748"  # devkit readme: image 1 is 490, sea snake
    assert len(ds.classes) == 1000 and ds.classes == sorted(by_id.values())
    assert [ds.classes[label] for _, label in ds.samples] == expected


# overfeat-release.md §1.4 spot checks: ILSVRC2012_ID → WNID (tench, kit fox, dumbbell).
KNOWN_IDS = {449: "n01440764", 1: "n02119789", 1000: "n03255030"}


def _flat_val_with_devkit_elsewhere(tmp_path: Path, ids: list[int], place: str = "") -> Path:
    """ImageNet as users unpack it: a flat val/ in one folder, the 2012 devkit in another
    (ground truth only: no meta.mat). Returns the devkit folder; the data root is tmp/imagenet."""
    for n in range(1, len(ids) + 1):
        _tiny_jpeg(tmp_path / "imagenet" / "val" / f"ILSVRC2012_val_{n:08d}.JPEG")
    devkit = tmp_path / "elsewhere" / "ILSVRC2012_devkit_t12"
    (devkit / "data").mkdir(parents=True)
    (devkit / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text(
        "".join(f"{i}\n" for i in ids)
    )
    return devkit / place if place != ".." else devkit.parent


@pytest.mark.parametrize("place", ["", "data", ".."])
def test_flat_val_is_labelled_by_the_devkit_ground_truth_found_where_it_was_unpacked(
    tmp_path, place
):
    """The kit itself, its data/ folder, or the folder it was unpacked into; without meta.mat
    the ids become WNIDs through the order shipped with the package."""
    devkit = _flat_val_with_devkit_elsewhere(tmp_path, list(KNOWN_IDS), place)
    with devkit_search(devkit):
        samples, classes, layout = classification_samples(tmp_path / "imagenet", "val")
    assert layout.devkit_meta is None and layout.devkit_ground_truth.parent.name == "data"
    assert len(classes) == 1000 and classes == sorted(classes)
    assert [classes[label] for _, label in samples] == list(KNOWN_IDS.values())


def test_devkit_named_by_the_command_outranks_one_inside_the_data_root(tmp_path):
    devkit = _flat_val_with_devkit_elsewhere(tmp_path, [449, 449])
    inside = tmp_path / "imagenet" / "ILSVRC2012_devkit_t12" / "data"
    inside.mkdir(parents=True)
    (inside / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n1\n")
    with devkit_search(devkit):
        named = classification_samples(tmp_path / "imagenet", "val")
    root_only = classification_samples(tmp_path / "imagenet", "val")
    assert {named[1][label] for _, label in named[0]} == {"n01440764"}
    assert {root_only[1][label] for _, label in root_only[0]} == {"n02119789"}


def test_flat_val_without_labels_says_where_it_looked_and_names_devkit(tmp_path):
    _tiny_jpeg(tmp_path / "imagenet" / "val" / "ILSVRC2012_val_00000001.JPEG")
    searched = tmp_path / "kits"
    searched.mkdir()
    with devkit_search(searched), pytest.raises(FileNotFoundError) as err:
        classification_samples(tmp_path / "imagenet", "val")
    message = str(err.value)
    assert "\n" not in message and "validation images but no labels" in message
    for looked in ("LOC_val_solution.csv", f"{tmp_path / 'imagenet'}",
                   f"{tmp_path / 'imagenet' / 'Annotations' / 'CLS-LOC' / 'val'}",
                   "ILSVRC2012_validation_ground_truth.txt", str(searched),
                   "ILSVRC2012_devkit_t12/data/", "--devkit", "val/<wnid>/"):  # fmt: skip
        assert looked in message, looked


def test_val_in_class_subfolders_is_labelled_by_folder(tmp_path):
    for w, k in [("n01440764", 2), ("n02000000", 1)]:
        for j in range(k):
            _tiny_jpeg(tmp_path / "val" / w / f"x{j}.JPEG")
    ds = open_classification(tmp_path, "val")
    assert [label for _, label in ds.samples] == [0, 0, 1]


def test_missing_label_and_unknown_class_name_the_file_and_the_fix(tmp_path):
    root = tmp_path / "kaggle"
    (root / "ILSVRC" / "Data" / "CLS-LOC" / "val").mkdir(parents=True)
    (root / "LOC_synset_mapping.txt").write_text("n01440764 tench\nn01443537 goldfish\n")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\na,n01440764 1 2 3 4\n")
    _tiny_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "a.JPEG")
    _tiny_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "val" / "b.JPEG")
    with pytest.raises(ValueError, match=r"LOC_val_solution\.csv: no label for .*b\.JPEG"):
        classification_samples(root, "val")
    _tiny_jpeg(root / "ILSVRC" / "Data" / "CLS-LOC" / "train" / "n07777777" / "c.JPEG")
    with pytest.raises(ValueError, match=r"n07777777: class folder .* not in the class list"):
        classification_samples(root, "train")
    with pytest.raises(FileNotFoundError, match="make-synthetic"):
        classification_samples(tmp_path / "kaggle" / "ILSVRC" / "Data", "train")


def test_listing_does_not_stat_every_file(tmp_path, monkeypatch):
    for w in ("n01440764", "n01443537"):
        for k in range(60):
            _tiny_jpeg(tmp_path / "train" / w / f"{k}.JPEG")
    calls = []
    real_stat = os.stat

    def counting_stat(*args, **kwargs):
        calls.append(args[0])
        return real_stat(*args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    samples, _, _ = classification_samples(tmp_path, "train")
    assert len(samples) == 120
    assert len(calls) < 20  # folders only; a per-file stat would make it >= 120


def test_det_val2_annotations_read_in_list_order_with_677_empty_images(devkit_dir):
    names = read_image_list(devkit_dir / "det_val2_list.txt")
    items = detection_samples(None, devkit_dir / "det_val2_xml", devkit_dir / "det_val2_list.txt")
    assert len(items) == len(names) == 9917  # devkit README
    assert [ann.image for _, ann in items] == names
    assert sum(len(ann.boxes) == 0 for _, ann in items) == 677  # devkit README
    # Spot-check one file by hand (ElementTree here): tag order xmin, xmax, ymin, ymax.
    first = ET.parse(devkit_dir / "det_val2_xml" / f"{names[0]}.xml").getroot()
    obj = first.find("object/bndbox")
    want = [int(obj.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")]
    assert items[0][1].boxes[0].tolist() == want
    assert np.all(np.concatenate([a.boxes for _, a in items if len(a.boxes)])[:, 2:] >= 0)


def test_image_list_repeated_index_names_both_lines(tmp_path):
    path = tmp_path / "val.txt"
    path.write_text("a 1\nb 3\nc 3\n")
    with pytest.raises(ValueError, match=r"val\.txt:3: index 3 already on line 2"):
        read_image_list(path)


def test_image_list_sub_list_keeps_file_order(tmp_path):
    # ilsvrc-det-val-mini's list: 180 of val2's images, each with its val2 index.
    path = tmp_path / "val.txt"
    path.write_text("ILSVRC2012_val_00000347 4996\nILSVRC2012_val_00001545 2936\n")
    assert read_image_list(path) == ["ILSVRC2012_val_00000347", "ILSVRC2012_val_00001545"]
