"""``overfeat reproduce detection`` end to end on a tiny synthetic set made by ``overfeat
make-synthetic``, with a toy detector and a regressor on it built here: the report's CSV carries
each row's mAP interval, the per-image outcomes written beside it give back each row's mAP when
scored as the devkit's ``VOCap.m`` scores (written out below), and the gallery is saved, drawn
and linked from the report."""

from __future__ import annotations

import gzip
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from test_detect import _detector, _detector_run

from evaluation.detection import average_precision

WIDTH = 1 / 16
CLASSES = 3
ROWS = ("DET-REG", "DET-WIN", "DET-RANDOM")


def _main(*argv) -> int:
    from overfeat.cli import main

    return main([str(a) for a in argv])


def _regressor_run(run, detector_run):
    """An SCR regressor on the toy detector's layers 1–5 (the engine's checkpoint format). Its
    last layer is zero but for a bias, so its boxes are the windows' moved by a fixed offset:
    another row than the windows' own boxes."""
    from overfeat.engine.checkpoint import checkpoint_path, save_checkpoint_atomic
    from overfeat.regression import BoxRegressor

    model = _detector(CLASSES)
    reg = BoxRegressor(model.spec, "scr", num_classes=CLASSES, width=WIDTH)
    with torch.no_grad():
        reg.layers.reg3.bias.fill_(0.1)
    save_checkpoint_atomic(
        {"regressor": reg.state_dict(),
         "regressor_config": {"kind": "scr", "num_classes": CLASSES, "width": WIDTH},
         "classifier_run": str(detector_run), "classifier_config": model.config,
         "classifier_checkpoint": "checkpoint-00000001.pt", "train_config": {"epochs": 1},
         "optimizer": {}, "scheduler": {},
         "progress": {"epoch": 1, "step_in_epoch": 0, "global_step": 1}},
        checkpoint_path(run, 1),
    )  # fmt: skip
    return run


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection")
    assert _main("make-synthetic", root / "data", "--classes", CLASSES, "--train-per-class", 1,
                 "--val-per-class", 1, "--det-images", 8, "--class-colours") == 0  # fmt: skip
    det = _detector_run(root / "det", CLASSES)
    reg = _regressor_run(root / "reg", det)
    assert _main("reproduce", "detection", "--data", root / "data", "--checkpoints",
                 f"detector={det}", f"regressor={reg}", "--reports", root / "reports",
                 "--cache", root / "cache", "--workers", 0, "--no-progress",
                 "--name", "tiny") == 0  # fmt: skip
    return root / "reports" / "detection"


def _vocap(scores, matched, npos: int) -> float:
    """``VOCap.m`` on one class's detections in the devkit's order: precision and recall after
    each detection, the precision made non-increasing from the right, summed over the points
    where recall changes."""
    tp = np.cumsum(matched)
    fp = np.cumsum(1 - np.asarray(matched))
    rec = np.r_[0.0, tp / npos, 1.0]
    prec = np.r_[0.0, tp / np.maximum(tp + fp, 1), 0.0]
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    changes = np.flatnonzero(rec[1:] != rec[:-1]) + 1
    return float(np.sum((rec[changes] - rec[changes - 1]) * prec[changes]))


@pytest.mark.slow
def test_report_csv_has_each_rows_map_interval(report):
    table = pd.read_csv(report / "tiny.csv", keep_default_na=False, na_values=[""])
    assert {"mAP_low", "mAP_high"} <= set(table.columns)
    by_row = table.set_index("row")
    for row in ROWS:
        low, high, mean = (float(by_row.at[row, c]) for c in ("mAP_low", "mAP_high", "mAP"))
        assert 0 <= low <= mean <= high <= 100, row
    for paper_row in ("F11-1", "F11-4"):  # the paper's bars: nothing resampled
        assert math.isnan(by_row.at[paper_row, "mAP_low"])
    assert by_row.at["DET-REG", "mAP"] != by_row.at["DET-WIN", "mAP"]  # two different rows


@pytest.mark.slow
def test_outcomes_beside_the_report_give_back_each_rows_harness_map(report):
    """The outcomes file read with gzip and pandas alone, each row's mAP scored from it twice,
    by the VOCap loop above and by evaluation.detection.average_precision (the harness's own
    scorer, fed the file's columns): both equal the mAP the harness gave the submission (JSON,
    full precision; CSV, in percent to 4 decimals)."""
    with gzip.open(report / "tiny.outcomes.csv.gz", "rt") as f:
        outcomes = pd.read_csv(f, dtype={"image": str, "row": str, "kind": str})
    meta = json.loads((report / "tiny.json").read_text())
    table = pd.read_csv(report / "tiny.csv").set_index("row")
    names = outcomes.loc[outcomes["kind"] == "image", "image"].tolist()
    assert len(names) == 8 == table.at["DET-REG", "images"]
    pos = outcomes[outcomes["kind"] == "positives"].astype({"class": int, "positives": int})
    npos = pos.groupby("class")["positives"].sum().reindex(range(CLASSES), fill_value=0)
    assert npos.sum() == table.at["DET-REG", "objects"]  # counted from the XML by the run
    assert npos.to_list() == meta["rows"]["DET-REG"]["npos"]
    assert set(outcomes.loc[outcomes["kind"] == "row", "row"]) == set(ROWS)
    where = {name: i for i, name in enumerate(names)}
    for row in ROWS:
        dets = outcomes[(outcomes["kind"] == "detection") & (outcomes["row"] == row)]
        dets = dets.astype({"class": int, "score": float, "matched": int})
        assert dets["matched"].sum() > 0, row  # a row that finds nothing would check nothing
        by_loop = []
        for c in range(CLASSES):
            if npos[c] == 0:
                continue
            mine = dets[dets["class"] == c]
            # The file claims the devkit's order; the loop sorts for itself: descending score,
            # ties by the image's place in the list, then the file.
            order = sorted(range(len(mine)), key=lambda k: (-mine["score"].iloc[k],
                                                            where[mine["image"].iloc[k]], k))  # fmt: skip
            by_loop.append(_vocap(mine["score"].to_numpy()[order],
                                  mine["matched"].to_numpy()[order], int(npos[c])))  # fmt: skip
        image = np.array([where[i] for i in dets["image"]])
        tie = np.lexsort((np.arange(len(dets)), image))
        tie_rank = np.empty(len(dets), dtype=np.int64)
        tie_rank[tie] = np.arange(len(dets))
        ap = average_precision(dets["class"].to_numpy(), dets["score"].to_numpy(),
                               dets["matched"].to_numpy().astype(bool), tie_rank, npos.to_numpy())  # fmt: skip
        harness = meta["rows"][row]["mAP"]
        assert np.mean(by_loop) == pytest.approx(harness, abs=1e-12), row
        assert np.nanmean(ap) == pytest.approx(harness, abs=1e-12), row
        assert 100 * harness == pytest.approx(table.at[row, "mAP"], abs=5e-5), row
        assert harness > 0, row


@pytest.mark.slow
def test_the_report_judges_the_directions_and_links_its_gallery(report):
    md = (report / "tiny.md").read_text()
    assert re.search(r"Verdicts: \d+ agree, \d+ contradict, \d+ unresolved \(0 not run\)", md)
    saved = report / "tiny.gallery.json.gz"
    png = report / "tiny.gallery.png"
    assert saved.is_file() and png.is_file()
    with gzip.open(saved, "rt") as f:
        gallery = json.load(f)
    assert gallery["artifact"] == "detection" and gallery["row"] == "DET-REG"
    with Image.open(png) as im:
        assert im.format == "PNG" and min(im.size) > 0
    assert "![Gallery: ground truth, boxes before the merge by scale, merged guesses]" \
           "(tiny.gallery.png)" in md  # fmt: skip
