"""Each row's interval and each of the paper's directions judged, from a run's per-image outcomes.

The statistics are :mod:`evaluation.verdicts` (decision VERDICT_STATISTICS); the outcomes are
:mod:`evaluation.outcomes`. This module puts the two together for a report:

- :func:`with_intervals`: a report's table with new columns, each row's error (or mAP) with its
  95% interval over images (Clopper–Pearson for error rates; mAP by a paired-free bootstrap over
  images, 10,000 resamples, seed 0) and, for Table 2, the training-seed spread of the
  single-network rows (decision SEED_SPREAD_FROM_ENSEMBLE_MEMBERS);
- :func:`judged_directions`: every direction (Table 2's, Figure 9's, detection's) with the
  paired difference on the same images, its paired-bootstrap interval, the exact McNemar
  p-value (error rates), the verdict and the images needed to resolve the paper's own effect.

Percentages throughout, as in the reports' CSVs: an interval ``(low, high)`` of an error of
``38.6`` is in percent, a direction's difference and interval in percentage points.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd

from evaluation.detection import average_precision
from evaluation.diff import (
    DETECTION_DIRECTIONS,
    FIGURE9_BASELINE_DIRECTIONS,
    FIGURE9_DIRECTIONS,
    TABLE2_DIRECTIONS,
)
from evaluation.verdicts import (
    VERDICT_STATISTICS,
    count_verdicts,
    error_interval,
    judge_direction,
    paired_bootstrap_distribution,
    seed_spread,
    verdict,
)

__all__ = [
    "DIRECTION_COLUMNS",
    "INTERVAL_COLUMNS",
    "MetricByImage",
    "judged_directions",
    "map_by_image",
    "verdict_summary",
    "with_intervals",
]

# The error metrics of each artifact: report column prefix → outcomes column suffix.
ERROR_METRICS = {
    "table2": {"top1": "top1_wrong", "top5": "top5_wrong"},
    "figure9": {"top5_loc": "top5_loc_wrong", "top1_loc": "top1_loc_wrong"},
}
_SEED = tuple(f"{m}_seed_{s}" for m in ("top1", "top5") for s in ("mean", "std", "min", "max"))
INTERVAL_COLUMNS = {
    "table2": ("top1_error_low", "top1_error_high", "top5_error_low", "top5_error_high",
               "seed_members", *_SEED),
    "figure9": ("top5_loc_error_low", "top5_loc_error_high", "top1_loc_error_low",
                "top1_loc_error_high"),
    "detection": ("mAP_low", "mAP_high"),
}  # fmt: skip
DIRECTION_COLUMNS = (
    "comparison", "metric", "candidate", "baseline", "images", "paper_delta", "difference",
    "low", "high", "p_value", "verdict", "images_to_resolve",
)  # fmt: skip


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def _flags(outcomes: pd.DataFrame, column: str) -> np.ndarray | None:
    if outcomes is None or column not in outcomes.columns:
        return None
    values = outcomes[column]
    return None if values.isna().any() else values.to_numpy().astype(bool)


# ----------------------------------------------------------------------------- mAP by image


class MetricByImage:
    """A row's mAP recomputed from the images at any index array, repeats included:
    ``statistic(indices: (n,) int) -> float``.

    ``positives: (I, C)`` objects per image and class; the row's detections ``image: (D,)``,
    ``label: (D,)``, ``score: (D,)``, ``matched: (D,)``. A resample is scored as the devkit
    scores the list of the images drawn in their original order, an image drawn k times standing
    there k times in a row, each copy with its detections matched as before (matching never
    crosses images): ties in score fall to the image, then the copy, then the file order."""

    def __init__(self, positives: np.ndarray, image: np.ndarray, label: np.ndarray, score,
                 matched):  # fmt: skip
        self.positives = positives
        self.image, self.label = image, label
        self.score = np.asarray(score, dtype=np.float64)
        self.matched = np.asarray(matched, dtype=bool)
        self.n = positives.shape[0]
        # The devkit's order of one copy of every image: class, score (highest first), image,
        # file order. A resample keeps that order and repeats each detection as often as its
        # image is drawn, its copies side by side, unless two detections of one image and class
        # tie in score: then the copies interleave (image, copy, file order) and only the
        # literal expansion below scores them right.
        order = np.lexsort((np.arange(len(image)), image, -self.score, label))
        lab, img, sc = label[order], image[order], self.score[order]
        tied = (lab[1:] == lab[:-1]) & (img[1:] == img[:-1]) & (sc[1:] == sc[:-1])
        self._fast = not tied.any()
        # The weighted path reads the detections in that order on every resample.
        self._sorted = lab, img, self.matched[order]

    def __call__(self, indices) -> float:
        weight = np.bincount(np.asarray(indices), minlength=self.n)
        npos = weight @ self.positives
        ap = self._weighted(weight, npos) if self._fast else self._expanded(weight, npos)
        valid = ~np.isnan(ap)
        return float(ap[valid].mean()) if valid.any() else math.nan

    def _expanded(self, weight: np.ndarray, npos: np.ndarray) -> np.ndarray:
        """The literal resample: every copy of every drawn image's detections, scored as the
        devkit scores a list (:func:`evaluation.detection.average_precision`)."""
        repeat = weight[self.image]
        keep = np.repeat(np.arange(len(self.image)), repeat)
        copy = np.arange(len(keep)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
        tie = np.empty(len(keep), dtype=np.int64)
        tie[np.lexsort((keep, copy, self.image[keep]))] = np.arange(len(keep))
        return average_precision(self.label[keep], self.score[keep], self.matched[keep], tie, npos)

    def _weighted(self, weight: np.ndarray, npos: np.ndarray) -> np.ndarray:
        """The same AP without expanding: in one class's list a detection's ``w`` copies stand
        side by side; along a run of true positives precision does not fall, along a run of
        false positives it stays below the precision before the run, so the envelope (the best
        precision at that rank or later) is the same at every copy of a run and equals the
        best over the runs' last copies. VOCap's (1/npos) Σ over true positives of the envelope
        is then Σ w × envelope over the matched detections."""
        lab, img, hit = self._sorted
        w = weight[img]
        drawn = w > 0
        lab, hit, w = lab[drawn], hit[drawn], w[drawn].astype(np.float64)
        c = len(npos)
        starts = np.searchsorted(lab, np.arange(c + 1))
        tp_w = np.where(hit, w, 0.0)
        sums = np.zeros(c)
        for k in np.flatnonzero(starts[1:] > starts[:-1]):
            lo, hi = starts[k], starts[k + 1]
            precision = np.cumsum(tp_w[lo:hi]) / np.cumsum(w[lo:hi])
            envelope = np.maximum.accumulate(precision[::-1])[::-1]
            sums[k] = tp_w[lo:hi] @ envelope
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(npos > 0, sums / np.maximum(npos, 1), np.nan)


def map_by_image(outcomes: pd.DataFrame, row: str) -> MetricByImage | None:
    """``row``'s :class:`MetricByImage` from a detection outcomes table (None: not there)."""
    if outcomes is None or "kind" not in outcomes.columns:
        return None
    scored = (outcomes["kind"] == "row") & (outcomes["row"] == row)
    if not scored.any():
        return None
    dets = outcomes[(outcomes["kind"] == "detection") & (outcomes["row"] == row)]
    names = outcomes.loc[outcomes["kind"] == "image", "image"].tolist()
    where = {name: i for i, name in enumerate(names)}
    pos = outcomes[outcomes["kind"] == "positives"]
    classes = int(max(pd.to_numeric(pos["class"]).max() if len(pos) else -1,
                      pd.to_numeric(dets["class"]).max() if len(dets) else -1)) + 1  # fmt: skip
    positives = np.zeros((len(names), max(classes, 1)), dtype=np.int64)
    np.add.at(positives, ([where[i] for i in pos["image"]], pd.to_numeric(pos["class"]).astype(int)),
              pd.to_numeric(pos["positives"]).astype(int))  # fmt: skip
    return MetricByImage(
        positives,
        np.array([where[i] for i in dets["image"]], dtype=np.int64),
        pd.to_numeric(dets["class"]).to_numpy().astype(np.int64),
        pd.to_numeric(dets["score"]).to_numpy(),
        pd.to_numeric(dets["matched"]).to_numpy(),
    )


def _map_interval(stat: MetricByImage) -> tuple[float, float]:
    s = VERDICT_STATISTICS
    _, resampled = paired_bootstrap_distribution(
        lambda idx: 0.0, stat, n=stat.n, resamples=s.resamples, seed=s.seed
    )
    low, high = np.nanquantile(resampled, [(1 - s.level) / 2, (1 + s.level) / 2])
    return float(low), float(high)


# ----------------------------------------------------------------------------- rows


def with_intervals(
    artifact: str, table: pd.DataFrame, outcomes: pd.DataFrame | None
) -> pd.DataFrame:
    """``table`` with :data:`INTERVAL_COLUMNS` added (after its own columns, which are left as
    they are), filled from ``outcomes``; empty where a row has no outcomes (or none exist)."""
    table = table.copy()
    for column in INTERVAL_COLUMNS.get(artifact, ()):
        table[column] = np.nan
    if outcomes is None or artifact not in INTERVAL_COLUMNS:
        return table
    for i, row in enumerate(table["row"]):
        if artifact == "detection":
            stat = map_by_image(outcomes, row)
            if stat is not None and not pd.isna(table.iloc[i]["mAP"]):
                low, high = _map_interval(stat)
                table.loc[table.index[i], ["mAP_low", "mAP_high"]] = [_pct(low), _pct(high)]
            continue
        for metric, suffix in ERROR_METRICS[artifact].items():
            wrong = _flags(outcomes, f"{row}:{suffix}")
            if wrong is None:
                continue
            low, high = error_interval(int(wrong.sum()), len(wrong))
            table.loc[table.index[i], [f"{metric}_error_low", f"{metric}_error_high"]] = [
                _pct(low), _pct(high)]  # fmt: skip
        if artifact == "table2":
            _seed_columns(table, i, row, outcomes)
    return table


def _seed_columns(table: pd.DataFrame, i: int, row: str, outcomes: pd.DataFrame) -> None:
    """Decision SEED_SPREAD_FROM_ENSEMBLE_MEMBERS: a single-network row's spread over training
    seeds is read from the ``<row>@m<k>`` columns (each ensemble member under the row's own
    protocol); with one member or none, ``seed_members`` says how many were scored."""
    members = sorted({c.split(":")[0] for c in outcomes.columns if c.startswith(f"{row}@m")})
    if not members:
        return
    table.loc[table.index[i], "seed_members"] = len(members)
    for metric in ("top1", "top5"):
        rates = [outcomes[f"{m}:{metric}_wrong"].to_numpy().astype(bool).mean() for m in members]
        spread = seed_spread(rates)
        for name, value in zip(("mean", "std", "min", "max"), spread):
            table.loc[table.index[i], f"{metric}_seed_{name}"] = (
                math.nan if math.isnan(value) else _pct(value))  # fmt: skip


# ----------------------------------------------------------------------------- directions


def _specs(artifact: str, table: pd.DataFrame):
    """``(name, metric, candidate, baseline, paper delta in points or NaN, paper sign)``."""
    by_row = table.set_index("row")

    def paper(row, metric):
        col = f"paper_{metric}_error"
        if row not in by_row.index or col not in by_row.columns:
            return math.nan
        return float(by_row.at[row, col])

    if artifact == "table2":
        for name, cand, base in TABLE2_DIRECTIONS:
            for metric in ("top1", "top5"):
                delta = paper(cand, metric) - paper(base, metric)
                yield name, metric, cand, base, delta, np.sign(delta)
    elif artifact == "figure9":
        for name, cand, base in FIGURE9_DIRECTIONS:
            delta = paper(cand, "top5_loc") - paper(base, "top5_loc")
            yield name, "top5_loc", cand, base, delta, np.sign(delta)
        for name, cand, base, sign in FIGURE9_BASELINE_DIRECTIONS:
            yield name, "top5_loc", cand, base, math.nan, sign
    elif artifact == "detection":
        for name, cand, base, sign in DETECTION_DIRECTIONS:
            yield name, "mAP", cand, base, math.nan, sign


def _map_difference(a: MetricByImage, b: MetricByImage) -> tuple[float, float, float] | None:
    """``(mAP(b) − mAP(a), low, high)`` with the paired bootstrap interval, None where the
    image list holds no object (no mAP to compare). A resample that draws only images without
    objects has no mAP for either row (the rows share their positives), so it is left out of
    the quantiles, as :func:`_map_interval` leaves it out of a row's interval; a few such draws
    are common on a short image list with empty images."""
    s = VERDICT_STATISTICS
    observed, diffs = paired_bootstrap_distribution(a, b, n=a.n, resamples=s.resamples,
                                                    seed=s.seed)  # fmt: skip
    diffs = diffs[~np.isnan(diffs)]
    if math.isnan(observed) or diffs.size == 0:
        return None
    low, high = np.quantile(diffs, [(1 - s.level) / 2, (1 + s.level) / 2])
    return observed, float(low), float(high)


def judged_directions(
    artifact: str, table: pd.DataFrame, outcomes: pd.DataFrame | None
) -> pd.DataFrame:
    """The artifact's directions (:data:`DIRECTION_COLUMNS`), one line each; ``verdict`` is
    ``"n/a"`` where either row has no outcomes (or, for mAP, where the images hold no object).
    Differences ``candidate − baseline`` in percentage points (error: negative, the candidate
    is better; mAP: positive); the paper's delta is NaN where the paper states the direction but
    no number (then no images-to-resolve, which needs the paper's effect size)."""
    lines = []
    for name, metric, cand, base, paper_delta, sign in _specs(artifact, table):
        line = dict.fromkeys(DIRECTION_COLUMNS, math.nan) | {
            "comparison": name, "metric": metric, "candidate": cand, "baseline": base,
            "paper_delta": round(paper_delta, 4), "verdict": "n/a"}  # fmt: skip
        if artifact == "detection":
            a, b = map_by_image(outcomes, base), map_by_image(outcomes, cand)
            judged = None if a is None or b is None else _map_difference(a, b)
            if judged is not None:
                diff, low, high = judged
                line |= {"images": a.n, "difference": _pct(diff), "low": _pct(low),
                         "high": _pct(high), "verdict": verdict(low, high, sign)}  # fmt: skip
            lines.append(line)
            continue
        suffix = ERROR_METRICS[artifact][metric]
        a, b = _flags(outcomes, f"{base}:{suffix}"), _flags(outcomes, f"{cand}:{suffix}")
        if a is None or b is None or sign == 0 or (isinstance(sign, float) and math.isnan(sign)):
            lines.append(line)
            continue
        known = not math.isnan(paper_delta)
        d = judge_direction(a, b, paper_delta / 100 if known else float(sign), name=name)
        if not known:
            d = replace(d, paper_delta=math.nan, images_to_resolve=math.nan)
        line |= {"images": d.n, "difference": _pct(d.difference), "low": _pct(d.low),
                 "high": _pct(d.high), "p_value": d.p_value, "verdict": d.verdict,
                 "images_to_resolve": d.images_to_resolve}  # fmt: skip
        lines.append(line)
    return pd.DataFrame(lines, columns=list(DIRECTION_COLUMNS))


def verdict_summary(judged: pd.DataFrame) -> str:
    """``"k agree, m contradict, r unresolved"`` over the directions that could be judged."""
    return count_verdicts(v for v in judged["verdict"] if v != "n/a")
