"""The paper's own numbers, as data (Sermanet et al. 2014, arXiv:1312.6229v4).

Three files in ``evaluation/paper_tables/``, each row with its source:

- ``reported.csv``: every number the paper reports (Table 2, Figures 4, 9, 10, 11), one row per
  number, with the page it was read from and its cross-checks;
- ``table4.csv``: Table 4, parameters and connections in millions (p.16);
- ``table5.csv``: Table 5, the six test scales and their map sizes (p.16), verbatim, typo included.

Nothing here is computed; reports put these numbers beside the reproduced ones.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "PAPER_TABLES",
    "Table2Row",
    "figure9_rows",
    "read_reported",
    "table2_rows",
    "table4_rows",
    "table5_rows",
]

PAPER_TABLES = Path(__file__).resolve().parent / "paper_tables"


def _read_csv(name: str) -> list[dict[str, str]]:
    with open(PAPER_TABLES / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@cache
def read_reported() -> tuple[dict[str, str], ...]:
    """Every row of ``reported.csv`` (columns: artifact, row_id, description, model, scales,
    stride, regression, metric, split, value_percent, source)."""
    return tuple(_read_csv("reported.csv"))


@dataclass(frozen=True)
class Table2Row:
    """One row of Table 2 (p.7): ``row`` is ``T2-1`` … ``T2-9``; errors in percent."""

    row: str
    description: str
    top1_error: float
    top5_error: float
    source: str


@cache
def table2_rows() -> dict[str, Table2Row]:
    """Table 2's nine rows keyed ``T2-1`` … ``T2-9``, in the paper's order."""
    values: dict[str, dict[str, str]] = {}
    for r in read_reported():
        if r["artifact"] != "Table 2":
            continue
        row, _, metric = r["row_id"].rpartition("-")
        entry = values.setdefault(row, {"description": r["description"], "source": r["source"]})
        entry[metric] = r["value_percent"]
    return {
        row: Table2Row(row, v["description"], float(v["top1"]), float(v["top5"]), v["source"])
        for row, v in values.items()
    }


@cache
def table4_rows() -> dict[str, dict[str, str]]:
    """Table 4 keyed by model (``Krizhevsky``, ``fast``, ``accurate``); values in millions,
    ``connections_millions`` empty where the paper prints "-"."""
    return {r["model"]: r for r in _read_csv("table4.csv")}


@cache
def table5_rows() -> dict[int, dict[str, str]]:
    """Table 5 keyed by scale 1..6, the printed strings (row 5 holds the paper's typo)."""
    return {int(r["scale"]): r for r in _read_csv("table5.csv")}


@cache
def figure9_rows() -> dict[str, float]:
    """Figure 9's six bars (p.12, top-5 localization error in percent on ILSVRC2012 validation),
    keyed ``F9-1`` … ``F9-6`` as in ``reported.csv``."""
    return {
        r["row_id"]: float(r["value_percent"])
        for r in read_reported()
        if r["artifact"] == "Figure 9"
    }
