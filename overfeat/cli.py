"""The ``overfeat`` command line.

Each sub-command lives beside the code it drives: a module listed in ``COMMANDS`` exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments; its return value is the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: tuple[str, ...] = (
    "overfeat.engine.cli",  # train
    "overfeat.data.synthetic",  # make-synthetic
    "overfeat.release.classify",  # classify
    "overfeat.reproduce.tables",  # geometry
    "overfeat.reproduce.cli",  # reproduce
    "overfeat.gate.cli",  # regression
    "overfeat.inference_cli",  # localize, detect
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="overfeat",
        description="OverFeat (Sermanet et al., ICLR 2014): training, inference and data tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
