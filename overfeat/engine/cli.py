"""``overfeat train classifier|regressor|detector|report``: the command line of the training engine.

One process::

    overfeat train classifier --data DATA --arch fast --out runs/fast
    overfeat train regressor --classifier runs/fast --type scr --data DATA --out runs/fast-scr
    overfeat train detector --classifier runs/fast --data DATA --out runs/fast-det

One node with 8 GPUs (the global batch is split over the processes)::

    torchrun --standalone --nproc_per_node 8 -m overfeat train classifier \\
        --data DATA --arch fast --out runs/fast --resume auto
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from overfeat.flags import (
    TRAINING,
    add_amp_flag,
    add_batch_size_flag,
    add_data_flag,
    add_device_flag,
    add_progress_flag,
    add_workers_flag,
    check_flags,
)

__all__ = ["build_config", "build_spatial_config", "register"]


def _recipe_default(field: str, recipes: dict[str, dict], base, per_arch=None) -> str:
    """A training flag's default as the recipes set it, read from them: ``"paper 128, toy 32"``,
    or one value where every recipe agrees (``base``: the config's own defaults; ``per_arch``:
    a recipe's settings for one network)."""

    def text(v) -> str:
        if isinstance(v, tuple):
            return ",".join(str(x) for x in v)
        return f"{v:g}" if isinstance(v, float) else str(v)

    values = {name: recipe.get(field, getattr(base, field)) for name, recipe in recipes.items()}
    by_arch = {
        name: [(arch, d[field]) for arch, d in (per_arch or {}).get(name, {}).items() if field in d]
        for name in recipes
    }
    if len({text(v) for v in values.values()}) == 1 and not any(by_arch.values()):
        return text(next(iter(values.values())))
    return ", ".join(
        f"{name} {text(v)}" + "".join(f" ({arch} {text(x)})" for arch, x in by_arch[name])
        for name, v in values.items()
    )


def _classifier_default(field: str) -> str:
    from overfeat.engine.config import RECIPE_ARCH_OVERRIDES, RECIPES, TrainConfig

    return _recipe_default(field, RECIPES, TrainConfig(), RECIPE_ARCH_OVERRIDES)


def _spatial_default(what: str):
    """``field → its default text`` for ``train regressor`` or ``train detector``."""
    if what == "regressor":
        from overfeat.engine.regressor import REGRESSOR_RECIPES as recipes
        from overfeat.engine.regressor import RegressorConfig as config
    else:
        from overfeat.engine.detector import DETECTOR_RECIPES as recipes
        from overfeat.engine.detector import DetectorConfig as config
    return lambda field: _recipe_default(field, recipes, config())


def _common_run_flags(p: argparse.ArgumentParser, default) -> None:
    """The run-keeping flags every trainer has (``default``: a field's default text)."""
    p.add_argument("--seed", type=int, default=None, help=f"(default: {default('seed')})")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="STEPS",
                   help="also checkpoint every STEPS optimizer steps (default: "
                   f"{default('checkpoint_every')}, at epoch ends only)")  # fmt: skip
    p.add_argument("--keep-checkpoints", type=int, default=None,
                   help=f"the newest checkpoints kept (default: {default('keep_checkpoints')})")
    p.add_argument("--log-every", type=int, default=None, metavar="STEPS",
                   help=f"a metrics.jsonl record every STEPS steps (default: "
                   f"{default('log_every')})")  # fmt: skip
    p.add_argument("--stop-after-steps", type=int, default=None, metavar="STEPS",
                   help="stop after STEPS optimizer steps, as a preemption would (default: "
                   f"{default('stop_after_steps')}, never)")  # fmt: skip
    p.add_argument("--max-train-samples", type=int, default=None,
                   help="a fixed seeded subset of the training images (default: "
                   f"{default('max_train_samples')}, all)")  # fmt: skip


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a network (paper recipe, §3.1)",
        description="Train an OverFeat network. One process by default; under torchrun, "
        "one process per device with DistributedDataParallel.",
    )
    what = train.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = what.add_parser(
        "classifier",
        help="train the fast or accurate classifier on an ILSVRC-layout folder",
        description="Defaults are the paper's recipe (§3.1): SGD momentum 0.6, weight decay "
        "1e-5, batch 128, lr 5e-2 halved after epochs 30, 50, 60, 70, 80, dropout 0.5, "
        "N(0, 1e-2) init, 90 epochs (decision PAPER_EPOCHS). --recipe toy is the small-width "
        "recipe that trains on a CPU in minutes.",
    )
    add_data_flag(p, "its training and validation splits")
    p.add_argument("--arch", choices=("fast", "accurate"), default="fast",
                   help="the network of Table 1 (fast) or Table 3 (accurate)")  # fmt: skip
    p.add_argument("--width", type=float, default=None,
                   help=f"channel multiplier (default: {_classifier_default('width')})")  # fmt: skip
    p.add_argument("--recipe", choices=("paper", "toy"), default="paper",
                   help="the settings every flag below defaults to: §3.1's, or the CPU-sized "
                   "toy recipe (decision TOY_RECIPE)")  # fmt: skip
    _sgd_flags(p, _classifier_default)
    p.add_argument("--lr-milestones", type=_milestones, default=None, metavar="E,E,...",
                   help="epochs after which the rate is halved (default: the paper's 30,50,60,"
                   "70,80; the toy recipe: the same fractions of --epochs, decision "
                   "TOY_SCHEDULE)")  # fmt: skip
    p.add_argument("--dropout", type=float, default=None,
                   help=f"(default: {_classifier_default('dropout')})")  # fmt: skip
    p.add_argument("--init", choices=("normal", "he"), default=None,
                   help="normal: N(0, init-std²) (paper); he: N(0, 2/fan_in) (toy) "
                   f"(default: {_classifier_default('init')})")  # fmt: skip
    p.add_argument("--init-std", type=float, default=None,
                   help=f"(default: {_classifier_default('init_std')})")  # fmt: skip
    add_workers_flag(p, TRAINING)
    p.add_argument("--eval-batch-size", type=int, default=None,
                   help="validation images per process (default: the per-process training "
                   "batch)")  # fmt: skip
    p.add_argument("--out", default=None, help="run directory (default runs/classifier)")
    p.add_argument(
        "--resume",
        default=None,
        metavar="auto|PATH",
        help="'auto': continue from the newest readable checkpoint in --out (start fresh if "
        "none); or a checkpoint file (default: start fresh; an existing run is refused)",
    )
    _common_run_flags(p, _classifier_default)
    p.add_argument("--max-val-samples", type=int, default=None,
                   help="a fixed seeded subset of the validation images (default: all)")  # fmt: skip
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the network")
    add_amp_flag(p, TRAINING)
    p.add_argument("--channels-last", choices=("auto", "yes", "no"), default=None,
                   help="NHWC tensors (default: auto, on CUDA only)")  # fmt: skip
    add_device_flag(p, TRAINING)
    add_progress_flag(p, None)
    p.add_argument("--warmup-epochs", type=float, default=None, metavar="E",
                   help="ramp the learning rate up linearly over the first E epochs (default: 5 "
                   "when the global batch is above 128, else 0; decision WARMUP)")  # fmt: skip
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="reproducible CUDA kernels (slower); the CPU is deterministic anyway")
    p.add_argument("--allreduce", choices=("fp32", "bf16"), default=None,
                   help="gradient all-reduce precision under DDP (default fp32; bf16 halves "
                   "the traffic and rounds every gradient, decision ALLREDUCE_BF16)")  # fmt: skip
    p.add_argument("--loader", choices=("pil", "dali"), default=None,
                   help="training data loader: the project's (default) or NVIDIA DALI "
                   "(pip install 'overfeat-repro[dali]'; GPU JPEG decoding)")  # fmt: skip
    p.set_defaults(func=_run_classifier)

    _register_spatial(what)

    r = what.add_parser(
        "report",
        help="render a run's recorded metrics into reports/training/",
        description="Copy RUN_DIR's metrics.jsonl, config.json, command.txt and "
        "environment.json to OUT as NAME_*, write NAME_epochs.csv and render NAME.md from them.",
    )
    r.add_argument("run_dir", help="a run directory written by 'overfeat train classifier'")
    r.add_argument("--out", default="reports/training", metavar="DIR",
                   help="where the report goes, relative to the current folder")  # fmt: skip
    r.add_argument("--name", default="toy", help="the report files' name")
    r.set_defaults(func=_run_report)


def _milestones(text: str) -> tuple[int, ...]:
    """``--lr-milestones 2,3,4``: non-decreasing epoch numbers ≥ 1."""
    try:
        epochs = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give epochs as E,E,... e.g. 30,50,60") from None
    if any(e < 1 for e in epochs) or list(epochs) != sorted(epochs):
        raise argparse.ArgumentTypeError(f"{text!r}: epochs must be ≥ 1 and in increasing order")
    return epochs


_FIELDS = (
    "data", "out", "arch", "width", "epochs", "lr_milestones", "batch_size", "lr", "momentum",
    "weight_decay",
    "dropout", "init", "init_std", "workers", "eval_batch_size", "seed", "checkpoint_every",
    "keep_checkpoints", "log_every", "stop_after_steps", "max_train_samples", "max_val_samples",
    "compile", "amp", "channels_last", "device", "progress", "warmup_epochs", "deterministic",
    "allreduce", "loader",
)  # fmt: skip


def build_config(args: argparse.Namespace):
    """The ``TrainConfig`` the parsed arguments describe (recipe defaults for what is not given).
    A bad shared flag raises :class:`overfeat.flags.FlagError` (this also runs outside
    ``overfeat.cli.main``: ``reproduce --train`` builds its trainers' configs here)."""
    from overfeat.engine.config import recipe

    check_flags(args)
    return recipe(args.recipe, **{f: getattr(args, f, None) for f in _FIELDS})


def _run_classifier(args: argparse.Namespace) -> int:
    from overfeat.engine.train import TrainingDiverged, train_classifier

    config = build_config(args)
    if not Path(config.data).is_dir():
        print(f"train classifier: --data {config.data}: no such directory; pass an ILSVRC-layout "
              "root (e.g. one written by 'overfeat make-synthetic')", file=sys.stderr)  # fmt: skip
        return 2
    if os.environ.get("RANK", "0") == "0":
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        # Every command that worked on this run, in order (a resume adds a line); torchrun
        # runs this same module, so argv reads the same under it.
        with open(out / "command.txt", "a") as f:
            f.write("overfeat " + shlex.join(sys.argv[1:]) + "\n")
    try:
        result = train_classifier(config, resume=args.resume)
    except (FileExistsError, FileNotFoundError, ValueError, TrainingDiverged) as exc:
        # Set-up problems (bad --data, an existing run, a changed recipe): one line, no traceback.
        print(f"train classifier: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0
    if result.get("status") == "finished" and "val_top5_error" in result:
        print(
            f"epoch {result['epoch']}: val top-1 error {result['val_top1_error']:.4f}, "
            f"top-5 error {result['val_top5_error']:.4f} ({result['val_images']} images)"
        )
    else:
        print(f"{result['status']} at step {result.get('global_step')}")
    return 0


def _sgd_flags(p: argparse.ArgumentParser, default) -> None:
    """§3.1's SGD settings, each defaulting to the recipe's (``default(field)`` says which)."""
    p.add_argument("--epochs", type=int, default=None,
                   help=f"(default: {default('epochs')})")  # fmt: skip
    add_batch_size_flag(p, TRAINING, default("batch_size"))
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate at --batch-size (default: the recipe's at its own batch, "
                   f"{default('lr')}, scaled linearly to --batch-size)")  # fmt: skip
    p.add_argument("--momentum", type=float, default=None,
                   help=f"(default: {default('momentum')})")  # fmt: skip
    p.add_argument("--weight-decay", type=float, default=None,
                   help=f"(default: {default('weight_decay')})")  # fmt: skip


def _spatial_arguments(p: argparse.ArgumentParser, what: str, default) -> None:
    """The flags the regressor and the detector share (overfeat.engine.spatial); ``default``:
    a field's default as the run's recipes set it (:func:`_recipe_default`)."""
    p.add_argument("--classifier", required=True, metavar="RUN_DIR",
                   help="the classifier run to start from (its newest readable checkpoint)")  # fmt: skip
    add_data_flag(p, "its training images with boxes")
    p.add_argument("--out", default=None, help=f"run directory (default runs/{what})")
    p.add_argument("--recipe", choices=("paper", "toy"), default="paper",
                   help="the settings every flag below defaults to (decision "
                   f"{what.upper()}_RECIPE)")  # fmt: skip
    p.add_argument("--scales", default=None, metavar="1,2,...",
                   help="the test scales (Table 5, 1..6) to train at; one per step (default: "
                   f"{default('scales')})")  # fmt: skip
    p.add_argument("--offsets", choices=("fine", "coarse"), default=None,
                   help=f"(default: {default('offsets')})")  # fmt: skip
    _sgd_flags(p, default)
    add_workers_flag(p, TRAINING)
    p.add_argument("--resume", default=None, metavar="auto|PATH",
                   help="'auto': continue from the newest readable checkpoint in --out "
                   "(default: start fresh; an existing run is refused)")  # fmt: skip
    _common_run_flags(p, default)
    add_amp_flag(p, TRAINING)
    add_device_flag(p, TRAINING)
    add_progress_flag(p, None)


def _register_spatial(what) -> None:
    p = what.add_parser(
        "regressor",
        help="train the localization regressor (§4.2) on a classifier's frozen layers 1-5",
        description="Layers 1-5 of the classifier run's newest checkpoint are frozen; an SCR or "
        "PCR regressor learns an l2 loss on every window that overlaps a box by at least half "
        "of the smaller of the two (decision REGRESSOR_OVERLAP_RULE), at the test scales. The "
        "paper gives no optimiser settings for it: --recipe paper and --recipe toy are named "
        "choices (decision REGRESSOR_RECIPE).",
    )
    _spatial_arguments(p, "regressor", _spatial_default("regressor"))
    p.add_argument("--type", dest="kind", choices=("scr", "pcr"), default="scr",
                   help="single-class (one box per window) or per-class regressor")  # fmt: skip
    p.add_argument("--width", type=float, default=None,
                   help="hidden-layer multiplier (default: the classifier's width)")  # fmt: skip
    p.set_defaults(func=_run_regressor, make_config=_regressor_config)

    d = what.add_parser(
        "detector",
        help="fine-tune a classifier run into a detector with a background class (§5)",
        description="The classifier with one more output (background) is fine-tuned on every "
        "window of whole images at the test scales: positives, the most offending and random "
        "negatives per image (decision DETECTOR_RECIPE for the settings the paper omits).",
    )
    default = _spatial_default("detector")
    _spatial_arguments(d, "detector", default)
    d.add_argument("--negatives-random", type=int, default=None, metavar="K",
                   help=f"random background windows per image (default: "
                   f"{default('negatives_random')})")  # fmt: skip
    d.add_argument("--negatives-offending", type=int, default=None, metavar="K",
                   help=f"most offending background windows per image (default: "
                   f"{default('negatives_offending')})")  # fmt: skip
    d.add_argument("--dropout", type=float, default=None,
                   help=f"(default: {default('dropout')})")  # fmt: skip
    d.add_argument("--det-devkit", default=None, metavar="DIR",
                   help="the folder of the devkit's meta_det.mat and meta_clsloc.mat: the "
                   "detector outputs the DET classes its classifier's classes lie under, and "
                   "trains them (decision DET_LABEL_SPACE) (default: looked for beside a DET "
                   "training split, DET_DEVKIT_SEARCH; else the classifier's classes)")  # fmt: skip
    d.set_defaults(func=_run_detector, make_config=_detector_config)


_SPATIAL_FIELDS = (
    "data", "out", "epochs", "batch_size", "lr", "momentum", "weight_decay", "workers", "seed",
    "checkpoint_every", "keep_checkpoints", "log_every", "stop_after_steps",
    "max_train_samples", "amp", "device", "progress", "offsets",
)  # fmt: skip


def _spatial_overrides(args: argparse.Namespace, extra: tuple[str, ...]) -> dict:
    from overfeat.engine.spatial import parse_scales

    given = {f: getattr(args, f, None) for f in (*_SPATIAL_FIELDS, *extra)}
    given["classifier"] = str(Path(args.classifier).resolve())
    if args.scales is not None:
        given["scales"] = parse_scales(args.scales)
    return given


def _run_spatial(args: argparse.Namespace, what: str, make_config, train) -> int:
    from overfeat.engine.train import TrainingDiverged

    try:
        config = make_config(args)
        if not Path(config.data).is_dir():
            raise FileNotFoundError(
                f"--data {config.data}: no such directory; pass an ILSVRC-layout root with "
                "boxed training images (e.g. one written by 'overfeat make-synthetic')"
            )
        result = train(config, resume=args.resume,
                       command="overfeat " + shlex.join(sys.argv[1:]))  # fmt: skip
    except (FileExistsError, FileNotFoundError, ValueError, TrainingDiverged) as exc:
        # Set-up problems (no checkpoint, no boxes, a mismatch, a changed recipe): one line.
        print(f"train {what}: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") != "0":
        return 0
    if result.get("status") == "finished" and "train_loss" in result:
        print(f"epoch {result['epoch']}: train loss {result['train_loss']:.4f} over "
              f"{result['train_windows']} windows of {result['train_images']} images")  # fmt: skip
    else:
        print(f"{result['status']} at step {result.get('global_step')}")
    return 0


def _regressor_config(args: argparse.Namespace):
    from overfeat.engine.regressor import regressor_recipe

    given = _spatial_overrides(args, ("kind", "width"))
    given["out"] = given["out"] or f"runs/regressor-{args.kind}"
    return regressor_recipe(args.recipe, **given)


def _detector_config(args: argparse.Namespace):
    from overfeat.engine.detector import detector_recipe

    given = _spatial_overrides(args, ("negatives_random", "negatives_offending", "dropout",
                                      "det_devkit"))
    given["out"] = given["out"] or "runs/detector"
    return detector_recipe(args.recipe, **given)


def build_spatial_config(argv: list[str]):
    """The ``RegressorConfig`` / ``DetectorConfig`` that ``overfeat ARGV`` would train, for
    ``argv = ["train", "regressor" | "detector", FLAGS...]`` (recipe defaults for what is not
    given). Bad flags raise ``SystemExit`` (argparse), ``ValueError`` or
    :class:`overfeat.flags.FlagError`."""
    from overfeat.cli import build_parser

    args = build_parser().parse_args(list(argv))
    if not hasattr(args, "make_config"):
        raise ValueError(f"{' '.join(argv[:2])}: not 'train regressor' or 'train detector'")
    check_flags(args)
    return args.make_config(args)


def _run_regressor(args: argparse.Namespace) -> int:
    from overfeat.engine.regressor import train_regressor

    return _run_spatial(args, "regressor", _regressor_config, train_regressor)


def _run_detector(args: argparse.Namespace) -> int:
    from overfeat.engine.detector import train_detector

    return _run_spatial(args, "detector", _detector_config, train_detector)


def _run_report(args: argparse.Namespace) -> int:
    from overfeat.engine.report import render_training_report

    md = render_training_report(args.run_dir, args.out, args.name)
    print(f"wrote {md}")
    return 0
