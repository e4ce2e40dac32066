"""The ``overfeat`` command line's one dialect: the flags several commands share, defined here
once and checked here once, and the ``--help`` that shows every default.

A command adds a shared flag with its ``add_*_flag`` function (``--data``, ``--device``,
``--amp``, ``--batch-size``, ``--workers``, ``--no-progress``, ``--meta``, ``--devkit``), naming
the kind of work it does where the default depends on it (:data:`WORK_DEFAULTS`): the flag's
name, choices, help text and default then come from here and nowhere else. A flag renamed to say
what it is keeps its old spelling through :func:`add_deprecated_alias`, which still works and
says so on use. ``overfeat.cli.build_parser`` gives every parser :class:`DefaultsHelpFormatter`.

The flags that can be wrong in ways argparse cannot see (``--device``, ``--meta``, ``--devkit``)
also record a check on the parser. ``overfeat.cli.main`` calls :func:`check_flags` after parsing
and before the command runs: a bad value raises :class:`FlagError`, whose message is one line
naming the flag, what is wrong and the fix, and ``main`` prints it and exits 2, instead of a
traceback from deep inside torch or scipy. The ``--device`` check also turns ``auto`` into
``cuda`` or ``cpu``, so every command receives a device torch takes.

Decision FLAGS_CHECKED_BEFORE_RUN: the checks run after parsing, not as argparse ``type=``
converters, so a command line can still be parsed on a machine that could not run it
(``--device cuda`` parses on a CPU-only machine; ``reproduce all`` re-parses its artifacts'
command lines); they run before any work, so a refused command has read and written nothing.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "add_release_weights_flag",
    "AMP_CHOICES",
    "CLASSIFY",
    "EVALUATION",
    "GATE",
    "SYNTHETIC",
    "TRAINING",
    "WORK_DEFAULTS",
    "DefaultsHelpFormatter",
    "FlagError",
    "WorkDefaults",
    "add_amp_flag",
    "add_batch_size_flag",
    "add_data_flag",
    "add_deprecated_alias",
    "add_device_flag",
    "add_devkit_flag",
    "add_meta_flag",
    "add_progress_flag",
    "add_workers_flag",
    "check_device",
    "check_devkit",
    "check_flags",
    "check_meta",
    "effective_amp",
    "resolve_device",
]

_CHECK_PREFIX = "_check_flag_"
_COMMAND = f"{_CHECK_PREFIX}command"  # the parser's prog, which starts the message
_CUDA = re.compile(r"^cuda(?::(\d+))?$")
_META_HINT = "the CLS-LOC devkit's meta.mat (ILSVRC2012_devkit_t12/data/meta.mat)"


class FlagError(Exception):
    """A flag's value that cannot work: the message names the flag, what is wrong and the fix.

    Not a ``ValueError``: commands turn their own ``ValueError`` into messages of their own, and
    this one must reach ``overfeat.cli.main`` as it is."""


# ------------------------------------------------------------------------------ kinds of work
TRAINING = "training"  # train classifier|regressor|detector
EVALUATION = "evaluation"  # localize, detect, reproduce table2|figure9|detection|all
CLASSIFY = "classify"  # classify: the released tool's single centre crop per image
GATE = "gate"  # regression
SYNTHETIC = "synthetic"  # make-synthetic


@dataclass(frozen=True)
class WorkDefaults:
    """The defaults of one kind of work; ``None``: the kind has no such flag, or (training's
    batch) the recipe's own value."""

    device: str | None
    amp: str | None
    batch_size: int | None
    workers: int | None


# Decision DEFAULTS_BY_WORK: a shared flag's default depends on the kind of work a command does,
# never on the command.
# - training: --device auto, since a training run wants the GPU when there is one; --amp auto
#   (bf16 autocast on CUDA), the precision the GPU recipe is timed in; --batch-size the recipe's
#   global batch (the paper's 128), since the learning rate follows it; --workers 4 loader
#   processes per training process, capped by the CPUs (LOADER_WORKERS_CAPPED).
# - evaluation (the dense protocols) and classify: --device cpu, so that a command's numbers
#   are the float32 CPU reference unless a GPU is asked for; --amp none (float32,
#   REPRODUCE_FLOAT32); --batch-size 16 network inputs or more: 8 images where each becomes 2
#   or more inputs (mirrored at every scale, or Table 2's 10 views), 16 where each is one centre
#   crop (classify); --workers 2 decoding processes (classify decodes in its own process).
#   A batch's size can move a result's last float bits, so these are the sizes the reference
#   numbers were computed at.
# - the regression gate: --device cpu; --workers 1, since its measuring processes run side by
#   side, one per CPU.
# - make-synthetic: --workers 0 (this process renders; the files do not depend on the count).
WORK_DEFAULTS: dict[str, WorkDefaults] = {
    TRAINING: WorkDefaults(device="auto", amp="auto", batch_size=None, workers=4),
    EVALUATION: WorkDefaults(device="cpu", amp="none", batch_size=8, workers=2),
    CLASSIFY: WorkDefaults(device="cpu", amp=None, batch_size=16, workers=None),
    GATE: WorkDefaults(device="cpu", amp=None, batch_size=None, workers=1),
    SYNTHETIC: WorkDefaults(device=None, amp=None, batch_size=None, workers=0),
}


# ---------------------------------------------------------------------------------- --help
class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` with every flag's default: a flag that takes a value and has one gets
    ``(default: VALUE)`` after its help, unless the help already says its default in its own
    words (``(default ...``), as a flag whose absence means something must."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            "(default" in text
            or not action.option_strings
            or action.nargs == 0
            or action.default in (None, argparse.SUPPRESS, "", (), [])
        ):
            return action.help
        return f"{text} (default: %(default)s)"


# ------------------------------------------------------------------------------------ --data
DATA_HELP = (
    "the data set's root folder, in any ILSVRC layout overfeat.data reads (classic, Kaggle, DET)"
)


def add_data_flag(p: argparse.ArgumentParser, use: str, absent: str | None = None) -> None:
    """``--data DIR``: required, or (``absent``: what the command does without it) optional."""
    default = "" if absent is None else f" (default: {absent})"
    p.add_argument("--data", required=absent is None, default=None, metavar="DIR",
                   help=f"{DATA_HELP}: {use}{default}")  # fmt: skip


# ---------------------------------------------------------------------------------- --device
DEVICE_HELP = "a torch device: auto (CUDA when there is one, else cpu), cpu, cuda or cuda:N"


def resolve_device(value: str) -> str:
    """``auto`` → ``cuda`` when torch sees a CUDA device, else ``cpu``; any other value as is."""
    if value != "auto":
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(value: str) -> None:
    """``value`` must be ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and a CUDA device must exist
    on this machine."""
    m = _CUDA.match(value)
    if not (value in ("auto", "cpu") or m):
        raise FlagError(
            f"--device {value}: not a device this command runs on; use --device auto (CUDA when "
            "there is one), --device cpu, or --device cuda (--device cuda:N for GPU N)"
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


def add_device_flag(p: argparse.ArgumentParser, work: str) -> None:
    """``--device``: :data:`DEVICE_HELP`, defaulting by ``work``; checked, and ``auto`` resolved,
    before the command runs."""
    p.add_argument("--device", default=WORK_DEFAULTS[work].device, help=DEVICE_HELP)

    def check(args: argparse.Namespace) -> None:
        check_device(args.device)
        args.device = resolve_device(args.device)

    _record(p, "device", check)


# ------------------------------------------------------------------------------------- --amp
AMP_CHOICES = ("auto", "bf16", "none")
AMP_HELP = (
    "bf16 autocast: auto (on a CUDA device, float32 on the CPU), bf16 (on any device) or none "
    "(float32)"
)


def effective_amp(amp: str, device) -> str:
    """What ``--amp`` means on ``device`` (a torch device or its name): ``"bf16"`` or ``"none"``."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"--amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    on_cuda = str(device).startswith("cuda")
    return "bf16" if amp == "bf16" or (amp == "auto" and on_cuda) else "none"


def add_amp_flag(p: argparse.ArgumentParser, work: str) -> None:
    """``--amp {auto,bf16,none}`` (:func:`effective_amp`), defaulting by ``work``."""
    p.add_argument("--amp", choices=AMP_CHOICES, default=WORK_DEFAULTS[work].amp, help=AMP_HELP)


# ------------------------------------------------------------------------------ --batch-size
BATCH_SIZE_HELP = {
    TRAINING: "the GLOBAL batch over all processes; without --lr the learning rate scales "
    "linearly with it (decision LINEAR_LR_SCALING)",
    EVALUATION: "images per batch, each run mirrored at every scale (or as 10 views)",
    CLASSIFY: "images per batch, each one centre crop",
}


def add_batch_size_flag(p: argparse.ArgumentParser, work: str, default_text: str = "") -> None:
    """``--batch-size N``: :data:`BATCH_SIZE_HELP` for ``work``, defaulting by ``work`` (a
    training run's default is its recipe's, described by ``default_text``)."""
    default = WORK_DEFAULTS[work].batch_size
    text = BATCH_SIZE_HELP[work] + (f" (default: {default_text})" if default_text else "")
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=text)


# --------------------------------------------------------------------------------- --workers
WORKERS_HELP = (
    "processes decoding images (make-synthetic: rendering them) beside this one, 0 for none; a "
    "training run's are per process and capped by the CPUs; speed only, the results do not "
    "depend on it"
)


def add_workers_flag(p: argparse.ArgumentParser, work: str) -> None:
    """``--workers N``: :data:`WORKERS_HELP`, defaulting by ``work``."""
    p.add_argument("--workers", type=int, default=WORK_DEFAULTS[work].workers, metavar="N",
                   help=WORKERS_HELP)  # fmt: skip


# ----------------------------------------------------------------------------- --no-progress
PROGRESS_HELP = (
    "no progress output (default: a bar on a terminal, a line per 10%% of a pass in a log)"
)


def add_progress_flag(p: argparse.ArgumentParser, default: bool | None = True) -> None:
    """``--no-progress``, into ``progress`` (``default``: ``None`` where a recipe decides)."""
    p.add_argument("--no-progress", dest="progress", action="store_false", default=default,
                   help=PROGRESS_HELP)  # fmt: skip


# ---------------------------------------------------------------------------------- aliases
class _DeprecatedAlias(argparse.Action):
    """An old spelling of a flag: stores into the new flag's destination and says so on use."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated and will be removed; use "
              f"{self.new} (the same value)", file=sys.stderr)  # fmt: skip
        setattr(namespace, self.dest, values)


def add_deprecated_alias(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """Keep ``old``, a renamed flag's former spelling, working as ``new`` (added to ``p`` first):
    same destination, type and metavar; a notice on standard error each time it is used."""
    action = next(a for a in p._actions if new in a.option_strings)
    p.add_argument(old, dest=action.dest, type=action.type, metavar=action.metavar,
                   default=argparse.SUPPRESS, action=_DeprecatedAlias, new=new,
                   help=f"deprecated spelling of {new}")  # fmt: skip


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


META_HELP = "the CLS-LOC devkit's meta.mat (or the 2014 kit's meta_clsloc.mat)"


def add_meta_flag(p: argparse.ArgumentParser, use: str, absent: str) -> None:
    """``--meta META_MAT``: :data:`META_HELP`, what the command reads from it (``use``) and what
    it does without it (``absent``); checked: exists, is a MAT file, is not the DET meta, holds
    the 1000 classes."""
    p.add_argument("--meta", default=None, metavar="META_MAT",
                   help=f"{META_HELP}: {use} (default: {absent})")  # fmt: skip

    def check(args: argparse.Namespace) -> None:
        if args.meta is not None:
            check_meta(args.meta)

    _record(p, "meta", check)


# ---------------------------------------------------------------------------- --release-weights
def add_release_weights_flag(p: argparse.ArgumentParser, use: str = "") -> None:
    """``--release-weights DIR``: the released networks, one definition for every reproduction
    that takes them (``use``: what this command does with them)."""
    p.add_argument("--release-weights", default=None, metavar="DIR",
                   help="the released networks (net_weight_0 fast, net_weight_1 accurate)"
                   f"{': ' + use if use else ''} (default: none)")  # fmt: skip


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
                   "folder has none (default: looked for beside --meta, then in --data; "
                   "decision DEVKIT_SEARCH)")  # fmt: skip

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
