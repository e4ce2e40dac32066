"""Table 2's protocols run over a validation set and scored by the harness (§3.3, Table 2).

One row at a time: the row's networks are loaded, the validation images are decoded once in a
DataLoader (full size, normalised, never cropped: each protocol resizes them itself), every
network computes the row's class vector of every batch (``ClassificationProtocol.class_vector``:
all scales and flips of a batch go through the network batched), the members' vectors are
averaged (ensembles, decision ENSEMBLE_MEAN_OF_CLASS_VECTORS), and the top 5 are written as a
devkit submission that ``python -m evaluation cls`` scores (the same function, called in-process).

Everything a row computes lives in a work folder, so an interrupted reproduction continues with
the same command without recomputing what finished, rows and images alike:

- ``partial/<digest>/``: a row in progress, saved every few seconds and on Ctrl-C
  (:mod:`overfeat.reproduce.partial`);
- ``vectors/<key>.npy``: one network's class vectors ``(N, C)`` float32 under one protocol (a
  7-network ensemble row reuses the single-network row's vectors of its first member);
- ``rows/<row>.json``: the row's harness output, keyed by everything that determines it: the
  images, the protocol and the content (sha256) of every file its networks are read from
  (decision CONTENT_KEYS, :mod:`overfeat.reproduce.content`);
- ``ground_truth.txt`` and ``predictions/<row>.txt``: the devkit files that were scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

# RunOptions, ValidationImages and collate_images are re-exported: their old home was here.
from overfeat.inference import RunOptions, ValidationImages, collate_images, image_batches
from overfeat.reproduce.content import FileHashes, network_identity
from overfeat.reproduce.networks import NetworkRef
from overfeat.reproduce.partial import PartialRow
from overfeat.scales import ClassificationProtocol

__all__ = [
    "RowIdentity",
    "RunOptions",
    "ValidationImages",
    "collate_images",
    "finished_row",
    "protocol_summary",
    "row_identity",
    "row_outcomes",
    "run_row",
    "validation_samples",
    "write_ground_truth",
]

# Decision SKIPPED_IMAGE_COUNTS_AS_ERROR: an image that cannot be decoded gets the devkit's
# "no guess" line (label 0), so it counts as wrong, as the devkit counts any image without a
# guess; the report gives the count. (The ILSVRC2012 validation set has no such image.)
NO_GUESS_LINE = "0 0 0 0 0"


def validation_samples(data: str | Path, limit: int | None = None, every: int = 1):
    """The validation split of ``data`` in file-name order: every ``every``-th image of it (a
    sample spread over the whole split), then the first ``limit`` of those:
    ``(samples [(path, label)], classes (sorted WNIDs))``."""
    from overfeat.data.readers import classification_samples

    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    samples, classes, _ = classification_samples(data, "val")
    samples = sorted(samples, key=lambda s: (os.path.basename(s[0]), s[0]))[::every]
    if limit:
        samples = samples[:limit]
    return samples, classes


def protocol_summary(p: ClassificationProtocol) -> str:
    """A protocol in words: ``"fast, scales 1,2,4,6, fine, flips"``."""
    if p.views == "ten_view":
        return f"{p.arch}, 10 views (4 corners + centre, and flips)"
    scales = ",".join(str(s) for s in p.scales)
    flips = ", flips" if p.flips else ""
    return f"{p.arch}, scale{'s' if len(p.scales) > 1 else ''} {scales}, {p.offsets}{flips}"


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def data_key(samples: Sequence[tuple[str, int]]) -> str:
    """Identity of an image list: its files (resolved) and labels."""
    return _digest([(str(Path(p).resolve()), label) for p, label in samples])


def write_ground_truth(path: Path, samples: Sequence[tuple[str, int]]) -> None:
    """The devkit's ground-truth file (``eval_flat.m``'s format): one label per line, in image
    order.

    Decision DEVKIT_FILES_SORTED_INDEX: labels in the files a reproduction writes are the data
    set's sorted-WNID index + 1 (the devkit counts classes from 1), in the ground truth and in
    every prediction file beside it alike, so any data set (10 synthetic classes, Imagenette's
    folders, ILSVRC) is scored by the one harness; for ILSVRC these are not the devkit's
    ILSVRC2012_IDs, and the files are not meant for the devkit's own ground truth.
    """
    path.write_text("".join(f"{label + 1}\n" for _, label in samples), encoding="utf-8")


@dataclass(frozen=True)
class RowIdentity:
    """Everything that determines a row's numbers, as cache keys: ``key`` the row's,
    ``member_keys`` each network's vectors' (protocol, images, precision and the network's
    content), ``data`` the images', ``networks`` each network's label and ``{file: sha256}``."""

    key: str
    member_keys: list[str]
    data: str
    networks: list[dict]


def row_identity(
    row: str,
    protocol: ClassificationProtocol,
    members: list[NetworkRef],
    samples: Sequence[tuple[str, int]],
    options: RunOptions,
    hashes: FileHashes,
) -> RowIdentity:
    """The row's cache keys; the network files are hashed through ``hashes`` (remembered, so a
    580 MB file is read once, not on every invocation)."""
    dkey = data_key(samples)
    single = replace(protocol, models=1)
    member_keys, networks = [], []
    for ref in members:
        content, files = network_identity(ref, hashes)
        member_keys.append(_digest(content, repr(single), dkey, options.amp))
        networks.append({"label": ref.label, "identity": content, "sha256": files})
    return RowIdentity(_digest(row, member_keys), member_keys, dkey, networks)


def finished_row(work: Path, row: str, identity: RowIdentity) -> dict | None:
    """The saved record of ``row`` in ``work`` when it was computed for exactly ``identity``,
    else ``None``."""
    record_path = work / "rows" / f"{row}.json"
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    return record if record.get("key") == identity.key else None


def _member_vectors(
    members: list[NetworkRef],
    protocol: ClassificationProtocol,
    samples: Sequence[tuple[str, int]],
    options: RunOptions,
    desc: str,
    partial: PartialRow,
) -> int:
    """Every member's class vectors of the images ``partial`` has not done, in one pass over
    those images, recorded in ``partial`` and saved there as they come (decision
    ROW_PROGRESS_SAVED) → the networks' class count."""
    device = torch.device(options.device)
    models = []
    for ref in members:
        model = ref.load().to(device)
        model.eval()
        models.append(model)
    todo = partial.todo()
    paths = [samples[i][0] for i in todo]
    try:
        with torch.inference_mode():
            for indices, images, skipped in image_batches(paths, options, desc, total=len(samples)):
                partial.skip(todo[skipped])
                if indices:
                    vectors = [protocol.class_vector(m, images).float().cpu().numpy() for m in models]
                    partial.record(todo[indices], vectors)
                partial.save_if_due()
    except BaseException:
        # Ctrl-C (KeyboardInterrupt) or any failure: keep every batch that finished.
        with contextlib.suppress(Exception):
            partial.save()
        raise
    return models[0].num_classes if models else 0


def run_row(
    row: str,
    protocol: ClassificationProtocol,
    members: list[NetworkRef],
    samples: Sequence[tuple[str, int]],
    work: Path,
    options: RunOptions,
    hashes: FileHashes | None = None,
) -> dict:
    """Run one Table 2 row (or reuse its saved result, or continue it where it stopped) and
    score it with the harness.

    ``members``: the networks of the row (one, or the ensemble's); ``hashes``: where the network
    files' digests are remembered (default ``work/sha256.json``). Returns the row's record: the
    harness output (``top1_error``, ``top5_error``, ``error_by_guesses``, fractions), the image
    count, the undecodable images, the networks' sha256, the seconds it took and the files it
    scored.
    """
    from evaluation.tasks import evaluate_classification_files

    work.mkdir(parents=True, exist_ok=True)
    hashes = hashes if hashes is not None else FileHashes(work / "sha256.json")
    identity = row_identity(row, protocol, members, samples, options, hashes)
    record = finished_row(work, row, identity)
    if record is not None:
        return record | {"reused": True}

    start, seconds_before = time.perf_counter(), 0.0
    vec_dir = work / "vectors"
    vec_dir.mkdir(exist_ok=True)
    paths = [vec_dir / f"{k}.npy" for k in identity.member_keys]
    mask_path = vec_dir / f"{identity.data}.decoded.npy"
    todo = [i for i, p in enumerate(paths) if not p.is_file() or not mask_path.is_file()]
    if todo:
        todo_keys = [identity.member_keys[i] for i in todo]
        partial = PartialRow(work / "partial" / _digest(todo_keys), len(samples), len(todo))
        num_classes = _member_vectors([members[i] for i in todo], protocol, samples, options,
                                      f"{row} ({protocol_summary(protocol)})", partial)  # fmt: skip
        seconds_before = partial.seconds_before
        # The mask first: a run stopped between the two finds the vectors still in progress.
        _save_npy(mask_path, partial.decoded)
        partial.finish([paths[i] for i in todo], num_classes)
    decoded = np.load(mask_path)
    mean = np.mean([np.load(p) for p in paths], axis=0)
    # Top 5 by descending score; a stable sort breaks ties by the lower class index.
    top5 = np.argsort(-mean, axis=1, kind="stable")[:, :5]

    gt_path = work / "ground_truth.txt"
    write_ground_truth(gt_path, samples)
    pred_path = work / "predictions" / f"{row}.txt"
    pred_path.parent.mkdir(exist_ok=True)
    lines = [
        " ".join(str(c + 1) for c in t) if ok else NO_GUESS_LINE for t, ok in zip(top5, decoded)
    ]
    pred_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    harness = evaluate_classification_files(gt_path, pred_path)
    record = {
        "key": identity.key,
        "row": row,
        "protocol": protocol_summary(protocol),
        "members": [ref.label for ref in members],
        "networks": identity.networks,
        "images": len(samples),
        "skipped": int((~decoded).sum()),
        "skipped_images": [samples[i][0] for i in np.flatnonzero(~decoded)],
        "harness": harness,
        "harness_command": f"python -m evaluation cls --gt {gt_path} --pred {pred_path}",
        "seconds": seconds_before + time.perf_counter() - start,
    }
    record_path = work / "rows" / f"{row}.json"
    record_path.parent.mkdir(exist_ok=True)
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, record_path)  # a row is finished exactly when its record exists
    return record | {"reused": False}


def row_outcomes(
    work: Path, identity: RowIdentity, samples: Sequence[tuple[str, int]]
) -> tuple[tuple[np.ndarray, np.ndarray], list[tuple[np.ndarray, np.ndarray]]] | None:
    """A finished row's per-image outcomes, read back from its saved class vectors: ``((top1_wrong,
    top5_wrong), [(top1_wrong, top5_wrong) of each member])``, ``(N,)`` bool each, scored as
    :func:`run_row` scores the row (the members' mean, top 5 by a stable descending sort; an
    undecodable image is wrong); None when the vectors are no longer in ``work``."""
    from evaluation.outcomes import classification_outcomes

    vec_dir = work / "vectors"
    paths = [vec_dir / f"{k}.npy" for k in identity.member_keys]
    mask_path = vec_dir / f"{identity.data}.decoded.npy"
    if not mask_path.is_file() or not all(p.is_file() for p in paths):
        return None
    decoded = np.load(mask_path)
    labels = np.array([label for _, label in samples], dtype=np.int64)
    vectors = [np.load(p) for p in paths]

    def flags(v):
        return classification_outcomes(labels, np.argsort(-v, axis=1, kind="stable")[:, :5], decoded)

    members = [flags(v) for v in vectors] if len(vectors) > 1 else []
    return flags(np.mean(vectors, axis=0)), members


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write atomically: a run killed mid-write leaves no half file to reuse."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_run(reports: str | Path, artifact: str, run: str, frame, meta: dict,
              outcomes=None) -> Path:  # fmt: skip
    """Write one reproduction's source of truth: ``reports/<artifact>/<run>.csv`` (the table,
    ``frame``), ``<run>.json`` (``meta`` after its artifact and run names), which
    :func:`evaluation.render.read_run` reads back, and with ``outcomes`` (a table of
    :mod:`evaluation.outcomes`) ``<run>.outcomes.csv.gz``, from which the CSV's interval columns
    (:func:`evaluation.uncertainty.with_intervals`) are computed → the CSV's path."""
    from evaluation.outcomes import outcomes_path, write_outcomes
    from evaluation.uncertainty import with_intervals

    out = Path(reports) / artifact
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{run}.csv"
    if outcomes is not None:
        write_outcomes(outcomes_path(csv_path), outcomes)
        frame = with_intervals(artifact, frame, outcomes)
    else:
        outcomes_path(csv_path).unlink(missing_ok=True)  # a stale file must not outlive its run
    frame.to_csv(csv_path, index=False)
    text = json.dumps({"artifact": artifact, "run": run, **meta}, indent=2) + "\n"
    csv_path.with_suffix(".json").write_text(text, encoding="utf-8")
    return csv_path
