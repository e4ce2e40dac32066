"""Figure 9 reproduced: localization error of SCR and PCR by number of scales (§4.4).

``reproduce_figure9`` resolves the data and the networks (a classifier and its single-class and
per-class regressors: trained runs given with ``--checkpoints``, or trained here and cached, as
the embedded default does; or the released network, imported as a classifier run with
:func:`~overfeat.reproduce.networks.imported_release_run`, with regressors trained on it), localizes the validation images that have boxes under each bar's
protocol (:func:`overfeat.localize.localize_dataset`), scores the devkit submission with the
harness (:func:`evaluation.tasks.evaluate_localization_files`), and writes
``reports/figure9/<run>.csv`` (the source of truth) and ``<run>.json``; :mod:`evaluation.render`
renders the Markdown and the bar plot from them.

The rows: Figure 9's six bars (SCR with a centred crop and with 1, 2, 3, 4 scales; PCR with 3
scales) with the paper's numbers beside them, then what the paper does not plot, so that each
bar has its controls: PCR at 1, 2 and 4 scales, and at every number of scales the two baselines
that use no regressor, each window's own box (``window``) and the whole image (``image``).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.diff import comparability
from evaluation.paper import figure9_rows
from evaluation.render import ordinal
from overfeat.localize import LOCALIZATION_SCALES, LocalizationProtocol
from overfeat.reproduce.content import FileHashes, network_identity
from overfeat.reproduce.embedded import (
    EMBEDDED_DATA,
    EMBEDDED_TRAIN_ARGS,
    embedded_data,
    synthetic_command,
)
from overfeat.reproduce.networks import (
    SourceError,
    imported_release_run,
    train_missing,
    train_spatial_cached,
)
from overfeat.reproduce.runner import RunOptions, write_run

__all__ = [
    "COLUMNS",
    "EMBEDDED_REGRESSOR_ARGS",
    "FIGURE9_ROWS",
    "FIGURE9_SCALES",
    "Figure9Request",
    "Figure9Row",
    "reproduce_figure9",
    "scales_for",
    "score_localization",
    "train_regressor_cached",
]

COLUMNS = (
    "row", "bar", "regression", "box_source", "view", "scales", "num_scales", "data", "images",
    "skipped", "classifier", "regressor", "top5_loc_error", "paper_top5_loc_error", "delta_top5",
    "top1_loc_error", "top5_cls_error", "comparable", "note",
)  # fmt: skip

# Decision FIGURE9_SCALES (FACTS §5, §10: which scales make Fig. 9's "2, 3, 4 scales" is not
# stated): n scales are the first n of LOCALIZATION_SCALES = (1, 2, 4, 6), the four scales of
# Table 2's 4-scale rows, so that 4 scales is the same set in Table 2 and Figure 9 and every
# smaller set is nested in the larger ones (adding a scale is the only change between bars).
FIGURE9_SCALES = LOCALIZATION_SCALES


def scales_for(n: int) -> tuple[int, ...]:
    """The scales of an n-scale bar (decision FIGURE9_SCALES)."""
    if not 1 <= n <= len(FIGURE9_SCALES):
        raise ValueError(f"n must be 1..{len(FIGURE9_SCALES)}, got {n}")
    return FIGURE9_SCALES[:n]


@dataclass(frozen=True)
class Figure9Row:
    """One bar: ``row`` is ``F9-1`` … ``F9-6`` for the paper's bars (paper/reported.csv), else a
    control; ``regression`` ``"scr"``, ``"pcr"`` or ``"none"``; ``view`` ``"dense"`` or
    ``"centre"``."""

    row: str
    bar: str
    regression: str
    box_source: str
    view: str
    num_scales: int

    def protocol(self) -> LocalizationProtocol:
        views = "centre" if self.view == "centre" else "dense"
        return LocalizationProtocol(
            scales=scales_for(max(self.num_scales, 1)), box_source=self.box_source, views=views
        )


def _rows() -> tuple[Figure9Row, ...]:
    rows = [Figure9Row("F9-5", "SCR, centered crop", "scr", "regressor", "centre", 0)]
    rows += [
        Figure9Row(f"F9-{5 - n}", f"SCR, {n} scale{'s' if n > 1 else ''}", "scr", "regressor",
                   "dense", n)  # fmt: skip
        for n in (1, 2, 3, 4)
    ]
    rows.append(Figure9Row("F9-6", "PCR, 3 scales", "pcr", "regressor", "dense", 3))
    rows += [
        Figure9Row(f"PCR-{n}", f"PCR, {n} scale{'s' if n > 1 else ''}", "pcr", "regressor",
                   "dense", n)  # fmt: skip
        for n in (1, 2, 4)
    ]
    for source, what in (("window", "each window's own box"), ("image", "whole-image box")):
        rows += [
            Figure9Row(f"{source.upper()}-{n}", f"{what}, {n} scale{'s' if n > 1 else ''}",
                       "none", source, "dense", n)  # fmt: skip
            for n in (1, 2, 3, 4)
        ]
    return tuple(rows)


FIGURE9_ROWS: tuple[Figure9Row, ...] = _rows()

# Decision EMBEDDED_REGRESSOR_ARGS: the embedded default trains its regressors with the toy
# regressor recipe (REGRESSOR_RECIPE) on the embedded synthetic set, on top of the fast toy
# network that Table 2's embedded default trains (the same cached run).
EMBEDDED_REGRESSOR_ARGS: tuple[str, ...] = (
    "--recipe", "toy", "--workers", "1", "--log-every", "0",
)  # fmt: skip


@dataclass
class Figure9Request:
    """What a user asked for (the flags of ``overfeat reproduce figure9``)."""

    data: str | None = None
    limit: int | None = None
    every: int = 1
    rows: tuple[str, ...] = ()
    arch: str = "fast"
    checkpoints: tuple[str, ...] = ()  # classifier=RUN scr=RUN pcr=RUN
    release_weights: str | None = None
    meta: str | None = None
    train: bool = False
    train_args: tuple[str, ...] = ()  # the classifier's flags
    regressor_args: tuple[str, ...] = ()
    name: str | None = None
    cache: str = "runs/reproduce"
    reports: str = "reports"
    options: RunOptions = field(default_factory=RunOptions)
    command: str = ""


# ----------------------------------------------------------------------------- networks


@dataclass(frozen=True)
class _Run:
    path: Path
    label: str


def parse_runs(values) -> dict[str, Path]:
    """``classifier=RUN scr=RUN pcr=RUN`` → ``{"classifier": RUN, ...}``."""
    out = {}
    for value in values:
        kind, sep, run = value.partition("=")
        if not sep or kind not in ("classifier", "scr", "pcr") or not run:
            raise SourceError(
                f"--checkpoints {value!r}: expected classifier=RUN_DIR, scr=RUN_DIR or "
                "pcr=RUN_DIR (folders of 'overfeat train classifier' / 'overfeat train regressor')"
            )
        out[kind] = Path(run)
    return out


def train_regressor_cached(classifier: Path, data: Path, kind: str, args, cache: Path,
                           progress: bool = True) -> Path:  # fmt: skip
    """Train (or reuse, or resume) a ``kind`` regressor on ``classifier`` under ``cache``."""
    return train_spatial_cached("regressor", classifier, data, ("--type", kind, *args), cache,
                                f"regressor-{kind}-{classifier.name}", "--regressor-args", progress)  # fmt: skip


def _resolve(request: Figure9Request):
    """→ data, its description, samples, classes, boxes, runs {classifier, scr, pcr}, notes."""
    from overfeat.localize import localization_images

    notes: list[str] = []
    embedded = request.data is None
    if embedded:
        if request.checkpoints:
            raise SourceError("--checkpoints needs --data (the images its networks were trained for)")
        data = embedded_data(request.cache, request.options.progress)
        data_desc = f"the embedded synthetic ILSVRC-format set (`{synthetic_command(EMBEDDED_DATA, data)}`)"
        train = True
        train_args = request.train_args or EMBEDDED_TRAIN_ARGS
        regressor_args = request.regressor_args or EMBEDDED_REGRESSOR_ARGS
    else:
        data = Path(request.data)
        if not data.is_dir():
            raise SourceError(f"--data {data}: no such folder; pass an ILSVRC-layout root")
        data_desc = f"`{data.name}` ({data})"
        train, train_args, regressor_args = request.train, request.train_args, request.regressor_args
    try:
        samples, classes, boxes = localization_images(data, request.limit, request.every)
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(f"--data {data}: {exc}") from None
    runs = parse_runs(request.checkpoints)
    cache = Path(request.cache) / "train" / data.name
    if request.release_weights is not None:
        if "classifier" in runs:
            raise SourceError("--release-weights and --checkpoints classifier=RUN both name the "
                              "classifier; pass one")  # fmt: skip
        runs["classifier"], label = imported_release_run(
            request.release_weights, request.arch, request.meta, classes, Path(request.cache)
        )
        # The released networks come with no regressor: the missing ones are trained on the
        # imported run (§4.2: on the classifier's own layers 1–5).
        train = True
        notes.append(f"Classifier: the {label}, imported by `overfeat import-release`.")
    if "classifier" not in runs:
        if not train:
            raise SourceError("--data needs networks: --checkpoints classifier=RUN scr=RUN pcr=RUN, "
                              "or --train")  # fmt: skip
        ref = train_missing(data, cache, {request.arch: 1}, train_args, len(classes),
                            request.options.progress)[request.arch][0]
        runs["classifier"] = Path(ref.key.rsplit(":", 1)[0])
        notes.append(f"Classifier trained here by `overfeat train classifier --data DATA --arch "
                     f"{request.arch} {shlex.join(train_args)}`.")  # fmt: skip
    for kind in ("scr", "pcr"):
        if kind not in runs and train:
            runs[kind] = train_regressor_cached(runs["classifier"], data, kind, regressor_args, cache,
                                                request.options.progress)
            notes.append(f"{kind.upper()} regressor trained here by `overfeat train regressor "
                         f"--classifier CLASSIFIER --data DATA --type {kind} "
                         f"{shlex.join(regressor_args)}`.")  # fmt: skip
    data_desc += f": {len(samples):,} boxed validation images, {len(classes)} classes"
    if request.every > 1:
        data_desc += f" (every {ordinal(request.every)} in file-name order)"
    if request.limit:
        data_desc += f" (the first {request.limit} in file-name order)"
    return data, data_desc, samples, classes, boxes, runs, notes


# ----------------------------------------------------------------------------- rows


def _selected(request: Figure9Request) -> list[Figure9Row]:
    known = [r.row for r in FIGURE9_ROWS]
    unknown = [r for r in request.rows if r not in known]
    if unknown:
        raise SourceError(f"--rows {','.join(unknown)}: unknown; the rows are {', '.join(known)}")
    return [r for r in FIGURE9_ROWS if not request.rows or r.row in request.rows]


def _networks(runs: dict[str, Path], classes, hashes: FileHashes):
    """Loaded classifier and regressors (those given), checked against each other; their labels
    and cache keys (the sha256 of their checkpoint files, decision CONTENT_KEYS)."""
    from overfeat.engine.checkpoint import find_latest_valid
    from overfeat.engine.regressor import REGRESSOR_REQUIRED_KEYS, load_regressor
    from overfeat.localize import check_regressor
    from overfeat.network_sources import checked_run

    path = runs["classifier"]
    found = find_latest_valid(path) if path.is_dir() else None
    if found is None:
        raise SourceError(f"--checkpoints classifier={path}: no readable checkpoint-*.pt")
    arch = found[1]["model_config"]["arch"]
    ref = checked_run(path, arch, len(classes), "--checkpoints classifier")
    model = ref.load()
    regressors = {}
    labels = {"classifier": ref.label, "classifier_key": network_identity(ref, hashes)[0],
              "full_size": ref.full_size}  # fmt: skip
    for kind in ("scr", "pcr"):
        if kind not in runs:
            continue
        try:
            reg = load_regressor(runs[kind], classifier=model, classifier_label=ref.label).eval()
            check_regressor(model, reg)
        except ValueError as exc:
            raise SourceError(f"--checkpoints {kind}={runs[kind]}: {exc}") from None
        if reg.kind != kind:
            raise SourceError(f"--checkpoints {kind}={runs[kind]} holds a {reg.kind.upper()} "
                              f"regressor; list it as {reg.kind}={runs[kind]}")  # fmt: skip
        regressors[kind] = reg
        step = find_latest_valid(runs[kind], required=REGRESSOR_REQUIRED_KEYS)[0]
        labels[kind] = f"{kind.upper()} {runs[kind].name} ({step.name})"
        labels[f"{kind}_key"] = "sha256:" + hashes.sha256(step)
    return model, regressors, labels


def score_localization(result, classes, boxes, work: Path, key: str) -> dict:
    """Write the devkit submission and its ground truth and score them with the harness."""
    from evaluation.annotations import write_loc_solution_csv
    from evaluation.tasks import evaluate_localization_files
    from overfeat.localize import write_loc_submission, write_synsets

    pred, gt, synsets = (work / f"{key}{s}" for s in (".loc.txt", ".gt.csv", ".synsets.txt"))
    write_loc_submission(pred, result, classes, "devkit")
    write_loc_solution_csv(gt, [boxes[n] for n in result.names])
    write_synsets(synsets, classes)
    res, _ = evaluate_localization_files(gt, pred, synsets=synsets)
    scores = res.to_dict()
    scores["score_command"] = "python -m evaluation loc " + shlex.join(
        ["--gt", str(gt), "--pred", str(pred), "--synsets", str(synsets)]
    )
    return scores


def _row_key(row: Figure9Row, labels, samples) -> str:
    """The file stem of a bar's saved record and devkit files, keyed by everything it uses."""
    reg_key = labels.get(f"{row.regression}_key", "") if row.regression != "none" else ""
    key_src = json.dumps([row.protocol().to_dict(), labels["classifier_key"], reg_key,
                          [p for p, _ in samples]], sort_keys=True)  # fmt: skip
    return f"{row.row}-{hashlib.sha256(key_src.encode()).hexdigest()[:12]}"


def _outcomes(rows: list[Figure9Row], labels, samples, work: Path) -> pd.DataFrame | None:
    """Per-image outcomes of the bars that ran (:mod:`evaluation.outcomes`), read back from
    each bar's scored devkit files in ``work``; saved there as ``outcomes.csv.gz``."""
    from evaluation.outcomes import write_outcomes
    from evaluation.tasks import localization_outcomes_files

    columns: dict[str, object] = {}
    for row in rows:
        key = _row_key(row, labels, samples)
        files = [work / f"{key}{s}" for s in (".gt.csv", ".loc.txt", ".synsets.txt")]
        if not all(f.is_file() for f in files):
            continue
        images, hit, iou = localization_outcomes_files(*files)
        if "image" in columns and list(columns["image"]) != list(images):
            continue
        columns["image"] = list(images)
        columns |= {f"{row.row}:top1_loc_wrong": (~hit[:, 0]).astype(int),
                    f"{row.row}:top5_loc_wrong": (~hit.any(axis=1)).astype(int),
                    f"{row.row}:iou": np.round(iou, 3)}  # fmt: skip
    if not columns:
        return None
    frame = pd.DataFrame(columns)
    write_outcomes(work / "outcomes.csv.gz", frame)
    return frame


def _run_row(row: Figure9Row, model, regressors, labels, samples, classes, boxes, work: Path,
             options: RunOptions) -> dict:  # fmt: skip
    """One bar's scores, computed once and saved under ``work`` (keyed by everything it uses)."""
    from overfeat.localize import localize_dataset

    protocol = row.protocol()
    key = _row_key(row, labels, samples)
    saved = work / f"{key}.json"
    if saved.is_file():
        return json.loads(saved.read_text(encoding="utf-8")) | {"reused": True}
    regressor = regressors.get(row.regression) if row.regression != "none" else None
    if row.regression != "none" and regressor is None:
        return {}
    work.mkdir(parents=True, exist_ok=True)
    result = localize_dataset(model, regressor, samples, protocol, options)
    record = {
        "protocol": protocol.to_dict(),
        "skipped": result.skipped,
        "seconds": result.seconds,
        "harness": score_localization(result, classes, boxes, work, key),
    }
    saved.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record | {"reused": False}


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def _run_name(request: Figure9Request) -> str:
    if request.name:
        return request.name
    if request.data is None:
        return "embedded-default"
    source = "release" if request.release_weights else "checkpoints" if request.checkpoints else "trained"
    name = f"{Path(request.data).name}-{source}"
    name += f"-every{request.every}" if request.every > 1 else ""
    return name + (f"-first{request.limit}" if request.limit else "")


def reproduce_figure9(request: Figure9Request) -> Path:
    """Run the requested bars and write ``reports/figure9/<run>.csv`` and ``.json``; returns the
    CSV's path. Finished bars (same images, networks and protocol) are reused."""
    started = time.perf_counter()
    rows = _selected(request)
    data, data_desc, samples, classes, boxes, runs, notes = _resolve(request)
    model, regressors, labels = _networks(runs, classes, FileHashes(Path(request.cache) / "sha256.json"))
    name = _run_name(request)
    work = Path(request.cache) / "figure9" / name
    paper = figure9_rows()
    comparable = comparability(data.name, len(samples), len(classes), labels["full_size"])
    table, records = [], {}
    for row in rows:
        entry = dict.fromkeys(COLUMNS, "")
        entry |= {
            "row": row.row, "bar": row.bar, "regression": row.regression.upper(),
            "box_source": row.box_source, "view": row.view,
            "scales": "centre crop" if row.view == "centre" else ",".join(
                str(s) for s in scales_for(row.num_scales)),
            "num_scales": row.num_scales, "data": data.name, "images": len(samples),
            "classifier": labels["classifier"], "regressor": labels.get(row.regression, ""),
            "paper_top5_loc_error": paper[row.row] if row.row in paper else np.nan,
            "comparable": comparable if row.row in paper else "no paper number",
        }  # fmt: skip
        record = _run_row(row, model, regressors, labels, samples, classes, boxes, work,
                          request.options)  # fmt: skip
        if not record:
            entry["note"] = f"not available: no {row.regression.upper()} regressor was given"
            table.append(entry)
            continue
        records[row.row] = record
        h = record["harness"]
        entry |= {
            "skipped": record["skipped"],
            "top5_loc_error": _pct(h["loc_error_by_guesses"][4]),
            "top1_loc_error": _pct(h["loc_error_by_guesses"][0]),
            "top5_cls_error": _pct(h["cls_error_by_guesses"][4]),
        }
        if row.row in paper:
            entry["delta_top5"] = round(entry["top5_loc_error"] - paper[row.row], 4)
        if record["skipped"]:
            entry["note"] = f"{record['skipped']} undecodable images counted as errors"
        table.append(entry)
        status = "reused" if record["reused"] else f"{record['seconds']:.0f} s"
        print(f"{row.row} ({row.bar}): top-5 localization error {entry['top5_loc_error']:.2f}% "
              f"({status})", flush=True)  # fmt: skip

    frame = pd.DataFrame(table, columns=list(COLUMNS))
    if request.data is None:
        notes.insert(0, "A toy classifier and toy regressors on a 10-class synthetic set: these "
                     "are not the paper's numbers; what can match at this scale is the direction "
                     "of each comparison.")  # fmt: skip
    meta = {
        "data_description": data_desc,
        "networks_description": "; ".join(
            labels[k] for k in ("classifier", "scr", "pcr") if k in labels
        ),
        "networks_sha256": {labels[k]: labels[f"{k}_key"] for k in ("classifier", "scr", "pcr")
                            if k in labels},  # fmt: skip
        "command": request.command,
        "created": date.today().isoformat(),
        "seconds_total": sum(r.get("seconds", 0.0) for r in records.values()),
        "notes": notes,
        "rows": {row: {k: v for k, v in r.items() if k != "reused"} for row, r in records.items()},
    }
    ran = [r for r in rows if r.row in records]
    csv_path = write_run(request.reports, "figure9", name, frame, meta,
                         _outcomes(ran, labels, samples, work))  # fmt: skip
    from overfeat.reproduce.gallery import figure9_gallery

    figure9_gallery(rows, records, model, regressors, samples, classes, boxes, data, request, name)
    print(f"Figure 9 written to {csv_path} in {time.perf_counter() - started:.0f} s", flush=True)
    return csv_path
