"""The run's metrics as JSON lines (``metrics.jsonl``), written by rank 0 only.

Each line is one record: ``{"kind": "train", "epoch", "global_step", "loss", "lr", ...}`` every
``log_every`` steps, ``{"kind": "epoch", ...}`` with the epoch's training and validation metrics.
Every record carries ``global_step``; on resume from step S the records after S (written by the
interrupted run after its last checkpoint) are dropped, so a resumed run's log equals an
uninterrupted run's log line for line.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["MetricsLog", "read_metrics"]


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no NaN/inf; keep them visible as strings
    return value


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _from_plain(value):
    """Inverse of ``_plain``: the strings it writes for NaN and ±inf become floats again."""
    return _NONFINITE.get(value, value) if isinstance(value, str) else value


class MetricsLog:
    """Append-only JSONL log; a no-op on ranks other than 0 (``enabled=False``)."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def rewind(self, global_step: int, unfinished_epoch: int | None = None) -> None:
        """Keep only records with ``global_step <= global_step`` (resume); start empty at 0.

        ``unfinished_epoch``: the epoch the checkpoint was taken in (its ``progress["epoch"]``);
        ``"epoch"`` records of it or later are dropped too. A checkpoint at an epoch's last step
        precedes that epoch's validation and record, which share its ``global_step``: a run
        killed between them resumes from that checkpoint and writes the record again.
        """
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [
            r
            for r in read_metrics(self.path)
            if r["global_step"] <= global_step
            and not (
                unfinished_epoch is not None
                and r.get("kind") == "epoch"
                and r.get("epoch", -1) >= unfinished_epoch
            )
        ]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            for r in kept:
                f.write(json.dumps(r) + "\n")
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a log; a torn last line (killed mid-write) is ignored, others must parse."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append({k: _from_plain(v) for k, v in json.loads(line).items()})
        except json.JSONDecodeError as e:
            if i == len(lines):
                break
            raise ValueError(f"{path}:{i}: not JSON ({e}); the metrics log is damaged") from e
    return out
