"""Where a reproduction's networks come from: trained runs, the released weights, or training.

Trained runs and the released weights are named by :mod:`overfeat.network_sources` (the
inference commands use them too; :class:`NetworkRef`, :class:`SourceError`,
:func:`from_checkpoints`, :func:`from_release` are re-exported here). This module adds
:func:`train_missing`: train what is missing with the training engine, cached by configuration
under one folder, so a second call reuses finished runs and resumes unfinished ones; and
:func:`train_spatial_cached`, the same for regressors and detectors; and
:func:`imported_release_run`: a released network written once as a classifier run
(:mod:`overfeat.release.importer`), for regressors and detectors to start from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from overfeat.network_sources import (
    NetworkRef,
    SourceError,
    checked_run,
    from_checkpoints,
    from_release,
    parse_checkpoints,
)

__all__ = [
    "NetworkRef",
    "SourceError",
    "checked_run",
    "config_key",
    "from_checkpoints",
    "from_release",
    "imported_release_run",
    "parse_checkpoints",
    "train_config",
    "train_missing",
    "train_spatial_cached",
]


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
    progress: bool = True,
) -> dict[str, list[NetworkRef]]:
    """Train ``members[arch]`` networks of each ``arch`` on ``data`` unless already trained.

    Runs live in ``cache/<arch>-m<member>-<config hash>``: a finished run is reused, an
    unfinished one resumed (``--resume auto``), a changed configuration trains a new folder.
    ``progress=False`` (the reproduction's ``--no-progress``) silences the training's progress
    too; it is not part of the configuration's key.
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
                shown = config.progress and progress
                train_classifier(replace(config, out=str(run), progress=shown), resume="auto")
            refs.append(checked_run(run, arch, num_classes, "--train"))
        out[arch] = refs
    return out


def train_spatial_cached(what: str, classifier: Path, data: Path, args: Sequence[str],
                         cache: Path, name: str, flag: str, progress: bool = True) -> Path:  # fmt: skip
    """Train (or reuse, or resume) an ``overfeat train regressor|detector`` run (``what``) on the
    classifier run ``classifier`` with ``args``, in ``cache/<name>-<config hash>``; a flag it
    cannot read is a :class:`SourceError` naming ``flag``; ``progress`` as in
    :func:`train_missing`."""
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
        train(replace(probe, out=str(run), progress=probe.progress and progress), resume="auto")
    return run


# ----------------------------------------------------------------------------- released weights


def imported_release_run(weights: str | Path, arch: str | None, meta: str | Path | None,
                         classes: Sequence[str], cache: Path) -> tuple[Path, str]:  # fmt: skip
    """The released ``arch`` network of ``weights`` as a classifier run under ``cache`` →
    ``(run folder, label)``; imported once, then reused (keyed by the weight file's and the
    class order's content, so a replaced file or another ``--meta`` is imported anew)."""
    from overfeat.data.class_order import class_order_path
    from overfeat.engine.checkpoint import find_latest_valid
    from overfeat.release.importer import import_release
    from overfeat.reproduce.content import FileHashes

    refs = from_release(weights, classes, meta)  # checks the files and the data set's classes
    # Without an architecture, the release's own default, the fast network, when it is there.
    arch = arch or ("fast" if "fast" in refs else next(iter(refs)))
    if arch not in refs:
        raise SourceError(f"--release-weights {weights}: no {arch} network there")
    path = refs[arch][0].files[0]
    hashes = FileHashes(cache / "sha256.json")
    digest = hashes.sha256(path)
    order = hashes.sha256(meta if meta is not None else class_order_path())
    run = cache / "release" / f"{arch}-{digest[:16]}-{order[:8]}"
    if find_latest_valid(run) is None:
        import_release(path, arch, run, meta, sha256=digest)
    return run, f"released {arch} network ({path.name}, sha256 {digest[:12]})"
