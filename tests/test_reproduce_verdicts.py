"""Reports with uncertainty: per-image outcomes beside each report, each row's interval and each
direction's verdict recomputed from them (evaluation/outcomes.py, evaluation/uncertainty.py,
evaluation/render.py), checked against independent computations."""

from __future__ import annotations

import gzip
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from evaluation.detection import evaluate_detection
from evaluation.outcomes import (
    detection_table,
    merge_outcomes,
    outcomes_path,
    read_outcomes,
    write_outcomes,
)
from evaluation.render import read_judged, render_all, table2_markdown, update_readme
from evaluation.uncertainty import map_by_image, with_intervals

REPORTS = Path(__file__).resolve().parents[1] / "reports"
ROWS = ("T2-2", "T2-3", "T2-4", "T2-5", "T2-6", "T2-7", "T2-8", "T2-9")


def _table2() -> pd.DataFrame:
    """The committed embedded-default Table 2 (its paper columns give the paper's deltas)."""
    return pd.read_csv(REPORTS / "table2" / "embedded-default.csv", keep_default_na=False,
                       na_values=[""])  # fmt: skip


def _outcomes(n: int, rates: dict[str, float], seed: int = 0, shift: dict | None = None) -> pd.DataFrame:
    """Wide Table 2 outcomes: each row wrong on ``rate·n`` consecutive images of a shuffled order
    shared by all rows, from the first (or from ``shift[row]``): without a shift a lower rate is
    wrong on a subset of a higher rate's images, every discordant image going one way; a shift
    makes discordant images go both ways."""
    order = np.random.default_rng(seed).permutation(n)
    out = {"image": [f"img{i:05d}" for i in range(n)]}
    for row in ROWS:
        start = (shift or {}).get(row, 0)
        for metric in ("top1", "top5"):
            wrong = np.zeros(n, dtype=int)
            wrong[order[start : start + round(rates.get(row, 0.5) * n)]] = 1
            out[f"{row}:{metric}_wrong"] = wrong
    return pd.DataFrame(out)


def test_outcomes_round_trip_with_the_same_bytes_every_time(tmp_path):
    frame = _outcomes(50, {"T2-3": 0.2})
    frame["T2-4@m0:top1_wrong"] = frame["T2-4:top1_wrong"]
    a, b = tmp_path / "a.outcomes.csv.gz", tmp_path / "b.outcomes.csv.gz"
    write_outcomes(a, frame)
    write_outcomes(b, frame)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime: 0
    pd.testing.assert_frame_equal(read_outcomes(a), frame)
    assert gzip.decompress(a.read_bytes()).decode().splitlines()[1].startswith("img00000,")
    assert read_outcomes(tmp_path / "missing.csv.gz") is None
    assert outcomes_path("reports/table2/run.csv") == Path("reports/table2/run.outcomes.csv.gz")


def test_row_interval_from_an_outcomes_file_is_scipys_exact_binomial_interval(tmp_path):
    frame = _outcomes(120, {"T2-2": 0.7, "T2-3": 0.05, "T2-6": 0.0, "T2-7": 1.0})
    write_outcomes(tmp_path / "o.csv.gz", frame)
    table = with_intervals("table2", _table2(), read_outcomes(tmp_path / "o.csv.gz"))
    by_row = table.set_index("row")
    for row in ("T2-2", "T2-3", "T2-6", "T2-7"):
        k = int(frame[f"{row}:top1_wrong"].sum())
        ci = binomtest(k, 120).proportion_ci(confidence_level=0.95, method="exact")
        assert by_row.at[row, "top1_error_low"] == pytest.approx(100 * ci.low, abs=1e-4)
        assert by_row.at[row, "top1_error_high"] == pytest.approx(100 * ci.high, abs=1e-4)
    assert math.isnan(by_row.at["T2-1", "top1_error_low"])  # the paper's row: no outcomes


def test_seed_spread_of_a_single_network_row_is_its_members_mean_std_min_max():
    frame = _outcomes(10, {})
    members = [[1] * 2 + [0] * 8, [1] * 5 + [0] * 5, [1] * 8 + [0] * 2]  # 20%, 50%, 80%
    for k, wrong in enumerate(members):
        frame[f"T2-4@m{k}:top1_wrong"] = wrong
        frame[f"T2-4@m{k}:top5_wrong"] = wrong
    r = with_intervals("table2", _table2(), frame).set_index("row").loc["T2-4"]
    assert r.seed_members == 3
    assert (r.top1_seed_mean, r.top1_seed_min, r.top1_seed_max) == (50.0, 20.0, 80.0)
    assert r.top1_seed_std == pytest.approx(30.0)  # sqrt(((-30)² + 0 + 30²) / 2)
    assert math.isnan(with_intervals("table2", _table2(), frame).set_index("row").at["T2-3",
                                                                                   "seed_members"])


def _row(judged: pd.DataFrame, comparison_start: str, metric: str = "top1") -> pd.Series:
    hit = judged[judged["comparison"].str.startswith(comparison_start) & (judged["metric"] == metric)]
    return hit.iloc[0]


@pytest.mark.parametrize(
    "n, t2_3_rate, shift, expected",
    [
        # 2 discordant images of 40, both T2-3's way: none in 13% of resamples, so unresolved.
        (40, 0.45, 0, "unresolved"),
        (2000, 0.40, 0, "agrees"),  # fine stride 10 points better, 200 discordant images
        (2000, 0.60, 0, "contradicts"),  # 10 points worse
        # 200 images: T2-2 wrong on 0..99 of the order, T2-3 on 10..105 (b = 10, c = 6).
        (200, 0.48, 10, "unresolved"),
        # The same 2-point effect on 20,000 images: 1,000 against 600 discordant.
        (20_000, 0.48, 1000, "agrees"),
    ],
)
def test_a_planted_effect_is_rendered_with_the_verdict_it_should_get(
    tmp_path, n, t2_3_rate, shift, expected
):
    """T2-3 (fine) against T2-2 (coarse, 50% wrong): the paper has fine stride better."""
    reports = tmp_path / "reports"
    (reports / "table2").mkdir(parents=True)
    csv = reports / "table2" / "planted.csv"
    shutil.copy(REPORTS / "table2" / "embedded-default.csv", csv)
    frame = _outcomes(n, {"T2-2": 0.5, "T2-3": t2_3_rate}, shift={"T2-3": shift})
    write_outcomes(outcomes_path(csv), frame)
    table, meta, judged = read_judged(csv)
    d = _row(judged, "fine vs coarse")
    assert d.verdict == expected
    # Independent: every discordant image goes T2-3's way or against it, so McNemar's p is the
    # two-sided exact binomial test of b successes in b + c at 1/2.
    b = int(((frame["T2-2:top1_wrong"] == 1) & (frame["T2-3:top1_wrong"] == 0)).sum())
    c = int(((frame["T2-2:top1_wrong"] == 0) & (frame["T2-3:top1_wrong"] == 1)).sum())
    if b + c:
        assert d.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert d.difference == pytest.approx(100 * (c - b) / n)
    md = table2_markdown(table, meta, None, judged)
    line = next(ln for ln in md.splitlines() if ln.startswith("| fine vs coarse") and "| top1 |" in ln)
    assert f"| {expected} |" in line
    assert "Verdicts: " in md and "not available" not in md


def test_the_report_command_recomputes_the_directions_from_outcomes_files_alone(tmp_path):
    """``overfeat reproduce report``'s function, on a reports folder that holds a CSV, its JSON
    and its outcomes and nothing else (no network, no cache): the directions table, the index
    and the README block carry the verdicts the outcomes give; a report without outcomes says
    it has none."""
    reports = tmp_path / "reports"
    shutil.copytree(REPORTS / "table2", reports / "table2")
    for stale in reports.rglob("*.md"):
        stale.unlink()
    # The other committed report as a run without per-image outcomes would have left it.
    outcomes_path(reports / "table2" / "imagenette-10.csv").unlink(missing_ok=True)
    csv = reports / "table2" / "embedded-default.csv"
    rates = {"T2-2": 0.5, "T2-3": 0.4, "T2-4": 0.6, "T2-5": 0.6, "T2-6": 0.5, "T2-7": 0.5,
             "T2-8": 0.5, "T2-9": 0.5}  # fmt: skip
    write_outcomes(outcomes_path(csv), _outcomes(2000, rates))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduce:table2 begin -->\n<!-- reproduce:table2 end -->\n")
    render_all(reports, readme)
    md = (reports / "table2" / "embedded-default.md").read_text()
    # Both metrics alike: fine vs coarse 10 points better (agrees); 4 vs 1 scale 20 points
    # worse (contradicts); fast ensemble vs T2-4 and accurate vs fast 10 points better
    # (agree); 6 vs 4, dense vs 10-view and the accurate ensemble: no discordant image
    # (unresolved).
    summary = "6 agree, 2 contradict, 6 unresolved"
    assert f"Verdicts: {summary}" in md
    index = (reports / "README.md").read_text()
    assert summary in index
    assert "verdicts not available (no outcomes file)" in index  # the other reports
    assert f"The paper's directions: {summary}." in readme.read_text()
    other = (reports / "table2" / "imagenette-10.md").read_text()
    assert "Intervals and verdicts are not available for this report" in other
    # The CSV's own numbers are left as the run wrote them.
    assert pd.read_csv(csv).equals(pd.read_csv(REPORTS / "table2" / "embedded-default.csv"))


def test_a_single_run_rewrites_only_its_own_readme_block(tmp_path):
    """Decision README_BLOCK_PER_RUN: ``update_readme(..., names=("table2",))`` fills the Table 2
    block from the reports and leaves the other blocks exactly as they were, stale or not."""
    reports = tmp_path / "reports"
    shutil.copytree(REPORTS / "table2", reports / "table2")
    shutil.copytree(REPORTS / "figure9", reports / "figure9")
    stale = "<!-- reproduce:figure9 begin -->\nstale figure 9\n<!-- reproduce:figure9 end -->\n"
    readme = tmp_path / "README.md"
    readme.write_text("<!-- reproduce:table2 begin -->\nstale table 2\n<!-- reproduce:table2 end -->\n"
                      + stale)  # fmt: skip
    assert not update_readme(readme, reports, names=("table2",))
    text = readme.read_text()
    assert "stale table 2" not in text and "| T2-9 |" in text
    assert text.endswith(stale)
    # Without names every block is rewritten.
    update_readme(readme, reports)
    assert "stale figure 9" not in readme.read_text() and "| F9-6 |" in readme.read_text()


def test_outcomes_of_two_invocations_merge_and_later_columns_win():
    first = _outcomes(6, {"T2-2": 0.5})[["image", "T2-2:top1_wrong", "T2-2:top5_wrong"]]
    second = _outcomes(6, {"T2-2": 1.0, "T2-3": 0.0})[["image", "T2-3:top1_wrong", "T2-2:top1_wrong"]]
    merged = merge_outcomes(first, second)
    assert list(merged.columns) == ["image", "T2-2:top1_wrong", "T2-2:top5_wrong", "T2-3:top1_wrong"]
    assert merged["T2-2:top1_wrong"].tolist() == [1] * 6  # the later invocation's
    assert merged["T2-2:top5_wrong"].tolist() == first["T2-2:top5_wrong"].tolist()
    other_images = second.assign(image=[f"x{i}" for i in range(6)])
    assert merge_outcomes(first, other_images).equals(other_images)  # another image list: not merged


# ----------------------------------------------------------------------------- detection


def _detections(rng, images: int, classes: int):
    """A small random DET problem: boxes on a 100-pixel grid, detections near them or not."""
    gt_image, gt_label, gt_boxes = [], [], []
    for i in range(images):
        for _ in range(rng.integers(0, 3)):
            x, y = rng.integers(0, 60, size=2)
            gt_image.append(i), gt_label.append(rng.integers(classes)), gt_boxes.append([x, y, x + 30, y + 30])
    det = []
    for _ in range(8 * images):
        i, c = rng.integers(images), rng.integers(classes)
        x, y = rng.integers(0, 60, size=2)
        det.append((i, c, float(rng.integers(0, 20)) / 20, [x, y, x + 30, y + 30]))  # ties in score
    det_image = np.array([d[0] for d in det])
    return (det_image, np.array([d[1] for d in det]), np.array([d[2] for d in det]),
            np.array([d[3] for d in det], float), np.array(gt_image, int), np.array(gt_label, int),
            np.array(gt_boxes, float).reshape(-1, 4))  # fmt: skip


def _long_outcomes(row, det, images, classes):
    """The outcomes table :func:`evaluation.outcomes.detection_outcomes` writes, built here from
    the arrays (matching and order as that function does them)."""
    from evaluation.detection import match_detections

    d_img, d_lab, d_conf, d_box, g_img, g_lab, g_box = det
    tp, _ = match_detections(d_img, d_lab, d_conf, d_box, g_img, g_lab, g_box, classes)
    order = np.lexsort((np.arange(len(d_img)), d_img, -d_conf, d_lab))
    names = [f"im{i}" for i in range(images)]
    dets = pd.DataFrame({"kind": "detection", "row": row, "image": [names[i] for i in d_img[order]],
                         "class": d_lab[order], "score": d_conf[order],
                         "matched": tp[order].astype(int), "positives": ""})  # fmt: skip
    pairs, counts = np.unique(np.stack([g_img, g_lab], 1), axis=0, return_counts=True)
    pos = pd.DataFrame({"kind": "positives", "row": "", "image": [names[i] for i in pairs[:, 0]],
                        "class": pairs[:, 1], "score": "", "matched": "", "positives": counts})  # fmt: skip
    return detection_table(names, pos, {row: dets})


def _devkit_map_on_draw(det, draw, classes: int) -> float:
    """Brute force: the images ``draw`` names, in order, each copy a new image of its own (copy j
    holds the detections and boxes of image ``draw[j]``), scored by evaluate_detection."""
    d_img, d_lab, d_conf, d_box, g_img, g_lab, g_box = det
    sel_d = [np.flatnonzero(d_img == i) for i in draw]
    sel_g = [np.flatnonzero(g_img == i) for i in draw]
    di = np.concatenate([np.full(len(s), j) for j, s in enumerate(sel_d)])
    gi = np.concatenate([np.full(len(s), j) for j, s in enumerate(sel_g)])
    sd, sg = np.concatenate(sel_d), np.concatenate(sel_g)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes without objects in a resample
        res = evaluate_detection(di, d_lab[sd], d_conf[sd], d_box[sd], gi, g_lab[sg], g_box[sg],
                                 classes)  # fmt: skip
    return res.mean_ap


def test_map_by_image_is_the_devkits_map_on_the_resampled_image_list(tmp_path):
    """Brute force: the images a resample draws (in their original order), each copy a new
    image of its own, scored by evaluate_detection; the by-image statistic must give the same
    mAP, scores tied within and across images included."""
    rng = np.random.default_rng(3)
    images, classes = 12, 3
    det = _detections(rng, images, classes)
    write_outcomes(tmp_path / "o.csv.gz", _long_outcomes("DET-REG", det, images, classes))
    outcomes = read_outcomes(tmp_path / "o.csv.gz")
    stat = map_by_image(outcomes, "DET-REG")
    assert not stat._fast  # scores on a 1/20 grid: ties within an image, the literal expansion
    # Decision DETECTION_OUTCOMES_TRIMMED: without each class's detections scored below its
    # last true positive, every resample's mAP is the same.
    is_det = outcomes["kind"] == "detection"
    dets = outcomes[is_det].astype({"class": int, "score": float, "matched": int})
    floor = dets[dets["matched"] == 1].groupby("class")["score"].min()
    low = dets["score"] < dets["class"].map(floor).fillna(np.inf)
    trimmed = map_by_image(outcomes.drop(index=dets.index[low]), "DET-REG")
    assert low.any()
    draws = [np.arange(images)] + [np.sort(rng.integers(0, images, images)) for _ in range(4)]
    for draw in draws:
        expected = _devkit_map_on_draw(det, draw, classes)
        assert stat(draw) == pytest.approx(expected, abs=1e-12)
        assert trimmed(draw) == pytest.approx(expected, abs=1e-12)


def test_map_by_image_without_ties_weights_each_drawn_copy_as_the_devkit_would(tmp_path):
    """The weighted path (no two detections of one image and class tied in score) against the
    devkit's scorer on the physically repeated image list, as above."""
    rng = np.random.default_rng(5)
    images, classes = 15, 4
    d_img, d_lab, _, d_box, g_img, g_lab, g_box = _detections(rng, images, classes)
    d_conf = rng.permutation(len(d_img)) / len(d_img)  # every score distinct
    det = (d_img, d_lab, d_conf, d_box, g_img, g_lab, g_box)
    write_outcomes(tmp_path / "o.csv.gz", _long_outcomes("DET-REG", det, images, classes))
    stat = map_by_image(read_outcomes(tmp_path / "o.csv.gz"), "DET-REG")
    assert stat._fast
    for draw in [np.arange(images)] + [np.sort(rng.integers(0, images, images)) for _ in range(6)]:
        assert stat(draw) == pytest.approx(_devkit_map_on_draw(det, draw, classes), abs=1e-12)


def test_detection_outcomes_read_back_from_a_submission_give_its_harness_map(tmp_path):
    """A submission on the synthetic DET images (each object found once, plus a miss per image):
    the outcomes file's mAP on the images as they are is the harness's."""
    from evaluation.labels import DetLabels
    from evaluation.outcomes import detection_outcomes
    from overfeat.data import open_detection
    from overfeat.data.readers import classification_samples, find_det_layout
    from overfeat.data.synthetic import SyntheticConfig, write_synthetic
    from overfeat.detect import score_detections

    write_synthetic(tmp_path / "d", SyntheticConfig(classes=3, train_per_class=1, val_per_class=1,
                                                   det_images=6, class_colours=True))  # fmt: skip
    samples = open_detection(tmp_path / "d", "val").samples
    xml_dir = find_det_layout(tmp_path / "d", "val").xml_dir
    _, classes, _ = classification_samples(tmp_path / "d", "val")
    labels = DetLabels(tuple(classes), tuple(classes))
    names = [ann.image for _, ann in samples]
    lines = []
    for i, (_, ann) in enumerate(samples, start=1):
        for k, (w, box) in enumerate(zip(ann.wnids, ann.boxes)):
            if k % 2 == 0:  # every other object found
                lines.append(f"{i} {classes.index(w) + 1} 0.{9 - k} " + " ".join(str(int(v)) for v in box))
        lines.append(f"{i} 1 0.95 0 0 3 3")  # a miss, scored above every hit
    pred = tmp_path / "det.txt"
    pred.write_text("\n".join(lines) + "\n")
    dets, pos = detection_outcomes("DET-REG", pred, xml_dir, names, labels)
    assert pos["positives"].sum() == sum(len(ann.boxes) for _, ann in samples)
    stat = map_by_image(detection_table(names, pos, {"DET-REG": dets}), "DET-REG")
    assert stat(np.arange(len(names))) == pytest.approx(score_detections(pred, xml_dir, names,
                                                                         labels).mean_ap)  # fmt: skip
