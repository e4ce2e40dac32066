"""The gate's run: every selected suite measured, judged against its baselines, and one table
written to ``reports/regression/`` and printed.

``run_gate(config, baselines, reports)`` is the whole of ``overfeat regression``; a test passes
a small :class:`overfeat.gate.config.GateConfig` and its own baseline folder. With ``update``
the baselines are rewritten instead of judged (each change printed); with ``measure`` every
suite runs once per perturbation (a CPU kernel set and a thread count), each in its own
process, and the tolerances come from the spread (decision TOLERANCE_FROM_PERTURBATIONS in
:mod:`overfeat.gate.perturb`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from overfeat.gate.baselines import (
    BaselineError,
    Row,
    SuiteResult,
    compare,
    load_baseline,
    new_baseline,
    write_baseline,
)
from overfeat.gate.config import REAL_IMAGE_SUITES, GateConfig
from overfeat.gate.perturb import (
    KERNEL_ENV,
    Perturbation,
    PerturbationRun,
    measure_perturbations,
)

__all__ = ["GateOutcome", "measure_suites", "run_gate"]

HOW_TO_POINT = (
    "point the real-image suites at an ImageNet subset with --subset PATH (any layout "
    "overfeat.data reads: Kaggle, classic train/<wnid>/ + val/) and give it baselines of its own "
    "(--baselines DIR --update-baselines --measure)"
)


@dataclass
class GateOutcome:
    """``exit_code``: 0 passed, 1 a metric failed, 2 baselines could not judge a suite;
    ``failures``: ``"suite: metric (STATUS)"`` per failed metric; ``problems``: why a suite
    could not be judged; ``skipped``: why a suite did not run."""

    exit_code: int
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    results: dict[str, SuiteResult] = field(default_factory=dict)
    csv_path: Path | None = None

    def failed(self, suite: str, metric: str) -> bool:
        return any(r.failed and r.suite == suite and r.metric == metric for r in self.rows)


def _why_absent(config: GateConfig, suite: str) -> str | None:
    """Why ``suite`` cannot run here, or ``None``."""
    if suite == "harness":
        if not config.devkit.is_dir():
            return (f"{config.devkit} is absent (the devkit files are read in place); set "
                    "OVERFEAT_SHARED_DATA or --shared-data to the folder holding ilsvrc-devkit/")  # fmt: skip
        return None
    if suite in REAL_IMAGE_SUITES:
        data = config.data_for(suite)
        if not data.is_dir():
            return f"{data} is absent; {HOW_TO_POINT}"
    return None


def _measure(config: GateConfig, suite: str, out: Callable[[str], None]) -> SuiteResult:
    from overfeat.gate.harness import run_harness
    from overfeat.gate.pinned import PinnedMissing
    from overfeat.gate.pretrained import PretrainedUnavailable, run_pretrained
    from overfeat.gate.spatial import run_detection, run_localization
    from overfeat.gate.trained import run_trained, synthetic_data

    settings = config.suite_settings(suite)
    why = _why_absent(config, suite)
    if why:
        return SuiteResult(suite, settings=settings, skipped=why)
    work = config.cache / "eval" / suite
    pinned = config.pinned if config.pinned is not None else Path("reports/baselines/pinned")
    out(f"[{suite}] running")
    try:
        if suite == "harness":
            result = run_harness(config.devkit, work)
        elif suite == "pretrained-real":
            result = run_pretrained(
                config.data_for(suite), config.devkit, work, config.pretrained_limit,
                config.pretrained_batch, config.device, config.progress,
            )  # fmt: skip
        elif suite == "loc-real":
            result = run_localization(
                suite, config.data_for(suite), config.train_real, config.loc_real, config.cache,
                work, pinned, config.device, config.workers, config.batch_size, config.progress,
                config.pin,
            )  # fmt: skip
        elif suite == "det-synthetic":
            data = synthetic_data(config.cache, config.synthetic_data, config.progress)
            result = run_detection(
                suite, data, config.synthetic, config.det_synthetic, config.cache, work, pinned,
                config.device, config.workers, config.batch_size, config.progress, config.pin,
            )  # fmt: skip
        else:
            trained = config.train_real if suite == "train-real" else config.synthetic
            data = (
                config.data_for(suite)
                if suite == "train-real"
                else synthetic_data(config.cache, config.synthetic_data, config.progress)
            )
            result = run_trained(
                suite, data, trained, config.cache, work, pinned, config.device, config.workers,
                config.batch_size, config.progress, config.pin,
            )  # fmt: skip
    except PretrainedUnavailable as exc:
        return SuiteResult(suite, settings=settings, skipped=str(exc))
    except PinnedMissing as exc:
        raise BaselineError(str(exc)) from None
    except (FileNotFoundError, ValueError) as exc:
        if suite in REAL_IMAGE_SUITES and config.subset is not None:
            # The user's own subset lacks what this suite needs (a train split, boxes, ...).
            return SuiteResult(suite, settings=settings, skipped=f"--subset {config.subset}: {exc}")
        raise
    result.settings = settings
    out(f"[{suite}] {len(result.metrics)} metrics in {result.seconds:.0f} s")
    return result


def measure_suites(
    config: GateConfig, out: Callable[[str], None] = print
) -> dict[str, SuiteResult]:
    """Every selected suite's result (skipped ones say why)."""
    return {suite: _measure(config, suite, out) for suite in config.suites}


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.6g}"


def _update(
    results: dict[str, SuiteResult],
    runs: dict[str, PerturbationRun] | None,
    folder: Path,
    command: str,
    out: Callable[[str], None],
) -> list[Row]:
    """Rewrite the baseline files of the suites that ran; print and return what changed."""
    rows = []
    for suite, result in results.items():
        if result.skipped is not None:
            out(f"[{suite}] skipped, baselines kept: {result.skipped}")
            continue
        old = load_baseline(folder, suite)
        if runs:
            by_perturbation = {name: run.results[suite] for name, run in runs.items()}
            info = [run.info(suite) for run in runs.values()]
        else:
            by_perturbation, info = None, None
        new = new_baseline(result, old, by_perturbation, command, info)
        path = write_baseline(folder, new)
        out(f"[{suite}] wrote {path}")
        old_metrics = (old or {}).get("metrics", {})
        for name, entry in new["metrics"].items():
            before = old_metrics.get(name)
            if before is None:
                status = "recorded"
                out(f"  {name}: new baseline {_fmt(entry['baseline'])} ± {_fmt(entry['tolerance'])}")
            elif (before["baseline"], before["tolerance"]) == (entry["baseline"], entry["tolerance"]):
                status = "unchanged"
            else:
                status = "updated"
                out(f"  {name}: {_fmt(before['baseline'])} ± {_fmt(before['tolerance'])} -> "
                    f"{_fmt(entry['baseline'])} ± {_fmt(entry['tolerance'])}")  # fmt: skip
            rows.append(Row(suite, name, entry["direction"],
                            None if before is None else before["baseline"],
                            entry["baseline"], entry["tolerance"], status))  # fmt: skip
        for name, entry in new.get("dropped", {}).items():
            out(f"  {name}: not gated: {entry['reason']}")
        for name in sorted(set(old_metrics) - set(new["metrics"]) - set(new.get("dropped", {}))):
            out(f"  {name}: dropped (no longer measured)")
    return rows


def run_gate(
    config: GateConfig,
    baselines: str | Path = "reports/baselines",
    reports: str | Path | None = "reports/regression",
    update: bool = False,
    measure: Sequence[Perturbation] = (),
    command: str = "overfeat regression",
    out: Callable[[str], None] = print,
) -> GateOutcome:
    """Run the gate (module docstring); ``reports=None`` writes no table. With ``measure``
    (two or more perturbations, the first one's run the baseline), each is its own process
    (:func:`overfeat.gate.perturb.measure_perturbations`)."""
    from overfeat.gate.report import render_baselines_readme, write_report

    if measure and not update:
        raise ValueError(
            "--measure records tolerances and judges nothing: add --update-baselines "
            "(overfeat regression --update-baselines --measure)"
        )
    if config.subset is not None and not Path(config.subset).is_dir():
        raise ValueError(f"--subset {config.subset}: no such folder; pass an ImageNet root folder")
    baselines = Path(baselines)
    if config.pinned is None:
        config = replace(config, pinned=baselines / "pinned")
    if config.pin and not update:
        raise ValueError(
            "--pin replaces the networks the baselines were measured on: add --update-baselines "
            "(overfeat regression --pin --update-baselines --measure)"
        )
    start = time.perf_counter()
    if measure:
        if config.pin:
            # Pinned first, in this process, so that every child measures the same files. With
            # the first perturbation's kernels and threads this process trains exactly what that
            # child would, so it trains into the child's cache and the child reuses it.
            first = measure[0]
            same = first.kernels == "default" and not any(k in os.environ for k in KERNEL_ENV)
            cache = config.cache / (f"perturb-{first.name}" if same else "pin")
            out(f"--- pinning the suites' networks (cache {cache})")
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(first.threads)
            try:
                measure_suites(replace(config, cache=cache), out)
            finally:
                torch.set_num_threads(before)
            config = replace(config, pin=False)
        runs = measure_perturbations(config, measure, out)
        results = runs[measure[0].name].results
    else:
        runs = None
        results = measure_suites(config, out)
    outcome = GateOutcome(0, results=results)
    outcome.skipped = {s: r.skipped for s, r in results.items() if r.skipped is not None}
    if update:
        outcome.rows = _update(results, runs, baselines, command, out)
        render_baselines_readme(baselines)
    else:
        for suite, result in results.items():
            try:
                outcome.rows += compare(result, baselines)
            except BaselineError as exc:
                outcome.problems.append(f"{suite}: {exc}")
    outcome.failures = [f"{r.suite}: {r.metric} ({r.status})" for r in outcome.rows if r.failed]
    outcome.exit_code = 1 if outcome.failures else 2 if outcome.problems else 0
    seconds = time.perf_counter() - start
    if reports is not None:
        outcome.csv_path = write_report(outcome, Path(reports), command, seconds)
        out(outcome.csv_path.with_suffix(".md").read_text(encoding="utf-8"))
    for suite, why in outcome.skipped.items():
        out(f"skipped {suite}: {why}")
    for problem in outcome.problems:
        out(f"cannot judge {problem}")
    if outcome.failures:
        out(f"regression gate FAILED: {len(outcome.failures)} metric(s):")
        for f in outcome.failures:
            out(f"  {f}")
    elif not outcome.problems:
        out(f"regression gate {'updated' if update else 'passed'} in {seconds:.0f} s")
    return outcome
