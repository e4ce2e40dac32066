"""``--json PATH``, the same on every command that has it: the numbers as one JSON document in
PATH, or on standard output with ``--json -``.

"-" is standard output, as for most command-line tools; the command's table or lines then go to
standard error (:func:`console`), so that what a pipe reads is one JSON document. JSON has no
NaN: a NaN (a class without positives) is written as null.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

__all__ = ["JSON_HELP", "STDOUT", "console", "nan_as_null", "write_json"]

STDOUT = "-"
JSON_HELP = (
    "write the numbers here as JSON ('-': standard output, the table then on standard error)"
)


def nan_as_null(value):
    """``value`` with every NaN float, at any depth of dicts and lists, as ``None``: JSON has no
    NaN (a class without positives has AP NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: nan_as_null(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_as_null(v) for v in value]
    return value


def console(path: str | Path | None):
    """Where a command's table goes: standard error when the JSON takes standard output."""
    return sys.stderr if str(path) == STDOUT else sys.stdout


def write_json(path: str | Path | None, data: dict) -> None:
    """``data`` as JSON to ``path``, standard output for ``-``; nothing when ``path`` is empty."""
    if not path:
        return
    text = json.dumps(nan_as_null(data), indent=2) + "\n"
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        Path(path).write_text(text, encoding="utf-8")
