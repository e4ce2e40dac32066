"""One command for a GPU machine: what the project does on it, measured in one run.

    nox -s gpu_check                        # on one H100/H200: about 8 minutes
    nox -s gpu_check -- --data /data/imagenet-val-subset --parts inference,localization
    nox -s gpu_check -- --dry-run           # every part at toy sizes on the CPU, under 2 minutes

Each part runs in its own process under its own time cap (a part past its cap is stopped and
reported as such; the others still run), and the whole fits in 8 minutes on one GPU:

- **environment**: torch, CUDA, cuDNN, the device, and the dense bf16 peak every share below is
  taken of (``train_throughput.BF16_PEAK_TFLOPS``; ``--peak-tflops`` overrides);
- **inference**: every Table 2 protocol (``overfeat.scales.TABLE2_PROTOCOLS``, each row with its
  full-size network), float32 and bf16 autocast: images/s, share of the bf16 peak, and how far
  bf16's class vectors are from float32's;
- **training**: the training engine (``overfeat.engine.train.train_classifier``) on
  ImageNet-sized JPEGs, full-size fast and accurate, bf16, with the project's loader (``pil``,
  worker processes) and DALI where it is installed: images/s, loader-bound or compute-bound
  (against the same step on tensors already on the device), model FLOP utilisation;
- **determinism**: ``--deterministic`` for 20 steps (the dry run: 6), interrupted half way and
  resumed, against the uninterrupted run, bit for bit; the same in the default mode, with its
  difference;
- **localization**: ``benchmarks/localize_throughput.py``: forward, decode and merge per image,
  and the merge workers' images/s and the merges batched on the device's
  (``batched_greedy_merge``, decision MERGE_PATH) beside the merge-skipped pass's;
- **gate**: the regression gate's cheap suites (harness, synthetic, det-synthetic) with
  ``--device cuda`` against the committed baselines (its table goes to the work folder; nothing
  under ``reports/baselines`` is touched).

Everything is written to ``reports/benchmarks/gpu-<device>.txt`` and ``.json`` (``--out`` for
another folder). Networks have random weights: timings and numerical differences only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

TOY_WIDTH = 1 / 32
# Seconds each part may take: on one GPU (the sum, with the processes' start-up, stays within
# 8 minutes), and in the dry run on a CPU (within 2 minutes).
CAPS = {
    "environment": (20, 8),
    "inference": (90, 22),
    "training": (100, 24),
    "determinism": (80, 30),
    "localization": (80, 18),
    "gate": (90, 13),
}
PARTS = tuple(CAPS)


# ------------------------------------------------------------------ shared by the parts


def _device(ctx) -> str:
    return "cpu" if ctx["dry_run"] else ctx["device"]


def _peak(ctx) -> tuple[float, str]:
    """The dense bf16 peak (TFLOP/s) shares are taken of, and the GPU it belongs to."""
    import torch
    from train_throughput import peak_tflops

    if ctx["peak_tflops"]:
        return ctx["peak_tflops"], "--peak-tflops"
    if _device(ctx).startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(_device(ctx)))
        if peak_tflops(name):
            return peak_tflops(name), name
    return peak_tflops("H100"), "H100 (the arithmetic's reference: no GPU here)"


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _jpeg_set(root: Path, distinct: int, per_class: int, classes: int = 10) -> Path:
    """A classic ILSVRC layout of ImageNet-sized JPEGs (``train/<wnid>/``, ``val/<wnid>/``):
    ``distinct`` photographs' worth of JPEGs (``train_throughput.imagenet_sized_jpegs``), linked
    under more names to ``per_class`` training images per class (decoding a linked file costs
    what decoding a distinct one does)."""
    from train_throughput import imagenet_sized_jpegs

    if (root / "train").is_dir():
        return root
    made = imagenet_sized_jpegs(root / "made", distinct)
    for split, count in (("train", per_class), ("val", 2)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                source = made[(c * count + i) % len(made)][0]
                os.link(source, folder / f"{split}_{c}_{i}.JPEG")
    shutil.rmtree(root / "made")
    return root


# ------------------------------------------------------------------ the parts


def part_environment(ctx) -> dict:
    import numpy as np
    import torch

    from overfeat.merge_workers import default_merge_workers

    device = _device(ctx)
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpus": default_merge_workers(),
        "device": device,
    }
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: torch sees no CUDA device here (use --dry-run)")
        props = torch.cuda.get_device_properties(torch.device(device))
        out.update(name=props.name, capability=f"{props.major}.{props.minor}",
                   memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported(), driver_cuda=torch.version.cuda)  # fmt: skip
    else:
        out["name"] = platform.processor() or platform.machine()
    peak, source = _peak(ctx)
    out.update(bf16_peak_tflops=peak, peak_of=source)
    try:
        from overfeat.data.dali import dali_unavailable

        out["dali"] = dali_unavailable() or "available"
    except ImportError as exc:
        out["dali"] = f"not importable ({exc})"
    for k, v in out.items():
        print(f"  {k}: {v}")
    return out


def _protocol_rate(model, protocol, images, device, bf16: bool, repeats: int):
    """``protocol.class_vector`` of ``images``: (images/s over ``repeats`` timed calls after an
    untimed one, or of that one call with ``repeats=0``; multiply-accumulates per image; the
    class vectors ``(N, C)`` float32)."""
    import torch
    from reproduce_throughput import MacCounter

    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    counter = MacCounter(model)
    start = time.perf_counter()
    with torch.no_grad(), amp:
        vectors = protocol.class_vector(model, images).float()  # warm-up, and the MAC count
    _sync(device)
    first = time.perf_counter() - start
    counter.close()
    start = time.perf_counter()
    with torch.no_grad(), amp:
        for _ in range(repeats):
            protocol.class_vector(model, images)
    _sync(device)
    seconds = time.perf_counter() - start if repeats else first
    return len(images) * max(repeats, 1) / seconds, counter.total // len(images), vectors


def part_inference(ctx) -> dict:
    import torch

    from overfeat import build_model
    from overfeat.engine.train import he_initialisation
    from overfeat.scales import TABLE2_PROTOCOLS

    device = torch.device(_device(ctx))
    dry = ctx["dry_run"]
    batch, repeats = (1, 0) if dry else (16, 3)  # the dry run times its one call
    peak, _ = _peak(ctx)
    g = torch.Generator().manual_seed(0)
    hw = (120, 160) if dry else (375, 500)
    images = [torch.randn(3, *hw, generator=g).to(device) for _ in range(batch)]
    models, rows = {}, []
    timed = f"{repeats} timed call(s) after one untimed" if repeats else "one call, timed"
    print(f"  {batch} random images of {hw[1]}x{hw[0]} per call, {timed}; "
          "networks: random weights (the toy recipe's He initialisation, so class vectors are "
          "not uniform)")  # fmt: skip
    print(f"  {'row':6} {'network':9} {'fp32 img/s':>10} {'bf16 img/s':>10} {'bf16 share':>10} "
          f"{'GMAC/img':>8} {'max |bf16-fp32|':>15} {'top-1 same':>10}")  # fmt: skip
    for row, protocol in TABLE2_PROTOCOLS.items():
        if protocol.models != 1:
            continue  # T2-8, T2-9: 7 x T2-4 and 7 x T2-7
        if protocol.arch not in models:
            torch.manual_seed(0)
            model = build_model(protocol.arch, width=TOY_WIDTH if dry else 1.0)
            he_initialisation(model)
            models[protocol.arch] = model.to(device).eval()
        model = models[protocol.arch]
        fp32, macs, v32 = _protocol_rate(model, protocol, images, device, False, repeats)
        bf16, _, v16 = _protocol_rate(model, protocol, images, device, True, repeats)
        diff = float((v16 - v32).abs().max())
        same = float((v16.argmax(1) == v32.argmax(1)).float().mean())
        share = 2 * macs * bf16 / (peak * 1e12)
        rows.append({"row": row, "arch": protocol.arch, "fp32_images_per_s": fp32,
                     "bf16_images_per_s": bf16, "gmac_per_image": macs / 1e9,
                     "bf16_share_of_peak": share, "max_abs_diff": diff,
                     "max_class_value": float(v32.abs().max()), "top1_agreement": same})  # fmt: skip
        print(f"  {row:6} {protocol.arch:9} {fp32:10.2f} {bf16:10.2f} {share:10.1%} "
              f"{macs / 1e9:8.1f} {diff:15.2e} {same:10.0%}", flush=True)  # fmt: skip
    return {"batch": batch, "peak_tflops": peak, "rows": rows}


def _metrics_rate(run: Path, skip: int) -> tuple[float, int]:
    """Training images/s over the logged steps after the first ``skip`` (warm-up, kernel
    choice) → (images/s, steps logged). A train record's ``images_per_second`` is the epoch's
    so far, ``step_in_epoch × batch / seconds``: two records give the seconds between them, and
    the batch cancels out of the rate."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r.get("kind") == "train"]
    first, last = steps[min(skip, len(steps) - 2)], steps[-1]
    s0, s1 = first["step_in_epoch"], last["step_in_epoch"]
    per_image_then = s0 / first["images_per_second"]  # seconds × (1 / batch) at each record
    per_image_now = s1 / last["images_per_second"]
    return (s1 - s0) / (per_image_now - per_image_then), len(steps)


def part_training(ctx) -> dict:
    import torch
    from train_throughput import macs_per_image, train_images_per_second

    from overfeat.engine.config import TrainConfig
    from overfeat.engine.train import train_classifier
    from overfeat.models import ARCHS, build_model

    dry = ctx["dry_run"]
    device = _device(ctx)
    batch, steps = (4, 6) if dry else (128, 30)
    workers = 1 if dry else max(1, min(16, (os.cpu_count() or 2) - 1))
    width = TOY_WIDTH if dry else 1.0
    peak, _ = _peak(ctx)
    data = _jpeg_set(Path(ctx["work"]) / "jpegs", 16 if dry else 96,
                     (batch * steps) // 10 + 1)  # fmt: skip
    loaders = ["pil"]
    try:
        from overfeat.data.dali import dali_unavailable

        why = dali_unavailable()
    except ImportError as exc:
        why = str(exc)
    if why is None and device.startswith("cuda"):
        loaders.append("dali")
    else:
        print(f"  dali: not measured ({why or 'needs CUDA'})")
    amp = "none" if dry else "bf16"
    rows = []
    for arch in ("fast", "accurate"):
        model = build_model(arch, width=width)
        macs = macs_per_image(model, ARCHS[arch].input_size)
        del model
        if width == 1.0:
            compute = train_images_per_second(arch, torch.device(device), batch, 5 if dry else 10,
                                              not dry, not dry)  # fmt: skip
        else:  # the step on tensors: the toy width through the same engine, without a loader
            compute = None
        for loader in loaders:
            run = Path(ctx["work"]) / f"train-{arch}-{loader}"
            config = TrainConfig(data=str(data), out=str(run), arch=arch, width=width,
                                 batch_size=batch, workers=workers, stop_after_steps=steps,
                                 log_every=1, checkpoint_every=0, progress=False, device=device,
                                 amp=amp, loader=loader, epochs=1)  # fmt: skip
            train_classifier(config)
            rate, logged = _metrics_rate(run, 2 if dry else 5)
            flops = macs * 2 * 3 * rate
            row = {"arch": arch, "loader": loader, "batch": batch, "workers": workers,
                   "steps": logged, "images_per_s": rate, "compute_images_per_s": compute,
                   "mfu": flops / (peak * 1e12), "amp": amp}  # fmt: skip
            if compute:
                row["bound"] = "loader-bound" if rate < 0.85 * compute else "compute-bound"
            else:
                row["bound"] = "not judged (toy width)"
            rows.append(row)
            ref = f", step on device tensors {compute:.1f} images/s" if compute else ""
            print(f"  {arch:8} {loader:4} batch {batch}, {workers} workers: {rate:8.1f} images/s"
                  f"{ref}: {row['bound']}; MFU {row['mfu']:.1%} of {peak:g} TFLOP/s", flush=True)  # fmt: skip
            shutil.rmtree(run, ignore_errors=True)
    return {"rows": rows, "peak_tflops": peak}


def part_determinism(ctx) -> dict:
    import torch

    from overfeat.engine.checkpoint import list_checkpoints
    from overfeat.engine.config import TrainConfig
    from overfeat.engine.train import train_classifier

    dry = ctx["dry_run"]
    device = _device(ctx)
    # The dry run's steps are toy-sized too: a 2-core CPU takes a third of a second per step.
    batch, width, workers, steps = (2, TOY_WIDTH, 0, 6) if dry else (16, 1.0, 4, 20)
    data = _jpeg_set(Path(ctx["work"]) / "jpegs-det", 8 if dry else 64, batch * steps // 10 + 1)

    def run(name: str, deterministic: bool, interrupted: bool) -> dict:
        out = Path(ctx["work"]) / name
        config = TrainConfig(data=str(data), out=str(out), arch="fast", width=width,
                             batch_size=batch, workers=workers, log_every=0,
                             checkpoint_every=steps // 2, progress=False, device=device, epochs=1,
                             seed=0, deterministic=deterministic, stop_after_steps=steps,
                             amp="none" if dry else "bf16")  # fmt: skip
        if interrupted:
            from dataclasses import replace

            train_classifier(replace(config, stop_after_steps=steps // 2))
            train_classifier(config, resume="auto")
        else:
            train_classifier(config)
        final = list_checkpoints(out)[-1]
        state = torch.load(final, map_location="cpu", weights_only=True)
        return {"path": final.name, "model": state["model"], "optimizer": state["optimizer"]}

    def compare(a: dict, b: dict) -> dict:
        equal, worst = True, 0.0
        for name, w in a["model"].items():
            v = b["model"][name]
            equal &= torch.equal(w, v)
            worst = max(worst, float((w.float() - v.float()).abs().max()))
        momentum = [s["momentum_buffer"] for s in a["optimizer"]["state"].values()]
        other = [s["momentum_buffer"] for s in b["optimizer"]["state"].values()]
        equal &= all(torch.equal(x, y) for x, y in zip(momentum, other))
        return {"bit_for_bit": bool(equal), "max_abs_weight_diff": worst,
                "checkpoints": [a["path"], b["path"]]}  # fmt: skip

    out = {}
    for mode, deterministic in (("deterministic", True), ("default", False)):
        whole = run(f"{mode}-whole", deterministic, False)
        resumed = run(f"{mode}-resumed", deterministic, True)
        out[mode] = compare(whole, resumed)
        verdict = "equal bit for bit" if out[mode]["bit_for_bit"] else "DIFFERENT"
        print(f"  {mode:13}: {steps} steps interrupted at {steps // 2} and resumed vs "
              f"uninterrupted: {verdict} "
              f"(largest weight difference {out[mode]['max_abs_weight_diff']:.3g})", flush=True)
    out["passed"] = out["deterministic"]["bit_for_bit"]
    out["steps"] = steps
    return out


def part_localization(ctx) -> dict:
    import localize_throughput as lt

    from overfeat.merge_workers import default_merge_workers

    dry = ctx["dry_run"]
    data = ctx["data"] or lt.DEFAULT_DATA
    if not Path(data).is_dir():
        from overfeat.data.synthetic import SyntheticConfig, write_synthetic

        data = Path(ctx["work"]) / "synthetic"
        print(f"  no real photos at {lt.DEFAULT_DATA} (--data): a synthetic set in {data}")
        write_synthetic(data, SyntheticConfig(classes=4, train_per_class=1, val_per_class=4,
                                              det_images=0))  # fmt: skip
    # the merges both ways (MERGE_PATH): in CPU workers, and batched on the network's device
    argv = ["--data", str(data), "--device", _device(ctx),
            "--merge-workers", str(default_merge_workers()), "--merge-device", _device(ctx)]  # fmt: skip
    if dry:
        argv += ["--images", "1", "--archs", "fast", "--scale-counts", "1,2", "--width",
                 str(TOY_WIDTH), "--repeats", "1"]  # fmt: skip
    else:
        argv += ["--images", "16", "--batch-size", "8", "--scale-counts", "4,6", "--repeats", "2"]
    if ctx["peak_tflops"]:
        argv += ["--peak-tflops", str(ctx["peak_tflops"])]
    record = lt.measure(lt.parse_args(argv))
    if record is None:
        raise RuntimeError(f"no localization data at {data}")
    return record


def part_gate(ctx) -> dict:
    from overfeat.cli import main

    suites = ["harness"] if ctx["dry_run"] else ["harness", "synthetic", "det-synthetic"]
    argv = ["regression", "--device", _device(ctx), "--no-progress",
            "--reports", str(Path(ctx["work"]) / "gate-reports"),
            "--cache", str(Path(ctx["work"]) / "gate-cache")]  # fmt: skip
    for s in suites:
        argv += ["--suite", s]
    sys.argv = ["overfeat", *argv]  # the command the gate's table names
    code = main(argv)
    meaning = {0: "passed", 1: "a metric outside its tolerance (see the table above)",
               2: "could not run (see above)"}  # fmt: skip
    print(f"  overfeat {' '.join(argv)}: exit {code}, {meaning.get(code, 'unexpected')}")
    return {"suites": suites, "exit_code": code, "outcome": meaning.get(code, "unexpected")}


RUN = {
    "environment": part_environment,
    "inference": part_inference,
    "training": part_training,
    "determinism": part_determinism,
    "localization": part_localization,
    "gate": part_gate,
}


# ------------------------------------------------------------------ running the parts


def _child(args) -> int:
    """One part in this process: its record as JSON in ``--result``."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*epoch \d+. skipped.*")
    ctx = json.loads(args.context)
    start = time.perf_counter()
    try:
        result = RUN[args.part](ctx)
        record = {"status": "ok", "result": result}
    except Exception as exc:  # reported in the part's record; the other parts still run
        import traceback

        traceback.print_exc()
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    record["seconds"] = time.perf_counter() - start
    Path(args.result).write_text(json.dumps(record, default=str), encoding="utf-8")
    return 0


def _run_part(name: str, cap: float, ctx: dict, log) -> dict:
    """Run part ``name`` in a child process, its output streamed to ``log``, stopped at
    ``cap`` seconds (its whole process group: DataLoader and merge workers too)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name,
               "--result", str(result), "--context", json.dumps(ctx)]  # fmt: skip
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True, env=env, cwd=ROOT)  # fmt: skip
        reader = threading.Thread(target=lambda: [log(line.rstrip("\n")) for line in proc.stdout])
        reader.start()
        try:
            proc.wait(timeout=cap)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        reader.join()
        seconds = time.perf_counter() - start
        if result.is_file():
            record = json.loads(result.read_text(encoding="utf-8"))
        elif seconds >= cap:
            record = {"status": "timed out", "error": f"stopped at its cap of {cap:.0f} s"}
        else:
            record = {"status": "failed", "error": f"the part's process exited {proc.returncode}"}
    record.update(cap_s=cap, wall_s=round(seconds, 1))
    return record


def _device_label(ctx) -> str:
    if ctx["dry_run"]:
        return "dry-run-cpu"
    import torch

    name = torch.cuda.get_device_name(torch.device(ctx["device"])) if torch.cuda.is_available() \
        else ctx["device"]  # fmt: skip
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="every part at toy sizes on the CPU (under 2 minutes)")  # fmt: skip
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"some of {','.join(PARTS)}")
    parser.add_argument("--data", type=Path, default=None,
                        help="localization's real photos (default ../shared/data/"
                        "ilsvrc2012-val-mini; a synthetic set without them)")  # fmt: skip
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks")
    parser.add_argument("--part", choices=PARTS, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--context", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        return _child(args)

    parts = [p for p in args.parts.split(",") if p]
    unknown = [p for p in parts if p not in CAPS]
    if unknown:
        parser.error(f"--parts: unknown part {unknown[0]!r}; the parts are {', '.join(PARTS)}")
    if not args.dry_run and args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"gpu_check: --device {args.device}: torch sees no CUDA device here; run it on "
                  "a GPU machine, or pass --dry-run for every part at toy sizes on the CPU",
                  file=sys.stderr)  # fmt: skip
            return 2
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    ctx = {"dry_run": args.dry_run, "device": args.device, "work": str(work),
           "data": str(args.data) if args.data else None, "peak_tflops": args.peak_tflops}  # fmt: skip
    label = _device_label(ctx)
    args.out.mkdir(parents=True, exist_ok=True)
    text_path, json_path = args.out / f"gpu-{label}.txt", args.out / f"gpu-{label}.json"
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    mode = "dry run: toy sizes on the CPU" if args.dry_run else f"device {args.device}"
    log(f"# python benchmarks/gpu_check.py {' '.join(argv if argv is not None else sys.argv[1:])}"
        f"   ({started}; {mode}; random weights: timings and numerical differences only)")  # fmt: skip
    record = {"started": started, "dry_run": args.dry_run, "device": label, "parts": {}}
    start = time.perf_counter()
    try:
        for name in parts:
            cap = CAPS[name][1 if args.dry_run else 0]
            log(f"\n## {name} (cap {cap} s)")
            part = _run_part(name, cap, ctx, log)
            record["parts"][name] = part
            note = f": {part['error']}" if part.get("error") else ""
            log(f"-- {name}: {part['status']} in {part['wall_s']:.0f} s{note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - start, 1)
    failed = [n for n, p in record["parts"].items() if p["status"] != "ok"]
    log(f"\ngpu_check: {len(parts) - len(failed)} of {len(parts)} parts ok in "
        f"{record['seconds']:.0f} s" + (f"; not ok: {', '.join(failed)}" if failed else ""))  # fmt: skip
    text_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json_path.write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {text_path} and {json_path.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
