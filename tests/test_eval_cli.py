"""``python -m evaluation`` end to end on the devkit files (the issue's command lines)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from evaluation import formats
from evaluation.__main__ import main
from evaluation.annotations import read_xml_dir
from evaluation.labels import DetLabels


def test_cls_command_prints_table_and_writes_json(devkit_dir, tmp_path):
    out = tmp_path / "cls.json"
    cmd = [sys.executable, "-m", "evaluation", "cls",
           "--gt", str(devkit_dir / "t12/ILSVRC2012_validation_ground_truth.txt"),
           "--pred", str(devkit_dir / "t12/demo.val.pred.txt"), "--json", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "0.99898  0.99802  0.99722  0.99620  0.99500" in proc.stdout
    data = json.loads(out.read_text())
    assert data["top1_error"] == 0.99898 and data["top5_error"] == 0.995
    assert len(data["error_by_guesses"]) == 5


@pytest.fixture(scope="module")
def val2(devkit_dir):
    det = DetLabels.from_devkit_meta(devkit_dir / "t14/meta_det.mat")
    names = formats.read_image_list(devkit_dir / "det_val2_list.txt")
    anns = read_xml_dir(devkit_dir / "det_val2_xml", names)
    rows = [(i + 1, det.wnid_to_det_id[w], *b)
            for i, n in enumerate(names) for w, b in zip(anns[n].wnids, anns[n].boxes.tolist())]  # fmt: skip
    return np.array(rows, dtype=np.int64)


def _det_args(devkit_dir, pred, tmp_path, *extra):
    return ["det", "--gt", str(devkit_dir / "det_val2_xml"),
            "--images", str(devkit_dir / "det_val2_list.txt"),
            "--meta", str(devkit_dir / "t14/meta_det.mat"), "--pred", str(pred),
            "--json", str(tmp_path / "det.json"), *extra]  # fmt: skip


def test_perfect_det_submission_from_val2_xmls_scores_map_one(devkit_dir, val2, tmp_path, capsys):
    rng = np.random.default_rng(0)
    sub = formats.DetSubmission(val2[:, 0], val2[:, 1], rng.random(len(val2)), val2[:, 2:])
    formats.write_det_submission(tmp_path / "perfect.txt", sub)
    args = _det_args(devkit_dir, tmp_path / "perfect.txt", tmp_path,
                     "--blacklist", str(devkit_dir / "t14/ILSVRC2014_det_validation_blacklist.txt"),
                     "--blacklist-images", str(devkit_dir / "t14/det_val_list.txt"),
                     "--per-class", str(tmp_path / "ap.csv"))  # fmt: skip
    assert main(args) == 0
    data = json.loads((tmp_path / "det.json").read_text())
    assert data["mAP"] == 1.0 and data["median_ap"] == 1.0
    assert sorted(data["ap"], key=int) == [str(k) for k in range(1, 201)]
    rows = list(csv.DictReader((tmp_path / "ap.csv").open()))
    assert len(rows) == 200 and rows[0]["wnid"] == "n02672831"
    # The per-class positives are the boxes of the XMLs, counted here independently.
    assert [int(r["npos"]) for r in rows] == np.bincount(val2[:, 1], minlength=201)[1:].tolist()
    assert "mAP 1.0000" in capsys.readouterr().out


def test_det_half_recall_with_full_precision_gives_ap_half(devkit_dir, val2, tmp_path):
    # Keep only every other box of class 1 (accordion): precision stays 1, recall stops at
    # kept/npos, so the all-points AP is exactly kept/npos; the other classes stay at 1.
    cls1 = np.flatnonzero(val2[:, 1] == 1)
    drop = cls1[1::2]
    keep = np.setdiff1d(np.arange(len(val2)), drop)
    v = val2[keep]
    formats.write_det_submission(tmp_path / "p.txt",
                                 formats.DetSubmission(v[:, 0], v[:, 1], np.ones(len(v)), v[:, 2:]))  # fmt: skip
    assert main(_det_args(devkit_dir, tmp_path / "p.txt", tmp_path)) == 0
    data = json.loads((tmp_path / "det.json").read_text())
    expect = (len(cls1) - len(drop)) / len(cls1)
    assert data["ap"]["1"] == pytest.approx(expect, abs=1e-12)
    assert data["mAP"] == pytest.approx((199 + expect) / 200, abs=1e-12)


def test_loc_command_on_kaggle_layout(val_mini_dir, devkit_dir, tmp_path, capsys):
    # The solution file submitted as a submission: every first box is exact, so both errors are 0.
    args = ["loc", "--gt", str(val_mini_dir / "ILSVRC/Annotations/CLS-LOC/val"),
            "--pred", str(val_mini_dir / "LOC_val_solution.csv"),
            "--blacklist", str(devkit_dir / "t14/ILSVRC2014_clsloc_validation_blacklist.txt"),
            "--json", str(tmp_path / "loc.json")]  # fmt: skip
    assert main(args) == 0
    data = json.loads((tmp_path / "loc.json").read_text())
    assert data["loc_error_by_guesses"] == [0.0] * 5 and data["cls_error_by_guesses"] == [0.0] * 5
    # The blacklist names official image numbers; count those among the 1,300 images here.
    bl = set(formats.read_clsloc_blacklist(
        devkit_dir / "t14/ILSVRC2014_clsloc_validation_blacklist.txt").tolist())  # fmt: skip
    names = (val_mini_dir / "LOC_val_solution.csv").read_text().splitlines()[1:]
    expect = sum(int(line.split(",")[0].rsplit("_", 1)[1]) in bl for line in names)
    assert data["blacklisted"] == expect > 0
    assert f"{expect} blacklisted images excluded" in capsys.readouterr().out


def test_bad_input_exits_2_with_message_naming_file(tmp_path, capsys):
    (tmp_path / "gt.txt").write_text("1\n2\n")
    (tmp_path / "p.txt").write_text("1\n2 x\n")
    assert main(["cls", "--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "p.txt")]) == 2
    assert "p.txt:2: expected an integer label" in capsys.readouterr().err


def test_binary_or_folder_input_exits_2_naming_the_path(devkit_dir, tmp_path, capsys):
    # A .mat file or a folder passed where a text file belongs: a one-line error naming the path,
    # never a traceback or a bare "'utf-8' codec can't decode" without the file.
    (tmp_path / "gt.txt").write_text("490\n")
    binary = tmp_path / "pred.bin"
    binary.write_bytes(b"490 \xb1\xff\x00\n")
    gt = str(tmp_path / "gt.txt")
    assert main(["cls", "--gt", gt, "--pred", str(binary)]) == 2
    assert "pred.bin" in capsys.readouterr().err
    assert main(["cls", "--gt", str(binary), "--pred", gt]) == 2
    assert "pred.bin" in capsys.readouterr().err
    det = ["det", "--gt", str(devkit_dir / "det_val2_xml"), "--images", str(binary),
           "--meta", str(devkit_dir / "t14/meta_det.mat"), "--pred", str(binary)]  # fmt: skip
    assert main(det) == 2
    assert "pred.bin" in capsys.readouterr().err
    assert main(["cls", "--gt", gt, "--pred", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_det_blacklist_indices_name_images_of_the_full_list(devkit_dir, tmp_path, capsys):
    # No val2 image is in the 2014 DET blacklist, so the real-data test above cannot see the
    # index -> name mapping. Here: full list a, b, c; evaluated sub-list c, a; one accordion box
    # in each image. The blacklist line "1 accordion" means image a (full-list index 1).
    from evaluation.annotations import Annotation, write_xml

    for name in "abc":
        write_xml(tmp_path / f"{name}.xml",
                  Annotation(name, 100, 100, np.array([[0, 0, 49, 49]]), ("n02672831",)))  # fmt: skip
    (tmp_path / "full.txt").write_text("a 1\nb 2\nc 3\n")
    (tmp_path / "sub.txt").write_text("c 1\na 2\n")
    (tmp_path / "bl.txt").write_text("1 n02672831\n")
    # Sub-list image 1 (c): a false positive; image 2 (a): a true positive.
    (tmp_path / "pred.txt").write_text("1 1 0.9 60 60 90 90\n2 1 0.5 0 0 49 49\n")
    args = ["det", "--gt", str(tmp_path), "--images", str(tmp_path / "sub.txt"),
            "--meta", str(devkit_dir / "t14/meta_det.mat"), "--pred", str(tmp_path / "pred.txt"),
            "--blacklist", str(tmp_path / "bl.txt"), "--blacklist-images",
            str(tmp_path / "full.txt"), "--json", str(tmp_path / "det.json")]  # fmt: skip
    assert main(args) == 0
    assert "199 class(es) have no ground-truth boxes" in capsys.readouterr().err
    data = json.loads((tmp_path / "det.json").read_text())
    # a is ignored (its detection and its box): c's box is the only positive and c's detection
    # misses it -> AP 0. Reading index 1 as sub-list position 1 (image c) would give AP 1.
    assert data["ap"]["1"] == 0.0 and data["ignored_detections"] == 1
