"""The diff against the paper: absolute numbers, and the paper's directions.

Absolute numbers compare only where the reproduction ran what the paper ran: full-size networks
on the 50,000 ILSVRC2012 validation images. Anywhere else (a subset, another data set, toy
networks) a row says why it is not comparable, and what can still be compared is the *direction*
of each of the paper's comparisons: does fine stride lower the error, do more scales, does an
ensemble? Each direction is a pair of Table 2 rows, ``candidate`` vs ``baseline``, and its delta
is ``error(candidate) − error(baseline)`` in percentage points (negative: the candidate is better).
"""

from __future__ import annotations

import math

import pandas as pd

__all__ = [
    "FULL_VALIDATION_IMAGES",
    "DETECTION_DIRECTIONS",
    "FIGURE9_BASELINE_DIRECTIONS",
    "FIGURE9_DIRECTIONS",
    "TABLE2_DIRECTIONS",
    "comparability",
    "directions",
    "sign_agreement",
]

# ILSVRC2012 validation: 50,000 images of 1,000 classes (FACTS §4, Table 2 caption).
FULL_VALIDATION_IMAGES = 50_000
FULL_VALIDATION_CLASSES = 1000

# The comparisons Table 2 makes, as (name, candidate row, baseline row).
TABLE2_DIRECTIONS: tuple[tuple[str, str, str], ...] = (
    ("fine vs coarse stride (fast, 1 scale)", "T2-3", "T2-2"),
    ("4 scales vs 1 scale (fast, fine)", "T2-4", "T2-3"),
    ("6 scales vs 4 scales (fast, fine)", "T2-5", "T2-4"),
    ("multi-scale dense vs 10-view (accurate)", "T2-7", "T2-6"),
    ("ensemble vs single network (fast)", "T2-8", "T2-4"),
    ("ensemble vs single network (accurate)", "T2-9", "T2-7"),
    ("accurate vs fast (4 scales, fine)", "T2-7", "T2-4"),
)
METRICS = ("top1", "top5")

# The comparisons Figure 9 and §4.4 make (top-5 localization error): more scales help, dense
# sliding windows beat one centred crop, and PCR loses to SCR ("44.1% vs. 31.3%").
FIGURE9_DIRECTIONS: tuple[tuple[str, str, str], ...] = (
    ("2 scales vs 1 scale (SCR)", "F9-3", "F9-4"),
    ("4 scales vs 2 scales (SCR)", "F9-1", "F9-3"),
    ("4 scales vs 1 scale (SCR)", "F9-1", "F9-4"),
    ("1 scale, dense vs centred crop (SCR)", "F9-4", "F9-5"),
    ("PCR vs SCR (3 scales)", "F9-6", "F9-2"),
)
FIGURE9_METRICS = ("top5_loc",)

# What the paper claims without a number for it, as (name, candidate, baseline, sign of
# candidate − baseline the claim predicts). §4's regressor is there to beat the boxes a
# classifier has without one (each window's own, the whole image): lower top-5 localization
# error at every number of scales; and a detector must clear random boxes, with the regressor's
# boxes above its windows' (§5: higher mAP).
FIGURE9_BASELINE_DIRECTIONS: tuple[tuple[str, str, str, int], ...] = tuple(
    (f"SCR vs {what} ({n} scale{'s' if n > 1 else ''})", f"F9-{5 - n}", f"{source}-{n}", -1)
    for n in (1, 2, 3, 4)
    for source, what in (("WINDOW", "window boxes"), ("IMAGE", "whole image"))
)
DETECTION_DIRECTIONS: tuple[tuple[str, str, str, int], ...] = (
    ("regressor vs window boxes", "DET-REG", "DET-WIN", 1),
    ("window boxes vs random boxes", "DET-WIN", "DET-RANDOM", 1),
    ("regressor vs random boxes", "DET-REG", "DET-RANDOM", 1),
)


def comparability(data: str, images: int, classes: int, full_size_networks: bool) -> str:
    """``"yes"`` where the absolute numbers compare with the paper's, else ``"not comparable:
    <why>"`` (the data set, the image count or the networks)."""
    if classes != FULL_VALIDATION_CLASSES:
        return f"not comparable: {data} ({classes} classes, not ILSVRC2012's 1000)"
    if images != FULL_VALIDATION_IMAGES:
        return f"not comparable: {data} ({images:,} of ILSVRC2012's 50,000 validation images)"
    if not full_size_networks:
        return "not comparable: toy-width networks"
    return "yes"


def sign_agreement(paper_delta: float, reproduced_delta: float) -> str:
    """``"yes"`` when both deltas have the same sign, ``"no"`` when not (a reproduced delta of
    exactly 0 agrees with nothing), ``"n/a"`` when either is missing."""
    if any(v is None or math.isnan(v) for v in (paper_delta, reproduced_delta)):
        return "n/a"
    if reproduced_delta == 0 or paper_delta == 0:
        return "yes" if reproduced_delta == paper_delta else "no"
    return "yes" if (paper_delta < 0) == (reproduced_delta < 0) else "no"


def directions(
    table: pd.DataFrame,
    comparisons: tuple[tuple[str, str, str], ...] = TABLE2_DIRECTIONS,
    metrics: tuple[str, ...] = METRICS,
) -> pd.DataFrame:
    """The paper's directions in a result (Table 2's by default; Figure 9's with
    ``FIGURE9_DIRECTIONS, FIGURE9_METRICS``).

    ``table``: one row per paper row, with columns ``row`` and, per metric ``m``,
    ``paper_{m}_error`` and ``{m}_error`` (percent; NaN where a row did not run).
    Returns one row per (comparison, metric): ``comparison``, ``metric``, ``candidate``,
    ``baseline``, ``paper_delta``, ``reproduced_delta``, ``agrees``.
    """
    by_row = table.set_index("row")
    out = []
    for name, cand, base in comparisons:
        for m in metrics:
            paper = repro = math.nan
            if cand in by_row.index and base in by_row.index:
                paper = by_row.at[cand, f"paper_{m}_error"] - by_row.at[base, f"paper_{m}_error"]
                repro = by_row.at[cand, f"{m}_error"] - by_row.at[base, f"{m}_error"]
            out.append(
                {
                    "comparison": name,
                    "metric": f"{m}_error",
                    "candidate": cand,
                    "baseline": base,
                    "paper_delta": round(float(paper), 4),
                    "reproduced_delta": round(float(repro), 4),
                    "agrees": sign_agreement(float(paper), float(repro)),
                }
            )
    return pd.DataFrame(out)
