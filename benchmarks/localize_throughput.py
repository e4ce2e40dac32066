"""Localization throughput per image on real photos: where the time goes (forward, decode, merge)
and what the merge costs a GPU, with the merge taken off the critical path by merge workers.

For each full-size network (fast and accurate: random weights, which time the same arithmetic as
trained ones) and each number of scales (1: scale 1; 2: scales 1-2; 4: Table 2's 1,2,4,6; 6: all
six), ``overfeat.localize.localize_dataset`` runs §4.3 with a single-class regressor over the
first ``--images`` boxed validation images of ``--data``, merging in the main process, and
reports per image: the forward passes (layers 1-5, classifier and regressor, maps to the host),
the decoding of every window's box, the merges (wall-clock, and CPU time), the merges per image,
the boxes per (image, class) merge, and the merges' share of the pass.

What it means on a GPU, by arithmetic: multiply-accumulates per image (counted by hooks on every
convolution of both networks) at the GPU's dense bf16 peak give the forward pass's GPU time (a
lower bound: a real share of peak is smaller); the merge's CPU seconds per image over that time
are the CPU cores needed to merge as fast as the GPU computes. On a CUDA device the measured
forward time is used as well.

Then side by side, on the same images (``--ratio-arch`` at Table 2's 4 scales): the pass with
the merge skipped (a switch of this benchmark only: every set becomes its first box), with
the merge in ``--merge-workers`` processes beside the next batch's forward pass (default: the
CPUs this process may use; the pool is started before the clock, as a command starts it once),
and with the merge in the main process; with ``--merge-device`` also with each batch's merges
run together on that device (:func:`overfeat.merge_batched.batched_greedy_merge`, decision
MERGE_PATH). The target: the merge workers' images/s at least 0.9x the merge-skipped pass's.
Then the projection for one GPU with ``--gpu-cores`` CPU cores: the forward pass at the GPU's
peak (an upper bound on its images/s) against the merges in that many workers (the merge CPU
seconds per image measured here), whichever is slower.

The load average at the start is printed: on a shared machine every pass runs beside the
other jobs, so side-by-side ratios are what to compare, not absolute images/s.

The regressor's output layer is drawn so that its boxes move from their windows by
``--box-jitter`` window sides (standard deviation, on the first image at scale 1); with the
untrained regressor's zero output layer every box would be its window (REGRESSOR_INIT).

    python benchmarks/localize_throughput.py                        # a 2-core CPU: about 6 minutes
    python benchmarks/localize_throughput.py --images 8 --device cuda --batch-size 8 \
        --merge-device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_throughput import MacCounter  # noqa: E402
from train_throughput import peak_tflops  # noqa: E402

from overfeat import build_model  # noqa: E402
from overfeat.inference import RunOptions  # noqa: E402
from overfeat.localize import (  # noqa: E402
    LOCALIZATION_SCALES,
    LocalizationProtocol,
    localization_images,
    localize_dataset,
)
from overfeat.merge_batched import DeviceMerges  # noqa: E402
from overfeat.merge_workers import (  # noqa: E402
    MergedSet,
    MergePool,
    PendingMerges,
    default_merge_workers,
)
from overfeat.regression import dense_boxes, single_class_regressor  # noqa: E402
from overfeat.scales import resize, scale_sizes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("OVERFEAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_DATA = DEFAULT_DATA / "ilsvrc2012-val-mini"
# The GPU of the arithmetic on a CPU: the README's (H100 SXM, dense bf16).
REFERENCE_GPU = "H100"
TARGET_RATIO = 0.9
# The CPU cores of the projected GPU machine (an H100 or H200 machine lent here has 16).
GPU_CORES = 16


def scale_set(count: int) -> tuple[int, ...]:
    """The scales of "``count`` scales": Table 2's 4 (1, 2, 4, 6), all 6, or the first
    ``count`` of Table 2's 4 (Figure 9's nesting)."""
    if count == 6:
        return (1, 2, 3, 4, 5, 6)
    if not 1 <= count <= 4:
        raise ValueError(f"scale counts are 1, 2, 3, 4 or 6, got {count}")
    return LOCALIZATION_SCALES[:count]


class SkippedMerge:
    """The benchmark's switch, never a user option: every set "merges" into its first box at
    no cost, so the pass runs everything but the greedy merge (and the top 5 are chosen among
    as few boxes as after a merge)."""

    lag = 0

    def submit(self, sets, threshold):
        return PendingMerges([MergedSet(b[:1], np.zeros(len(b), np.int64), 0.0) for b in sets])


def networks(arch: str, image: torch.Tensor, jitter: float, device: torch.device,
             width: float = 1.0):  # fmt: skip
    """A classifier (the paper's initialisation; full size unless ``width``) and a single-class
    regressor whose boxes move by ``jitter`` window sides (std) on ``image`` at scale 1."""
    torch.manual_seed(0)
    model = build_model(arch, width=width).eval()
    reg = single_class_regressor(model.spec, width=width).eval()
    with torch.no_grad():
        reg.layers.reg3.weight.normal_(0, 1.0)
        x = resize(image.unsqueeze(0), scale_sizes(model.spec)[0])
        reg.layers.reg3.weight.mul_(jitter / float(dense_boxes(model, reg, x, "fine").std()))
    return model.to(device), reg.to(device)


def run_pass(model, reg, samples, scales, options, merges=None) -> dict:
    """One localization pass → its seconds, stage times, merges and multiply-accumulates."""
    counters = [MacCounter(model), MacCounter(reg)]
    try:
        start = time.perf_counter()
        result = localize_dataset(model, reg, samples, LocalizationProtocol(scales=scales),
                                  options, merges=merges)  # fmt: skip
        seconds = time.perf_counter() - start
    finally:
        for c in counters:
            c.close()
    n = len(samples)
    times = result.times
    sizes = np.array(times.merge_sizes or [0])
    return {
        "images": n,
        "seconds": seconds,
        "images_per_s": n / seconds,
        "forward_s": times.seconds.get("forward", 0.0) / n,
        "decode_s": times.seconds.get("decode", 0.0) / n,
        "merge_s": times.seconds.get("merge", 0.0) / n,
        "merge_cpu_s": times.merge_cpu / n,
        "merges": len(times.merge_sizes) / n,
        "boxes_per_merge_mean": float(sizes.mean()),
        "boxes_per_merge_max": int(sizes.max()),
        "gmac": sum(c.total for c in counters) / n / 1e9,
        "labels": result.labels.tolist(),
        "boxes": result.boxes.tolist(),
    }


def split(args, device, samples, peak) -> list[dict]:
    """Forward, decode and merge per image for every network and number of scales."""
    rows = []
    print(f"{'network':9} {'scales':12} {'forward':>8} {'decode':>7} {'merge':>7} {'merge cpu':>9} "
          f"{'merges':>6} {'boxes/merge':>12} {'share':>6} {'GMAC':>6} {'GPU ms':>7} "
          f"{'cores':>6}")  # fmt: skip
    print(f"{'':9} {'':12} {'s/image':>8} {'s/image':>7} {'s/image':>7} {'s/image':>9} "
          f"{'/image':>6} {'mean / max':>12} {'':>6} {'/image':>6} {'at peak':>7} "
          f"{'needed':>6}")  # fmt: skip
    options = RunOptions(args.device, args.batch_size, 0, "none", False, merge_workers=0)
    for arch in args.archs.split(","):
        model, reg = networks(arch, first_image(samples), args.box_jitter, device, args.width)
        for count in args.scale_counts:
            scales = scale_set(count)
            r = run_pass(model, reg, samples, scales, options)
            total = r["forward_s"] + r["decode_s"] + r["merge_s"]
            gpu_s = 2 * r["gmac"] * 1e9 / (peak * 1e12)
            r.update(arch=arch, scales=list(scales), share=r["merge_s"] / total, gpu_s_at_peak=gpu_s,
                     cores_at_peak=r["merge_cpu_s"] / gpu_s)  # fmt: skip
            if device.type == "cuda":
                r["cores_at_measured_forward"] = r["merge_cpu_s"] / r["forward_s"]
            rows.append(r)
            boxes = f"{r['boxes_per_merge_mean']:.0f} / {r['boxes_per_merge_max']}"
            print(f"{arch:9} {','.join(map(str, scales)):12} {r['forward_s']:8.2f} "
                  f"{r['decode_s']:7.3f} {r['merge_s']:7.3f} {r['merge_cpu_s']:9.3f} "
                  f"{r['merges']:6.1f} {boxes:>12} {r['share']:6.1%} {r['gmac']:6.0f} "
                  f"{gpu_s * 1e3:7.2f} {r['cores_at_peak']:6.0f}", flush=True)  # fmt: skip
        del model, reg
    return rows


def ratio(args, device, samples, peak) -> dict:
    """The merge skipped, in workers, in the main process (and batched on ``--merge-device``),
    side by side on the same images; the projection for one GPU with ``--gpu-cores`` cores."""
    model, reg = networks(args.ratio_arch, first_image(samples), args.box_jitter, device,
                          args.width)  # fmt: skip
    scales = LOCALIZATION_SCALES
    workers = args.merge_workers
    base = RunOptions(args.device, args.batch_size, 0, "none", False)
    runs: dict[str, list[dict]] = {"skipped": [], "workers": [], "main": []}
    if args.merge_device:
        runs["device"] = []
    # The first pass at each scale image size allocates (and on a GPU picks kernels): a pass
    # over one image first, untimed.
    run_pass(model, reg, samples[:1], scales, base, SkippedMerge())
    with MergePool(workers) as pool:
        pool.submit([np.zeros((2, 4))], 0.5).result()  # start the workers before the clock
        merges = {"skipped": SkippedMerge(), "workers": pool, "main": None}
        if args.merge_device:
            merges["device"] = DeviceMerges(args.merge_device)
        for r in range(args.repeats):
            # Every other repeat in the reverse order, so that a drift of the machine's speed
            # over the run does not favour whichever pass comes first.
            for key in list(merges) if r % 2 == 0 else reversed(merges):
                runs[key].append(run_pass(model, reg, samples, scales, base, merges[key]))
    best = {k: max(v, key=lambda r: r["images_per_s"]) for k, v in runs.items()}
    same = all(best[k]["labels"] == best["main"]["labels"] and
               best[k]["boxes"] == best["main"]["boxes"] for k in best if k != "skipped")  # fmt: skip
    out = {
        "arch": args.ratio_arch,
        "scales": list(scales),
        "images": len(samples),
        "merge_workers": workers,
        "images_per_s": {k: r["images_per_s"] for k, r in best.items()},
        "merge_cpu_s": best["main"]["merge_cpu_s"],
        "workers_vs_skipped": best["workers"]["images_per_s"] / best["skipped"]["images_per_s"],
        "main_vs_skipped": best["main"]["images_per_s"] / best["skipped"]["images_per_s"],
        "identical_output": same,
        "merge_device": args.merge_device,
    }
    gpu_s = 2 * best["main"]["gmac"] * 1e9 / (peak * 1e12)
    projection = {
        "gpu_cores": args.gpu_cores,
        "forward_images_per_s_at_peak": 1 / gpu_s,
        "merge_images_per_s": args.gpu_cores / out["merge_cpu_s"],
    }
    projection["images_per_s"] = min(projection["forward_images_per_s_at_peak"],
                                     projection["merge_images_per_s"])  # fmt: skip
    out["projection"] = projection
    print(f"\n{args.ratio_arch} network, scales {','.join(map(str, scales))}, {len(samples)} images, "
          f"batch {args.batch_size}, best of {args.repeats}:")  # fmt: skip
    for key, label in (("skipped", "merge skipped (benchmark switch)"),
                       ("workers", f"merge in {workers} worker processes"),
                       ("main", "merge in the main process"),
                       ("device", f"merges batched on {args.merge_device}")):  # fmt: skip
        if key in out["images_per_s"]:
            print(f"  {label:36} {out['images_per_s'][key]:8.3f} images/s")
    if "device" in best:
        out["device_vs_skipped"] = (best["device"]["images_per_s"]
                                    / best["skipped"]["images_per_s"])  # fmt: skip
    others = "workers' and batched merges'" if "device" in best else "workers'"
    print(f"  workers / skipped: {out['workers_vs_skipped']:.3f}x; main process / skipped: "
          f"{out['main_vs_skipped']:.3f}x"
          + (f"; batched / skipped: {out['device_vs_skipped']:.3f}x" if "device" in best else "")
          + f"; {others} output identical to the main process's: {'yes' if same else 'NO'}")  # fmt: skip
    verdict = "met" if out["workers_vs_skipped"] >= TARGET_RATIO else "NOT met"
    print(f"target: merge workers at >= {TARGET_RATIO}x the merge-skipped images/s: {verdict}")
    print(f"projection, one GPU ({peak:.0f} TFLOP/s bf16 peak) with {args.gpu_cores} cores: "
          f"forward at peak <= {projection['forward_images_per_s_at_peak']:.0f} images/s "
          f"({best['main']['gmac']:.0f} GMAC/image); merges in {args.gpu_cores} workers "
          f"{projection['merge_images_per_s']:.0f} images/s ({out['merge_cpu_s']:.3f} merge CPU "
          f"s/image measured here) -> at most {projection['images_per_s']:.0f} images/s, "
          f"bound by the "
          f"{'merges' if projection['merge_images_per_s'] < projection['forward_images_per_s_at_peak'] else 'forward pass'}")  # fmt: skip
    return out


def first_image(samples) -> torch.Tensor:
    from overfeat.inference import ValidationImages

    return ValidationImages(samples[:1])[0][1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="an ILSVRC-layout folder with validation boxes")  # fmt: skip
    parser.add_argument("--images", type=int, default=2, help="boxed validation images")
    parser.add_argument("--archs", default="fast,accurate")
    parser.add_argument("--scale-counts", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 2, 4, 6], metavar="1,2,4,6")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument("--merge-workers", type=int, default=default_merge_workers())
    parser.add_argument("--merge-device", default=None, metavar="DEVICE",
                        help="also time the merges batched on DEVICE (MERGE_PATH)")  # fmt: skip
    parser.add_argument("--gpu-cores", type=int, default=GPU_CORES,
                        help="CPU cores of the projected GPU machine")  # fmt: skip
    parser.add_argument("--ratio-arch", default="fast")
    parser.add_argument("--repeats", type=int, default=3,
                        help="side-by-side passes per mode, interleaved, best kept")  # fmt: skip
    parser.add_argument("--no-split", dest="split", action="store_false")
    parser.add_argument("--no-ratio", dest="ratio", action="store_false")
    parser.add_argument("--box-jitter", type=float, default=0.1, metavar="SIDES")
    parser.add_argument("--width", type=float, default=1.0,
                        help="network width (1: full size; gpu_check's dry run times toy ones)")  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="the record as JSON")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help=f"bf16 dense peak of the arithmetic (default: the device's, on a CPU "
                        f"the {REFERENCE_GPU}'s)")  # fmt: skip
    return parser.parse_args(argv)


def measure(args) -> dict | None:
    """Everything above, printed → a JSON-able record (``None`` without the data)."""
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent; pass --data an ILSVRC-layout folder with "
              "validation boxes (the real photos of ilsvrc2012-val-mini)")  # fmt: skip
        return None
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else REFERENCE_GPU
    peak = args.peak_tflops or peak_tflops(name) or peak_tflops(REFERENCE_GPU)
    samples, _, _ = localization_images(args.data, args.images)
    print(f"localization throughput: {len(samples)} images of {args.data}, device {device}, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")  # fmt: skip
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} at the start: on a machine shared with other jobs every pass "
          "runs beside them; compare the side-by-side ratios, not absolute images/s")  # fmt: skip
    size = "full-size" if args.width == 1 else f"width-{args.width:g} (toy)"
    print(f"{size} networks with RANDOM weights (timing only: the same arithmetic as trained "
          f"ones); regressor boxes jittered by {args.box_jitter} window sides")  # fmt: skip
    print(f"GPU arithmetic at {peak:.0f} TFLOP/s dense bf16 ({name}): "
          "'GPU ms at peak' = 2 x GMAC / peak; 'cores needed' = merge CPU s per GPU s of forward "
          "at that peak (a GPU below its peak needs proportionally fewer)\n")  # fmt: skip
    record = {"device": str(device), "images": len(samples), "batch_size": args.batch_size,
              "peak_tflops": peak, "box_jitter": args.box_jitter, "random_weights": True,
              "width": args.width, "load_average_at_start": os.getloadavg()}  # fmt: skip
    if args.split:
        rows = split(args, device, samples, peak)
        record["split"] = [{k: v for k, v in r.items() if k not in ("labels", "boxes")}
                           for r in rows]  # fmt: skip
    if args.ratio:
        record["ratio"] = ratio(args, device, samples, peak)
    return record


def main(argv=None) -> None:
    import json

    args = parse_args(argv)
    record = measure(args)
    if record is not None and args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
