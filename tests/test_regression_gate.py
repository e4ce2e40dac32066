"""The regression gate fails for real regressions: each fault is injected through the code's own
seam (monkeypatch of the function or constant it lives in), and the gate, judging with the
committed tolerances, must exit 1 naming the metric the fault moves (and only metrics it can
move). The baselines are those of a clean run of the same small configuration on this machine
(values measured here, tolerances copied from reports/baselines/), so a fault, not the machine,
is what the gate sees; a clean rerun must pass, or the fault tests would prove nothing.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

import evaluation.clsloc
import overfeat.data.readers
import overfeat.dense
import overfeat.engine.config
import overfeat.localize
import overfeat.scales
from overfeat.gate import GateConfig, run_gate
from overfeat.gate.baselines import judge, measured_tolerance
from overfeat.gate.config import DET_SYNTHETIC, LOC_REAL, SYNTHETIC, SYNTHETIC_DATA
from overfeat.gate.run import HOW_TO_POINT
from overfeat.gate.spatial import best_overlap
from overfeat.gate.trained import synthetic_data
from overfeat.merge import MergeResult

COMMITTED = ROOT / "reports" / "baselines"
PRETRAINED_IMAGES = 40  # the first 40 of ilsvrc2012-val-mini: enough for several IoU cases
SYNTHETIC_IMAGES = 20
LOC_IMAGES = 20  # boxed synthetic validation images localized by the small loc-real suite
DET_IMAGES = 15  # synthetic DET validation images of the small det-synthetic suite


@dataclass
class Gate:
    """A small gate configuration with its clean baselines (in a temporary folder)."""

    config: GateConfig
    baselines: Path

    def run(self):
        printed: list[str] = []
        outcome = run_gate(self.config, self.baselines, None, out=printed.append)
        outcome.printed = "\n".join(printed)
        return outcome


def _clean_gate(tmp: Path, config: GateConfig) -> Gate:
    baselines = tmp / "baselines"
    baselines.mkdir()
    for suite in config.suites:
        shutil.copy(COMMITTED / f"{suite}.json", baselines)
    # Rewrites the values with this machine's clean run and keeps every committed tolerance.
    outcome = run_gate(config, baselines, None, update=True, out=lambda _: None)
    assert outcome.exit_code == 0 and not outcome.skipped
    return Gate(config, baselines)


@pytest.fixture(scope="module")
def gate_cache(tmp_path_factory) -> Path:
    """One cache for the synthetic, localization and detection gates of this module: the
    synthetic set and its classifier are written and trained once (the gate caches trained
    networks by configuration; evaluation files live per suite)."""
    return tmp_path_factory.mktemp("gate-cache")


@pytest.fixture(scope="module")
def synthetic_gate(tmp_path_factory, gate_cache) -> Gate:
    """The committed synthetic suite's training (18 steps); its single-scale rows on 20
    validation images (every fault below shows at one scale: T2-4 would only add time)."""
    tmp = tmp_path_factory.mktemp("gate-synthetic")
    suite = replace(SYNTHETIC, rows=("T2-2", "T2-3"), val_limit=SYNTHETIC_IMAGES)
    config = GateConfig(suites=("synthetic",), cache=gate_cache, synthetic=suite)
    return _clean_gate(tmp, config)


@pytest.fixture(scope="module")
def loc_gate(tmp_path_factory, gate_cache) -> Gate:
    """The loc-real suite pointed (``--subset``) at the synthetic suite's set and classifier:
    its SCR regressor as committed, its 1-scale row on the first 20 boxed validation images."""
    tmp = tmp_path_factory.mktemp("gate-loc")
    data = synthetic_data(gate_cache, SYNTHETIC_DATA)
    config = GateConfig(suites=("loc-real",), cache=gate_cache, subset=data, train_real=SYNTHETIC,
                        loc_real=replace(LOC_REAL, rows=("F9-4",), val_limit=LOC_IMAGES))  # fmt: skip
    return _clean_gate(tmp, config)


@pytest.fixture(scope="module")
def det_gate(tmp_path_factory, gate_cache) -> Gate:
    """The committed det-synthetic suite's networks on its first 15 DET validation images."""
    tmp = tmp_path_factory.mktemp("gate-det")
    config = GateConfig(suites=("det-synthetic",), cache=gate_cache,
                        det_synthetic=replace(DET_SYNTHETIC, val_limit=DET_IMAGES))  # fmt: skip
    return _clean_gate(tmp, config)


@pytest.fixture(scope="module")
def pretrained_gate(tmp_path_factory, val_mini_dir, devkit_dir) -> Gate:
    tmp = tmp_path_factory.mktemp("gate-pretrained")
    pytest.importorskip("efficientnet_lite_pytorch")
    config = GateConfig(suites=("pretrained-real",), cache=tmp / "cache",
                        shared_data=val_mini_dir.parent, pretrained_limit=PRETRAINED_IMAGES)  # fmt: skip
    return _clean_gate(tmp, config)


def _failed(outcome, suite: str) -> set[str]:
    return {r.metric for r in outcome.rows if r.failed and r.suite == suite}


def _assert_names(outcome, suite: str, metric: str) -> None:
    assert outcome.exit_code == 1
    assert outcome.failed(suite, metric)
    assert "regression gate FAILED" in outcome.printed
    assert f"{suite}: {metric} (" in outcome.printed


# ----------------------------------------------------------------------------- clean reruns


@pytest.mark.slow
def test_clean_rerun_of_synthetic_suite_passes(synthetic_gate):
    outcome = synthetic_gate.run()
    assert outcome.exit_code == 0, outcome.printed
    assert {r.status for r in outcome.rows} == {"ok"}


@pytest.mark.slow
def test_clean_rerun_of_pretrained_suite_passes(pretrained_gate):
    outcome = pretrained_gate.run()
    assert outcome.exit_code == 0, outcome.printed
    assert {r.status for r in outcome.rows} == {"ok"}


@pytest.mark.slow
def test_clean_reruns_of_localization_and_detection_suites_pass(loc_gate, det_gate):
    for gate in (loc_gate, det_gate):
        outcome = gate.run()
        assert outcome.exit_code == 0, outcome.printed
        assert {r.status for r in outcome.rows} == {"ok"}


# ----------------------------------------------------------------------------- injected faults


@pytest.mark.slow
def test_offset_pooling_reduced_to_delta_zero_fails_fine_row_only(synthetic_gate, monkeypatch):
    original = overfeat.dense.offset_max_pool

    def offset_zero_only(layer5, k, offsets="fine"):
        pooled = original(layer5, k, offsets)
        if offsets == "coarse":
            return pooled
        n = layer5.shape[0]
        return pooled[:n].repeat(k * k, 1, 1, 1)  # every offset's map is Δ = (0, 0)'s

    monkeypatch.setattr(overfeat.dense, "offset_max_pool", offset_zero_only)
    outcome = synthetic_gate.run()
    _assert_names(outcome, "synthetic", "T2-3 true-class score")
    assert next(r for r in outcome.rows if r.metric == "T2-3 true-class score").status == "REGRESSED"
    # The coarse row never used the other offsets: the gate must not blame it.
    assert not {m for m in _failed(outcome, "synthetic") if m.startswith("T2-2")}
    # Independent fact: with only Δ = 0 left, the fine vote is the coarse vote.
    m = outcome.results["synthetic"].metrics
    assert m["T2-3 true-class score"].value == pytest.approx(m["T2-2 true-class score"].value,
                                                             rel=1e-5)  # fmt: skip


@pytest.mark.slow
def test_flip_dropped_from_vote_fails_both_rows(synthetic_gate, monkeypatch):
    original = overfeat.scales.multiscale_class_vector

    def without_flips(model, images, sizes, flips=True, *args, **kwargs):
        return original(model, images, sizes, False, *args, **kwargs)

    monkeypatch.setattr(overfeat.scales, "multiscale_class_vector", without_flips)
    outcome = synthetic_gate.run()
    _assert_names(outcome, "synthetic", "T2-2 true-class score")
    _assert_names(outcome, "synthetic", "T2-3 true-class score")
    # Voting is evaluation only: the trained network (and its loss) is untouched.
    assert "train loss, last epoch" not in _failed(outcome, "synthetic")


@pytest.mark.slow
def test_learning_rate_ten_times_too_small_fails_training_loss(synthetic_gate, monkeypatch):
    original = overfeat.engine.config.recipe

    def slow(name, **overrides):
        config = original(name, **overrides)
        return replace(config, lr=config.lr / 10)

    monkeypatch.setattr(overfeat.engine.config, "recipe", slow)
    outcome = synthetic_gate.run()
    _assert_names(outcome, "synthetic", "train loss, last epoch")
    loss = next(r for r in outcome.rows if r.metric == "train loss, last epoch")
    assert loss.status == "REGRESSED" and loss.now > loss.baseline  # slower, not just different


@pytest.mark.slow
def test_class_index_shift_in_reader_fails_top1(pretrained_gate, monkeypatch):
    original = overfeat.data.readers.classification_samples

    def shifted(root, split):
        samples, classes, layout = original(root, split)
        return [(p, (label + 1) % len(classes)) for p, label in samples], classes, layout

    monkeypatch.setattr(overfeat.data.readers, "classification_samples", shifted)
    outcome = pretrained_gate.run()
    _assert_names(outcome, "pretrained-real", "top-1 error")
    _assert_names(outcome, "pretrained-real", "top-5 error")
    # The boxes come from the other reader, and still carry their own WNIDs.
    assert not {m for m in _failed(outcome, "pretrained-real") if m.startswith("loc")}


@pytest.mark.slow
def test_iou_threshold_raised_to_0_7_fails_localization_only(pretrained_gate, monkeypatch):
    monkeypatch.setattr(evaluation.clsloc, "LOC_IOU_THRESHOLD", 0.7)
    outcome = pretrained_gate.run()
    for rule in ("2012 rule", "2014 blacklist"):
        _assert_names(outcome, "pretrained-real", f"loc error, 5 guesses, {rule}")
    assert _failed(outcome, "pretrained-real") <= {
        f"loc error, {k} guess{'es' if k > 1 else ''}, {rule}"
        for k in (1, 5) for rule in ("2012 rule", "2014 blacklist")
    }  # fmt: skip


def _never_merges(boxes, scores, threshold=None) -> MergeResult:
    """A greedy merge whose loop never finds a pair: every box stays its own cluster."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return MergeResult(boxes.copy(), np.asarray(scores, dtype=np.float64).copy(),
                       np.arange(len(boxes)))  # fmt: skip


@pytest.mark.slow
def test_merge_that_never_merges_fails_localization_and_detection(loc_gate, det_gate,
                                                                  monkeypatch):  # fmt: skip
    monkeypatch.setattr(overfeat.localize, "greedy_merge", _never_merges)
    outcome = loc_gate.run()
    _assert_names(outcome, "loc-real", "F9-4 merged boxes per image")
    row = next(r for r in outcome.rows if r.metric == "F9-4 merged boxes per image")
    assert row.status == "REGRESSED" and row.now > 2 * row.baseline  # every window's box kept
    # The merge runs at inference only: the trained regressor is untouched.
    assert "SCR regressor train loss, last epoch" not in _failed(outcome, "loc-real")
    outcome = det_gate.run()
    _assert_names(outcome, "det-synthetic", "merged boxes per image")
    row = next(r for r in outcome.rows if r.metric == "merged boxes per image")
    assert row.status == "REGRESSED" and row.now > 2 * row.baseline
    assert not {m for m in _failed(outcome, "det-synthetic") if "train loss" in m}


@pytest.mark.slow
def test_boxes_decoded_with_the_coarse_stride_fail_localization_and_detection(
    loc_gate, det_gate, monkeypatch
):
    original = overfeat.dense.output_stride

    def doubled(spec, offsets="fine"):  # fine outputs placed at the coarse stride (16 → 32)
        return 2 * original(spec, offsets)

    monkeypatch.setattr(overfeat.dense, "output_stride", doubled)
    outcome = loc_gate.run()
    # Moved boxes: the first guess overlaps the truth differently (on the synthetic set's large
    # objects, wider-spread windows can even overlap more: CHANGED, which fails too).
    _assert_names(outcome, "loc-real", "F9-4 first-guess IoU")
    assert "SCR regressor train loss, last epoch" not in _failed(outcome, "loc-real")
    outcome = det_gate.run()
    # Windows placed twice as far apart land on boxes that no longer agree: fewer of them merge.
    _assert_names(outcome, "det-synthetic", "merged boxes per image")
    assert not {m for m in _failed(outcome, "det-synthetic") if "train loss" in m}


# ----------------------------------------------------------------------------- the rule itself


def test_best_overlap_is_the_hand_worked_iou_of_the_nearest_box():
    truth = np.array([[0, 0, 9, 9], [100, 100, 109, 109]])
    boxes = np.array([[5, 0, 14, 9], [0, 0, 9, 9], [50, 50, 59, 59]])
    # Box 1 equals truth 0 (IoU 1); nothing overlaps truth 1 (0, not the devkit's -1).
    assert best_overlap(boxes, truth).tolist() == [1.0, 0.0]
    # Half-shifted 10x10 boxes: intersection 5x10 = 50, union 150 (inclusive widths).
    assert best_overlap(boxes[:1], truth[:1])[0] == pytest.approx(50 / 150)
    assert best_overlap(np.zeros((0, 4)), truth).tolist() == [0.0, 0.0]


def test_judge_fails_outside_tolerance_on_either_side_naming_the_worse_one():
    assert judge(0.31, 0.30, 0.02, "lower_is_better") == "ok"
    assert judge(0.33, 0.30, 0.02, "lower_is_better") == "REGRESSED"
    assert judge(0.27, 0.30, 0.02, "lower_is_better") == "CHANGED"
    assert judge(0.27, 0.30, 0.02, "higher_is_better") == "REGRESSED"
    assert judge(0.99898, 0.99898, 0.0, "exact") == "ok"
    assert judge(0.99899, 0.99898, 0.0, "exact") == "REGRESSED"


def test_tolerance_is_three_spreads_rounded_up_or_the_floor():
    # spread 0.0011 -> 3 x 0.0011 = 0.0033; spread 0.00123 -> 0.00369, rounded up to 0.0037
    assert measured_tolerance(0.0011, 1 / 1134, "lower_is_better") == pytest.approx(0.0033)
    assert measured_tolerance(0.00123, 0.0, "higher_is_better") == pytest.approx(0.0037)
    assert measured_tolerance(0.0, 0.02, "lower_is_better") == 0.02
    assert measured_tolerance(0.0, 0.0, "exact") == 0.0
    with pytest.raises(ValueError, match="exact metric varied"):
        measured_tolerance(0.01, 0.0, "exact")


def test_absent_shared_data_skips_real_image_suites_saying_how_to_point_them(tmp_path):
    config = GateConfig(suites=("harness", "pretrained-real", "train-real"),
                        shared_data=tmp_path / "absent", cache=tmp_path / "cache")  # fmt: skip
    printed: list[str] = []
    outcome = run_gate(config, COMMITTED, tmp_path / "reports", out=printed.append)
    assert outcome.exit_code == 0
    assert set(outcome.skipped) == {"harness", "pretrained-real", "train-real"}
    assert "--subset PATH" in HOW_TO_POINT
    assert HOW_TO_POINT in outcome.skipped["train-real"]
    assert HOW_TO_POINT in outcome.skipped["pretrained-real"]
    assert "OVERFEAT_SHARED_DATA" in outcome.skipped["harness"]
    assert all(r.status == "skipped" for r in outcome.rows)
    assert "skipped train-real" in "\n".join(printed)
    assert (tmp_path / "reports" / "regression.csv").is_file()


def test_committed_baselines_hold_a_measured_tolerance_for_every_metric():
    # Recomputed here from the values each file records per thread count: the spread of each
    # metric, the largest spread of its group, and the rule's tolerance.
    import json

    for path in sorted(COMMITTED.glob("*.json")):
        metrics = json.loads(path.read_text())["metrics"]
        spread, group = {}, {}
        for name, m in metrics.items():
            values = list(m["measurement"]["values_by_thread_count"].values())
            assert len(values) >= 2, f"{path.name}: {name}"
            spread[name] = max(values) - min(values)
            key = m["measurement"]["group"] or name
            group[key] = max(group.get(key, 0.0), spread[name])
        for name, m in metrics.items():
            used = group[m["measurement"]["group"] or name]
            expect = 0.0 if m["direction"] == "exact" else max(
                math.ceil(3 * used / 10 ** (math.floor(math.log10(3 * used)) - 1) - 1e-9)
                * 10 ** (math.floor(math.log10(3 * used)) - 1) if used else 0.0,
                m["measurement"]["floor"],
            )
            assert m["tolerance"] == pytest.approx(expect, rel=1e-9), f"{path.name}: {name}"
            assert m["measurement"]["spread"] == spread[name]
