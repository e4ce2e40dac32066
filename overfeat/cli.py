"""The ``overfeat`` command line.

Each sub-command lives beside the code it drives: a module listed in ``COMMANDS`` exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments; its return value is the exit status). The flags commands share (``--device``,
``--meta``, ``--devkit``) come from :mod:`overfeat.flags`, and are checked here, once, before any
command runs.
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
    from overfeat.flags import FlagError, check_flags

    args = build_parser().parse_args(argv)
    try:
        check_flags(args)
        return int(args.func(args) or 0)
    except FlagError as exc:
        # Raised before any work starts (here, or where a command parses flags of another, as
        # `reproduce table2 --train` does): one line with the fix, no traceback.
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
