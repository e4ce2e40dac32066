"""The ``overfeat`` command line.

Each sub-command lives beside the code it drives: a module listed in ``COMMANDS`` exposes
``register(subparsers)``, which adds its parser and sets ``func`` (called with the parsed
arguments; its return value is the exit status). The flags commands share (``--data``,
``--device``, ``--amp``, ``--batch-size``, ``--workers``, ``--meta``, ...) come from
:mod:`overfeat.flags`, one dialect for every command; they are checked here, once, before any
command runs, and every command's ``--help`` shows their defaults.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: tuple[str, ...] = (
    "overfeat.engine.cli",  # train
    "overfeat.data.synthetic",  # make-synthetic
    "overfeat.release.classify",  # classify
    "overfeat.release.importer",  # import-release
    "overfeat.reproduce.tables",  # geometry
    "overfeat.reproduce.cli",  # reproduce
    "overfeat.gate.cli",  # regression
    "overfeat.inference_cli",  # localize, detect
)


def build_parser() -> argparse.ArgumentParser:
    from overfeat.flags import DefaultsHelpFormatter

    parser = argparse.ArgumentParser(
        prog="overfeat",
        description="OverFeat (Sermanet et al., ICLR 2014): training, inference and data tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    # Set here for every command rather than in each add_parser call, so that no command's
    # --help can leave its defaults out.
    for p in all_parsers(parser):
        p.formatter_class = DefaultsHelpFormatter
    return parser


def all_parsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command parser under it, depth first."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from all_parsers(sub)


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
