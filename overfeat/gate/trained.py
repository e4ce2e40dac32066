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
import math
import shutil
import time
from pathlib import Path

import numpy as np

from overfeat.gate.baselines import FLOAT_FLOOR, Measured, SuiteResult
from overfeat.gate.config import TrainedSuite

__all__ = [
    "eval_options",
    "fresh_folder",
    "last_epoch",
    "loss_metric",
    "pinned_classifier",
    "pinned_ref",
    "run_dir",
    "run_trained",
    "synthetic_data",
    "train_cache",
    "trained_classifier",
    "where_args",
]


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


def run_dir(ref) -> Path:
    """The run folder of a trained :class:`overfeat.reproduce.networks.NetworkRef` (its key is
    ``"<run folder>:<checkpoint file>"``)."""
    return Path(ref.key.rsplit(":", 1)[0])


def last_epoch(run: Path) -> dict:
    """The last epoch record of a run's ``metrics.jsonl``."""
    from overfeat.engine.metrics_log import read_metrics

    epochs = [r for r in read_metrics(Path(run) / "metrics.jsonl") if r["kind"] == "epoch"]
    if not epochs:
        raise RuntimeError(f"{run}/metrics.jsonl: the run logged no finished epoch")
    return epochs[-1]


def where_args(device: str, workers: int, progress: bool) -> tuple[str, ...]:
    """Training flags that say where and how fast, never what is computed (none of them is part
    of a run's configuration hash, :func:`overfeat.reproduce.networks.config_key`)."""
    args = ("--workers", str(workers), "--device", "cuda" if device.startswith("cuda") else "cpu")
    return args if progress else (*args, "--no-progress")


def eval_options(device: str, workers: int, batch_size: int, progress: bool):
    """How the gate's suites evaluate: float32 on every device (``amp="none"``), so a GPU run
    computes what the CPU baselines measured, up to rounding."""
    from overfeat.reproduce.runner import RunOptions

    return RunOptions(device=device, batch_size=batch_size, workers=workers, amp="none",
                      progress=progress)  # fmt: skip


def fresh_folder(work: Path) -> Path:
    """``work`` emptied (created when absent): a suite's evaluation files are never reused."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def train_cache(cache: Path, data: Path) -> Path:
    """Where the gate caches the runs trained on ``data``: one folder per data set, since the
    cache key of a trained run leaves out the data path."""
    data = Path(data).resolve()
    where = hashlib.sha256(str(data).encode()).hexdigest()[:8]
    return Path(cache) / "train" / f"{data.name}-{where}"


def trained_classifier(data: Path, train_args, cache: Path, num_classes: int, device: str = "cpu",
                       workers: int = 1, progress: bool = False):  # fmt: skip
    """The fast network ``overfeat train classifier`` trains on ``data`` with ``train_args``
    (trained on first use, reused after) → its :class:`~overfeat.reproduce.networks.NetworkRef`."""
    from overfeat.reproduce.networks import train_missing

    args = (*train_args, *where_args(device, workers, progress))
    return train_missing(data, train_cache(cache, data), {"fast": 1}, args, num_classes)["fast"][0]


def _true_class_score(row_work: Path, samples) -> float:
    """Mean of the row's class vector at each image's label. The row ran alone in ``row_work``,
    so its ``vectors/`` folder holds exactly one network's ``(N, C)`` vectors."""
    found = [p for p in (row_work / "vectors").glob("*.npy") if not p.name.endswith(".decoded.npy")]
    if len(found) != 1:
        raise RuntimeError(f"{row_work / 'vectors'}: expected one class-vector file, found {found}")
    vectors = np.load(found[0])
    labels = np.array([label for _, label in samples])
    return float(vectors[np.arange(len(labels)), labels].astype(np.float64).mean())


def pinned_ref(net):
    """A pinned network (:class:`overfeat.gate.pinned.Pinned`) as the reproduction runner's
    :class:`~overfeat.reproduce.networks.NetworkRef`, keyed by its file's content."""
    from overfeat.reproduce.networks import NetworkRef

    arch = net.module.spec.name
    return NetworkRef(arch, f"pinned:{net.sha256}", f"pinned {net.name}", False, lambda: net.module)


def pinned_classifier(pinned: Path, name: str, ref, classes: int, pin: bool, source: str):
    """The pinned classifier ``name`` (written first from the trained ``ref`` with ``pin``); a
    ``ValueError`` when its class count is not the data's."""
    from overfeat.gate.pinned import load_pinned
    from overfeat.gate.pinned import pin as write_pinned

    if pin:
        write_pinned(pinned, name, "classifier", ref.load(), source)
    net = load_pinned(pinned, name)
    if net.module.num_classes != classes:
        raise ValueError(
            f"{pinned}/{name}.pt has {net.module.num_classes} classes, the data {classes}; pin "
            "networks trained on this data with 'overfeat regression --pin --update-baselines "
            "--baselines DIR'"
        )
    return net


def loss_metric(run: Path, what: str, chance: float | None) -> Measured:
    """The last epoch's training loss of ``run``; ``chance``: a know-nothing network's loss (ln C
    for a classifier's cross-entropy)."""
    last = last_epoch(run)
    return Measured(float(last["train_loss"]), "lower_is_better", FLOAT_FLOOR,
                    f"metrics.jsonl of the {what} run, epoch {last['epoch'] + 1}",
                    chance=chance)  # fmt: skip


def run_trained(
    suite_name: str,
    data: Path,
    suite: TrainedSuite,
    cache: Path,
    work: Path,
    pinned: Path,
    device: str = "cpu",
    workers: int = 1,
    batch_size: int = 8,
    progress: bool = False,
    pin: bool = False,
) -> SuiteResult:
    """Train (or reuse) the suite's network on ``data`` and judge its training; run the suite's
    rows on the pinned network (``pin``: pinned from this training first). ``work`` is emptied
    first and receives every file the harness scores."""
    from overfeat.data import readers
    from overfeat.reproduce.runner import run_row, validation_samples
    from overfeat.scales import TABLE2_PROTOCOLS

    start = time.perf_counter()
    data = Path(data)
    train_samples, _, _ = readers.classification_samples(data, "train")
    samples, classes = validation_samples(data, suite.val_limit)
    c = len(classes)
    ref = trained_classifier(data, suite.train_args, cache, c, device, workers, progress)
    last = last_epoch(run_dir(ref))
    name = f"{suite_name}.classifier"
    net = pinned_classifier(pinned, name, ref, c, pin,
                            f"{suite_name}: overfeat train classifier {' '.join(suite.train_args)}")  # fmt: skip

    result = SuiteResult(
        suite_name,
        data={"name": data.resolve().name, "train_images": len(train_samples),
              "val_images": len(samples), "classes": c,
              "pinned": {name: net.sha256[:16]}},  # fmt: skip
    )
    m = result.metrics
    # The trained network's numbers share its training noise; the pinned network's errors share
    # one network's rounding, its scores another (decision TOLERANCE_FROM_PERTURBATIONS).
    m["train loss, last epoch"] = loss_metric(run_dir(ref), "classifier", math.log(c))
    if "val_top1_error" in last:
        m["centre-crop val top-1 error, last epoch"] = Measured(
            float(last["val_top1_error"]), "lower_is_better", 1.0 / max(1, last["val_images"]),
            "the training engine's validation of the trained network (one centre crop)",
            "trained network", chance=1.0 - 1.0 / c,
        )  # fmt: skip

    errors, scores = "top-1 errors of the pinned network", "true-class scores of the pinned network"
    fresh_folder(work)
    options = eval_options(device, workers, batch_size, progress)
    for row in suite.rows:
        protocol = TABLE2_PROTOCOLS[row]
        record = run_row(row, protocol, [pinned_ref(net)], samples, work / row, options)
        summary = f"{record['protocol']} on pinned {name}"
        m[f"pinned {row} top-1 error"] = Measured(
            record["harness"]["top1_error"], "lower_is_better", 1.0 / len(samples),
            f"{summary}; python -m evaluation cls", errors, chance=1.0 - 1.0 / c,
        )  # fmt: skip
        m[f"pinned {row} true-class score"] = Measured(
            _true_class_score(work / row, samples), "higher_is_better", FLOAT_FLOOR,
            f"{summary}; mean vote for the true class", scores, chance=1.0 / c,
        )  # fmt: skip
    result.seconds = time.perf_counter() - start
    return result
