"""The toy recipe across training seeds and CPU kernel sets: does every network learn?

Issue 19's step 0. The embedded default's networks (``overfeat/reproduce/embedded.py``: the toy
recipe for ``TOY_EPOCHS`` epochs on the embedded synthetic set) are trained for each seed, each
architecture and each kernel set (a key of ``overfeat.gate.perturb.KERNEL_SETS`` at N threads,
e.g. ``default-1t``, ``avx2-1t``), each in its own process, and their per-epoch validation
top-1 error (the engine's centre-crop evaluation, §3.1's training-time check) is collected from
each run's ``metrics.jsonl``. Written to ``--report`` as CSV (one row per run and epoch) and
Markdown (per kernel set and architecture: the final error of every seed, its mean and range,
the worst rise from a run's best epoch to its last, and chance).

    python benchmarks/toy_seed_spread.py                      # 5 seeds × 2 kernel sets × 2 nets
    python benchmarks/toy_seed_spread.py --seeds 0 --perturbations default-1t
    python benchmarks/toy_seed_spread.py --readme README.md  # also the README's table

Runs go to ``--out`` (resumable: a finished run is read back, not trained again). Two 1-thread
processes run at once on a 2-core machine (``--parallel``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from overfeat.gate.perturb import child_env, parse_perturbations  # noqa: E402
from overfeat.reproduce.embedded import EMBEDDED_TRAIN_ARGS, TOY_EPOCHS, embedded_data  # noqa: E402


def _epochs(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("kind") == "epoch"]


def _command(data: Path, arch: str, seed: int, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "overfeat", "train", "classifier", "--data", str(data),
            "--arch", arch, *EMBEDDED_TRAIN_ARGS, *extra, "--seed", str(seed), "--out", str(out),
            "--resume", "auto", "--no-progress"]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--archs", default="fast,accurate")
    p.add_argument("--perturbations", default="default-1t,avx2-1t",
                   help="kernel sets and threads, as overfeat regression --measure takes them")  # fmt: skip
    p.add_argument("--cache", default="runs/reproduce", help="where the embedded data lives")
    p.add_argument("--out", default="runs/seed-spread")
    p.add_argument("--report", default="reports/training/seed-spread")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--readme", default=None, metavar="README.md",
                   help="also rewrite the table between this README's seed-spread markers")  # fmt: skip
    p.add_argument("--train-args", default="", metavar="'ARGS'",
                   help="more 'overfeat train classifier' flags, e.g. '--lr-milestones 12,16' "
                   "(the toy recipe's halvings before decision TOY_SCHEDULE)")  # fmt: skip
    args = p.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",")]
    archs = args.archs.split(",")
    perturbations = parse_perturbations(args.perturbations, flag="--perturbations")
    data = embedded_data(Path(args.cache), progress=False)
    out = Path(args.out)
    jobs = [(pt, arch, seed) for seed in seeds for arch in archs for pt in perturbations]

    pending = [j for j in jobs if len(_epochs(out / f"{j[0].name}-{j[1]}-s{j[2]}")) < TOY_EPOCHS]
    running: list[tuple[subprocess.Popen, str, float]] = []
    started = time.monotonic()
    while pending or running:
        while pending and len(running) < args.parallel:
            pt, arch, seed = pending.pop(0)
            run = out / f"{pt.name}-{arch}-s{seed}"
            run.parent.mkdir(parents=True, exist_ok=True)
            log = open(run.with_suffix(".log"), "w")
            proc = subprocess.Popen(_command(data, arch, seed, run, shlex.split(args.train_args)), env=child_env(pt),
                                    stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)  # fmt: skip
            running.append((proc, run.name, time.monotonic()))
        time.sleep(1)
        for item in list(running):
            proc, name, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                print(f"{name}: exit {proc.returncode} in {time.monotonic() - t0:.0f} s "
                      f"({time.monotonic() - started:.0f} s so far)", flush=True)  # fmt: skip
                if proc.returncode:
                    print(f"  see {out / name}.log", flush=True)

    rows = []
    for pt, arch, seed in jobs:
        for r in _epochs(out / f"{pt.name}-{arch}-s{seed}"):
            rows.append({"perturbation": pt.name, "arch": arch, "seed": seed,
                         "epoch": r["epoch"] + 1, "lr": r["lr"],
                         "train_loss": round(r["train_loss"], 5),
                         "val_top1_error": r["val_top1_error"],
                         "val_top5_error": r["val_top5_error"], "val_images": r["val_images"]})  # fmt: skip
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    with open(report.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    text = render(rows, len(seeds), args)
    report.with_suffix(".md").write_text(text + "\n")
    print(text)
    if args.readme:
        _rewrite_block(Path(args.readme), "seed-spread", "\n".join(
            line for line in text.splitlines() if line.startswith("|")))
    return 0


def _rewrite_block(readme: Path, name: str, body: str) -> None:
    """Replace what lies between ``<!-- NAME begin -->`` and ``<!-- NAME end -->``."""
    text = readme.read_text()
    begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{readme}: no {begin} … {end} block to rewrite")
    head, rest = text.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}")


def render(rows: list[dict], seeds: int, args) -> str:
    """Per kernel set and architecture: each seed's final val top-1 error, mean, range, and the
    largest rise from a run's best epoch to its last (a run that learnt and then lost it)."""
    chance = 1 - 1 / 10
    lines = [
        "# The toy recipe across seeds and CPU kernel sets",
        "",
        f"Written by `python benchmarks/toy_seed_spread.py --seeds {args.seeds} --archs "
        f"{args.archs} --perturbations {args.perturbations}"
        f"{f' --train-args {shlex.quote(args.train_args)}' if args.train_args else ''}`: the "
        "embedded default's networks (`overfeat train classifier ... "
        f"{' '.join([*EMBEDDED_TRAIN_ARGS, *shlex.split(args.train_args)])} --seed S`), each run in "
        "its own process under the kernel set and thread count named. Validation top-1 error "
        f"of the engine's centre crop on the embedded set's 120 validation images (chance "
        f"{chance:.2f}); per-epoch values in `seed-spread.csv`.",
        "",
        "| kernels | network | final val top-1 error per seed | mean | min – max | worst rise after the best epoch |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    groups: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for r in rows:
        groups.setdefault((r["perturbation"], r["arch"]), {}).setdefault(r["seed"], []).append(r)
    for (pt, arch), by_seed in groups.items():
        finals = [runs[-1]["val_top1_error"] for _, runs in sorted(by_seed.items())]
        rises = [runs[-1]["val_top1_error"] - min(x["val_top1_error"] for x in runs)
                 for runs in by_seed.values()]  # fmt: skip
        lines.append(
            f"| {pt} | {arch} | {', '.join(f'{x:.3f}' for x in finals)} | "
            f"{statistics.mean(finals):.3f} | {min(finals):.3f} – {max(finals):.3f} | "
            f"{max(rises):+.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
