"""The directions the paper states without a number, judged from planted per-image outcomes:
Figure 9's regressor against the boxes a classifier has without one (FIGURE9_BASELINE_DIRECTIONS)
and detection's regressor, window boxes and random boxes (DETECTION_DIRECTIONS). Each outcomes
table is written by hand in the format of :mod:`evaluation.outcomes`; the expected differences,
McNemar p-values (scipy's exact binomial test on the discordant counts) and verdicts are worked
out here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, norm
from test_reproduce_figure9 import _table

from evaluation.diff import DETECTION_DIRECTIONS, FIGURE9_BASELINE_DIRECTIONS
from evaluation.outcomes import DETECTION_COLUMNS, read_outcomes, write_outcomes
from evaluation.paper import read_reported
from evaluation.uncertainty import judged_directions, verdict_summary

# ----------------------------------------------------------------------------- Figure 9

N = 1000


def _wrong(*ranges: tuple[int, int]) -> np.ndarray:
    """Wrong (1) on the images of the half-open ``ranges``, right elsewhere: ``(N,)``."""
    out = np.zeros(N, dtype=int)
    for lo, hi in ranges:
        out[lo:hi] = 1
    return out


# Rows wrong on known images of 1,000 (top-5 localization): per number of scales, the SCR bar
# and the two baselines; 3 scales has no whole-image row and 4 scales no SCR bar.
PLANTED = {
    "F9-4": _wrong((0, 300)),  # SCR, 1 scale: 30%
    "WINDOW-1": _wrong((0, 400)),  # 40%, a superset: 100 images only SCR gets right
    "IMAGE-1": _wrong((0, 200)),  # 20%, a subset: 100 images only SCR gets wrong
    "F9-3": _wrong((0, 200)),  # SCR, 2 scales: 20%
    "WINDOW-2": _wrong((12, 214)),  # 20.2%: 14 images only SCR right, 12 only SCR wrong
    "IMAGE-2": _wrong((0, 200)),  # the same images as SCR: no discordant image
    "F9-2": _wrong((0, 250)),  # SCR, 3 scales: 25%
    "WINDOW-3": _wrong((50, 400)),  # 35%: 150 only SCR right, 50 only SCR wrong
    "IMAGE-4": _wrong((0, 500)),  # its SCR bar, F9-1, did not run
}


def _figure9_outcomes(tmp_path) -> pd.DataFrame:
    frame = pd.DataFrame({"image": [f"ILSVRC2012_val_{i:08d}" for i in range(1, N + 1)]})
    for row, wrong in PLANTED.items():
        frame[f"{row}:top1_loc_wrong"] = wrong
        frame[f"{row}:top5_loc_wrong"] = wrong
        frame[f"{row}:iou"] = np.where(wrong == 1, 0.25, 0.75)
    write_outcomes(tmp_path / "f9.outcomes.csv.gz", frame)
    return read_outcomes(tmp_path / "f9.outcomes.csv.gz")


def test_scr_against_each_baseline_is_the_bar_of_the_same_number_of_scales():
    """By hand from Figure 9 as reported (evaluation/paper_tables/reported.csv): the SCR bar of
    n scales against the window-box and whole-image rows of n scales, the SCR bar expected
    lower (sign −1)."""
    scr = {r["scales"]: r["row_id"] for r in read_reported()
           if r["artifact"] == "Figure 9" and r["regression"] == "SCR"}  # fmt: skip
    expected = {(scr[str(n)], f"{source}-{n}", -1) for n in (1, 2, 3, 4)
                for source in ("WINDOW", "IMAGE")}  # fmt: skip
    assert {(c, b, s) for _, c, b, s in FIGURE9_BASELINE_DIRECTIONS} == expected
    assert len(FIGURE9_BASELINE_DIRECTIONS) == 8


def _normal_interval(only_baseline_wrong: int, only_candidate_wrong: int) -> tuple[float, float]:
    """The large-sample 95% interval of a paired difference of error rates in points, from the
    discordant counts alone: (c − b)/n ± z·√((b + c)/n − ((c − b)/n)²)/√n."""
    b, c = only_baseline_wrong, only_candidate_wrong
    d = (c - b) / N
    half = norm.ppf(0.975) * math.sqrt((b + c) / N - d * d) / math.sqrt(N)
    return 100 * (d - half), 100 * (d + half)


@pytest.mark.parametrize(
    "candidate, baseline, only_baseline_wrong, only_candidate_wrong, expected",
    [
        ("F9-4", "WINDOW-1", 100, 0, "agrees"),  # SCR 10 points better, every image its way
        ("F9-4", "IMAGE-1", 0, 100, "contradicts"),  # 10 points worse
        ("F9-3", "WINDOW-2", 14, 12, "unresolved"),  # 0.2 points better on 26 discordant
        ("F9-2", "WINDOW-3", 150, 50, "agrees"),  # 10 points better, discordant both ways
    ],
)
def test_figure9_baseline_direction_planted(
    tmp_path, candidate, baseline, only_baseline_wrong, only_candidate_wrong, expected
):
    judged = judged_directions("figure9", _table({}), _figure9_outcomes(tmp_path))
    line = judged[(judged["candidate"] == candidate) & (judged["baseline"] == baseline)]
    assert len(line) == 1
    d = line.iloc[0]
    a, b = PLANTED[baseline], PLANTED[candidate]
    # The planted counts, recounted from the arrays.
    assert int(((a == 1) & (b == 0)).sum()) == only_baseline_wrong
    assert int(((a == 0) & (b == 1)).sum()) == only_candidate_wrong
    assert d.metric == "top5_loc" and d.images == N
    assert d.difference == pytest.approx(100 * (only_candidate_wrong - only_baseline_wrong) / N)
    discordant = only_baseline_wrong + only_candidate_wrong
    assert d.p_value == pytest.approx(binomtest(only_baseline_wrong, discordant, 0.5).pvalue)
    # The bootstrap interval is close to the normal one, which gives the same verdict.
    low, high = _normal_interval(only_baseline_wrong, only_candidate_wrong)
    assert d.low == pytest.approx(low, abs=0.4) and d.high == pytest.approx(high, abs=0.4)
    assert ("agrees" if high < 0 else "contradicts" if low > 0 else "unresolved") == expected
    assert d.verdict == expected
    # The paper states the direction, not its size: no paper Δ, so no images to resolve.
    assert math.isnan(d.paper_delta) and math.isnan(d.images_to_resolve)


def test_figure9_baseline_directions_without_discordance_or_without_a_row(tmp_path):
    judged = judged_directions("figure9", _table({}), _figure9_outcomes(tmp_path))
    base = judged[judged["baseline"].str.match(r"(WINDOW|IMAGE)-")].set_index("baseline")
    assert len(base) == 8
    # The same images wrong: every resample's difference is 0, McNemar's p is 1.
    same = base.loc["IMAGE-2"]
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert same.verdict == "unresolved"
    # IMAGE-3 and F9-1 have no outcomes: nothing judged.
    for missing in ("IMAGE-3", "WINDOW-4", "IMAGE-4"):
        assert base.loc[missing].verdict == "n/a" and math.isnan(base.loc[missing].difference)
    # 2 agree, 1 contradicts, 2 unresolved among these; "2 scales vs 1 scale" (F9-3 − F9-4:
    # 10 points better, paper −4.5) agrees and "PCR vs SCR" did not run.
    assert verdict_summary(judged) == "3 agree, 1 contradict, 2 unresolved"


# ----------------------------------------------------------------------------- detection


def _detection_outcomes(tmp_path, positives: dict, rows: dict) -> pd.DataFrame:
    """The long outcomes table written by hand: images ``a``, ``b``, ``c`` in that order,
    ``positives`` ``{(image, class): objects}``, ``rows`` ``{row: [(image, class, score,
    matched), ...]}`` in the devkit's order (class, then descending score)."""
    lines = [{"kind": "image", "image": name} for name in ("a", "b", "c")]
    lines += [{"kind": "positives", "image": i, "class": c, "positives": k}
              for (i, c), k in positives.items()]  # fmt: skip
    for row, detections in rows.items():
        lines.append({"kind": "row", "row": row})
        lines += [{"kind": "detection", "row": row, "image": i, "class": c, "score": s,
                   "matched": m} for i, c, s, m in detections]  # fmt: skip
    frame = pd.DataFrame(lines, columns=list(DETECTION_COLUMNS)).astype(object).fillna("")
    write_outcomes(tmp_path / "det.outcomes.csv.gz", frame)
    return read_outcomes(tmp_path / "det.outcomes.csv.gz")


def _judged_detection(outcomes) -> pd.DataFrame:
    table = pd.DataFrame({"row": ["DET-REG", "DET-WIN", "DET-RANDOM"]})
    return judged_directions("detection", table, outcomes).set_index(["candidate", "baseline"])


def test_detection_directions_names_are_the_papers_claims():
    assert {(c, b, s) for _, c, b, s in DETECTION_DIRECTIONS} == {
        ("DET-REG", "DET-WIN", 1), ("DET-WIN", "DET-RANDOM", 1), ("DET-REG", "DET-RANDOM", 1)}


def test_detection_directions_with_an_image_without_objects_are_judged(tmp_path):
    """Images a and b hold two objects of class 0 each, c none. DET-WIN finds every object,
    DET-REG one of each image's two, DET-RANDOM none, so that on any resample with an object
    (in the devkit's all-points AP: recall 1 at precision 1, recall ½ at precision 1, nothing)
    AP is 1, ½ and 0 whatever the images drawn: every difference is the same on every resample.
    A resample that draws only c (1 in 27 draws of 3) has no mAP for any row; it must be left
    out, not make the interval NaN."""
    outcomes = _detection_outcomes(tmp_path, {("a", 0): 2, ("b", 0): 2}, {
        "DET-REG": [("a", 0, 0.9, 1), ("b", 0, 0.8, 1)],
        "DET-WIN": [("a", 0, 0.9, 1), ("b", 0, 0.8, 1), ("a", 0, 0.7, 1), ("b", 0, 0.6, 1)],
        "DET-RANDOM": [],
    })  # fmt: skip
    judged = _judged_detection(outcomes)
    expected = {  # (difference in points, verdict)
        ("DET-REG", "DET-WIN"): (-50.0, "contradicts"),
        ("DET-WIN", "DET-RANDOM"): (100.0, "agrees"),
        ("DET-REG", "DET-RANDOM"): (50.0, "agrees"),
    }
    for pair, (difference, verdict) in expected.items():
        d = judged.loc[pair]
        assert (d.images, d.difference, d.low, d.high) == (3, difference, difference, difference)
        assert d.verdict == verdict
        assert math.isnan(d.p_value) and math.isnan(d.paper_delta)  # no McNemar for mAP


def test_detection_direction_whose_map_moves_with_the_images_drawn(tmp_path):
    """Images a and b hold one object of class 0 each, c none. DET-REG finds both (AP 1);
    DET-WIN scores a false box in b above its true box in a, so with k_a copies of a and k_b
    of b drawn its detections run k_b false then k_a true, and its AP is
    (1/(k_a + k_b))·k_a·k_a/(k_a + k_b) = (k_a/(k_a + k_b))²: ¼ on the images as they are.
    Of the 26 draws of 3 images with an object, 7 hold no b (AP 1) and 7 no a (AP 0), more than
    2.5% each, so the interval of DET-REG − DET-WIN is exactly [0, 100]: unresolved, an end at 0
    holding it."""
    outcomes = _detection_outcomes(tmp_path, {("a", 0): 1, ("b", 0): 1}, {
        "DET-REG": [("a", 0, 0.9, 1), ("b", 0, 0.8, 1)],
        "DET-WIN": [("b", 0, 0.95, 0), ("a", 0, 0.9, 1)],
        "DET-RANDOM": [],
    })  # fmt: skip
    judged = _judged_detection(outcomes)
    reg_win = judged.loc[("DET-REG", "DET-WIN")]
    assert (reg_win.difference, reg_win.low, reg_win.high) == (75.0, 0.0, 100.0)
    assert reg_win.verdict == "unresolved"
    win_random = judged.loc[("DET-WIN", "DET-RANDOM")]
    assert (win_random.difference, win_random.low, win_random.high) == (25.0, 0.0, 100.0)
    assert win_random.verdict == "unresolved"
    reg_random = judged.loc[("DET-REG", "DET-RANDOM")]
    assert (reg_random.low, reg_random.high, reg_random.verdict) == (100.0, 100.0, "agrees")
    assert verdict_summary(judged.reset_index()) == "1 agree, 0 contradict, 2 unresolved"


def test_detection_directions_on_images_without_any_object_are_not_judged(tmp_path):
    outcomes = _detection_outcomes(tmp_path, {}, {
        "DET-REG": [("a", 0, 0.9, 0)], "DET-WIN": [], "DET-RANDOM": []})  # fmt: skip
    judged = _judged_detection(outcomes)
    assert set(judged["verdict"]) == {"n/a"} and judged["difference"].isna().all()
