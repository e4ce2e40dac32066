"""``overfeat regression``: the CI regression gate (``nox -s regression``)::

    overfeat regression                                   # every suite against reports/baselines
    overfeat regression --suite harness --suite synthetic # some suites only
    overfeat regression --subset /data/imagenet-100 --baselines my-baselines --update-baselines \\
        --measure-threads 2,1                             # baselines for your own ImageNet subset
    overfeat regression --update-baselines                # record the current numbers on purpose

Exit status: 0 passed, 1 a metric regressed (each one named), 2 the baselines could not judge a
suite or a flag was wrong.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = ["register"]


def _threads(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        counts = ()
    if len(counts) < 2 or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected two or more distinct thread counts, e.g. 2,1 (the first one's "
            "run becomes the baseline)"
        )
    return counts


def register(subparsers) -> None:
    from overfeat.gate.config import SUITES

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
                   help=f"run this suite only (repeatable): {', '.join(SUITES)}")  # fmt: skip
    p.add_argument("--subset", type=Path, default=None, metavar="PATH",
                   help="an ImageNet subset (any layout overfeat.data reads) for the real-image "
                   "suites instead of ../shared/data; it needs baselines of its own "
                   "(--baselines DIR --update-baselines --measure-threads 2,1)")  # fmt: skip
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
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--workers", type=int, default=1,
                   help="data-loading processes (speed only; default %(default)s)")  # fmt: skip
    p.add_argument("--update-baselines", action="store_true",
                   help="rewrite the baselines with this run's numbers (on purpose) and print "
                   "what changed; tolerances are kept unless --measure-threads is given")  # fmt: skip
    p.add_argument("--measure-threads", type=_threads, default=(), metavar="N,M",
                   help="with --update-baselines: run every suite once per thread count and set "
                   "each tolerance from the spread")  # fmt: skip
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bars (default: bars only on a terminal)")  # fmt: skip
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from overfeat.gate.baselines import BaselineError
    from overfeat.gate.config import SUITES, GateConfig
    from overfeat.gate.run import run_gate

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        config = GateConfig(
            suites=tuple(dict.fromkeys(args.suite)) if args.suite else SUITES,
            subset=args.subset,
            cache=args.cache,
            device=args.device,
            workers=args.workers,
            progress=progress,
            **({"shared_data": args.shared_data} if args.shared_data else {}),
        )
        command = "overfeat " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "overfeat regression"
        outcome = run_gate(
            config, args.baselines, args.reports, update=args.update_baselines,
            measure_threads=args.measure_threads, command=command,
        )  # fmt: skip
    except (BaselineError, ValueError) as exc:
        print(f"regression: {exc}", file=sys.stderr)
        return 2
    return outcome.exit_code
