"""Table 2 reproduced: every OverFeat row run, scored, and written beside the paper's numbers.

``reproduce_table2`` resolves the data and the networks (:mod:`overfeat.reproduce.networks`),
runs each row of ``overfeat.scales.TABLE2_PROTOCOLS`` (:func:`overfeat.reproduce.runner.run_row`)
and writes ``reports/table2/<run>.csv`` (the source of truth) and ``<run>.json`` (every row's
harness output, the sha256 of every network file, and how the run was made);
:mod:`evaluation.render` renders the Markdown and the plot from them.

A run is its name (from the sources, or ``--name``): rows run one invocation at a time
(``--rows T2-2``, then ``--rows T2-3``) make one report, which holds every row the run has
finished on the same images with the same networks (decision RUN_MERGES_FINISHED_ROWS).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from evaluation.diff import comparability
from evaluation.paper import table2_rows
from evaluation.render import ordinal
from overfeat.reproduce.content import FileHashes, network_identity
from overfeat.reproduce.embedded import (
    EMBEDDED_DATA,
    EMBEDDED_MEMBERS,
    EMBEDDED_TRAIN_ARGS,
    embedded_data,
    synthetic_command,
)
from overfeat.reproduce.networks import (
    NetworkRef,
    SourceError,
    from_checkpoints,
    from_release,
    parse_checkpoints,
    train_missing,
)
from overfeat.reproduce.runner import (
    RunOptions,
    finished_row,
    protocol_summary,
    row_identity,
    row_outcomes,
    run_row,
    validation_samples,
    write_run,
)
from overfeat.scales import TABLE2_PROTOCOLS

__all__ = ["COLUMNS", "Table2Request", "reproduce_table2"]

COLUMNS = (
    "row", "approach", "arch", "protocol", "members", "paper_members", "networks", "data",
    "images", "skipped", "top1_error", "top5_error", "paper_top1_error", "paper_top5_error",
    "delta_top1", "delta_top5", "comparable", "note",
)  # fmt: skip
PAPER_ENSEMBLE = 7  # §3.4: "7 ... models, each trained with different initializations"


@dataclass
class Table2Request:
    """What a user asked for (the flags of ``overfeat reproduce table2``)."""

    data: str | None = None
    limit: int | None = None
    every: int = 1
    rows: tuple[str, ...] = ()
    release_weights: str | None = None
    meta: str | None = None
    checkpoints: tuple[str, ...] = ()
    train: bool = False
    train_args: tuple[str, ...] = ()
    members: dict[str, int] | None = None  # networks per kind to train
    name: str | None = None
    cache: str = "runs/reproduce"
    reports: str = "reports"
    readme: str | None = None
    options: RunOptions = field(default_factory=RunOptions)
    command: str = ""


def _rows(request: Table2Request) -> list[str]:
    """The rows asked for (every row without ``--rows``), in the table's order."""
    known = ["T2-1", *TABLE2_PROTOCOLS]
    if not request.rows:
        return known
    unknown = [r for r in request.rows if r not in known]
    if unknown:
        raise SourceError(f"--rows {','.join(unknown)}: unknown; the rows are {', '.join(known)}")
    return [r for r in known if r in request.rows]


def _resolve(request: Table2Request):
    """→ ``(data path, data description, networks by arch, networks description, notes)``."""
    notes = []
    embedded = request.data is None
    if embedded:
        if request.release_weights or request.checkpoints:
            raise SourceError("--release-weights and --checkpoints need --data (the images their "
                              "networks were trained for)")  # fmt: skip
        data = embedded_data(request.cache, request.options.progress)
        data_desc = (
            f"the embedded synthetic ILSVRC-format set "
            f"(`{synthetic_command(EMBEDDED_DATA, data)}`)"
        )
        train, train_args = True, request.train_args or EMBEDDED_TRAIN_ARGS
        members = {"fast": EMBEDDED_MEMBERS, "accurate": EMBEDDED_MEMBERS} | (request.members or {})
    else:
        data = Path(request.data)
        if not data.is_dir():
            raise SourceError(f"--data {data}: no such folder; pass an ILSVRC-layout root (Kaggle, "
                              "classic or Imagenette's train/<wnid>/ + val/<wnid>/)")  # fmt: skip
        data_desc = f"`{data.name}` ({data})"
        train, train_args = request.train, request.train_args
        members = {"fast": PAPER_ENSEMBLE, "accurate": PAPER_ENSEMBLE} | (request.members or {})
        if not (request.release_weights or request.checkpoints or train):
            raise SourceError("--data needs networks: pass --release-weights DIR, --checkpoints "
                              "fast=RUN accurate=RUN, or --train")  # fmt: skip
    try:
        samples, classes = validation_samples(data, request.limit, request.every)
    except (FileNotFoundError, ValueError) as exc:
        raise SourceError(f"--data {data}: {exc}") from None
    networks: dict[str, list[NetworkRef]] = {}
    if request.release_weights:
        networks.update(from_release(request.release_weights, classes, request.meta))
    if request.checkpoints:
        networks.update(from_checkpoints(parse_checkpoints(request.checkpoints), len(classes)))
    if train:
        missing = {a: members[a] for a in ("fast", "accurate") if a not in networks}
        if missing:
            cache = Path(request.cache) / "train" / f"{data.name}"
            networks.update(train_missing(data, cache, missing, train_args, len(classes),
                                          request.options.progress))
            notes.append(
                "Networks trained here by `overfeat train classifier --data DATA "
                + " ".join(train_args)
                + "` (ensemble members differ by --seed)."
            )
    data_desc += f": {len(samples):,} validation images, {len(classes)} classes"
    if request.every > 1:
        data_desc += f" (every {ordinal(request.every)} image in file-name order)"
    if request.limit:
        data_desc += f" (the first {request.limit} in file-name order)"
    net_desc = "; ".join(
        f"{arch} ×{len(refs)}: {refs[0].label}" + (" …" if len(refs) > 1 else "")
        for arch, refs in sorted(networks.items(), reverse=True)
    )
    return data, data_desc, networks, net_desc, samples, classes, notes


def _run_name(request: Table2Request, networks: dict[str, list[NetworkRef]]) -> str:
    if request.name:
        return request.name
    if request.data is None:
        return "embedded-default"
    source = "release" if request.release_weights else "checkpoints" if request.checkpoints else "trained"
    name = f"{Path(request.data).name}-{source}"
    name += f"-every{request.every}" if request.every > 1 else ""
    return name + (f"-first{request.limit}" if request.limit else "")


def _pct(x: float) -> float:
    return round(100.0 * x, 4)


def _members(row: str, refs: list[NetworkRef], request: Table2Request):
    """→ ``(the networks row ``row`` runs, "")``, or ``([], why it cannot run)``."""
    protocol = TABLE2_PROTOCOLS[row]
    wanted = protocol.models
    if not refs:
        return [], f"not available: no {protocol.arch} network was given"
    if wanted > 1 and len(refs) < 2:
        return [], (
            f"not available: an ensemble needs several trained {protocol.arch} networks and only "
            "one was given"
            + (" (the release holds one of each kind; pass --checkpoints with "
               f"{PAPER_ENSEMBLE} runs)" if request.release_weights else
               f" (--members {protocol.arch}=1)" if request.train else "")
        )  # fmt: skip
    return refs[: min(wanted, len(refs))], ""


def reproduce_table2(request: Table2Request) -> Path:
    """Run the requested rows and write ``reports/table2/<run>.csv`` and ``.json``; returns the
    CSV's path. Finished rows (same data, networks and protocol) are reused, never recomputed,
    and the run's report also holds the rows it finished in earlier invocations."""
    started = time.perf_counter()
    requested = _rows(request)
    data, data_desc, networks, net_desc, samples, classes, notes = _resolve(request)
    name = _run_name(request, networks)
    work = Path(request.cache) / "table2" / name
    hashes = FileHashes(Path(request.cache) / "sha256.json")
    paper = table2_rows()
    full_size = all(ref.full_size for refs in networks.values() for ref in refs)
    comparable = comparability(data.name, len(samples), len(classes), full_size)
    records, table, earlier, identities = {}, [], [], {}
    for row in ("T2-1", *TABLE2_PROTOCOLS):
        p = paper[row]
        entry = dict.fromkeys(COLUMNS, "")
        entry |= {
            "row": row,
            "approach": p.description,
            "paper_top1_error": p.top1_error,
            "paper_top5_error": p.top5_error,
            "data": data.name,
            "images": len(samples),
            "comparable": comparable,
        }
        protocol = TABLE2_PROTOCOLS.get(row)
        if protocol is None:  # T2-1, quoted from the paper: in the report only when asked for
            if row in requested:
                entry |= {"arch": "AlexNet", "protocol": "as reported by [15]", "note":
                          "not an OverFeat network: the paper quotes it; not run here"}  # fmt: skip
                entry["comparable"] = "paper only"
                table.append(entry)
            continue
        members, why = _members(row, networks.get(protocol.arch, []), request)
        entry |= {"arch": protocol.arch, "protocol": protocol_summary(protocol),
                  "paper_members": protocol.models}  # fmt: skip
        if row in requested:
            if not members:
                table.append(entry | {"members": 0, "note": why})
                continue
            record = run_row(row, protocol, members, samples, work, request.options, hashes)
            identities[row] = row_identity(row, protocol, members, samples, request.options, hashes)
        else:
            # Decision RUN_MERGES_FINISHED_ROWS: a row this invocation did not ask for is in
            # the report when the run finished it before for these very images and networks.
            record = None
            if members:
                identity = row_identity(row, protocol, members, samples, request.options, hashes)
                record = finished_row(work, row, identity)
                identities[row] = identity
            if record is None:
                continue
            record |= {"reused": True}
            earlier.append(row)
        records[row] = record
        h = record["harness"]
        entry |= {
            "members": len(members),
            "networks": members[0].label + (f" and {len(members) - 1} more" if len(members) > 1 else ""),
            "skipped": record["skipped"],
            "top1_error": _pct(h["top1_error"]),
            "top5_error": _pct(h["top5_error"]),
        }
        entry["delta_top1"] = round(entry["top1_error"] - p.top1_error, 4)
        entry["delta_top5"] = round(entry["top5_error"] - p.top5_error, 4)
        note = []
        if len(members) < protocol.models:
            note.append(f"ensemble of {len(members)} networks (paper: {protocol.models})")
        if record["skipped"]:
            note.append(f"{record['skipped']} undecodable images counted as errors")
        entry["note"] = "; ".join(note)
        table.append(entry)
        status = ("from an earlier invocation" if row in earlier else
                  "reused" if record["reused"] else f"{record['seconds']:.0f} s")  # fmt: skip
        print(f"{row}: top-1 {entry['top1_error']:.2f}%, top-5 {entry['top5_error']:.2f}% "
              f"({status})", flush=True)  # fmt: skip

    frame = pd.DataFrame(table, columns=list(COLUMNS))
    if request.data is None:
        notes.insert(0, "Toy networks on a 10-class synthetic set: these are not the paper's "
                     "numbers; what can match at this scale is the direction of each comparison.")  # fmt: skip
    if earlier:
        notes.append(f"Rows {', '.join(earlier)} were finished by earlier invocations of this run "
                     "on the same images with the same networks.")  # fmt: skip
    meta = {
        "data_description": data_desc,
        "networks_description": net_desc,
        "networks_sha256": {ref.label: network_identity(ref, hashes)[1]
                            for refs in networks.values() for ref in refs},  # fmt: skip
        "command": request.command,
        "created": date.today().isoformat(),
        "environment": _environment(request.options),
        "seconds_total": sum(r["seconds"] for r in records.values()),
        "notes": notes,
        "rows_from_earlier_invocations": earlier,
        "rows": {row: {k: v for k, v in r.items() if k != "reused"} for row, r in records.items()},
    }
    outcomes = _outcomes(work, samples, records, identities)
    csv_path = write_run(request.reports, "table2", name, frame, meta, outcomes)
    print(f"Table 2 written to {csv_path} in {time.perf_counter() - started:.0f} s", flush=True)
    return csv_path


def _outcomes(work: Path, samples, records: dict, identities: dict) -> pd.DataFrame | None:
    """The run's per-image outcomes (:mod:`evaluation.outcomes`), rows in the report only, read
    back from the saved class vectors and merged with the run folder's earlier file (decision
    RUN_MERGES_FINISHED_ROWS: a row an earlier invocation finished keeps its outcomes); the
    merged table is saved in the run folder as ``outcomes.csv.gz``."""
    from dataclasses import replace

    from evaluation.outcomes import merge_outcomes, read_outcomes, write_outcomes

    columns = {"image": [Path(p).stem for p, _ in samples]}
    for row in records:
        found = row_outcomes(work, identities[row], samples)
        if found is None:
            continue
        (top1, top5), members = found
        columns |= {f"{row}:top1_wrong": top1.astype(int), f"{row}:top5_wrong": top5.astype(int)}
        # Decision SEED_SPREAD_FROM_ENSEMBLE_MEMBERS: an ensemble's members, each scored under
        # the single-network protocol, are the seed spread of the single-network row that runs
        # that protocol (T2-8's members for T2-4, T2-9's for T2-7); they cost nothing more.
        single = replace(TABLE2_PROTOCOLS[row], models=1)
        for other, protocol in TABLE2_PROTOCOLS.items():
            if protocol == single and members:
                for k, (m1, m5) in enumerate(members):
                    columns |= {f"{other}@m{k}:top1_wrong": m1.astype(int),
                                f"{other}@m{k}:top5_wrong": m5.astype(int)}  # fmt: skip
    merged = merge_outcomes(read_outcomes(work / "outcomes.csv.gz"), pd.DataFrame(columns))
    kept = [c for c in merged.columns if c == "image" or c.split(":")[0].split("@")[0] in records]
    merged = merged[kept]
    if len(kept) == 1:
        return None
    write_outcomes(work / "outcomes.csv.gz", merged)
    return merged


def _environment(options: RunOptions) -> str:
    import torch

    device = options.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = torch.cuda.get_device_name(torch.device(device))
    else:
        device = f"CPU ({os.cpu_count()} cores, {platform.machine()})"
    amp = "bf16 autocast" if options.amp == "bf16" else "float32"
    return f"{device}, torch {torch.__version__}, {amp}"

