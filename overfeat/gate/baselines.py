"""Baselines of the regression gate: one JSON file per suite, each metric with its baseline value,
its tolerance, the direction that counts as better, and the measurement the tolerance came from.

The check is detectron2's quick-schedule rule, ``|now − baseline| ≤ tolerance``, on a fixed seed:

- inside the tolerance: ``ok``;
- outside it on the worse side (or on either side of an ``exact`` metric): ``REGRESSED``;
- outside it on the better side: ``CHANGED``. A fixed-seed pipeline does not get better by
  itself: the code under it changed, and a new baseline is recorded on purpose
  (``--update-baselines``), never silently;
- a metric without a baseline (``NEW``) or a baseline nobody measured (``MISSING``) fails too.

A tolerance is measured, never guessed (decision TOLERANCE_FROM_PERTURBATIONS in
:mod:`overfeat.gate.perturb`). Each suite runs once per perturbation (``--measure``: a CPU
kernel set and a thread count, each in its own process with its own training; float reductions,
and through them the training trajectory, change with both as they do between machines), and the
tolerance is ``max(MARGIN × spread, floor)``, rounded up to two significant digits. Metrics of one
``group`` come from one source of noise (the top-1 errors of one trained network on one image
set): their spread is the group's largest, since two trainings that happen to agree on one row
(train-real's T2-3 top-1 error came out equal at 1 and 2 threads while T2-4's differed by 70
images) say nothing about the next machine. ``floor`` is the metric's resolution: 0 for the
harness on fixed files, one image (1/N) for an error over N images, and ``FLOAT_FLOOR`` for a loss
or a mean score (float32 means over thousands of terms, whose last digits move with the order
another CPU's kernels sum them in).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

__all__ = [
    "DIRECTIONS",
    "FAILING",
    "FLOAT_FLOOR",
    "MARGIN",
    "MAX_TOLERANCE_SHARE",
    "BaselineError",
    "Measured",
    "Row",
    "SuiteResult",
    "compare",
    "judge",
    "load_baseline",
    "measured_tolerance",
    "ungated_reason",
    "new_baseline",
    "write_baseline",
]

DIRECTIONS = ("lower_is_better", "higher_is_better", "exact")
MARGIN = 3
# Decision GATE_TOLERANCE_SHARE: a metric is gated only when its measured tolerance is at most a
# quarter of its distance from chance; a wider one is recorded under "dropped" with the reason,
# shown in the baselines' README, and not judged (it could not fail for a real fault).
MAX_TOLERANCE_SHARE = 0.25
FLOAT_FLOOR = 1e-5
FAILING = frozenset({"REGRESSED", "CHANGED", "NEW", "MISSING"})


class BaselineError(ValueError):
    """Baselines that cannot be compared with this run (absent, unreadable, other data or
    settings); the message names the file and the command that records new ones."""


@dataclass(frozen=True)
class Measured:
    """One number a suite measured. ``floor``: the smallest tolerance it may get (its
    resolution); ``how``: one line saying how it is computed (for the README)."""

    value: float
    direction: str
    floor: float
    how: str = ""
    group: str = ""  # metrics sharing one source of noise (module docstring); "" for none
    # What the metric would read for a network that knows nothing (an error's 1 − k/C, a loss's
    # ln C, a score's 1/C, an mAP's 0): a tolerance must stay well inside the distance from it.
    chance: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


@dataclass
class SuiteResult:
    """What one suite measured: ``metrics`` by name; ``data``: what it ran on (names and counts,
    never absolute paths, so a clone elsewhere compares); ``settings``: what determines its
    numbers; ``skipped``: why it did not run (then ``metrics`` is empty)."""

    suite: str
    metrics: dict[str, Measured] = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    skipped: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        """Plain values, as :meth:`from_json` reads them back (a measuring process's output)."""
        return {
            "suite": self.suite,
            "metrics": {name: asdict(m) for name, m in self.metrics.items()},
            "data": self.data,
            "settings": self.settings,
            "skipped": self.skipped,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, data: dict) -> SuiteResult:
        return cls(
            data["suite"],
            metrics={name: Measured(**m) for name, m in data["metrics"].items()},
            data=data["data"], settings=data["settings"], skipped=data["skipped"],
            seconds=data["seconds"],
        )  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of the gate's table."""

    suite: str
    metric: str
    direction: str
    baseline: float | None
    now: float | None
    tolerance: float | None
    status: str

    @property
    def failed(self) -> bool:
        return self.status in FAILING


def judge(now: float, baseline: float, tolerance: float, direction: str) -> str:
    """``ok``, ``REGRESSED`` or ``CHANGED`` (module docstring)."""
    if math.isnan(now) or math.isnan(baseline):
        return "ok" if math.isnan(now) and math.isnan(baseline) else "REGRESSED"
    diff = now - baseline
    if abs(diff) <= tolerance:
        return "ok"
    if direction == "exact":
        return "REGRESSED"
    worse = diff > 0 if direction == "lower_is_better" else diff < 0
    return "REGRESSED" if worse else "CHANGED"


def _round_up(x: float, digits: int = 2) -> float:
    """``x`` rounded up to ``digits`` significant digits (a tolerance never shrinks by rounding)."""
    if x <= 0:
        return 0.0
    scale = 10 ** (math.floor(math.log10(x)) - digits + 1)
    return float(f"{math.ceil(x / scale - 1e-9) * scale:.{digits}g}")


def measured_tolerance(spread: float, floor: float, direction: str) -> float:
    """The tolerance for a measured ``spread`` (module docstring). An ``exact`` metric must not
    vary: it gets 0."""
    if direction == "exact":
        if spread:
            raise ValueError(f"an exact metric varied across perturbations by {spread}")
        return 0.0
    return max(_round_up(MARGIN * spread), floor)


def _path(folder: Path, suite: str) -> Path:
    return Path(folder) / f"{suite}.json"


def load_baseline(folder: Path, suite: str) -> dict | None:
    """The baseline file of ``suite`` in ``folder``, or ``None`` when there is none."""
    path = _path(folder, suite)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{path}: not JSON ({exc}); restore it from git or record it again with "
            "'overfeat regression --update-baselines --measure'"
        ) from None
    for name, m in data.get("metrics", {}).items():
        missing = [k for k in ("baseline", "tolerance", "direction") if k not in m]
        if missing or m["direction"] not in DIRECTIONS:
            raise BaselineError(
                f"{path}: metric {name!r} needs baseline, tolerance and a direction in "
                f"{DIRECTIONS}; record it again with --update-baselines"
            )
    return data


def _mismatch(result: SuiteResult, base: dict, folder: Path) -> str | None:
    """Why ``base`` cannot judge ``result`` (other data or settings), or ``None``."""
    fix = (
        f"record baselines for it on purpose with 'overfeat regression --suite {result.suite} "
        f"--update-baselines' (add --baselines DIR to keep them apart from {folder})"
    )
    if base.get("data") != result.data:
        return (f"{_path(folder, result.suite)} was recorded on {base.get('data')}, this run "
                f"read {result.data}; {fix}")  # fmt: skip
    if base.get("settings") != result.settings:
        changed = sorted(
            k for k in set(base.get("settings", {})) | set(result.settings)
            if base.get("settings", {}).get(k) != result.settings.get(k)
        )  # fmt: skip
        return (f"{_path(folder, result.suite)} was recorded with other suite settings "
                f"({', '.join(changed)}); {fix}")  # fmt: skip
    return None


def compare(result: SuiteResult, folder: Path) -> list[Row]:
    """The table rows of one suite against its baseline file in ``folder``.

    Raises :class:`BaselineError` when the suite ran but its baselines cannot judge it.
    """
    if result.skipped is not None:
        base = load_baseline(folder, result.suite) or {"metrics": {}}
        return [
            Row(result.suite, name, m["direction"], m["baseline"], None, m["tolerance"], "skipped")
            for name, m in base["metrics"].items()
        ]
    base = load_baseline(folder, result.suite)
    if base is None:
        raise BaselineError(
            f"{_path(folder, result.suite)}: no baselines for suite {result.suite}; record them "
            f"with 'overfeat regression --suite {result.suite} --update-baselines --measure'"
        )
    why = _mismatch(result, base, folder)
    if why:
        raise BaselineError(why)
    rows = []
    for name, m in result.metrics.items():
        if name in base.get("dropped", {}):
            continue  # recorded as not gated, with its reason (GATE_TOLERANCE_SHARE)
        b = base["metrics"].get(name)
        if b is None:
            rows.append(Row(result.suite, name, m.direction, None, m.value, None, "NEW"))
            continue
        status = judge(m.value, b["baseline"], b["tolerance"], b["direction"])
        rows.append(
            Row(result.suite, name, b["direction"], b["baseline"], m.value, b["tolerance"], status)
        )
    for name, b in base["metrics"].items():
        if name not in result.metrics:
            rows.append(
                Row(result.suite, name, b["direction"], b["baseline"], None, b["tolerance"],
                    "MISSING")
            )  # fmt: skip
    return rows


def ungated_reason(m: Measured, tolerance: float) -> str | None:
    """Why a metric measured with ``tolerance`` is not gated (decision GATE_TOLERANCE_SHARE), or
    ``None``: a tolerance wider than a quarter of the metric's distance from chance (from 0 where
    it claims no chance value) would pass a pipeline that lost much of what it measures."""
    if m.direction == "exact":
        return None
    distance = abs(m.value - (m.chance if m.chance is not None else 0.0))
    if tolerance <= MAX_TOLERANCE_SHARE * distance:
        return None
    return (f"its tolerance {tolerance:.3g}, measured across the perturbations, exceeds "
            f"{MAX_TOLERANCE_SHARE:g} of its distance {distance:.3g} from chance: the training "
            "behind it varies between machines by about as much as a fault would move it")  # fmt: skip


def new_baseline(
    result: SuiteResult,
    old: dict | None,
    by_perturbation: dict[str, SuiteResult] | None,
    command: str,
    perturbations_info: list[dict] | None = None,
) -> dict:
    """The baseline file recording ``result``.

    With ``by_perturbation`` (this suite's result per perturbation name, ``result`` the first),
    every tolerance is measured from their spread, and ``perturbations_info`` (one dict per
    perturbation: name, threads, kernels, env, the capability its process reported, seconds)
    is recorded; without it, each metric keeps the tolerance (and its measurement) of ``old``,
    and the file keeps ``old``'s perturbations. A metric with neither is refused.
    """
    import torch

    old_metrics = (old or {}).get("metrics", {})
    values, spread, group_spread = {}, {}, {}
    for name, m in result.metrics.items() if by_perturbation else ():
        values[name] = {}
        for p, r in by_perturbation.items():
            if name not in r.metrics:
                why = f" (skipped: {r.skipped})" if r.skipped else ""
                raise BaselineError(
                    f"suite {result.suite}: perturbation {p} did not measure {name!r}{why}; "
                    "a tolerance needs every perturbation's value"
                )
            values[name][p] = r.metrics[name].value
        spread[name] = max(values[name].values()) - min(values[name].values())
        group = m.group or name
        group_spread[group] = max(group_spread.get(group, 0.0), spread[name])
    metrics, dropped = {}, {}
    old_dropped = (old or {}).get("dropped", {})
    for name, m in result.metrics.items():
        entry = {"baseline": m.value, "direction": m.direction, "how": m.how, "chance": m.chance}
        if not by_perturbation and name in old_dropped:
            dropped[name] = old_dropped[name]
            continue
        if by_perturbation:
            if m.direction == "exact":
                measured_tolerance(spread[name], m.floor, m.direction)  # refuses a varying one
            used = group_spread[m.group or name]
            entry |= {
                "tolerance": measured_tolerance(used, m.floor, m.direction),
                "measurement": {
                    "values_by_perturbation": values[name],
                    "spread": spread[name],
                    "group": m.group,
                    "group_spread": used,
                    "floor": m.floor,
                    "rule": "0 (exact)" if m.direction == "exact"
                    else f"max({MARGIN} x group spread, floor), rounded up to 2 significant digits",
                    "measured": date.today().isoformat(),
                },
            }  # fmt: skip
        elif name in old_metrics:
            entry |= {"tolerance": old_metrics[name]["tolerance"],
                      "measurement": old_metrics[name].get("measurement", {})}  # fmt: skip
        else:
            raise BaselineError(
                f"suite {result.suite}: metric {name!r} has no measured tolerance yet; measure "
                f"it with 'overfeat regression --suite {result.suite} --update-baselines "
                "--measure'"
            )
        too_wide = ungated_reason(m, entry["tolerance"])
        if too_wide:
            dropped[name] = entry | {"reason": too_wide}
            continue
        metrics[name] = entry
    if by_perturbation:
        perturbations = perturbations_info or [{"name": p} for p in by_perturbation]
    else:
        # The kept tolerances were measured under the old file's perturbations.
        perturbations = (old or {}).get("recorded", {}).get("perturbations")
    return {
        "suite": result.suite,
        "data": result.data,
        "settings": result.settings,
        "recorded": {
            "date": date.today().isoformat(),
            "command": command,
            "torch": torch.__version__,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "perturbations": perturbations,
            "seconds": round(result.seconds, 1),
        },
        "metrics": metrics,
        "dropped": dropped,
    }


def write_baseline(folder: Path, data: dict) -> Path:
    path = _path(folder, data["suite"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
