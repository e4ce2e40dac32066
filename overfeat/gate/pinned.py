"""Pinned networks: what the gate's inference metrics are measured on.

Decision GATE_PINNED_NETWORKS. A training run is chaotic: a last-bit difference between two CPUs'
kernels (another summation order, AVX-512 against AVX2) grows, step by step, into another
network, and on det-synthetic into a detector whose mAP moved 3.5× between kernel sets of one
machine. Dense evaluation, voting, decoding, the merge and the harness are near-exact on a fixed
network. So the gate judges the two apart:

- each suite still trains its networks from scratch, and judges *training* by the trained
  networks' own numbers (losses, the engine's validation error), with tolerances measured across
  kernel sets and thread counts (TOLERANCE_FROM_PERTURBATIONS);
- it judges the *pipeline after training* (Table 2's protocols, Figure 9's localization,
  detection) on pinned networks: networks of the same recipe, trained once by
  ``overfeat regression --pin`` and stored under ``<baselines>/pinned/``, so that a fault in
  inference moves a metric whose tolerance is the metric's resolution, whatever the training
  noise.

A pinned file holds the network's weights rounded to float16, its model configuration, and what it
was pinned from. The network *is* those float16 values, widened to float32 when loaded, so every
machine loads the same bits (float32 files would be twice the size for nothing the gate reads:
about 4.5 MB for a toy fast network, 4.9 MB for its SCR regressor). A baseline records the sha256
of every pinned file its metrics came from, and is refused against another (``settings``).

Kinds: ``classifier`` (an :class:`~overfeat.models.OverFeat`), ``detector`` (the same with the
background class index), ``regressor`` (a :class:`~overfeat.regression.BoxRegressor`, with the
name of the pinned classifier or detector whose layers 1–5 it reads).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "PINNED_DTYPE",
    "Pinned",
    "PinnedMissing",
    "load_pinned",
    "pin",
    "pinned_path",
]

PINNED_DTYPE = torch.float16
KINDS = ("classifier", "detector", "regressor")


class PinnedMissing(FileNotFoundError):
    """A suite's pinned network is not there; the message names the file and the command that
    writes it."""


@dataclass(frozen=True)
class Pinned:
    """A loaded pinned network: ``module`` in eval mode (float32), ``sha256`` of its file,
    ``background`` the detector's background index (else ``None``), ``source`` what it was pinned
    from (free text, for the baselines' README)."""

    name: str
    kind: str
    module: nn.Module
    sha256: str
    background: int | None = None
    source: str = ""


def pinned_path(folder: Path, name: str) -> Path:
    return Path(folder) / f"{name}.pt"


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pin(
    folder: Path,
    name: str,
    kind: str,
    module: nn.Module,
    source: str,
    *,
    background: int | None = None,
    reads: str | None = None,
) -> Path:
    """Write ``module`` as the pinned network ``name`` (``kind`` one of :data:`KINDS`); a
    regressor names the pinned network it ``reads``. Returns the file."""
    from overfeat.models import OverFeat
    from overfeat.regression import BoxRegressor

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "regressor":
        if not isinstance(module, BoxRegressor) or reads is None:
            raise ValueError("a pinned regressor is a BoxRegressor and names the network it reads")
        config = {"kind": module.kind, "num_classes": module.num_classes, "width": module.width}
    else:
        if not isinstance(module, OverFeat):
            raise ValueError(f"a pinned {kind} is an OverFeat network")
        if (kind == "detector") != (background is not None):
            raise ValueError("a detector, and only a detector, has a background index")
        config = dict(module.config)
    state = {k: v.detach().to("cpu", PINNED_DTYPE).clone() for k, v in module.state_dict().items()}
    path = pinned_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.partial")
    torch.save({"name": name, "kind": kind, "config": config, "state": state, "source": source,
                "background": background, "reads": reads}, tmp)  # fmt: skip
    tmp.replace(path)
    return path


def load_pinned(folder: Path, name: str, reads: nn.Module | None = None) -> Pinned:
    """The pinned network ``name`` of ``folder``; a regressor needs the network it ``reads``
    (loaded first with this function). A missing file is :class:`PinnedMissing`."""
    from overfeat.models import build_model
    from overfeat.regression import BoxRegressor

    path = pinned_path(folder, name)
    if not path.is_file():
        raise PinnedMissing(
            f"{path}: no pinned network {name!r} (the gate measures inference on pinned networks, "
            "decision GATE_PINNED_NETWORKS); write them with 'overfeat regression --pin "
            f"--update-baselines --baselines {Path(folder).parent}' or restore the folder from git"
        )
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") not in KINDS or blob.get("name") != name:
        raise ValueError(f"{path}: not a pinned network named {name!r}; pin it again with --pin")
    if blob["kind"] == "regressor":
        if reads is None:
            raise ValueError(f"{path}: a pinned regressor needs the network it reads "
                             f"({blob['reads']!r})")  # fmt: skip
        cfg = blob["config"]
        module = BoxRegressor(reads.spec, cfg["kind"], int(cfg["num_classes"]), float(cfg["width"]))
    else:
        module = build_model(**blob["config"])
    state = {k: v.to(torch.float32) for k, v in blob["state"].items()}
    module.load_state_dict(state)
    return Pinned(name, blob["kind"], module.eval(), _digest(path), blob.get("background"),
                  blob.get("source", ""))  # fmt: skip
