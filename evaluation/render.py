"""Reports rendered from their data: CSV (the source of truth) and JSON → Markdown and PNG.

A reproduction writes ``reports/<artifact>/<run>.csv`` and ``<run>.json``; everything a reader
sees is rendered from those two files by this module, never typed:

- ``<run>.md``: the table, paper beside reproduced with the delta and each row's 95% interval,
  and the paper's directions, each with its paired interval, p-value, verdict and the images
  needed to resolve it, all recomputed from ``<run>.outcomes.csv.gz``
  (:mod:`evaluation.uncertainty`); a report without that file says that it has none; a
  localization or detection report links ``<run>.gallery.png`` where it is beside it;
- ``<run>.png``: the table as a plot (Table 2: top-1 and top-5 error per row, paper beside
  reproduced);
- ``reports/README.md``: the index of every report;
- the blocks of the project README between ``<!-- reproduce:NAME begin -->`` and
  ``<!-- reproduce:NAME end -->`` markers;
- :func:`run_summary`: the few lines a run prints when it ends (each row's numbers and where
  its report is), for the console and for logs.

A reproduction renders only its own run (:func:`render_run`); :func:`render_all` re-renders all
of it, the index included, from the saved files (``nox -s report``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evaluation.diff import FIGURE9_DIRECTIONS, FIGURE9_METRICS, directions
from evaluation.outcomes import outcomes_path, read_outcomes
from evaluation.uncertainty import (
    INTERVAL_COLUMNS,
    judged_directions,
    verdict_summary,
    with_intervals,
)

__all__ = [
    "ARTIFACTS",
    "detection_markdown",
    "detection_plot",
    "figure9_markdown",
    "figure9_plot",
    "gallery_lines",
    "judged_markdown",
    "ordinal",
    "read_judged",
    "readme_blocks",
    "render_all",
    "render_run",
    "run_summary",
    "table2_markdown",
    "table2_plot",
    "update_readme",
    "write_index",
]

ARTIFACTS = ("table2", "figure9", "detection", "table4", "table5")


# ----------------------------------------------------------------------------- formatting


def _num(value, digits: int = 2, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def ordinal(n: int) -> str:
    """``1`` → ``"1st"``, ``2`` → ``"2nd"``, ``3`` → ``"3rd"``, ``11`` → ``"11th"``, ``22`` →
    ``"22nd"``."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _cell(value) -> str:
    text = "—" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; ``|`` inside cells is escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def read_run(csv_path: str | Path) -> tuple[pd.DataFrame, dict]:
    """A run's table and its JSON (``{}`` when there is none)."""
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    meta_path = csv_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    return table, meta


def read_judged(csv_path: str | Path) -> tuple[pd.DataFrame, dict, pd.DataFrame | None]:
    """A run's table with its interval columns recomputed from ``<run>.outcomes.csv.gz``, its
    JSON, and its directions judged (:func:`evaluation.uncertainty.judged_directions`), None
    where the report has no outcomes file."""
    csv_path = Path(csv_path)
    artifact = csv_path.parent.name
    table, meta = read_run(csv_path)
    outcomes = read_outcomes(outcomes_path(csv_path))
    if artifact not in INTERVAL_COLUMNS:
        return table, meta, None
    table = with_intervals(artifact, table.drop(columns=list(INTERVAL_COLUMNS[artifact]),
                                                errors="ignore"), outcomes)  # fmt: skip
    return table, meta, None if outcomes is None else judged_directions(artifact, table, outcomes)


NO_OUTCOMES = (
    "Intervals and verdicts are not available for this report: it was written before per-image "
    "outcomes were kept (there is no `{name}.outcomes.csv.gz` beside it); rerunning its "
    "reproduction writes them. The directions below compare two point estimates only."
)


def _interval(low, high, digits: int = 1) -> str:
    if low is None or high is None or any(isinstance(v, float) and math.isnan(v) for v in (low, high)):
        return "—"
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def _images(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "∞" if math.isinf(value) else f"{int(value):,}"


def judged_markdown(judged: pd.DataFrame, unit: str = "points") -> str:
    """The directions judged: paper and reproduced Δ, the paired 95% bootstrap interval, the
    exact McNemar p-value, the verdict, and the paired images that would resolve the paper's Δ
    at the discordance observed."""
    rows = [
        [
            r.comparison,
            r.metric.replace("_error", ""),
            f"{r.candidate} − {r.baseline}",
            _num(r.paper_delta, signed=True),
            _num(r.difference, signed=True),
            _interval(r.low, r.high, 2),
            _p(r.p_value),
            r.verdict,
            _images(r.images_to_resolve),
        ]
        for r in judged.itertuples(index=False)
    ]
    header = ["comparison", "metric", "rows", "paper Δ", "reproduced Δ", f"95% interval ({unit})",
              "McNemar p", "verdict", "images to resolve"]  # fmt: skip
    return markdown_table(header, rows)


def _verdict_lines(judged: pd.DataFrame | None, table: pd.DataFrame, name: str, legacy) -> list[str]:
    """The directions section's body: the verdict table and its count, or, for a report without
    outcomes, that it has none and the point-estimate table (``legacy()``)."""
    if judged is None:
        return [NO_OUTCOMES.format(name=name), "", legacy(), ""]
    from evaluation.verdicts import VERDICT_STATISTICS as S

    return [
        f"Verdicts: {verdict_summary(judged)} ({int((judged['verdict'] == 'n/a').sum())} not "
        "run). A verdict reads the paired bootstrap interval of the difference on the same "
        f"images ({S.resamples:,} resamples, seed {S.seed}, {100 * S.level:.0f}%): `agrees` when "
        "it excludes 0 on the paper's side, `contradicts` on the other side, `unresolved` when "
        "it holds 0. \"images to resolve\": paired images a two-sided McNemar test "
        f"(α {S.alpha}, power {S.power}) needs to detect the paper's Δ at the disagreement "
        "observed here (decision VERDICT_STATISTICS).",
        "",
        judged_markdown(judged),
        "",
    ]


# ----------------------------------------------------------------------------- Table 2


def _seed_cell(r: dict) -> str:
    """A single-network row's spread over training seeds (decision
    SEED_SPREAD_FROM_ENSEMBLE_MEMBERS): top-1 / top-5 mean ± std (min–max, k members)."""
    members = r.get("seed_members")
    if members is None or pd.isna(members):
        # Only a row with outcomes can say how many members were scored.
        judged = not pd.isna(r.get("top1_error_low", math.nan))
        return "n/a: one member scored" if judged and r.get("paper_members") == 1 else "—"
    return " / ".join(
        f"{r[f'{m}_seed_mean']:.1f} ± {r[f'{m}_seed_std']:.1f} "
        f"({r[f'{m}_seed_min']:.1f}–{r[f'{m}_seed_max']:.1f})"
        for m in ("top1", "top5")
    ) + f", {int(members)} members"


def _table2_rows_md(table: pd.DataFrame) -> str:
    rows = []
    for r in table.to_dict("records"):
        rows.append(
            [
                r["row"],
                r["approach"],
                r["protocol"],
                r["networks"],
                _num(r["paper_top1_error"]),
                _num(r["top1_error"]),
                _interval(r.get("top1_error_low"), r.get("top1_error_high")),
                _num(r["delta_top1"], signed=True),
                _num(r["paper_top5_error"]),
                _num(r["top5_error"]),
                _interval(r.get("top5_error_low"), r.get("top5_error_high")),
                _num(r["delta_top5"], signed=True),
                _seed_cell(r),
                r["comparable"],
                r["note"],
            ]
        )
    header = [
        "row", "approach (paper)", "protocol run", "networks", "paper top-1", "top-1",
        "top-1 95% interval", "Δ top-1", "paper top-5", "top-5", "top-5 95% interval", "Δ top-5",
        "seed spread top-1 / top-5", "comparable", "note",
    ]  # fmt: skip
    return markdown_table(header, rows)


def _directions_md(table: pd.DataFrame, comparisons=None, metrics=None) -> str:
    d = directions(table) if comparisons is None else directions(table, comparisons, metrics)
    rows = [
        [
            r.comparison,
            r.metric.replace("_error", ""),
            f"{r.candidate} − {r.baseline}",
            _num(r.paper_delta, signed=True),
            _num(r.reproduced_delta, signed=True),
            r.agrees,
        ]
        for r in d.itertuples(index=False)
    ]
    header = ["comparison", "metric", "rows", "paper Δ", "reproduced Δ", "same sign"]
    return markdown_table(header, rows)


def _header_lines(meta: dict) -> list[str]:
    lines = []
    for key, label in (
        ("data_description", "Data"),
        ("networks_description", "Networks"),
        ("command", "Command"),
        ("created", "Written"),
        ("environment", "Machine"),
        ("seconds_total", "Seconds (all rows, this and earlier invocations)"),
    ):
        if key in meta:
            value = meta[key]
            if key == "command":
                value = f"`{value}`"
            elif key == "seconds_total":
                value = f"{value:.0f}"
            lines.append(f"- {label}: {value}")
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return lines


def table2_markdown(
    table: pd.DataFrame, meta: dict, png_name: str | None = None, judged: pd.DataFrame | None = None
) -> str:
    """The whole Table 2 report: what ran, the table with each row's 95% interval over images
    (Clopper–Pearson) and seed spread, the directions judged (``judged``; without it, the
    report says it has no outcomes and compares point estimates)."""
    lines = [f"# Table 2 reproduced: {meta.get('run', 'run')}", ""]
    lines += _header_lines(meta)
    lines += [
        "",
        "Errors in percent. Δ = reproduced − paper; the paper's numbers are from its Table 2 "
        "(arXiv:1312.6229v4 p.7, `evaluation/paper_tables/reported.csv`). 95% interval: exact "
        "Clopper–Pearson over the images scored; seed spread: the single-network row under each "
        "trained member, mean ± std (min–max), where an ensemble's members were scored.",
        "",
        _table2_rows_md(table),
        "",
        "## The paper's directions",
        "",
        "Δ = error(first row) − error(second row), percentage points; negative: the first row "
        "is better.",
        "",
        *_verdict_lines(judged, table, meta.get("run", "run"), lambda: _directions_md(table)),
    ]
    if png_name:
        lines += [f"![Table 2: paper vs reproduced]({png_name})", ""]
    return "\n".join(lines)


def _yerr(table: pd.DataFrame, column: str):
    """Error bars ``(2, rows)`` from ``<column>_low`` / ``_high`` (None where the report has no
    intervals; 0 for a row without one)."""
    import numpy as np

    if f"{column}_low" not in table.columns or table[f"{column}_low"].isna().all():
        return None
    value = table[column].astype(float).to_numpy()
    low = table[f"{column}_low"].astype(float).to_numpy()
    high = table[f"{column}_high"].astype(float).to_numpy()
    return np.nan_to_num(np.stack([value - low, high - value]), nan=0.0).clip(min=0)


def table2_plot(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Top-1 and top-5 error per Table 2 row, paper (grey) beside reproduced (blue, with its
    95% interval over images where the report has one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(table))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
    for ax, metric in zip(axes, ("top1", "top5")):
        paper = table[f"paper_{metric}_error"].astype(float).to_numpy()
        ours = table[f"{metric}_error"].astype(float).to_numpy()
        ax.bar(x - 0.2, paper, 0.4, label="paper", color="#9a9a9a")
        ax.bar(x + 0.2, np.nan_to_num(ours), 0.4, label="reproduced", color="#3b6ea8",
               yerr=_yerr(table, f"{metric}_error"), ecolor="#222222", capsize=2)  # fmt: skip
        for i, v in enumerate(ours):
            if math.isnan(v):
                ax.text(x[i] + 0.2, 0.5, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
        ax.set_xticks(x, table["row"], rotation=0, fontsize=8)
        ax.set_ylabel(f"{'top-1' if metric == 'top1' else 'top-5'} error (%)")
        ax.grid(axis="y", alpha=0.3)
    # One legend for both panels, in its own strip under the title: inside an axes it covers
    # the bars of whichever row sits beneath it.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(title, fontsize=10)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=2,
               fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- Figure 9


def _figure9_rows_md(table: pd.DataFrame) -> str:
    rows = [
        [
            r["row"], r["bar"], r["scales"], r["regressor"] or "—", _num(r["paper_top5_loc_error"]),
            _num(r["top5_loc_error"]),
            _interval(r.get("top5_loc_error_low"), r.get("top5_loc_error_high")),
            _num(r["delta_top5"], signed=True), _num(r["top1_loc_error"]),
            _interval(r.get("top1_loc_error_low"), r.get("top1_loc_error_high")),
            _num(r["top5_cls_error"]), r["comparable"], r["note"],
        ]  # fmt: skip
        for r in table.to_dict("records")
    ]
    header = [
        "row", "bar", "scales", "regressor", "paper top-5 loc", "top-5 loc", "95% interval", "Δ",
        "top-1 loc", "95% interval", "top-5 cls", "comparable", "note",
    ]  # fmt: skip
    return markdown_table(header, rows)


def figure9_controls(table: pd.DataFrame) -> pd.DataFrame:
    """Top-5 localization error by number of scales (rows) and box source (columns: SCR, PCR,
    each window's own box, the whole image): the regressor against the two baselines that use
    none."""
    dense = table[table["view"] == "dense"]
    columns = {"SCR": ("scr", "regressor"), "PCR": ("pcr", "regressor"),
               "window box": ("none", "window"), "whole image": ("none", "image")}  # fmt: skip
    out = {}
    for label, (reg, source) in columns.items():
        part = dense[(dense["regression"].str.lower() == reg) & (dense["box_source"] == source)]
        out[label] = part.set_index("num_scales")["top5_loc_error"]
    frame = pd.DataFrame(out)
    frame.index.name = "scales"
    return frame.sort_index()


def gallery_lines(gallery_name: str | None) -> list[str]:
    """The gallery section of a localization or detection report: the picture
    ``<run>.gallery.png`` (:mod:`overfeat.reproduce.gallery`) and one line on what it shows;
    nothing without one."""
    if not gallery_name:
        return []
    return [
        "## Gallery",
        "",
        "A few validation images (decision GALLERY_RULE), as the paper's Figures 6 and 7 show "
        "them: the ground truth dashed green, the boxes before the merge thin and coloured by "
        "scale, the merged guesses ranked with their scores (the best in red).",
        "",
        f"![Gallery: ground truth, boxes before the merge by scale, merged guesses]({gallery_name})",
        "",
    ]


def figure9_markdown(
    table: pd.DataFrame, meta: dict, png_name: str | None = None, judged: pd.DataFrame | None = None,
    gallery_name: str | None = None,
) -> str:
    """The Figure 9 report: what ran, the bars with their 95% intervals, the directions judged
    (more scales, dense vs centred crop, PCR vs SCR, the regressor vs each baseline), the
    baselines, and with ``gallery_name`` the gallery's picture (:func:`gallery_lines`)."""
    lines = [f"# Figure 9 reproduced: {meta.get('run', 'run')}", ""]
    lines += _header_lines(meta)
    controls = figure9_controls(table)
    lines += [
        "",
        "Top-5 localization error in percent (a guess is right when its class is and its box "
        "overlaps a ground-truth box of that class by IoU ≥ 0.5, the devkit's rule). "
        "Δ = reproduced − paper; the paper's bars are from its Figure 9 (arXiv:1312.6229v4 p.12, "
        "`evaluation/paper_tables/reported.csv`). Rows without a paper number are controls. "
        "95% interval: exact Clopper–Pearson over the boxed images.",
        "",
        _figure9_rows_md(table),
        "",
        "## The paper's directions",
        "",
        "Δ = error(first bar) − error(second bar), percentage points; negative: the first is "
        "better. The regressor against a baseline has no paper Δ: the paper claims the "
        "direction (a regressor's boxes beat the boxes a classifier has without one), not a "
        "size, so no images-to-resolve either.",
        "",
        *_verdict_lines(judged, table, meta.get("run", "run"),
                        lambda: _directions_md(table, FIGURE9_DIRECTIONS, FIGURE9_METRICS)),  # fmt: skip
        "## The regressor against the baselines without one",
        "",
        "Top-5 localization error by number of scales: the merged regressor boxes (SCR, PCR), "
        "each window's own box merged the same way, and the whole image as the box.",
        "",
        markdown_table(
            ["scales", *controls.columns],
            [[i, *(_num(v) for v in row)] for i, row in zip(controls.index, controls.values)],
        ),
        "",
    ]
    if png_name:
        lines += [f"![Figure 9: paper vs reproduced]({png_name})", ""]
    lines += gallery_lines(gallery_name)
    return "\n".join(lines)


def figure9_plot(table: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Figure 9's bars (paper grey, reproduced blue) and, beside them, the error by number of
    scales for the regressors and the two baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    bars = table[table["paper_top5_loc_error"].notna()]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    y = np.arange(len(bars))
    ax.barh(y + 0.2, bars["paper_top5_loc_error"].astype(float), 0.4, label="paper",
            color="#9a9a9a")  # fmt: skip
    ax.barh(y - 0.2, np.nan_to_num(bars["top5_loc_error"].astype(float)), 0.4,
            label="reproduced", color="#3b6ea8", xerr=_yerr(bars, "top5_loc_error"),
            ecolor="#222222", capsize=2)  # fmt: skip
    ax.set_yticks(y, bars["bar"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("top-5 localization error (%)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    controls = figure9_controls(table)
    for column, style in zip(controls.columns, ("o-", "s-", "^--", "v:")):
        ax2.plot(controls.index, controls[column], style, label=column)
    ax2.set_xticks(controls.index)
    ax2.set_xlabel("scales")
    ax2.set_ylabel("top-5 localization error (%)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- detection


def detection_markdown(
    table: pd.DataFrame, meta: dict, png_name: str | None = None, judged: pd.DataFrame | None = None,
    gallery_name: str | None = None,
) -> str:
    """The detection report: what ran, mAP per system (with its 95% bootstrap interval over
    images) beside the paper's, the directions judged, per-class AP, and with ``gallery_name``
    the gallery's picture (:func:`gallery_lines`)."""
    lines = [f"# Detection reproduced: {meta.get('run', 'run')}", ""]
    lines += _header_lines(meta)
    rows = [
        [r["row"], r["system"], r["scales"] or "—", _num(r["mAP"]),
         _interval(r.get("mAP_low"), r.get("mAP_high")), _num(r["paper_mAP"]),
         "—" if pd.isna(r["detections"]) or r["detections"] == "" else int(r["detections"]),
         r["comparable"], r["note"]]  # fmt: skip
        for r in table.to_dict("records")
    ]
    lines += [
        "",
        "Mean average precision in percent over the classes with ground-truth objects (the "
        "devkit's `eval_detection.m`: a detection is right when it overlaps an unmatched "
        "object of its class by IoU ≥ 0.5). The paper's numbers are its Figure 11 "
        "(arXiv:1312.6229v4 p.13, ILSVRC2013 DET test set). 95% interval: percentile "
        "bootstrap over images, mAP recomputed on each resampled image list.",
        "",
        markdown_table(["row", "system", "scales", "mAP", "95% interval", "paper mAP",
                        "detections", "comparable", "note"], rows),  # fmt: skip
        "",
        "## The directions",
        "",
        "Δ = mAP(first row) − mAP(second row), percentage points; positive: the first is "
        "better. The paper states these directions (a detector clears random boxes; the "
        "regressor's boxes beat each window's own) but no size for them.",
        "",
    ]
    if judged is None:
        lines += [NO_OUTCOMES.format(name=meta.get("run", "run")), ""]
    else:
        lines += _verdict_lines(judged, table, meta.get("run", "run"), None)
    classes = meta.get("classes", [])
    names = meta.get("class_names") or [""] * len(classes)
    per_class = {row: rec.get("ap", []) for row, rec in meta.get("rows", {}).items()}
    if classes and per_class:
        header = ["class", *(["name"] if any(names) else []), *per_class]
        body = [[c, *([n or "—"] if any(names) else []),
                 *(_num(100 * ap[i]) if i < len(ap) else "—" for ap in per_class.values())]
                for i, (c, n) in enumerate(zip(classes, names))]  # fmt: skip
        lines += ["## Average precision per class", "", markdown_table(header, body), ""]
    if png_name:
        lines += [f"![Detection: AP per class]({png_name})", ""]
    lines += gallery_lines(gallery_name)
    return "\n".join(lines)


def detection_plot(table: pd.DataFrame, meta: dict, path: str | Path, title: str) -> Path:
    """Per-class AP of each system, classes sorted by the first system's AP (Figure 11's form:
    one bar per entry, here one per class), with each system's mAP in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = meta.get("rows", {})
    classes = meta.get("classes", [])
    names = meta.get("class_names") or [""] * len(classes)
    # The first name of a synset ("goldfish, Carassius auratus" → "goldfish") beside its WNID.
    ticks = [f"{n.split(',')[0]} ({c})" if n else c for c, n in zip(classes, names)]
    # The mAP's 95% interval over images, where the report has one, beside it in the legend.
    map_interval = {}
    if "mAP_low" in table.columns:
        for r in table.to_dict("records"):
            if not pd.isna(r["mAP_low"]):
                map_interval[r["row"]] = f", 95% [{r['mAP_low']:.1f}, {r['mAP_high']:.1f}]"
    fig, ax = plt.subplots(figsize=(9, 3.8))
    if rows and classes:
        first = np.asarray(next(iter(rows.values()))["ap"], dtype=float)
        order = np.argsort(-np.nan_to_num(first, nan=-1.0))
        x = np.arange(len(order))
        width = 0.8 / len(rows)
        for i, (row, rec) in enumerate(rows.items()):
            ap = 100 * np.asarray(rec["ap"], dtype=float)[order]
            ax.bar(x + i * width - 0.4 + width / 2, np.nan_to_num(ap), width,
                   label=f"{row} (mAP {100 * rec['mAP']:.1f}{map_interval.get(row, '')})")  # fmt: skip
        ax.set_xticks(x, [ticks[j] for j in order], rotation=45, fontsize=7, ha="right")
    ax.set_ylabel("AP (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- Tables 4 and 5


def _plain_markdown(table: pd.DataFrame, meta: dict, title: str) -> str:
    lines = [f"# {title}", ""]
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    lines += ["", markdown_table(list(table.columns), table.values.tolist()), ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- console summary


def _summary_rows(artifact: str, table: pd.DataFrame) -> list[str]:
    lines = []
    for r in table.to_dict("records"):
        if artifact == "table2":
            if r["comparable"] == "paper only":
                continue
            numbers = (f"top-1 {_num(r['top1_error'])}%, top-5 {_num(r['top5_error'])}% "
                       f"(paper {_num(r['paper_top1_error'])} / {_num(r['paper_top5_error'])})")  # fmt: skip
            done = not pd.isna(r["top1_error"])
        elif artifact == "figure9":
            paper = "" if pd.isna(r["paper_top5_loc_error"]) else f" (paper {_num(r['paper_top5_loc_error'])})"
            numbers = f"top-5 localization error {_num(r['top5_loc_error'])}%{paper}"
            done = not pd.isna(r["top5_loc_error"])
        elif artifact == "detection":
            if pd.isna(r["mAP"]):
                if not pd.isna(r["paper_mAP"]):
                    continue  # the paper's bars: in the report, not run here
                done, numbers = False, ""
            else:
                done, numbers = True, f"mAP {_num(r['mAP'])}%"
        else:
            return []
        label = r.get("bar") or r.get("system") or ""
        label = f" ({label})" if artifact != "table2" and label else ""
        note = r.get("note") if isinstance(r.get("note"), str) else ""
        lines.append(f"  {r['row']}{label}: " + (numbers if done else note or "not run"))
    return lines


def run_summary(csv_path: str | Path) -> str:
    """What a run prints when it ends: the run, each row's numbers (or why it has none), and
    where its report is; the tables themselves are in the report."""
    csv_path = Path(csv_path)
    artifact = csv_path.parent.name
    table, meta = read_run(csv_path)
    title = {"table2": "Table 2", "figure9": "Figure 9", "detection": "Detection",
             "table4": "Table 4", "table5": "Table 5"}.get(artifact, artifact)  # fmt: skip
    lines = [f"{title}, run {csv_path.stem}: {meta.get('data_description', '')}".rstrip(": ")]
    lines += _summary_rows(artifact, table)
    lines.append(f"report: {csv_path.with_suffix('.md')} (data: {csv_path.name}, "
                 f"{csv_path.with_suffix('.json').name})")  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------- runs and index


def _gallery(csv_path: Path) -> str | None:
    """``<run>.gallery.png``'s name where it is beside the report (drawn by
    :func:`overfeat.reproduce.gallery.render_galleries`, before the report is rendered)."""
    png = csv_path.with_name(f"{csv_path.stem}.gallery.png")
    return png.name if png.is_file() else None


def render_run(csv_path: str | Path) -> Path:
    """Render ``<run>.md`` (and for Table 2 ``<run>.png``) beside ``csv_path``; returns the .md."""
    csv_path = Path(csv_path)
    artifact = csv_path.parent.name
    table, meta, judged = read_judged(csv_path)
    md_path = csv_path.with_suffix(".md")
    if artifact == "table2":
        png = table2_plot(
            table, csv_path.with_suffix(".png"), f"Table 2, paper vs reproduced: {csv_path.stem}"
        )
        md_path.write_text(table2_markdown(table, meta, png.name, judged), encoding="utf-8")
    elif artifact == "figure9":
        png = figure9_plot(
            table, csv_path.with_suffix(".png"), f"Figure 9, paper vs reproduced: {csv_path.stem}"
        )
        md_path.write_text(figure9_markdown(table, meta, png.name, judged, _gallery(csv_path)),
                           encoding="utf-8")  # fmt: skip
    elif artifact == "detection":
        png = detection_plot(
            table, meta, csv_path.with_suffix(".png"), f"Detection, AP per class: {csv_path.stem}"
        )
        md_path.write_text(detection_markdown(table, meta, png.name, judged, _gallery(csv_path)),
                           encoding="utf-8")  # fmt: skip
    else:
        title = {"table4": "Table 4", "table5": "Table 5"}.get(artifact, artifact)
        md_path.write_text(
            _plain_markdown(table, meta, f"{title} reproduced: {csv_path.stem}"), encoding="utf-8"
        )
    return md_path


def run_csvs(reports: str | Path) -> list[Path]:
    """Every run's CSV under ``reports/<artifact>/``, artifacts in :data:`ARTIFACTS` order."""
    reports = Path(reports)
    found = []
    for artifact in ARTIFACTS:
        found += sorted(
            p for p in (reports / artifact).glob("*.csv") if not p.stem.endswith("_directions")
        )
    return found


def _directions_summary(artifact: str, table: pd.DataFrame, judged: pd.DataFrame | None) -> str:
    """``"k agree, m contradict, r unresolved"``; for a report without outcomes, that its
    verdicts are not available and how many point estimates share the paper's sign."""
    if judged is not None:
        return verdict_summary(judged)
    if artifact not in ("table2", "figure9"):
        return "—" if artifact not in INTERVAL_COLUMNS else "verdicts not available (no outcomes file)"
    d = directions(table) if artifact == "table2" else directions(table, FIGURE9_DIRECTIONS,
                                                                  FIGURE9_METRICS)  # fmt: skip
    agree = int((d["agrees"] == "yes").sum())
    known = int((d["agrees"] != "n/a").sum())
    return (f"verdicts not available (no outcomes file); point estimates: {agree} of {known} "
            "in the paper's sign")  # fmt: skip


def _index(reports: Path) -> str:
    lines = [
        "# Reports",
        "",
        "Generated files only: each `.csv` is written by a run (`overfeat reproduce ...`), and "
        "every `.md` and `.png` is rendered from it and its `.json` by `nox -s report`.",
        "",
    ]
    rows = []
    for csv_path in run_csvs(reports):
        table, meta, judged = read_judged(csv_path)
        rel = csv_path.relative_to(reports)
        rows.append(
            [
                csv_path.parent.name,
                f"[{csv_path.stem}]({rel.with_suffix('.md').as_posix()})",
                meta.get("data_description", "—"),
                meta.get("networks_description", "—"),
                _directions_summary(csv_path.parent.name, table, judged),
            ]
        )
    lines.append(markdown_table(["artifact", "run", "data", "networks", "the paper's directions"],
                                rows))  # fmt: skip
    for other in ("training", "regression", "baselines"):
        if (reports / other).is_dir():
            lines.append("")
            lines.append(f"- [{other}/]({other}/)")
    return "\n".join(lines) + "\n"


def readme_blocks(reports: str | Path, names: Sequence[str] | None = None) -> dict[str, str]:
    """The README's generated blocks, by marker name (``table2``, ``figure9``, ``detection``,
    ``regression``), each rendered from ``reports``; ``names``: only these (default: all).

    Decision README_BLOCK_PER_RUN: a single reproduction rewrites its own artifact's block only,
    since a block's verdicts are recomputed from its outcomes (the detection runs' mAP bootstrap
    alone takes most of a minute on 2 cores) and the other blocks' reports have not changed;
    ``reproduce report`` rewrites them all."""
    builders = {"table2": _table2_block, "figure9": _figure9_block,
                "detection": _detection_block, "regression": _regression_block}  # fmt: skip
    blocks = {name: builders[name](reports) for name in (names or builders) if name in builders}
    return {name: block for name, block in blocks.items() if block is not None}


def _table2_block(reports: str | Path) -> str:
    """Table 2 with every committed run's top-1/top-5 beside the paper's, and the directions."""
    runs = [(p.stem, *read_judged(p)) for p in run_csvs(reports) if p.parent.name == "table2"]
    if not runs:
        return "(no Table 2 report yet: run `nox -s reproduce_table2`)"
    judged = {name: j for name, _, _, j in runs}
    runs = [(name, table, meta) for name, table, meta, _ in runs]
    base = runs[0][1]
    header = ["row", "approach (paper)", "paper top-1 / top-5"]
    for name, _, _ in runs:
        header.append(f"{name} top-1 / top-5")
    rows = []
    for i, r in enumerate(base.itertuples(index=False)):
        cells = [r.row, r.approach, f"{_num(r.paper_top1_error)} / {_num(r.paper_top5_error)}"]
        for _, table, _ in runs:
            t = table.iloc[i]
            cells.append(f"{_num(t.top1_error)} / {_num(t.top5_error)}")
        rows.append(cells)
    lines = [markdown_table(header, rows), ""]
    for name, table, meta in runs:
        lines.append(
            f"- **{name}** ([report](reports/table2/{name}.md)): {meta.get('data_description', '')}; "
            f"{meta.get('networks_description', '')}. The paper's directions: "
            f"{_directions_summary('table2', table, judged[name])}."
        )
    # The directions side by side: Δ top-1 / Δ top-5 (percentage points) and whether each run
    # moves the way the paper does.
    dirs = [(name, directions(table)) for name, table, _ in runs]
    paper = dirs[0][1]
    header = ["direction", "paper Δ top-1 / top-5"] + [f"{name} Δ top-1 / top-5" for name, _ in dirs]
    rows = []
    for i in range(0, len(paper), 2):
        top1, top5 = paper.iloc[i], paper.iloc[i + 1]
        cells = [f"{top1.comparison} ({top1.candidate} − {top1.baseline})",
                 f"{_num(top1.paper_delta, signed=True)} / {_num(top5.paper_delta, signed=True)}"]  # fmt: skip
        for name, d in dirs:
            a, b = d.iloc[i], d.iloc[i + 1]
            marks = {"yes": "✓", "no": "✗", "n/a": ""}
            if judged[name] is None:
                cells.append(
                    f"{_num(a.reproduced_delta, signed=True)}{marks[a.agrees]} / "
                    f"{_num(b.reproduced_delta, signed=True)}{marks[b.agrees]}"
                )
            else:
                j = judged[name]
                cells.append(" / ".join(
                    "—" if v.verdict == "n/a" else
                    f"{_num(v.difference, signed=True)} {_interval(v.low, v.high)} {v.verdict}"
                    for v in (j.iloc[i], j.iloc[i + 1])
                ))  # fmt: skip
        rows.append(cells)
    lines += ["", "The paper's directions: for a run with per-image outcomes, the reproduced Δ, "
              "its 95% paired interval and the verdict (agrees / contradicts / unresolved); for "
              "a run without them, verdicts are not available and ✓ / ✗ only say whether the "
              "point estimate has the paper's sign:", ""]  # fmt: skip
    lines.append(markdown_table(header, rows))
    return "\n".join(lines)


def _regression_block(reports: str | Path) -> str | None:
    """The regression gate's last table, as its run rendered it (None before its first run)."""
    gate = Path(reports) / "regression" / "regression.md"
    if not gate.is_file():
        return None
    text = gate.read_text(encoding="utf-8").splitlines()
    return "\n".join([ln for ln in text if ln.startswith("`overfeat regression")]
                     + [""] + [ln for ln in text if ln.startswith("|")])  # fmt: skip


def _figure9_block(reports: str | Path) -> str:
    """Figure 9's bars, paper beside every committed run, and each run's baselines."""
    runs = [(p.stem, *read_judged(p)) for p in run_csvs(reports) if p.parent.name == "figure9"]
    if not runs:
        return "(no Figure 9 report yet: run `nox -s reproduce_figure9`)"
    judged = {name: j for name, _, _, j in runs}
    runs = [(name, table, meta) for name, table, meta, _ in runs]
    base = runs[0][1]
    header = ["row", "bar (paper)", "paper top-5 loc"] + [f"{name} top-5 loc" for name, _, _ in runs]
    rows = []
    for i, r in enumerate(base.itertuples(index=False)):
        rows.append([r.row, r.bar, _num(r.paper_top5_loc_error)]
                    + [_num(t.iloc[i].top5_loc_error) for _, t, _ in runs])  # fmt: skip
    lines = [markdown_table(header, rows), ""]
    for name, table, meta in runs:
        lines.append(
            f"- **{name}** ([report](reports/figure9/{name}.md)): "
            f"{meta.get('data_description', '')}; {meta.get('networks_description', '')}. "
            f"The paper's directions: {_directions_summary('figure9', table, judged[name])}."
        )
    return "\n".join(lines)


def _detection_block(reports: str | Path) -> str:
    """Every committed detection run's mAP per system, with the paper's Figure 11 bars."""
    runs = [(p.stem, *read_judged(p)) for p in run_csvs(reports) if p.parent.name == "detection"]
    if not runs:
        return "(no detection report yet: run `nox -s reproduce_detection`)"
    lines = []
    for name, table, meta, judged in runs:
        rows = [[r["row"], r["system"], _num(r["mAP"]), _interval(r.get("mAP_low"), r.get("mAP_high")),
                 _num(r["paper_mAP"])] for r in table.to_dict("records")]  # fmt: skip
        lines += [
            f"**{name}** ([report](reports/detection/{name}.md)): "
            f"{meta.get('data_description', '')}; {meta.get('networks_description', '')}. "
            f"The directions: {_directions_summary('detection', table, judged)}.",
            "",
            markdown_table(["row", "system", "mAP", "95% interval", "paper mAP"], rows),
            "",
        ]
    return "\n".join(lines).rstrip("\n")


_MARKER = re.compile(
    r"(<!-- reproduce:(?P<name>[\w-]+) begin -->\n)(?P<body>.*?)(<!-- reproduce:(?P=name) end -->)",
    re.S,
)


def update_readme(
    readme: str | Path, reports: str | Path, check: bool = False, names: Sequence[str] | None = None
) -> bool:
    """Rewrite the README's generated blocks from ``reports`` (``names``: only these, decision
    README_BLOCK_PER_RUN); with ``check``, only say whether they are current. Returns True when
    the README already matched."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    blocks = readme_blocks(reports, names)

    def fill(m: re.Match) -> str:
        name = m.group("name")
        body = blocks[name] + "\n" if name in blocks else m.group("body")
        return m.group(1) + body + m.group(4)

    new = _MARKER.sub(fill, text)
    if new != text and not check:
        readme.write_text(new, encoding="utf-8")
    return new == text


def write_index(reports: str | Path) -> Path:
    """Rewrite ``reports/README.md``, the index of every run's report."""
    index = Path(reports) / "README.md"
    index.write_text(_index(Path(reports)), encoding="utf-8")
    return index


def render_all(reports: str | Path, readme: str | Path | None = None) -> list[Path]:
    """Re-render every report, the index and the README blocks from the saved CSV/JSON."""
    reports = Path(reports)
    written = [render_run(p) for p in run_csvs(reports)]
    written.append(write_index(reports))
    if readme is not None and Path(readme).is_file():
        update_readme(readme, reports)
        written.append(Path(readme))
    return written
