"""The regression gate fails for real regressions: each fault of :mod:`overfeat.gate.faults`, in
the code (patched through its own seam) or in the data (a rewritten copy of a data set), is run
against a small gate configuration judged with the committed tolerances, and the gate must exit 1
naming the metrics the fault names (and no training loss where the fault is in inference). The
baselines are those of a clean run of the same small configuration on this machine (values
measured here, networks pinned here, tolerances copied from reports/baselines/), so a fault, not
the machine, is what the gate sees; a clean rerun must pass, or the fault tests would prove
nothing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from overfeat.gate import GateConfig, run_gate
from overfeat.gate.baselines import judge, measured_tolerance
from overfeat.gate.config import DET_SYNTHETIC, LOC_REAL, SYNTHETIC, SYNTHETIC_DATA
from overfeat.gate.faults import CODE_FAULTS, DATA_FAULTS, fault_table, faulty_copy
from overfeat.gate.perturb import KERNEL_SETS
from overfeat.gate.run import HOW_TO_POINT
from overfeat.gate.spatial import best_overlap
from overfeat.gate.trained import synthetic_data

COMMITTED = ROOT / "reports" / "baselines"
PRETRAINED_IMAGES = 40  # the first 40 of ilsvrc2012-val-mini: enough for several IoU cases
SYNTHETIC_IMAGES = 20
LOC_IMAGES = 20  # boxed synthetic validation images localized by the small loc-real suite
DET_IMAGES = 15  # synthetic DET validation images of the small det-synthetic suite


@dataclass
class Gate:
    """A small gate configuration with its clean baselines and pinned networks (in a temporary
    folder)."""

    config: GateConfig
    baselines: Path

    def run(self, suites: tuple[str, ...] | None = None, subset: Path | None = None):
        config = self.config
        if suites is not None:
            config = replace(config, suites=suites)
        if subset is not None:
            config = replace(config, subset=subset)
        printed: list[str] = []
        outcome = run_gate(config, self.baselines, None, out=printed.append)
        outcome.printed = "\n".join(printed)
        return outcome


def _clean_gate(tmp: Path, config: GateConfig) -> Gate:
    baselines = tmp / "baselines"
    baselines.mkdir()
    for suite in config.suites:
        shutil.copy(COMMITTED / f"{suite}.json", baselines)
    # Pins this machine's small networks, rewrites the values with their clean run and keeps
    # every committed tolerance.
    config = replace(config, pinned=baselines / "pinned")
    outcome = run_gate(replace(config, pin=True), baselines, None, update=True, out=lambda _: None)
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
def real_gate(tmp_path_factory, gate_cache) -> Gate:
    """The real-image suites train-real and loc-real pointed (``--subset``) at the synthetic
    suite's set, with its training: T2-2 on the first 20 validation images, the committed SCR
    regressor and its 1-scale row on the first 20 boxed ones. A data fault is a rewritten copy
    of that set passed as the subset."""
    tmp = tmp_path_factory.mktemp("gate-real")
    data = synthetic_data(gate_cache, SYNTHETIC_DATA)
    config = GateConfig(
        suites=("train-real", "loc-real"), cache=gate_cache, subset=data,
        train_real=replace(SYNTHETIC, rows=("T2-2",), val_limit=SYNTHETIC_IMAGES),
        loc_real=replace(LOC_REAL, rows=("F9-4",), val_limit=LOC_IMAGES),
    )  # fmt: skip
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


GATE_OF_SUITE = {
    "synthetic": "synthetic_gate", "train-real": "real_gate", "loc-real": "real_gate",
    "det-synthetic": "det_gate", "pretrained-real": "pretrained_gate",
}  # fmt: skip


def _failed(outcome, suite: str) -> set[str]:
    return {r.metric for r in outcome.rows if r.failed and r.suite == suite}


def _row(outcome, metric: str):
    return next(r for r in outcome.rows if r.metric == metric)


def _assert_names(outcome, suite: str, metric: str) -> None:
    assert outcome.exit_code == 1, outcome.printed
    assert outcome.failed(suite, metric), outcome.printed
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
def test_clean_reruns_of_real_image_and_detection_suites_pass(real_gate, det_gate, tmp_path):
    for gate in (real_gate, det_gate):
        outcome = gate.run()
        assert outcome.exit_code == 0, outcome.printed
        assert {r.status for r in outcome.rows} == {"ok"}
    # A copy of the data that no fault rewrote is judged as the data itself.
    copy = tmp_path / Path(real_gate.config.subset).name
    shutil.copytree(real_gate.config.subset, copy)
    outcome = real_gate.run(subset=copy)
    assert outcome.exit_code == 0, outcome.printed


# ----------------------------------------------------------------------------- injected faults


# Facts each fault implies beyond the metrics it names, computed independently of the gate.
def _offset_zero_facts(outcome) -> None:
    # The coarse row never used the other offsets: the gate must not blame it; and with only
    # Δ = 0 left, the fine vote is the coarse vote.
    assert not {m for m in _failed(outcome, "synthetic") if "T2-2" in m}
    assert _row(outcome, "pinned T2-3 true-class score").status == "REGRESSED"
    m = outcome.results["synthetic"].metrics
    assert m["pinned T2-3 true-class score"].value == pytest.approx(
        m["pinned T2-2 true-class score"].value, rel=1e-5)  # fmt: skip


def _slow_lr_facts(outcome) -> None:
    loss = _row(outcome, "train loss, last epoch")
    assert loss.status == "REGRESSED" and loss.now > loss.baseline  # slower, not just different
    # The pinned network does not depend on this run's training: its rows must not move.
    assert not {m for m in _failed(outcome, "synthetic") if m.startswith("pinned")}


def _label_shift_facts(outcome) -> None:
    # The boxes come from the other reader, and still carry their own WNIDs.
    assert not {m for m in _failed(outcome, "pretrained-real") if m.startswith("loc")}


def _iou_facts(outcome) -> None:
    assert _failed(outcome, "pretrained-real") <= {
        f"loc error, {k} guess{'es' if k > 1 else ''}, {rule}"
        for k in (1, 5) for rule in ("2012 rule", "2014 blacklist")
    }  # fmt: skip


def _never_merges_facts(outcome) -> None:
    row = next(r for r in outcome.rows if r.failed and "merged boxes" in r.metric)
    assert row.status == "REGRESSED" and row.now > 2 * row.baseline  # every window's box kept


FACTS = {
    "offset-pooling-delta-zero": _offset_zero_facts,
    "lr-divided-by-10": _slow_lr_facts,
    "reader-label-shift": _label_shift_facts,
    "loc-iou-0.7": _iou_facts,
    "merge-never-merges": _never_merges_facts,
    "merge-never-merges-det": _never_merges_facts,
}


@pytest.mark.slow
@pytest.mark.parametrize("fault", CODE_FAULTS, ids=lambda f: f.name)
def test_code_fault_fails_the_metrics_it_names(fault, request, monkeypatch):
    gate = request.getfixturevalue(GATE_OF_SUITE[fault.suite])
    fault.inject(monkeypatch.setattr)
    outcome = gate.run(suites=(fault.suite,))
    for metric in fault.fails:
        _assert_names(outcome, fault.suite, metric)
    if fault.name != "lr-divided-by-10":
        # Inference faults: the trained networks are untouched.
        assert not {m for m in _failed(outcome, fault.suite) if "train loss" in m}
    FACTS.get(fault.name, lambda _: None)(outcome)


@pytest.mark.parametrize("fault", CODE_FAULTS, ids=lambda f: f.name)
def test_every_code_fault_patches_a_seam_that_exists(fault, monkeypatch):
    """A seam renamed or moved would make a fault patch nothing (monkeypatch refuses a name the
    module does not have), and the slow test above would then blame the gate."""
    patched = []

    def patch(owner, name, value):
        before = getattr(owner, name)  # AttributeError for a seam that is gone
        monkeypatch.setattr(owner, name, value)
        patched.append((owner, name, before, value))

    fault.inject(patch)
    assert patched, f"{fault.name} patches nothing"
    for owner, name, before, value in patched:
        assert getattr(owner, name) is value and value is not before, f"{fault.name}: {name}"


@pytest.mark.slow
@pytest.mark.parametrize("fault", DATA_FAULTS, ids=lambda f: f.name)
def test_data_fault_fails_the_metrics_it_names(fault, real_gate, tmp_path):
    faulty = faulty_copy(real_gate.config.subset, fault, tmp_path)
    outcome = real_gate.run(suites=(fault.suite,), subset=faulty)
    for metric in fault.fails:
        _assert_names(outcome, fault.suite, metric)
    if fault.kind != "class order":
        # Only the validation data changed: the training data, and so the losses, did not.
        assert not {m for m in _failed(outcome, fault.suite) if "train loss" in m}


def test_data_faults_rewrite_what_they_say(tmp_path):
    # Independent of the gate: each rewrite changes the files it names, and only those kinds.
    from evaluation.annotations import read_loc_solution_csv
    from overfeat.data.readers import classification_samples

    data = synthetic_data(tmp_path / "cache", replace(SYNTHETIC_DATA, train_per_class=2,
                                                      val_per_class=2, det_images=0))  # fmt: skip
    clean = read_loc_solution_csv(data / "LOC_val_solution.csv")
    _, classes, _ = classification_samples(data, "val")
    by_name = {f.name: f for f in DATA_FAULTS}

    shifted = read_loc_solution_csv(
        faulty_copy(data, by_name["val-labels-shifted"], tmp_path / "a") / "LOC_val_solution.csv")
    for name, ann in clean.items():
        i = classes.index(ann.wnids[0])
        assert shifted[name].wnids[0] == classes[(i + 1) % len(classes)]
        assert (shifted[name].boxes == ann.boxes).all()

    renamed = faulty_copy(data, by_name["class-renamed"], tmp_path / "b")
    _, new_classes, _ = classification_samples(renamed, "val")
    assert new_classes == [*classes[1:], "n09999999"]

    moved = read_loc_solution_csv(
        faulty_copy(data, by_name["val-boxes-shifted"], tmp_path / "c") / "LOC_val_solution.csv")
    for name, ann in clean.items():
        assert (moved[name].boxes[:, 0] >= ann.boxes[:, 0]).all()
        assert (moved[name].boxes != ann.boxes).any()


def test_every_fault_names_metrics_of_its_suite_in_the_committed_baselines():
    # A fault naming a metric the gate does not measure could never be caught.
    for f in (*CODE_FAULTS, *DATA_FAULTS):
        metrics = json.loads((COMMITTED / f"{f.suite}.json").read_text())["metrics"]
        assert set(f.fails) <= set(metrics), f.name
    kinds = {f.kind for f in DATA_FAULTS}
    assert kinds == {"labels", "class order", "boxes", "image decoding"}
    assert {r["metric"] for r in fault_table()} >= {m for f in CODE_FAULTS for m in f.fails}


# ----------------------------------------------------------------------------- other machines


@pytest.mark.slow
@pytest.mark.parametrize("kernels,threads", [("default", None), ("avx2", 1)])
def test_cheap_suites_pass_under_each_kernel_set_from_a_clean_cache(kernels, threads, tmp_path,
                                                                    devkit_dir):  # fmt: skip
    # As another machine runs them: a fresh process whose torch picks this kernel set, a cache
    # of its own (the synthetic network trained anew), the committed baselines and pinned networks.
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY",
           "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA")} | KERNEL_SETS[kernels]  # fmt: skip
    argv = [sys.executable, "-m", "overfeat", "regression", "--suite", "harness", "--suite",
            "synthetic", "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "r"),
            "--baselines", str(COMMITTED), "--shared-data", str(devkit_dir.parent),
            "--no-progress", *(["--threads", str(threads)] if threads else [])]  # fmt: skip
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "regression gate passed" in done.stdout


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
    # Recomputed here from the values each file records per perturbation (decision
    # TOLERANCE_FROM_PERTURBATIONS): every file measured under two or more perturbations, one of
    # them with the AVX2 kernel set forced; the spread of each metric, the largest spread of its
    # group, and the rule's tolerance.
    for path in sorted(COMMITTED.glob("*.json")):
        data = json.loads(path.read_text())
        perturbations = data["recorded"]["perturbations"]
        assert len(perturbations) >= 2, path.name
        assert any(p["kernels"] == "avx2" and p["capability"] == "AVX2"
                   for p in perturbations), path.name  # fmt: skip
        names = [p["name"] for p in perturbations]
        metrics = data["metrics"]
        spread, group = {}, {}
        for name, m in metrics.items():
            by = m["measurement"]["values_by_perturbation"]
            assert list(by) == names, f"{path.name}: {name}"
            values = list(by.values())
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


def test_no_committed_tolerance_exceeds_a_quarter_of_the_distance_from_chance():
    # A metric whose tolerance reaches that far could not tell a broken pipeline from a working
    # one. Chance is what a know-nothing network reads (1 - k/C for a top-k error over C classes,
    # ln C for a cross-entropy, 1/C for a mean true-class vote, 0 for an mAP, an IoU or a count);
    # where a metric claims none (a regressor's squared distance), the distance is from zero.
    for path in sorted(COMMITTED.glob("*.json")):
        data = json.loads(path.read_text())
        classes = data["data"].get("classes")
        for name, m in data["metrics"].items():
            if m["direction"] == "exact":
                assert m["tolerance"] == 0, f"{path.name}: {name}"
                continue
            chance = m.get("chance")
            if "top-1 error" in name and "loc" not in name:
                assert chance == pytest.approx(1 - 1 / classes), f"{path.name}: {name}"
            if "top-5 error" in name and "loc" not in name:
                assert chance == pytest.approx(1 - 5 / classes), f"{path.name}: {name}"
            if name.endswith("true-class score"):
                assert chance == pytest.approx(1 / classes), f"{path.name}: {name}"
            distance = abs(m["baseline"] - (chance if chance is not None else 0.0))
            assert m["tolerance"] <= distance / 4, (
                f"{path.name}: {name}: tolerance {m['tolerance']} against distance {distance}"
            )
