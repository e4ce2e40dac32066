"""``overfeat regression``: the CI regression gate (``nox -s regression``)::

    overfeat regression                                   # every suite against reports/baselines
    overfeat regression --suite harness --suite synthetic # some suites only
    overfeat regression --subset /data/imagenet-100 --baselines my-baselines --update-baselines \\
        --measure                                         # baselines for your own ImageNet subset
    overfeat regression --update-baselines                # record the current numbers on purpose
    overfeat regression --update-baselines --measure default-2t,default-1t,avx2-1t

``--measure [LIST]`` runs every suite once per perturbation (a CPU kernel set and a thread count,
:mod:`overfeat.gate.perturb`), each in a child process started with the hidden ``--emit-results
FILE``, which writes the child's results and the kernels torch chose there as JSON.

Exit status: 0 passed, 1 a metric regressed (each one named), 2 the baselines could not judge a
suite or a flag was wrong.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from overfeat.flags import GATE, add_device_flag, add_workers_flag

__all__ = ["register"]


def _perturbations(text: str):
    from overfeat.gate.perturb import parse_perturbations

    try:
        return parse_perturbations(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    from overfeat.gate.config import SUITES
    from overfeat.gate.perturb import DEFAULT_PERTURBATIONS

    p = subparsers.add_parser(
        "regression",
        help="the CI regression gate: the whole pipeline on real images vs committed baselines",
        description="Run the gate's suites (harness: the devkits' own files; pretrained-real: "
        "EfficientNet-Lite0 on ilsvrc2012-val-mini; train-real: a toy network trained on "
        "imagenette-10, then Table 2 rows T2-2/3/4; synthetic: the embedded default at its "
        "smallest; loc-real: an SCR regressor on train-real's network, Figure 9 rows on "
        "imagenette-10's boxed validation images; det-synthetic: a detector and its regressor "
        "on synthetic DET images), compare every metric with reports/baselines/*.json and write the table to "
        "reports/regression/. Exits 1 naming each metric that regressed.",
    )
    p.add_argument("--suite", action="append", choices=SUITES, default=None, metavar="NAME",
                   help=f"run this suite only (repeatable): {', '.join(SUITES)} (default: "
                   "every suite)")  # fmt: skip
    p.add_argument("--subset", type=Path, default=None, metavar="PATH",
                   help="an ImageNet subset (any layout overfeat.data reads) for the real-image "
                   "suites instead of ../shared/data; it needs baselines of its own "
                   "(--baselines DIR --update-baselines --measure) (default: none)")  # fmt: skip
    p.add_argument("--shared-data", type=Path, default=None, metavar="DIR",
                   help="the folder holding ilsvrc-devkit/, ilsvrc2012-val-mini/, imagenette-10/ "
                   "(default $OVERFEAT_SHARED_DATA or ../shared/data)")  # fmt: skip
    p.add_argument("--baselines", type=Path, default=Path("reports/baselines"), metavar="DIR",
                   help="baseline files, one per suite (default %(default)s)")  # fmt: skip
    p.add_argument("--reports", type=Path, default=Path("reports/regression"), metavar="DIR",
                   help="where the table goes (default %(default)s)")  # fmt: skip
    p.add_argument("--cache", type=Path, default=Path("runs/regression"), metavar="DIR",
                   help="trained networks and data, reused by configuration; delete it to "
                   "retrain after changing the training engine (default %(default)s)")  # fmt: skip
    add_device_flag(p, GATE)
    add_workers_flag(p, GATE)
    p.add_argument("--update-baselines", action="store_true",
                   help="rewrite the baselines with this run's numbers (on purpose) and print "
                   "what changed; tolerances are kept unless --measure is given")  # fmt: skip
    default = ",".join(x.name for x in DEFAULT_PERTURBATIONS)
    p.add_argument("--measure", type=_perturbations, nargs="?", const=default, default=(),
                   metavar="LIST",
                   help="with --update-baselines: run every suite once per perturbation, each in "
                   "its own process with its own training, and set each tolerance from the "
                   "spread; LIST is KERNELS-Nt,... (kernel sets default, avx2, avx512 where the CPU "
                   "has them; N threads), "
                   f"the first one's run the baseline (default {default})")  # fmt: skip
    p.add_argument("--pin", action="store_true",
                   help="with --update-baselines: write the networks this run trains to the "
                   "pinned folder first; the suites' inference metrics are measured on them "
                   "(decision GATE_PINNED_NETWORKS)")  # fmt: skip
    p.add_argument("--pinned", type=Path, default=None, metavar="DIR",
                   help="the pinned networks (default: pinned/ in the baselines folder)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch threads for this run (default: torch's own choice)")  # fmt: skip
    # A measuring child's side of --measure: its results and process facts as JSON, no table.
    p.add_argument("--emit-results", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bars (default: bars only on a terminal)")  # fmt: skip
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from overfeat.gate.baselines import BaselineError
    from overfeat.gate.config import SUITES, GateConfig
    from overfeat.gate.perturb import MeasurementFailed, emit_results
    from overfeat.gate.run import measure_suites, run_gate

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.threads is not None:
        if args.threads < 1:
            print(f"regression: --threads {args.threads}: expected 1 or more", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    if args.emit_results is not None and (args.update_baselines or args.measure):
        print("regression: --emit-results is a measuring child's output and judges nothing; "
              "drop --update-baselines and --measure", file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = GateConfig(
            suites=tuple(dict.fromkeys(args.suite)) if args.suite else SUITES,
            subset=args.subset,
            cache=args.cache,
            device=args.device,
            workers=args.workers,
            progress=progress,
            pinned=args.pinned if args.pinned else args.baselines / "pinned",
            pin=args.pin,
            **({"shared_data": args.shared_data} if args.shared_data else {}),
        )
        if args.emit_results is not None:
            emit_results(args.emit_results, measure_suites(config))
            return 0
        command = "overfeat " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "overfeat regression"
        outcome = run_gate(
            config, args.baselines, args.reports, update=args.update_baselines,
            measure=args.measure, command=command,
        )  # fmt: skip
    except (BaselineError, MeasurementFailed, ValueError) as exc:
        print(f"regression: {exc}", file=sys.stderr)
        return 2
    return outcome.exit_code
