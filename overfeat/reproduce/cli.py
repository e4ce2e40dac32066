"""``overfeat reproduce table2|figure9|detection|table4|table5|all|report``: the paper's artifacts,
regenerated.

With no arguments, ``table2`` runs on the embedded default (a synthetic ILSVRC-format set and
toy networks trained on this machine, cached under ``runs/reproduce``)::

    overfeat reproduce table2
    overfeat reproduce table2 --data /data/imagenet --release-weights DIR
    overfeat reproduce table2 --data /data/imagenet --devkit ILSVRC2012_devkit_t12 --release-weights DIR
    overfeat reproduce table2 --data DIR --checkpoints fast=RUN1,RUN2 accurate=RUN3
    overfeat reproduce table2 --data DIR --members 3 --train --recipe toy --epochs 8
    overfeat reproduce figure9
    overfeat reproduce figure9 --data DIR --checkpoints classifier=RUN scr=RUN pcr=RUN
    overfeat reproduce detection
    overfeat reproduce detection --data DIR --checkpoints detector=RUN regressor=RUN
    overfeat reproduce all
    overfeat reproduce all --data DIR --train --recipe toy --epochs 8

Flags after ``--train`` are ``overfeat train classifier``'s, for the networks it trains.
Reports go to ``reports/<artifact>/``: a run writes its own report files only and prints a
short summary; ``report`` re-renders every one of them and the index ``reports/README.md`` (and
the README's generated blocks with ``--readme``) from the saved CSV/JSON without running a
network.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from overfeat.flags import (
    EVALUATION,
    add_amp_flag,
    add_batch_size_flag,
    add_data_flag,
    add_device_flag,
    add_devkit_flag,
    add_meta_flag,
    add_progress_flag,
    add_release_weights_flag,
    add_workers_flag,
    effective_amp,
)

__all__ = ["ALL_ARTIFACTS", "register"]


# What a reproduction runs on without --data (decision EMBEDDED_DEFAULT).
_EMBEDDED = "the embedded synthetic set, written under --cache, and networks trained on it"


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
    p.add_argument("--reports", default="reports", metavar="DIR",
                   help="where reports go, relative to the current folder (default: reports)")
    p.add_argument("--readme", default=None, metavar="README.md",
                   help="also rewrite this README's generated blocks (default: none)")  # fmt: skip


def _run_flags(p: argparse.ArgumentParser) -> None:
    """The flags of every reproduction that runs networks (read back by :func:`_options`)."""
    p.add_argument("--cache", default="runs/reproduce", metavar="DIR",
                   help="work folder (data, trained networks, finished rows), relative to the "
                   "current folder (default: runs/reproduce)")  # fmt: skip
    add_device_flag(p, EVALUATION)
    add_devkit_flag(p)
    add_batch_size_flag(p, EVALUATION)
    add_workers_flag(p, EVALUATION)
    add_amp_flag(p, EVALUATION)
    add_progress_flag(p)


def _train_flag(p: argparse.ArgumentParser, what: str = "what is missing") -> None:
    """``--train FLAGS...``: train ``what`` first, every later flag going to the trainer."""
    p.add_argument("--train", nargs=argparse.REMAINDER, default=None, metavar="TRAIN_FLAGS",
                   help=f"train {what} first; every flag after it goes to 'overfeat train "
                   "classifier' (put it last) (default: nothing is trained but the embedded "
                   "default's networks)")  # fmt: skip


def _options(args: argparse.Namespace):
    from overfeat.reproduce.runner import RunOptions

    amp = effective_amp(args.amp, args.device)  # what ran, as the rows' keys and reports say
    return RunOptions(args.device, args.batch_size, args.workers, amp, args.progress)


def register(subparsers) -> None:
    rep = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's tables into reports/",
        description="Regenerate one of the paper's artifacts into reports/<artifact>/ (CSV, "
        "JSON, Markdown, PNG) with the paper's numbers beside it. A reproduction runs on the "
        "CPU in float32, 8 images per batch, unless told otherwise (--device, --amp, "
        "--batch-size); reports/ and its work folder runs/reproduce/ are relative to the "
        "current folder (--reports, --cache).",
    )
    what = rep.add_subparsers(dest="artifact", required=True, metavar="ARTIFACT")

    t2 = what.add_parser(
        "table2",
        help="Table 2: classification error of every OverFeat protocol",
        description="Table 2 (§3.3): every OverFeat row run through its protocol and scored by "
        "the ILSVRC harness. With no --data: the embedded default (synthetic data, toy networks "
        "trained here). Finished rows are reused: rerun the same command to continue.",
    )
    add_data_flag(t2, "its validation split is scored", absent=_EMBEDDED)
    t2.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N validation images in file-name order (default: all)")
    t2.add_argument("--every", type=int, default=1, metavar="K",
                    help="only every K-th validation image in file-name order (a spread sample)")  # fmt: skip
    t2.add_argument("--rows", type=_rows, default=(), metavar="T2-2,T2-7",
                    help="only these rows (default: every row)")  # fmt: skip
    add_release_weights_flag(t2)
    add_meta_flag(t2, use="the released networks' class order; the validation ground truth "
                  "beside it labels a flat val/", absent="the class order shipped with the "
                  "package")  # fmt: skip
    t2.add_argument("--checkpoints", nargs="+", default=(), metavar="ARCH=RUN[,RUN...]",
                    help="networks trained with 'overfeat train classifier'; several runs of "
                    "one kind make the ensembles of rows 8-9 (default: none)")  # fmt: skip
    t2.add_argument("--members", type=_members, default=None, metavar="N|fast=N,accurate=M",
                    help="networks per kind to train with --train (default 7, the paper's; "
                    "embedded default 2)")  # fmt: skip
    t2.add_argument("--name", default=None, help="the report's name (default: from the sources)")
    _run_flags(t2)
    _common(t2)
    _train_flag(t2, "the missing networks")
    t2.set_defaults(func=_run_table2)

    f9 = what.add_parser(
        "figure9",
        help="Figure 9: localization error of SCR and PCR by number of scales",
        description="Figure 9 (§4.4): the six bars (SCR with a centred crop and 1-4 scales, PCR "
        "with 3 scales), PCR at 1, 2 and 4 scales, and the two baselines without a regressor "
        "(each window's own box, the whole image), scored by the ILSVRC harness on the "
        "validation images that have boxes. With no --data: the embedded default (synthetic "
        "data; the fast toy classifier of Table 2's default and its regressors, trained here).",
    )
    add_data_flag(f9, "its validation images with boxes are localized", absent=_EMBEDDED)
    f9.add_argument("--limit", type=int, default=None, metavar="N",
                    help="only the first N boxed validation images in file-name order (default: "
                    "all)")  # fmt: skip
    f9.add_argument("--every", type=int, default=1, metavar="K",
                    help="only every K-th boxed validation image in file-name order")  # fmt: skip
    f9.add_argument("--rows", type=_rows, default=(), metavar="F9-1,SCR-..",
                    help="only these rows (default: every row)")  # fmt: skip
    f9.add_argument("--arch", choices=("fast", "accurate"), default="fast",
                    help="the classifier --train trains (default fast)")  # fmt: skip
    f9.add_argument("--checkpoints", nargs="+", default=(), metavar="KIND=RUN",
                    help="classifier=RUN (overfeat train classifier), scr=RUN and pcr=RUN "
                    "(overfeat train regressor on that classifier) (default: none)")  # fmt: skip
    add_release_weights_flag(f9, use="the classifier (the --arch one), imported once as a run "
                             "('overfeat import-release'); the missing regressors are trained on "
                             "it with --regressor-args")  # fmt: skip
    add_meta_flag(f9, use="the released networks' class order",
                  absent="the class order shipped with the package")  # fmt: skip
    f9.add_argument("--regressor-args", default="", metavar="'FLAGS'",
                    help="flags for 'overfeat train regressor' when a regressor is trained, "
                    "one quoted string (default: none; embedded default: --recipe toy)")  # fmt: skip
    f9.add_argument("--name", default=None, help="the report's name (default: from the sources)")
    _run_flags(f9)
    _common(f9)
    _train_flag(f9)
    f9.set_defaults(func=_run_figure9)

    det = what.add_parser(
        "detection",
        help="§5 / Figure 11: detection mAP with a background class",
        description="The detection system (§5): the detector's boxes from its regressor and "
        "from each window, and random boxes as the floor, scored by the ILSVRC DET harness on "
        "the data set's DET validation images (with no DET split: its boxed CLS-LOC validation "
        "images, every box an object of its image's class). With no --data: the embedded default "
        "(synthetic DET images; the fast toy classifier of Table 2's default fine-tuned with a "
        "background class, and a regressor on it, trained here).",
    )
    add_data_flag(det, "its DET validation images (ILSVRC/Data/DET/val and its XMLs); with no "
                  "DET split, its boxed CLS-LOC validation images in its own classes "
                  "(DET_FROM_CLSLOC_BOXES)", absent=_EMBEDDED)  # fmt: skip
    det.add_argument("--limit", type=int, default=None, metavar="N",
                     help="only the first N validation images (default: all)")  # fmt: skip
    det.add_argument("--every", type=int, default=1, metavar="K",
                     help="only every K-th validation image (DET list order; boxed CLS-LOC "
                     "images in file-name order), before --limit")  # fmt: skip
    det.add_argument("--checkpoints", nargs="+", default=(), metavar="KIND=RUN",
                     help="classifier=RUN, detector=RUN (overfeat train detector), regressor=RUN "
                     "(overfeat train regressor on the detector) (default: none)")  # fmt: skip
    add_release_weights_flag(det, use="the classifier (the fast one when DIR holds both), "
                             "imported once as a run ('overfeat import-release'); the detector "
                             "and its regressor are trained on it with --detector-args and "
                             "--regressor-args")  # fmt: skip
    add_meta_flag(det, use="the released networks' class order",
                  absent="the class order shipped with the package")  # fmt: skip
    det.add_argument("--detector-args", default="", metavar="'FLAGS'",
                     help="flags for 'overfeat train detector' (default: none; embedded "
                     "default: --recipe toy)")  # fmt: skip
    det.add_argument("--regressor-args", default="", metavar="'FLAGS'",
                     help="flags for 'overfeat train regressor' (default: none; embedded "
                     "default: --recipe toy)")  # fmt: skip
    det.add_argument("--det-devkit", default=None, metavar="DIR",
                     help="the folder of the devkit's meta_det.mat and meta_clsloc.mat: score "
                     "the 200 DET classes, and train a detector here in them (decision "
                     "DET_LABEL_SPACE) (default: looked for in and beside a DET layout, "
                     "DET_DEVKIT_SEARCH; none found: the data set's own classes)")  # fmt: skip
    det.add_argument("--blacklist", action="store_true",
                     help="leave out the (image, class) pairs of the devkit's 2014 DET "
                     "validation blacklist, as eval_detection.m does with it (default: off)")  # fmt: skip
    det.add_argument("--name", default=None, help="the report's name (default: from the data)")
    _run_flags(det)
    _common(det)
    _train_flag(det)
    det.set_defaults(func=_run_detection)

    for name, title in (("table4", "Table 4: parameters and connections"),
                        ("table5", "Table 5: the six scales and their map sizes")):  # fmt: skip
        p = what.add_parser(name, help=title, description=f"{title}, from the layer arithmetic.")
        _common(p)
        p.set_defaults(func=_run_table, table=name)

    every = what.add_parser(
        "all",
        help="every artifact in one run (Tables 2, 4, 5, Figure 9, detection)",
        description="Every artifact in one run, each as its own command runs it with the flags "
        "below: Tables 4 and 5, Table 2, Figure 9, detection; then reports/README.md indexes "
        "them. With no --data: the embedded default of each. An artifact the data cannot serve "
        "(no boxes, no DET images, no networks) is listed as not run, with the reason, and the "
        "command exits 1 after running the others.",
    )
    add_data_flag(every, "every artifact's images", absent=_EMBEDDED)
    every.add_argument("--limit", type=int, default=None, metavar="N",
                       help="only the first N validation images of each artifact (default: all)")
    every.add_argument("--release-weights", default=None, metavar="DIR",
                       help="Table 2's released networks (see 'reproduce table2 --help') "
                       "(default: none)")  # fmt: skip
    add_meta_flag(every, use="Table 2's --meta (see 'reproduce table2 --help')",
                  absent="the class order shipped with the package")  # fmt: skip
    _run_flags(every)
    _common(every)
    _train_flag(every)
    every.set_defaults(func=_run_all, parser=rep)

    r = what.add_parser("report", help="re-render every report from its saved CSV/JSON")
    _common(r)
    r.set_defaults(func=_run_report)


def _command() -> str:
    return "overfeat " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "overfeat reproduce"


def _render(args: argparse.Namespace, csv_path) -> None:
    """Render this run's own report files, and with ``--readme`` the README's block of its
    artifact (decision README_BLOCK_PER_RUN, :func:`evaluation.render.readme_blocks`).

    Decision INDEX_BY_REPORT_AND_ALL: the index ``reports/README.md`` is rebuilt by ``reproduce
    report`` and ``reproduce all`` only, so a single run leaves the tracked index and the other
    runs' files as they are."""
    from pathlib import Path

    from evaluation.render import render_run, update_readme
    from overfeat.reproduce.gallery import render_galleries

    # The gallery first: the report links its picture only where it is there.
    for line in render_galleries(args.reports, [Path(csv_path)]):
        print(line, flush=True)
    render_run(csv_path)
    if args.readme and Path(args.readme).is_file():
        update_readme(args.readme, args.reports, names=(Path(csv_path).parent.name,))


def _devkit_folders(args: argparse.Namespace) -> tuple[str | None, ...]:
    """Where a flat val/'s devkit ground truth is looked for first: ``--devkit``, then beside
    ``--meta`` (decision DEVKIT_SEARCH)."""
    meta = getattr(args, "meta", None)
    return args.devkit, str(Path(meta).expanduser().parent) if meta else None


def _report(args: argparse.Namespace, artifact: str, run) -> int:
    """Run one reproduction (``run()`` → its CSV), render its report (and the README's blocks
    with ``--readme``) and print a short summary: each row's numbers and where the report is;
    a source it cannot use is one line, exit 2."""
    from evaluation.render import run_summary
    from overfeat.data.readers import devkit_search
    from overfeat.reproduce.networks import SourceError

    try:
        with devkit_search(*_devkit_folders(args)):
            csv_path = run()
    except (SourceError, FileNotFoundError) as exc:
        print(f"reproduce {artifact}: {exc}", file=sys.stderr)
        return 2
    _render(args, csv_path)
    print(run_summary(csv_path), flush=True)
    return 0


def _run_table2(args: argparse.Namespace) -> int:
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
        options=_options(args),
        command=_command(),
    )
    return _report(args, "table2", lambda: reproduce_table2(request))


def _run_figure9(args: argparse.Namespace) -> int:
    from overfeat.reproduce.figure9 import Figure9Request, reproduce_figure9

    request = Figure9Request(
        data=args.data,
        limit=args.limit,
        every=args.every,
        rows=args.rows,
        arch=args.arch,
        checkpoints=tuple(args.checkpoints),
        release_weights=args.release_weights,
        meta=args.meta,
        train=args.train is not None,
        train_args=tuple(args.train or ()),
        regressor_args=tuple(shlex.split(args.regressor_args)),
        name=args.name,
        cache=args.cache,
        reports=args.reports,
        options=_options(args),
        command=_command(),
    )
    return _report(args, "figure9", lambda: reproduce_figure9(request))


def _run_detection(args: argparse.Namespace) -> int:
    from overfeat.reproduce.detection import DetectionRequest, reproduce_detection

    request = DetectionRequest(
        data=args.data,
        limit=args.limit,
        every=args.every,
        checkpoints=tuple(args.checkpoints),
        release_weights=args.release_weights,
        meta=args.meta,
        train=args.train is not None,
        train_args=tuple(args.train or ()),
        det_devkit=args.det_devkit,
        blacklist=args.blacklist,
        detector_args=tuple(shlex.split(args.detector_args)),
        regressor_args=tuple(shlex.split(args.regressor_args)),
        name=args.name,
        cache=args.cache,
        reports=args.reports,
        options=_options(args),
        command=_command(),
    )
    return _report(args, "detection", lambda: reproduce_detection(request))


def _run_table(args: argparse.Namespace) -> int:
    from overfeat.reproduce.tables import write_table

    path = write_table(args.table, args.reports, _command())
    _render(args, path)
    print(path.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


ALL_ARTIFACTS = ("table4", "table5", "table2", "figure9", "detection")


def _all_argv(args: argparse.Namespace, artifact: str) -> list[str]:
    """The command line ``reproduce all`` runs ``artifact`` with: its own flags, as given."""
    argv = [artifact, "--reports", args.reports]
    if args.readme:
        argv += ["--readme", args.readme]
    if artifact in ("table4", "table5"):
        return argv
    argv += ["--cache", args.cache, "--device", args.device, "--batch-size", str(args.batch_size),
             "--workers", str(args.workers), "--amp", args.amp]  # fmt: skip
    argv += [] if args.progress else ["--no-progress"]
    argv += ["--data", args.data] if args.data else []
    argv += ["--limit", str(args.limit)] if args.limit else []
    argv += ["--devkit", args.devkit] if args.devkit else []
    if artifact == "table2":
        argv += ["--release-weights", args.release_weights] if args.release_weights else []
        argv += ["--meta", args.meta] if args.meta else []
    return argv + (["--train", *args.train] if args.train is not None else [])


def _run_all(args: argparse.Namespace) -> int:
    import contextlib
    import io
    import time

    from evaluation.render import write_index
    from overfeat.data.readers import devkit_search

    outcomes = []
    for artifact in ALL_ARTIFACTS:
        argv = _all_argv(args, artifact)
        print(f"=== overfeat reproduce {shlex.join(argv)}", flush=True)
        sub = args.parser.parse_args(argv)
        start = time.perf_counter()
        # Each artifact's stderr (progress, warnings, its error) goes on to the terminal or the
        # log as it comes, and is kept for the reason in the table below.
        errors = _Tee(sys.stderr, io.StringIO())
        # The folder of --meta labels a flat val/ for every artifact, not only Table 2's.
        with contextlib.redirect_stderr(errors), devkit_search(*_devkit_folders(args)):
            code = sub.func(sub)
        why = errors.kept.getvalue().strip()
        outcomes.append((artifact, code, time.perf_counter() - start, why))
    print("\n| artifact | status | seconds |\n|---|---|---|")
    for artifact, code, seconds, why in outcomes:
        status = "written" if code == 0 else f"not run: {why.splitlines()[-1] if why else code}"
        print(f"| {artifact} | {status} | {seconds:.0f} |")
    print(f"index: {write_index(args.reports)}")
    return 0 if all(code == 0 for _, code, _, _ in outcomes) else 1


class _Tee:
    """A stream writing to ``stream`` and keeping a copy in ``kept``; a terminal when
    ``stream`` is one (progress bars stay bars)."""

    def __init__(self, stream, kept):
        self.stream, self.kept = stream, kept

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()


def _run_report(args: argparse.Namespace) -> int:
    from evaluation.render import render_all
    from overfeat.reproduce.gallery import render_galleries

    # The galleries first: each report links its picture only where it is there.
    for line in render_galleries(args.reports):
        print(line)
    for path in render_all(args.reports, args.readme):
        print(f"wrote {path}")
    return 0
