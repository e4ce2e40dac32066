"""Where a reproduction's networks come from: trained runs, the released weights, or training.

A :class:`NetworkRef` names one network without loading it (a full-size network is 580 MB; an
ensemble row loads its members only while it runs). Three sources:

- :func:`from_checkpoints`: run folders written by ``overfeat train classifier``;
- :func:`from_release`: the originally released fast and accurate networks (one of each);
- :func:`train_missing`: train what is missing with the training engine, cached by configuration
  under one folder, so a second call reuses finished runs and resumes unfinished ones.

Every problem a user can cause (a missing folder, the wrong architecture, the wrong number of
classes, release files of the wrong size) stops the run before any image is read, with a
:class:`SourceError` that names the flag and the fix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from torch import nn

__all__ = [
    "NetworkRef",
    "SourceError",
    "from_checkpoints",
    "from_release",
    "parse_checkpoints",
    "train_config",
    "train_missing",
    "train_spatial_cached",
]


class SourceError(ValueError):
    """A network source the user pointed at cannot serve this reproduction."""


@dataclass(frozen=True)
class NetworkRef:
    """One network, not loaded: ``key`` names where it comes from (``"<run folder>:<checkpoint
    file>"``, or the weight file), ``label`` describes it in reports, ``load()`` builds it on the
    CPU in eval mode with outputs in the data set's sorted-WNID order, ``files`` are every file
    ``load()`` reads (their content is the network's identity in caches, :meth:`identity`)."""

    arch: str
    key: str
    label: str
    full_size: bool
    load: Callable[[], nn.Module] = field(compare=False, repr=False)
    files: tuple[Path, ...] = ()

    def identity(self, hashes) -> tuple[str, dict[str, str]]:
        """→ ``(cache identity, {file: sha256})``: the combined sha256 of :attr:`files`
        (decision CONTENT_KEYS, :mod:`overfeat.reproduce.content`) with ``hashes`` (a
        :class:`~overfeat.reproduce.content.FileHashes`); a network given without files (built
        in memory, or keyed by its content already) is its ``key``."""
        from overfeat.reproduce.content import combined_digest

        if not self.files:
            return self.key, {}
        digests = hashes.digests(self.files)
        return combined_digest(digests), digests


# ----------------------------------------------------------------------------- trained runs


def parse_checkpoints(values: Sequence[str]) -> dict[str, list[Path]]:
    """``["fast=RUN[,RUN...]", "accurate=RUN[,...]"]`` → ``{arch: [run folders]}``."""
    out: dict[str, list[Path]] = {}
    for value in values:
        arch, sep, runs = value.partition("=")
        if not sep or arch not in ("fast", "accurate") or not runs:
            raise SourceError(
                f"--checkpoints {value!r}: expected fast=RUN_DIR[,RUN_DIR...] or "
                "accurate=RUN_DIR[,...] (folders written by 'overfeat train classifier')"
            )
        out.setdefault(arch, []).extend(Path(r) for r in runs.split(",") if r)
    return out


def _run_state(run_dir: Path, flag: str) -> tuple[Path, dict]:
    from overfeat.engine.checkpoint import find_latest_valid

    if not run_dir.is_dir():
        raise SourceError(f"{flag} {run_dir}: no such folder; pass a run folder of "
                          "'overfeat train classifier' (it holds checkpoint-*.pt)")  # fmt: skip
    found = find_latest_valid(run_dir)
    if found is None:
        raise SourceError(f"{flag} {run_dir}: no readable checkpoint-*.pt; train it first "
                          "('overfeat train classifier --out ...') or pass --train")  # fmt: skip
    return found


def _load_run(path: Path) -> nn.Module:
    from overfeat.engine.checkpoint import load_checkpoint
    from overfeat.models import build_model

    state = load_checkpoint(path)
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model"])
    return model.eval()


def _checked_run(run_dir: Path, arch: str, num_classes: int, flag: str) -> NetworkRef:
    path, state = _run_state(run_dir, flag)
    config = state["model_config"]
    if config["arch"] != arch:
        raise SourceError(
            f"{flag}: {run_dir} holds a {config['arch']} network, given as {arch}; "
            f"list it as {config['arch']}={run_dir}"
        )
    if config["num_classes"] != num_classes:
        raise SourceError(
            f"{flag}: {run_dir} was trained on {config['num_classes']} classes, the data set has "
            f"{num_classes}; evaluate it on the data it was trained for (--data) or retrain"
        )
    epochs, done = state["train_config"]["epochs"], state["progress"]["epoch"]
    status = "" if done >= epochs else f", unfinished: {done} of {epochs} epochs"
    width = config.get("width", 1.0)
    label = f"{arch} width {width:g}, {run_dir.name} ({path.name}{status})"
    return NetworkRef(arch, f"{run_dir.resolve()}:{path.name}", label, width == 1.0,
                      lambda p=path: _load_run(p), files=(path,))  # fmt: skip


def from_checkpoints(runs: dict[str, list[Path]], num_classes: int) -> dict[str, list[NetworkRef]]:
    """Trained runs → references, checked now: architecture and class count must match."""
    return {
        arch: [_checked_run(Path(d), arch, num_classes, "--checkpoints") for d in dirs]
        for arch, dirs in runs.items()
    }


# ----------------------------------------------------------------------------- released weights


def from_release(
    weights: str | Path, classes: Sequence[str], meta: str | Path | None
) -> dict[str, list[NetworkRef]]:
    """The released fast and accurate networks in ``weights`` (a folder with ``net_weight_0``
    and/or ``net_weight_1``), their outputs permuted from the release's ILSVRC2012_ID order to
    the data set's sorted WNIDs through the devkit's ``meta`` file, or without it through the
    order shipped with the package (:mod:`overfeat.data.class_order`, decision
    SHIPPED_CLASS_ORDER)."""
    from evaluation.labels import ClassLabels
    from overfeat.data.class_order import class_order_path, ilsvrc2012_labels
    from overfeat.release import RELEASE_FILE_NAMES, load_release, release_model_for

    folder = Path(weights)
    if not folder.exists():
        raise SourceError(f"--release-weights {folder}: no such file or folder; unpack "
                          "overfeat-weights.tgz and pass the folder holding net_weight_0/1")  # fmt: skip
    order = Path(meta) if meta is not None else class_order_path()
    labels = ClassLabels.from_devkit_meta(meta) if meta is not None else ilsvrc2012_labels()
    if list(classes) != list(labels.wnids):
        raise SourceError(
            f"--release-weights: the data set has {len(classes)} classes; the released networks "
            "know the 1000 ILSVRC2012 classes: pass --data an ILSVRC2012 layout"
        )
    files = (
        [folder / RELEASE_FILE_NAMES[a] for a in ("fast", "accurate")]
        if folder.is_dir()
        else [folder]
    )
    out: dict[str, list[NetworkRef]] = {}
    for path in (f for f in files if f.exists()):
        try:
            # Reading the layout now (the file is memory-mapped, not read) refuses a truncated
            # or foreign file before any image is decoded.
            arch = load_release(path).arch
        except (FileNotFoundError, ValueError) as exc:
            raise SourceError(f"--release-weights: {exc}") from None

        def load(arch=arch, path=path) -> nn.Module:
            return release_model_for(arch, path, labels=labels).model.eval()

        # The class order (--meta, or the shipped one) orders the outputs: a different order is
        # a different network.
        out[arch] = [NetworkRef(arch, str(path.resolve()), f"released {arch} network ({path.name})",
                                True, load, files=(path, order))]  # fmt: skip
    if not out:
        raise SourceError(f"--release-weights {folder}: holds neither net_weight_0 (fast) nor "
                          "net_weight_1 (accurate)")  # fmt: skip
    return out


# ----------------------------------------------------------------------------- training


def train_config(data: str | Path, arch: str, member: int, train_args: Sequence[str]):
    """The ``TrainConfig`` of ensemble member ``member`` of ``arch``: the flags of ``overfeat
    train classifier`` in ``train_args``.

    Decision MEMBER_SEEDS: member m's seed is the given ``--seed`` (default 0) plus m, which
    changes its initial weights and its crops and flips: §3.4's 7 models are "each trained with
    different initializations" and say nothing else of how they differ.
    """
    from overfeat.engine.cli import build_config, register

    parser = argparse.ArgumentParser(prog="overfeat", add_help=False)
    register(parser.add_subparsers(dest="command"))
    argv = ["train", "classifier", "--data", str(data), "--arch", arch, *train_args]
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        raise SourceError(f"--train: cannot read the training flags {list(train_args)}; see "
                          "'overfeat train classifier --help'") from None  # fmt: skip
    args.seed = (args.seed or 0) + member
    return build_config(args)


def config_key(config) -> str:
    """A short hash of every setting of a training run (classifier, regressor or detector) that
    changes the trained weights: the cache key of runs trained by the reproductions."""
    from overfeat.engine.config import KEY_NEUTRAL_DEFAULTS

    d = config.to_dict()
    for k in ("out", "data", "workers", "progress", "log_every", "checkpoint_every",
              "keep_checkpoints", "stop_after_steps", "eval_batch_size", "device"):  # fmt: skip
        d.pop(k, None)
    for k, neutral in KEY_NEUTRAL_DEFAULTS.items():
        if k in d and d[k] == neutral:
            del d[k]
    targets = getattr(type(config), "TARGETS", None)  # a regressor's training rule
    if targets is not None:
        d["targets"] = targets
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


def train_missing(
    data: str | Path,
    cache: str | Path,
    members: dict[str, int],
    train_args: Sequence[str],
    num_classes: int,
) -> dict[str, list[NetworkRef]]:
    """Train ``members[arch]`` networks of each ``arch`` on ``data`` unless already trained.

    Runs live in ``cache/<arch>-m<member>-<config hash>``: a finished run is reused, an
    unfinished one resumed (``--resume auto``), a changed configuration trains a new folder.
    """
    from overfeat.engine.checkpoint import find_latest_valid
    from overfeat.engine.train import train_classifier

    cache = Path(cache)
    out: dict[str, list[NetworkRef]] = {}
    for arch, n in members.items():
        refs = []
        for m in range(n):
            config = train_config(data, arch, m, train_args)
            run = cache / f"{arch}-m{m}-{config_key(config)}"
            found = find_latest_valid(run) if run.is_dir() else None
            if found is None or found[1]["progress"]["epoch"] < config.epochs:
                print(f"training {arch} network {m + 1} of {n} into {run}", flush=True)
                train_classifier(replace(config, out=str(run)), resume="auto")
            refs.append(_checked_run(run, arch, num_classes, "--train"))
        out[arch] = refs
    return out


def train_spatial_cached(what: str, classifier: Path, data: Path, args: Sequence[str],
                         cache: Path, name: str, flag: str) -> Path:  # fmt: skip
    """Train (or reuse, or resume) an ``overfeat train regressor|detector`` run (``what``) on the
    classifier run ``classifier`` with ``args``, in ``cache/<name>-<config hash>``; a flag it
    cannot read is a :class:`SourceError` naming ``flag``."""
    from overfeat.engine.checkpoint import find_latest_valid
    from overfeat.engine.cli import build_spatial_config

    if what == "regressor":
        from overfeat.engine.regressor import REGRESSOR_REQUIRED_KEYS as required
        from overfeat.engine.regressor import train_regressor as train
    else:
        from overfeat.engine.detector import DETECTOR_REQUIRED_KEYS as required
        from overfeat.engine.detector import train_detector as train
    argv = ["train", what, "--classifier", str(classifier), "--data", str(data),
            "--out", str(Path(cache) / "probe"), *args]  # fmt: skip
    try:
        probe = build_spatial_config(argv)
    except (SystemExit, ValueError) as exc:
        raise SourceError(f"{flag}: cannot read {list(args)} ({exc}); see 'overfeat train "
                          f"{what} --help'") from None  # fmt: skip
    run = Path(cache) / f"{name}-{config_key(probe)}"
    found = find_latest_valid(run, required=required) if run.is_dir() else None
    if found is None or found[1]["progress"]["epoch"] < probe.epochs:
        print(f"training the {name.split('-')[0]} into {run}", flush=True)
        train(replace(probe, out=str(run)), resume="auto")
    return run
