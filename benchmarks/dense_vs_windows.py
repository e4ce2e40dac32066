"""Dense evaluation (§3.5) vs crop-by-crop evaluation of the same windows, both networks.

§3.5: "ConvNets are inherently efficient when applied in a sliding fashion because the
computations are naturally shared between overlapping regions." This measures how much: for each
network (full width, 1000 classes, eval mode, ``torch.inference_mode``), each scale and each
stride, one ``dense_scores`` call on the whole image is timed next to the cost of running the
plain network on every window's crop (:func:`overfeat.dense.window_boxes`) at training size.

Every crop is a training-size crop, so crop-by-crop costs the same per window at every scale
and stride: per scale, a sample of that scale's real windows is timed (batched), half before and
half after the dense runs, and the per-window cost is multiplied by the window count; the script
prints that it extrapolates. Both timings come from the same run on the same machine, so the
ratio is what to compare across machines.

    python benchmarks/dense_vs_windows.py            # 3 scales × 2 strides × 2 networks, ~2 min
    python benchmarks/dense_vs_windows.py --quick    # scale 6 only, ~40 s
    python benchmarks/dense_vs_windows.py --csv out.csv

(Dense and crop-by-crop scores are not identical in the padded networks: an output in a dense
pass also sees up to 48 px of context around its window through the 3×3 layers' padding; see
overfeat/dense.py. This script measures time only.)
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time

import torch

from overfeat import build_model
from overfeat.dense import dense_scores, window_boxes
from overfeat.geometry import output_map_size
from overfeat.scales import scale_sizes


def _timed(fn, repeats: int) -> float:
    """Fastest of ``repeats`` runs of ``fn()``, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def window_crops(model, size, sample: int) -> torch.Tensor:
    """Crops of ``sample`` real fine-stride windows of a random image of ``size``, spread evenly
    over the output map (repeated where the scale has fewer): ``(sample, 3, window, window)``."""
    boxes = window_boxes(model, size, "fine").reshape(-1, 4)
    pick = torch.linspace(0, len(boxes) - 1, sample).round().long()
    image = torch.rand(1, 3, *size)
    return torch.cat(
        [image[:, :, y1 : y2 + 1, x1 : x2 + 1] for x1, y1, x2, y2 in boxes[pick].tolist()]
    )


def crops_seconds(model, crops: torch.Tensor, batch: int) -> float:
    """Seconds to run the plain network on every crop, ``batch`` crops per forward pass."""
    t = time.perf_counter()
    for i in range(0, len(crops), batch):
        out = model(crops[i : i + batch])
        assert out.shape[-2:] == (1, 1)
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="scale 6 only, dense timed once")
    p.add_argument("--arch", nargs="+", default=["accurate", "fast"], choices=["fast", "accurate"])
    p.add_argument("--scales", nargs="+", type=int, default=[1, 3, 6], help="Table 5 scales 1..6")
    p.add_argument("--sample", type=int, default=16, help="windows timed crop by crop per scale")
    p.add_argument("--batch", type=int, default=8, help="crops per forward pass")
    p.add_argument("--repeats", type=int, default=2, help="dense timings keep the fastest")
    p.add_argument("--csv", help="also write the rows to this CSV file")
    args = p.parse_args(argv)
    if args.quick:
        args.scales, args.repeats = [6], 1

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, python {sys.version.split()[0]}"
    )
    print(
        f"crop-by-crop: per scale, {args.sample} windows timed ({args.batch} crops per batch), "
        "half before and half after the dense runs, per-window cost EXTRAPOLATED to the "
        "scale's window count"
    )
    rows = []
    for arch in args.arch:
        torch.manual_seed(0)
        model = build_model(arch).eval()
        sizes = scale_sizes(model.spec)
        print(f"\n{arch} ({sum(p.numel() for p in model.parameters()):,} parameters, 1000 classes)")
        print(
            f"  {'scale':>5} {'size':>8} {'stride':>6} {'windows':>7} {'dense s':>8} "
            f"{'ms/crop':>8} {'crops s (extrap.)':>17} {'speed-up':>8}"
        )
        with torch.inference_mode():
            dense_scores(model, torch.rand(1, 3, *sizes[0]), "fine")  # warm-up
            for scale in args.scales:
                size = sizes[scale - 1]
                x = torch.rand(1, 3, *size)
                crops = window_crops(model, size, args.sample)
                # whole batches on each side, so every timed forward pass has the same size
                half = max(1, len(crops) // 2 // args.batch) * args.batch
                model(crops[: args.batch])  # warm-up at this batch size
                # crops timed on both sides of the dense runs: a load change on the shared
                # CPU then biases both measurements alike
                crop_s = crops_seconds(model, crops[:half], args.batch)
                timed = {}
                for offsets in ("coarse", "fine"):
                    timed[offsets] = _timed(
                        lambda m=model, x=x, o=offsets: dense_scores(m, x, o), args.repeats
                    )
                crop_s += crops_seconds(model, crops[half:], args.batch)
                per_window = crop_s / len(crops)
                for offsets, dense_s in timed.items():
                    out_h, out_w = output_map_size(model.spec, size, offsets)
                    windows = out_h * out_w
                    crops_s = per_window * windows
                    ratio = crops_s / dense_s
                    rows.append(
                        {
                            "arch": arch,
                            "scale": scale,
                            "size": f"{size[0]}x{size[1]}",
                            "stride": offsets,
                            "windows": windows,
                            "dense_s": round(dense_s, 4),
                            "crop_ms": round(per_window * 1e3, 2),
                            "crops_timed": len(crops),
                            "crops_s_extrapolated": round(crops_s, 4),
                            "ratio": round(ratio, 2),
                        }
                    )
                    print(
                        f"  {scale:>5} {size[0]:>4}x{size[1]:<3} {offsets:>6} {windows:>7} "
                        f"{dense_s:>8.2f} {per_window * 1e3:>8.0f} {crops_s:>17.2f} "
                        f"{ratio:>7.1f}x",
                        flush=True,
                    )
        del model
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"\nwrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
