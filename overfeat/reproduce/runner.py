"""Table 2's protocols run over a validation set and scored by the harness (§3.3, Table 2).

One row at a time: the row's networks are loaded, the validation images are decoded once in a
DataLoader (full size, normalised, never cropped: each protocol resizes them itself), every
network computes the row's class vector of every batch (``ClassificationProtocol.class_vector``:
all scales and flips of a batch go through the network batched), the members' vectors are
averaged (ensembles, decision ENSEMBLE_MEAN_OF_CLASS_VECTORS), and the top 5 are written as a
devkit submission that ``python -m evaluation cls`` scores (the same function, called in-process).

Everything a row computes lives in a work folder, so an interrupted reproduction continues with
the same command without recomputing what finished:

- ``vectors/<key>.npy``: one network's class vectors ``(N, C)`` float32 under one protocol (a
  7-network ensemble row reuses the single-network row's vectors of its first member);
- ``rows/<row>.json``: the row's harness output, keyed by everything that determines it;
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
from torch.utils.data import DataLoader, Dataset

from overfeat.data.decode import CorruptImage, SkipCounter, decode_rgb
from overfeat.data.transforms import DEFAULT_NORMALIZATION, NORMALIZATIONS
from overfeat.reproduce.networks import NetworkRef
from overfeat.scales import ClassificationProtocol

__all__ = [
    "RunOptions",
    "ValidationImages",
    "collate_images",
    "protocol_summary",
    "run_row",
    "validation_samples",
    "write_ground_truth",
]

# Decision SKIPPED_IMAGE_COUNTS_AS_ERROR: an image that cannot be decoded gets the devkit's
# "no guess" line (label 0), so it counts as wrong, as the devkit counts any image without a
# guess; the report gives the count. (The ILSVRC2012 validation set has no such image.)
NO_GUESS_LINE = "0 0 0 0 0"


@dataclass(frozen=True)
class RunOptions:
    """How rows run: ``device`` ``"cpu"`` or ``"cuda"``; ``batch_size`` images per batch (each
    becomes 2 × scales network inputs); ``workers`` decoding processes; ``amp`` ``"none"``
    (float32) or ``"bf16"`` (autocast on the device).

    Decision REPRODUCE_FLOAT32: float32 unless ``amp="bf16"`` is asked for; bf16's effect on
    Table 2's numbers has not been measured on a GPU, so the reference stays float32.
    """

    device: str = "cpu"
    batch_size: int = 8
    workers: int = 2
    amp: str = "none"
    progress: bool = True


class ValidationImages(Dataset):
    """``samples [(path, label)]`` → ``(index, image (3, H, W) float32 normalised | None)``.

    Images stay at full size; ``None`` marks a file that could not be decoded (counted in
    ``skips``, warned about once).
    """

    def __init__(self, samples: Sequence[tuple[str, int]], normalization: str = DEFAULT_NORMALIZATION):
        self.paths = [p for p, _ in samples]
        norm = NORMALIZATIONS[normalization]
        self.mean = torch.tensor(norm.mean).view(3, 1, 1)
        self.std = torch.tensor(norm.std).view(3, 1, 1)
        self.skips = SkipCounter()

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None]:
        try:
            img = decode_rgb(self.paths[i])
        except CorruptImage as err:
            self.skips.skip(err)
            return i, None
        pixels = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()
        return i, (pixels - self.mean) / self.std


def collate_images(batch):
    """→ ``(indices (B,), images [(3, H, W)] of any sizes)`` of the decodable images, and the
    indices of the others."""
    kept = [(i, x) for i, x in batch if x is not None]
    return [i for i, _ in kept], [x for _, x in kept], [i for i, x in batch if x is None]


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


def _autocast(options: RunOptions, device: torch.device):
    if options.amp == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _member_vectors(
    members: list[NetworkRef],
    protocol: ClassificationProtocol,
    samples: Sequence[tuple[str, int]],
    options: RunOptions,
    desc: str,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Every member's class vectors ``(N, C)`` in one pass over the images; ``decoded (N,)``."""
    from tqdm import tqdm

    device = torch.device(options.device)
    models = []
    for ref in members:
        model = ref.load().to(device)
        model.eval()
        models.append(model)
    dataset = ValidationImages(samples)
    loader = DataLoader(
        dataset,
        batch_size=options.batch_size,
        num_workers=options.workers,
        collate_fn=collate_images,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    n = len(samples)
    vectors: list[np.ndarray | None] = [None] * len(models)
    decoded = np.zeros(n, dtype=bool)
    bar = tqdm(total=n, desc=desc, unit="img", disable=not options.progress, leave=False)
    with torch.inference_mode(), _autocast(options, device):
        for indices, images, _skipped in loader:
            bar.update(len(indices) + len(_skipped))
            if not indices:
                continue
            images = [x.to(device, non_blocking=True) for x in images]
            decoded[indices] = True
            for m, model in enumerate(models):
                v = protocol.class_vector(model, images).float().cpu().numpy()
                if vectors[m] is None:
                    vectors[m] = np.zeros((n, v.shape[1]), dtype=np.float32)
                vectors[m][indices] = v
    bar.close()
    classes = models[0].num_classes if models else 0
    return [v if v is not None else np.zeros((n, classes), np.float32) for v in vectors], decoded


def run_row(
    row: str,
    protocol: ClassificationProtocol,
    members: list[NetworkRef],
    samples: Sequence[tuple[str, int]],
    work: Path,
    options: RunOptions,
) -> dict:
    """Run one Table 2 row (or reuse its saved result) and score it with the harness.

    ``members``: the networks of the row (one, or the ensemble's). Returns the row's record:
    the harness output (``top1_error``, ``top5_error``, ``error_by_guesses``, fractions), the
    image count, the undecodable images, the seconds it took and the files it scored.
    """
    from evaluation.tasks import evaluate_classification_files

    work.mkdir(parents=True, exist_ok=True)
    dkey = data_key(samples)
    single = replace(protocol, models=1)
    member_keys = [_digest(ref.key, repr(single), dkey, options.amp) for ref in members]
    key = _digest(row, member_keys)
    record_path = work / "rows" / f"{row}.json"
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            return record | {"reused": True}

    start = time.perf_counter()
    vec_dir = work / "vectors"
    vec_dir.mkdir(exist_ok=True)
    paths = [vec_dir / f"{k}.npy" for k in member_keys]
    mask_path = vec_dir / f"{dkey}.decoded.npy"
    todo = [i for i, p in enumerate(paths) if not p.is_file() or not mask_path.is_file()]
    if todo:
        computed, decoded = _member_vectors(
            [members[i] for i in todo], protocol, samples, options, f"{row} ({protocol_summary(protocol)})"
        )
        for i, v in zip(todo, computed):
            _save_npy(paths[i], v)
        _save_npy(mask_path, decoded)
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
        "key": key,
        "row": row,
        "protocol": protocol_summary(protocol),
        "members": [ref.label for ref in members],
        "images": len(samples),
        "skipped": int((~decoded).sum()),
        "harness": harness,
        "harness_command": f"python -m evaluation cls --gt {gt_path} --pred {pred_path}",
        "seconds": time.perf_counter() - start,
    }
    record_path.parent.mkdir(exist_ok=True)
    tmp = record_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, record_path)  # a row is finished exactly when its record exists
    return record | {"reused": False}


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Write atomically: a run killed mid-write leaves no half file to reuse."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def write_run(reports: str | Path, artifact: str, run: str, frame, meta: dict) -> Path:
    """Write one reproduction's source of truth: ``reports/<artifact>/<run>.csv`` (the table,
    ``frame``) and ``<run>.json`` (``meta`` after its artifact and run names), which
    :func:`evaluation.render.read_run` reads back → the CSV's path."""
    out = Path(reports) / artifact
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{run}.csv"
    frame.to_csv(csv_path, index=False)
    text = json.dumps({"artifact": artifact, "run": run, **meta}, indent=2) + "\n"
    csv_path.with_suffix(".json").write_text(text, encoding="utf-8")
    return csv_path
