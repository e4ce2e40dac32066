"""Tables 4 and 5 regenerated from the layer arithmetic, beside the paper's values.

Table 4 (parameters, connections) and Table 5 (the six scales and their map sizes) follow from
the networks' specifications alone (:mod:`overfeat.geometry`) and the chosen scales
(:mod:`overfeat.scales`, an input to the printout); the paper's printed values come from
``evaluation/paper_tables``. Also the ``overfeat geometry`` command, which prints both.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pandas as pd

from evaluation.paper import table4_rows, table5_rows
from overfeat.geometry import (
    connections,
    format_table4,
    format_table5,
    output_stride,
    parameter_count,
    receptive_field,
    table5_row,
    total_stride,
)
from overfeat.models import ARCHS
from overfeat.scales import scale_sizes

__all__ = ["register", "table4_frame", "table5_frame", "write_table"]


def _x(size) -> str:
    return f"{size[0]}x{size[1]}"


def table4_frame() -> pd.DataFrame:
    """Table 4: one row per network, reproduced counts beside the paper's (millions)."""
    rows = []
    for arch in ("fast", "accurate"):
        spec = ARCHS[arch]
        paper = table4_rows()[arch]
        params = sum(parameter_count(spec).values())
        weights = sum(connections(spec).values())
        biases = sum(connections(spec, include_bias=True).values())
        paper_conn = float(paper["connections_millions"])
        rows.append(
            {
                "model": arch,
                "parameters": params,
                "parameters_millions": round(params / 1e6, 2),
                "paper_parameters_millions": float(paper["parameters_millions"]),
                "connections_millions": round(weights / 1e6, 1),
                "connections_with_biases_millions": round(biases / 1e6, 1),
                "paper_connections_millions": paper_conn,
                "delta_connections_percent": round(100 * (biases / 1e6 - paper_conn) / paper_conn, 2),
                "input": f"{spec.input_size}x{spec.input_size}",
            }
        )
    return pd.DataFrame(rows)


def table5_frame() -> pd.DataFrame:
    """Table 5 for both networks at fine stride; the paper's printed row beside the accurate
    network's (the table follows the accurate geometry, FACTS §3)."""
    rows = []
    for arch in ("accurate", "fast"):
        spec = ARCHS[arch]
        for scale, size in enumerate(scale_sizes(spec), start=1):
            r = table5_row(spec, size, "fine")
            d = r["offset_grid"][0]
            ours = {
                "input": _x(r["input"]),
                "layer5_pre_pool": _x(r["layer5"]),
                "layer5_post_pool": f"({_x(r['post_pool'])})x({d}x{d})",
                "classifier_map_pre_reshape": f"({_x(r['classifier'])})x({d}x{d})xC",
                "classifier_map": f"{_x(r['output'])}xC",
            }
            row = {"model": arch, "scale": scale, **ours}
            if arch == "accurate":
                paper = table5_rows()[scale]
                differs = [k for k in ours if ours[k] != paper[k]]
                row["paper"] = " | ".join(paper[k] for k in ours)
                row["matches_paper"] = "yes" if not differs else "no: " + ", ".join(differs)
            else:
                row["paper"] = "(the paper gives no table for the fast network)"
                row["matches_paper"] = "n/a"
            row["outputs_per_flip"] = r["output"][0] * r["output"][1]
            rows.append(row)
    return pd.DataFrame(rows)


NOTES = {
    "table4": [
        "Parameters are exact (the released weight files hold 145,920,872 and 144,656,488 "
        "floats). Connections are multiply-accumulates at the training input size; the paper "
        "does not state its convention, and neither counting closes the 0.2-0.3% gap.",
    ],
    "table5": [
        "Fine stride. Row 5 of the printed table is a typo in its middle columns (FACTS §3): the "
        "arithmetic, and the table's own 18x24, give 32x38 / (10x12) / (6x8).",
        "Fast-network scales: each side is the tiling size nearest Table 5's (decision "
        "FAST_SCALE_RULE).",
    ],
}


def write_table(name: str, reports: str | Path, command: str = "") -> Path:
    """Write ``reports/<name>/reproduced.csv`` and ``.json`` for ``table4`` or ``table5``."""
    from overfeat.reproduce.runner import write_run

    frame = {"table4": table4_frame, "table5": table5_frame}[name]()
    meta = {
        "data_description": "none: the layer arithmetic of overfeat.models",
        "networks_description": "fast (Table 1) and accurate (Table 3) at full width",
        "command": command,
        "created": date.today().isoformat(),
        "notes": NOTES[name],
    }
    return write_run(reports, name, "reproduced", frame, meta)


# ----------------------------------------------------------------------------- overfeat geometry


def _run_geometry(args: argparse.Namespace) -> int:
    for name in args.arch:
        spec = ARCHS[name]
        print(format_table4(spec))
        print(
            f"  total stride {total_stride(spec)}, fine output stride {output_stride(spec)}, "
            f"window {receptive_field(spec)}, receptive field with padding context "
            f"{receptive_field(spec, padding_context=True)}"
        )
        for offsets in ("fine", "coarse"):
            print(format_table5(spec, list(scale_sizes(spec)), offsets))
        print()
    return 0


def register(subparsers) -> None:
    """``overfeat geometry [--arch fast accurate]``: Tables 4 and 5 from the layer arithmetic."""
    p = subparsers.add_parser(
        "geometry", help="print Tables 4 and 5 recomputed from the layer arithmetic"
    )
    p.add_argument("--arch", nargs="+", choices=sorted(ARCHS), default=["fast", "accurate"],
                   help="the networks whose tables are printed (default: fast accurate)")  # fmt: skip
    p.set_defaults(func=_run_geometry)
