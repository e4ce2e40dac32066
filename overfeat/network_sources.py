"""Where a network comes from, named before it is loaded: trained runs or the released weights.

A :class:`NetworkRef` names one network without loading it (a full-size network is 580 MB; an
ensemble row loads its members only while it runs). Two sources, both used by the inference
commands (``overfeat localize``) and by the reproductions:

- :func:`from_checkpoints`: run folders written by ``overfeat train classifier``;
- :func:`from_release`: the originally released fast and accurate networks (one of each).

Every problem a user can cause (a missing folder, the wrong architecture, the wrong number of
classes, release files of the wrong size) stops the run before any image is read, with a
:class:`SourceError` that names the flag and the fix. Training what is missing is the
reproductions' own (:mod:`overfeat.reproduce.networks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

__all__ = [
    "NetworkRef",
    "SourceError",
    "checked_run",
    "from_checkpoints",
    "from_release",
    "parse_checkpoints",
]


class SourceError(ValueError):
    """A network source the user pointed at cannot serve this reproduction."""


@dataclass(frozen=True)
class NetworkRef:
    """One network, not loaded: ``key`` names where it comes from (``"<run folder>:<checkpoint
    file>"``, or the weight file), ``label`` describes it in reports, ``load()`` builds it on the
    CPU in eval mode with outputs in the data set's sorted-WNID order, ``files`` are every file
    ``load()`` reads (a reproduction keys its caches by their content,
    :func:`overfeat.reproduce.content.network_identity`)."""

    arch: str
    key: str
    label: str
    full_size: bool
    load: Callable[[], nn.Module] = field(compare=False, repr=False)
    files: tuple[Path, ...] = ()


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


def checked_run(run_dir: Path, arch: str, num_classes: int, flag: str) -> NetworkRef:
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
        arch: [checked_run(Path(d), arch, num_classes, "--checkpoints") for d in dirs]
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
