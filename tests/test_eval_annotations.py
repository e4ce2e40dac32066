"""Annotation readers and writers (evaluation/annotations.py) on the real devkit and Kaggle files."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.annotations import (
    Annotation,
    read_loc_solution_csv,
    read_xml,
    read_xml_dir,
    write_loc_solution_csv,
    write_xml,
)
from evaluation.labels import DetLabels


def test_det_val2_xmls_all_load_with_their_200_classes(devkit_dir):
    anns = read_xml_dir(devkit_dir / "det_val2_xml")
    assert len(anns) == 9917
    # devkit README: 677 images without objects; every WNID is one of the 200 DET classes.
    assert sum(len(a.wnids) == 0 for a in anns.values()) == 677
    det = DetLabels.from_devkit_meta(devkit_dir / "t14/meta_det.mat")
    seen = {w for a in anns.values() for w in a.wnids}
    assert seen <= set(det.wnids) and len(seen) == 200
    boxes = np.concatenate([a.boxes for a in anns.values() if len(a.wnids)])
    # 0-based inclusive: xmin can be 0, xmax never reaches the width.
    assert boxes[:, 0].min() == 0
    assert all((a.boxes[:, 2] < a.width).all() for a in anns.values() if len(a.wnids))


def test_det_xml_tag_order_xmin_xmax_ymin_ymax_is_parsed_by_tag(devkit_dir):
    # The file lists <xmin>105</xmin><xmax>358</xmax><ymin>204</ymin><ymax>279</ymax>.
    ann = read_xml(devkit_dir / "det_val2_xml/ILSVRC2012_val_00000006.xml")
    assert ann.boxes.tolist() == [[105, 204, 358, 279]] and ann.wnids == ("n01726692",)
    assert (ann.width, ann.height) == (500, 368)


def test_clsloc_xml_and_kaggle_csv_hold_the_same_boxes(val_mini_dir):
    xml = read_xml_dir(val_mini_dir / "ILSVRC/Annotations/CLS-LOC/val")
    csv = read_loc_solution_csv(val_mini_dir / "LOC_val_solution.csv")
    assert xml.keys() == csv.keys() and len(xml) == 1300
    # val-mini README: 1,943 boxes, 242 images with 2 or more.
    assert sum(len(a.wnids) for a in csv.values()) == 1943
    assert sum(len(a.wnids) >= 2 for a in csv.values()) == 242
    for name, a in xml.items():
        assert a.wnids == csv[name].wnids and np.array_equal(a.boxes, csv[name].boxes)
    assert csv["ILSVRC2012_val_00000355"].boxes.tolist() == [[52, 61, 199, 214]]


def test_write_xml_reproduces_a_real_file_byte_for_byte(val_mini_dir, tmp_path):
    real = val_mini_dir / "ILSVRC/Annotations/CLS-LOC/val/ILSVRC2012_val_00000347.xml"
    write_xml(tmp_path / "a.xml", read_xml(real))
    assert (tmp_path / "a.xml").read_bytes() == real.read_bytes()


def test_loc_solution_csv_round_trip(tmp_path):
    anns = {
        "b": Annotation("b", 0, 0, np.zeros((0, 4), np.int64), ()),
        "a": Annotation("a", 0, 0, np.array([[1, 2, 3, 4], [5, 6, 7, 8]]), ("n1", "n2")),
    }
    with pytest.raises(ValueError, match="expected a WNID"):
        write_loc_solution_csv(tmp_path / "x.csv", anns)
        read_loc_solution_csv(tmp_path / "x.csv")
    anns["a"] = Annotation("a", 0, 0, anns["a"].boxes, ("n01440764", "n01443537"))
    write_loc_solution_csv(tmp_path / "s.csv", anns)
    assert (tmp_path / "s.csv").read_text().splitlines() == [
        "ImageId,PredictionString",
        "a,n01440764 1 2 3 4 n01443537 5 6 7 8",
        "b,",
    ]
    assert read_loc_solution_csv(tmp_path / "s.csv") == anns


@pytest.mark.parametrize(
    "text, words",
    [
        ("<annotation><object><name>n01440764</name>", r"x\.xml:1:\d+: not well-formed"),
        ("<annotation><object><name>dog</name></object></annotation>", r"<object> #1 <name>"),
        (
            "<annotation><object><name>n01440764</name><bndbox><xmin>1</xmin><ymin>2</ymin>"
            "<xmax>3.5</xmax><ymax>4</ymax></bndbox></object></annotation>",
            r"<object> #1 <bndbox><xmax>: expected an integer",
        ),
        (
            "<annotation><object><name>n01440764</name><bndbox><xmin>1</xmin>"
            "</bndbox></object></annotation>",
            r"<bndbox><ymin>: missing",
        ),
        ("<root/>", "expected <annotation>"),
    ],
)
def test_bad_xml_error_names_file_and_element(tmp_path, text, words):
    (tmp_path / "x.xml").write_text(text)
    with pytest.raises(ValueError, match=words):
        read_xml(tmp_path / "x.xml")


def test_bad_csv_line_error_names_line(tmp_path):
    (tmp_path / "s.csv").write_text(
        "ImageId,PredictionString\na,n01440764 1 2 3 4\nb,n01440764 1 2 3\n"
    )
    with pytest.raises(ValueError, match=r"s\.csv:3: PredictionString has 4 tokens"):
        read_loc_solution_csv(tmp_path / "s.csv")


def test_named_image_without_xml_is_refused(tmp_path):
    (tmp_path / "a.xml").write_text("<annotation></annotation>")
    assert read_xml_dir(tmp_path, ["a"])["a"].boxes.shape == (0, 4)
    with pytest.raises(FileNotFoundError, match="first b.xml"):
        read_xml_dir(tmp_path, ["a", "b"])
