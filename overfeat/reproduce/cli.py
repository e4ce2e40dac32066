"""``overfeat reproduce table2|table4|table5|report``: the paper's artifacts, regenerated.

With no arguments, ``table2`` runs on the embedded default (a synthetic ILSVRC-format set and
toy networks trained on this machine, cached under ``runs/reproduce``)::

    overfeat reproduce table2
    overfeat reproduce table2 --data /data/imagenet --release-weights DIR --meta t12/meta.mat
    overfeat reproduce table2 --data DIR --checkpoints fast=RUN1,RUN2 accurate=RUN3
    overfeat reproduce table2 --data DIR --members 3 --train --recipe toy --epochs 8

Flags after ``--train`` are ``overfeat train classifier``'s, for the networks it trains.
Reports go to ``reports/<artifact>/``; ``report`` re-renders every one of them (and the README's
generated blocks with ``--readme``) from the saved CSV/JSON without running a network.
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["register"]


def _rows(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def _members(text: str) -> dict[str, int]:
    """``"2"`` → both kinds 2; ``"fast=2,accurate=1"`` → per kind."""
    try:
        if "=" not in text:
            return {"fast": int(text), "accurate": int(text)}
        out = {k.strip(): int(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or fast=N,accurate=M, got {text!r}") from None
    if set(out) - {"fast", "accurate"} or min(out.values()) < 1:
        raise argparse.ArgumentTypeError(f"expected N or fast=N,accurate=M (N >= 1), got {text!r}")
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", default="reports", help="where reports go (default reports/)")
    p.add_argument("--readme", default=None, metavar="README.md",
                   help="also rewrite this README's generated blocks")  # fmt: skip


def register(subparsers) -> None:
    rep = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables into reports/",
        description="Regenerate one of the paper's artifacts into reports/<artifact>/ (CSV, "
        "JSON, Markdown, PNG) with the paper's numbers beside it.",
    )
    what = rep.add_subparsers(dest="artifact", required=True, metavar="ARTIFACT")

    t2 = what.add_parser(
        "table2",
        help="Table 2: classification error of every OverFeat protocol",
        description="Table 2 (§3.3): every OverFeat row run through its protocol and scored by "
        "the ILSVRC harness. With no --data: the embedded default (synthetic data, toy networks "
        "trained here). Finished rows are reused: rerun the same command to continue.",
    )
    t2.add_argument("--data", default=None, help="ILSVRC-layout root; its validation split is scored")
    t2.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N validation images in file-name order")  # fmt: skip
    t2.add_argument("--every", type=int, default=1, metavar="K",
                    help="only every K-th validation image in file-name order (a spread sample)")  # fmt: skip
    t2.add_argument("--rows", type=_rows, default=(), metavar="T2-2,T2-7", help="only these rows")
    t2.add_argument("--release-weights", default=None, metavar="DIR",
                    help="the released networks (net_weight_0 fast, net_weight_1 accurate)")  # fmt: skip
    t2.add_argument("--meta", default=None, metavar="META_MAT",
                    help="the devkit's meta.mat (class order of the released networks)")  # fmt: skip
    t2.add_argument("--checkpoints", nargs="+", default=(), metavar="ARCH=RUN[,RUN...]",
                    help="networks trained with 'overfeat train classifier'; several runs of "
                    "one kind make the ensembles of rows 8-9")  # fmt: skip
    t2.add_argument("--members", type=_members, default=None, metavar="N|fast=N,accurate=M",
                    help="networks per kind to train with --train (default 7, the paper's; "
                    "embedded default 2)")  # fmt: skip
    t2.add_argument("--name", default=None, help="the report's name (default from the sources)")
    t2.add_argument("--cache", default="runs/reproduce",
                    help="work folder: data, trained networks, finished rows")  # fmt: skip
    t2.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    t2.add_argument("--batch-size", type=int, default=8, help="images per batch")
    t2.add_argument("--workers", type=int, default=2, help="decoding processes")
    t2.add_argument("--amp", choices=("none", "bf16"), default="none",
                    help="bf16 autocast (CUDA); default float32")  # fmt: skip
    t2.add_argument("--no-progress", dest="progress", action="store_false")
    _common(t2)
    t2.add_argument("--train", nargs=argparse.REMAINDER, default=None, metavar="TRAIN_FLAGS",
                    help="train the missing networks first; every flag after it goes to "
                    "'overfeat train classifier' (put it last)")  # fmt: skip
    t2.set_defaults(func=_run_table2)

    for name, title in (("table4", "Table 4: parameters and connections"),
                        ("table5", "Table 5: the six scales and their map sizes")):  # fmt: skip
        p = what.add_parser(name, help=title, description=f"{title}, from the layer arithmetic.")
        _common(p)
        p.set_defaults(func=_run_table, table=name)

    r = what.add_parser("report", help="re-render every report from its saved CSV/JSON")
    _common(r)
    r.set_defaults(func=_run_report)


def _command() -> str:
    return "overfeat " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "overfeat reproduce"


def _render(args: argparse.Namespace) -> None:
    from evaluation.render import render_all

    render_all(args.reports, args.readme)


def _run_table2(args: argparse.Namespace) -> int:
    from evaluation.render import read_run, table2_markdown
    from overfeat.reproduce.networks import SourceError
    from overfeat.reproduce.runner import RunOptions
    from overfeat.reproduce.table2 import Table2Request, reproduce_table2

    request = Table2Request(
        data=args.data,
        limit=args.limit,
        every=args.every,
        rows=args.rows,
        release_weights=args.release_weights,
        meta=args.meta,
        checkpoints=tuple(args.checkpoints),
        train=args.train is not None,
        train_args=tuple(args.train or ()),
        members=args.members,
        name=args.name,
        cache=args.cache,
        reports=args.reports,
        options=RunOptions(args.device, args.batch_size, args.workers, args.amp, args.progress),
        command=_command(),
    )
    try:
        csv_path = reproduce_table2(request)
    except (SourceError, FileNotFoundError) as exc:
        print(f"reproduce table2: {exc}", file=sys.stderr)
        return 2
    _render(args)
    table, meta = read_run(csv_path)
    text = table2_markdown(table, meta)
    print(text[text.index("| row |") :])
    print(f"report: {csv_path.with_suffix('.md')}")
    return 0


def _run_table(args: argparse.Namespace) -> int:
    from overfeat.reproduce.tables import write_table

    path = write_table(args.table, args.reports, _command())
    _render(args)
    print(path.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from evaluation.render import render_all

    for path in render_all(args.reports, args.readme):
        print(f"wrote {path}")
    return 0
