"""Flags several ``overfeat`` commands share (``--device``, ``--meta``, ``--devkit``): defined here
once, and checked here once.

A command adds them with :func:`add_device_flag`, :func:`add_meta_flag` and
:func:`add_devkit_flag`; each also records its check on the parser. ``overfeat.cli.main`` calls
:func:`check_flags` after parsing and before the command runs: a bad value raises
:class:`FlagError`, whose message is one line naming the flag, what is wrong and the fix, and
``main`` prints it and exits 2, instead of a traceback from deep inside torch or scipy.

Decision FLAGS_CHECKED_BEFORE_RUN: the checks run after parsing, not as argparse ``type=``
converters, so a command line can still be parsed on a machine that could not run it
(``--device cuda`` parses on a CPU-only machine; ``reproduce all`` re-parses its artifacts'
command lines); they run before any work, so a refused command has read and written nothing.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

__all__ = [
    "FlagError",
    "add_device_flag",
    "add_devkit_flag",
    "add_meta_flag",
    "check_device",
    "check_devkit",
    "check_flags",
    "check_meta",
]

_CHECK_PREFIX = "_check_flag_"
_COMMAND = f"{_CHECK_PREFIX}command"  # the parser's prog, which starts the message
_CUDA = re.compile(r"^cuda(?::(\d+))?$")
_META_HINT = "the CLS-LOC devkit's meta.mat (ILSVRC2012_devkit_t12/data/meta.mat)"


class FlagError(Exception):
    """A flag's value that cannot work: the message names the flag, what is wrong and the fix.

    Not a ``ValueError``: commands turn their own ``ValueError`` into messages of their own, and
    this one must reach ``overfeat.cli.main`` as it is."""


# ------------------------------------------------------------------------------------ --device
def check_device(value: str, *, auto: bool = False, index: bool = True) -> None:
    """``value`` must be ``cpu``, ``cuda`` or ``cuda:N`` (``index``), or ``auto`` (``auto``), and
    a CUDA device must exist on this machine."""
    m = _CUDA.match(value)
    if not (value == "cpu" or (auto and value == "auto") or (m and (index or m[1] is None))):
        forms = [
            "--device cpu",
            "--device cuda" + (" (--device cuda:N for GPU N)" if index else ""),
        ]
        if auto:
            forms.insert(0, "--device auto (a GPU when there is one)")
        raise FlagError(
            f"--device {value}: not a device this command runs on; use {', or '.join(forms)}"
        )
    if m is None:
        return
    import torch

    if not torch.cuda.is_available():
        raise FlagError(
            f"--device {value}: there is no CUDA device here (torch {torch.__version__} sees "
            "none); run with --device cpu"
        )
    count = torch.cuda.device_count()
    if m[1] is not None and int(m[1]) >= count:
        raise FlagError(
            f"--device {value}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}; pass one of them"
        )


def add_device_flag(
    p: argparse.ArgumentParser, default: str | None = "cpu", *, auto: bool = False,
    index: bool = True, help: str | None = None,
) -> None:  # fmt: skip
    """``--device``: ``cpu`` or ``cuda[:N]`` (``index``), and ``auto`` where the command picks."""
    forms = "/".join((*(("auto",) if auto else ()), "cpu", "cuda[:N]" if index else "cuda"))
    p.add_argument("--device", default=default, help=help or f"{forms} (default {default})")

    def check(args: argparse.Namespace) -> None:
        if args.device is not None:
            check_device(args.device, auto=auto, index=index)

    _record(p, "device", check)


# -------------------------------------------------------------------------------------- --meta
def _mat_header(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(128)


def check_meta(value: str | Path) -> None:
    """``value`` must be the CLS-LOC devkit meta (meta.mat, or the 2014 kit's meta_clsloc.mat)."""
    from evaluation.labels import ClassLabels, DetLabels

    path = Path(value).expanduser()
    if path.is_dir():
        candidates = (path / "meta.mat", path / "data" / "meta.mat")
        inside = next((p for p in candidates if p.is_file()), None)
        fix = f"pass {inside}" if inside else f"pass {_META_HINT}"
        raise FlagError(f"--meta {value}: a folder, not the meta file; {fix}")
    if not path.is_file():
        raise FlagError(f"--meta {value}: no such file; pass {_META_HINT}")
    # MAT v5 and v7.3 files start with a text header; a v4 file has none but no devkit uses it.
    if not _mat_header(path).startswith(b"MATLAB"):
        raise FlagError(
            f"--meta {value}: not a MAT file (a {path.suffix or 'extensionless'} file); pass "
            f"{_META_HINT}"
        )
    try:
        ClassLabels.from_devkit_meta(path)
    except ValueError as exc:
        try:
            DetLabels.from_devkit_meta(path)
        except ValueError:
            raise FlagError(f"--meta {exc}; pass {_META_HINT}") from None
        raise FlagError(
            f"--meta {value}: the DET meta (200 detection classes, meta_det.mat), not the 1000 "
            f"CLS-LOC classes; pass {_META_HINT}, or the 2014 kit's meta_clsloc.mat"
        ) from None


def add_meta_flag(p: argparse.ArgumentParser, help: str) -> None:
    """``--meta META_MAT``: the CLS-LOC devkit meta (checked: exists, is a MAT file, is not the DET
    meta, holds the 1000 classes)."""
    p.add_argument("--meta", default=None, metavar="META_MAT", help=help)

    def check(args: argparse.Namespace) -> None:
        if args.meta is not None:
            check_meta(args.meta)

    _record(p, "meta", check)


# ------------------------------------------------------------------------------------ --devkit
def check_devkit(value: str | Path) -> None:
    """``value`` must be a folder holding the devkit's validation ground truth where the readers
    look (:func:`overfeat.data.readers.devkit_ground_truth_in`)."""
    from overfeat.data.readers import devkit_ground_truth_in

    path = Path(value).expanduser()
    if not path.is_dir():
        raise FlagError(
            f"--devkit {value}: no such folder; pass the unpacked ILSVRC2012_devkit_t12 (the "
            "folder holding data/ILSVRC2012_validation_ground_truth.txt)"
        )
    if devkit_ground_truth_in(path) is None:
        raise FlagError(
            f"--devkit {value}: no ILSVRC2012_validation_ground_truth.txt in it, its data/, "
            "ILSVRC2012_devkit_t12/data/ or ILSVRC2014_devkit/data/; pass the unpacked "
            "ILSVRC2012_devkit_t12 (or the folder holding that file)"
        )


def add_devkit_flag(p: argparse.ArgumentParser) -> None:
    """``--devkit DIR``: where the devkit was unpacked, for a flat ``val/`` without other labels."""
    p.add_argument("--devkit", default=None, metavar="DIR",
                   help="the unpacked ILSVRC2012 devkit (or a folder holding its "
                   "ILSVRC2012_validation_ground_truth.txt): labels a flat val/ when the data "
                   "folder has none")  # fmt: skip

    def check(args: argparse.Namespace) -> None:
        if args.devkit is not None:
            check_devkit(args.devkit)

    _record(p, "devkit", check)


# ------------------------------------------------------------------------------------ checking
def check_flags(args: argparse.Namespace) -> None:
    """Run the check of every flag this module added to the parsed command; the first bad value
    raises :class:`FlagError`, its message starting with the command (``overfeat train
    classifier: --device gpu: ...``)."""
    for name, check in sorted(vars(args).items()):
        if name.startswith(_CHECK_PREFIX) and name != _COMMAND:
            try:
                check(args)
            except FlagError as exc:
                raise FlagError(f"{getattr(args, _COMMAND, 'overfeat')}: {exc}") from None


def _record(p: argparse.ArgumentParser, flag: str, check) -> None:
    p.set_defaults(**{f"{_CHECK_PREFIX}{flag}": check, _COMMAND: p.prog})
