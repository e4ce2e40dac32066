"""Gate suites ``train-real`` and ``synthetic``: a network trained from scratch, then Table 2's
protocols (§3.3), all through the code users run.

The network is trained by ``overfeat.reproduce.networks.train_missing`` (the training engine,
``overfeat train classifier`` flags, cached under the gate's cache by configuration, so a second
gate run reuses it) and each Table 2 row runs through ``overfeat.reproduce.runner.run_row``
(dense evaluation with offset max-pooling, scales, flips, the harness's ``cls``). Rows are never
reused between gate runs: each run scores them afresh in an emptied folder, since the runner's
cache key covers the inputs, not the code the gate is there to check.

Metrics:

- ``train loss, last epoch`` (and the engine's centre-crop validation top-1 error): slower
  convergence shows here first;
- ``<row> top-1 error``: the harness's number for each protocol;
- ``<row> true-class score``: the mean over images of the protocol's vote for the true class
  (the class vector of §3.3: softmax per location, spatial max, mean over scales and flips), read
  from the class vectors the runner saves. A toy network is often wrong, so a broken vote (a lost
  offset, a dropped flip) may leave the top-1 count nearly unchanged; the vote itself moves.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np

from overfeat.gate.baselines import FLOAT_FLOOR, Measured, SuiteResult
from overfeat.gate.config import TrainedSuite

__all__ = ["run_trained", "synthetic_data"]


def synthetic_data(cache: Path, config, progress: bool = False) -> Path:
    """The synthetic set of ``config`` under ``cache/data/``, written on first use (an
    interrupted write is started again)."""
    import json
    from dataclasses import asdict

    from overfeat.data.synthetic import write_synthetic

    key = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    root = Path(cache) / "data" / f"synthetic-{key}"
    if (root / "synthetic.json").is_file():
        return root
    tmp = root.with_name(root.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    write_synthetic(tmp, config, progress=progress)
    tmp.rename(root)
    return root


def _run_dir(ref) -> Path:
    # NetworkRef.key of a trained run is "<run folder>:<checkpoint file>".
    return Path(ref.key.rsplit(":", 1)[0])


def _true_class_score(row_work: Path, samples) -> float:
    """Mean of the row's class vector at each image's label. The row ran alone in ``row_work``,
    so its ``vectors/`` folder holds exactly one network's ``(N, C)`` vectors."""
    found = [p for p in (row_work / "vectors").glob("*.npy") if not p.name.endswith(".decoded.npy")]
    if len(found) != 1:
        raise RuntimeError(f"{row_work / 'vectors'}: expected one class-vector file, found {found}")
    vectors = np.load(found[0])
    labels = np.array([label for _, label in samples])
    return float(vectors[np.arange(len(labels)), labels].astype(np.float64).mean())


def run_trained(
    suite_name: str,
    data: Path,
    suite: TrainedSuite,
    cache: Path,
    work: Path,
    device: str = "cpu",
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = False,
) -> SuiteResult:
    """Train (or reuse) the suite's network on ``data`` and run its rows; ``work`` is emptied
    first and receives every file the harness scores."""
    from overfeat.data import readers
    from overfeat.engine.metrics_log import read_metrics
    from overfeat.reproduce.networks import train_missing
    from overfeat.reproduce.runner import RunOptions, run_row, validation_samples
    from overfeat.scales import TABLE2_PROTOCOLS

    start = time.perf_counter()
    data = Path(data)
    train_samples, _, _ = readers.classification_samples(data, "train")
    samples, classes = validation_samples(data, suite.val_limit)
    # Not part of the configuration hash: where and how fast, never what is computed.
    train_args = (*suite.train_args, "--workers", str(workers),
                  "--device", "cuda" if device.startswith("cuda") else "cpu")  # fmt: skip
    if not progress:
        train_args += ("--no-progress",)
    # The cache key of a trained run leaves out the data path: one folder per data set.
    where = hashlib.sha256(str(data.resolve()).encode()).hexdigest()[:8]
    train_cache = Path(cache) / "train" / f"{data.resolve().name}-{where}"
    ref = train_missing(data, train_cache, {"fast": 1}, train_args, len(classes))["fast"][0]
    epochs = [r for r in read_metrics(_run_dir(ref) / "metrics.jsonl") if r["kind"] == "epoch"]
    last = epochs[-1]

    result = SuiteResult(
        suite_name,
        data={"name": data.resolve().name, "train_images": len(train_samples),
              "val_images": len(samples), "classes": len(classes)},  # fmt: skip
    )
    m = result.metrics
    # One network's errors (and scores) share its training noise (decision
    # TOLERANCE_FROM_THREAD_SPREAD).
    errors, scores = "top-1 errors of the trained network", "true-class scores of the network"
    m["train loss, last epoch"] = Measured(
        float(last["train_loss"]), "lower_is_better", FLOAT_FLOOR,
        f"metrics.jsonl of the run, epoch {last['epoch'] + 1}",
    )  # fmt: skip
    if "val_top1_error" in last:
        m["centre-crop val top-1 error, last epoch"] = Measured(
            float(last["val_top1_error"]), "lower_is_better", 1.0 / max(1, last["val_images"]),
            "the training engine's validation (one centre crop)", errors,
        )  # fmt: skip

    if work.exists():
        shutil.rmtree(work)
    options = RunOptions(device=device, batch_size=batch_size, workers=workers, amp="none",
                         progress=progress)  # fmt: skip
    for row in suite.rows:
        protocol = TABLE2_PROTOCOLS[row]
        record = run_row(row, protocol, [ref], samples, work / row, options)
        summary = record["protocol"]
        m[f"{row} top-1 error"] = Measured(
            record["harness"]["top1_error"], "lower_is_better", 1.0 / len(samples),
            f"{summary}; python -m evaluation cls", errors,
        )  # fmt: skip
        m[f"{row} true-class score"] = Measured(
            _true_class_score(work / row, samples), "higher_is_better", FLOAT_FLOOR,
            f"{summary}; mean vote for the true class", scores,
        )  # fmt: skip
    result.seconds = time.perf_counter() - start
    return result
