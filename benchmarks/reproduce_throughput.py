"""Test-time throughput of every Table 2 protocol, both full-size networks, beside the paper's.

For each OverFeat row of Table 2 (one network; an ensemble costs its members' sum), images/s of
``ClassificationProtocol.class_vector`` on ILSVRC-sized images (500x375, the typical size), all
scales and flips of a batch in one call, as ``overfeat reproduce table2`` runs it. On a GPU it
also runs bf16 autocast and prints the achieved share of the device's bf16 peak: multiply-
accumulates per image (counted by hooks on every convolution during the protocol) × 2 FLOP ×
images/s ÷ peak. The paper's one figure: "Our network with 6 scales takes around 2 secs on a K20x
GPU to process one image" (§3.4, footnote 2), i.e. 0.5 images/s for row T2-5's protocol.

    python benchmarks/reproduce_throughput.py                       # CPU: about 5 minutes
    python benchmarks/reproduce_throughput.py --device cuda --batch 16
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import peak_tflops  # noqa: E402

from overfeat import build_model  # noqa: E402
from overfeat.scales import TABLE2_PROTOCOLS  # noqa: E402

PAPER_SECONDS_PER_IMAGE_6_SCALES = 2.0  # §3.4 footnote 2, K20x


class MacCounter:
    """Counts the convolutions' multiply-accumulates while attached."""

    def __init__(self, model: nn.Module):
        self.total = 0
        self.handles = [
            m.register_forward_hook(self._hook) for m in model.modules() if isinstance(m, nn.Conv2d)
        ]

    def _hook(self, m: nn.Conv2d, _inp, out) -> None:
        k = m.kernel_size[0] * m.kernel_size[1]
        self.total += out.numel() * (m.in_channels // m.groups) * k

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def measure(model, protocol, images, device, bf16: bool, repeats: int) -> tuple[float, int]:
    """(images/s, MACs per image) of one protocol."""
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    counter = MacCounter(model)
    with amp:
        protocol.class_vector(model, images)  # warm-up, and the MAC count of one batch
    macs = counter.total // len(images)
    counter.close()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    with amp:
        for _ in range(repeats):
            protocol.class_vector(model, images)
    sync()
    return len(images) * repeats / (time.perf_counter() - t0), macs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=None, help="images per call (CPU 2, GPU 16)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls (CPU 1, GPU 5)")
    parser.add_argument("--rows", default="T2-2,T2-3,T2-4,T2-5,T2-6,T2-7")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    batch = args.batch or (16 if gpu else 2)
    repeats = args.repeats or (5 if gpu else 1)
    peak = args.peak_tflops or (peak_tflops(torch.cuda.get_device_name(device)) if gpu else None)
    g = torch.Generator().manual_seed(0)
    images = [torch.randn(3, 375, 500, generator=g).to(device) for _ in range(batch)]
    models = {}
    print(f"device {device}, {batch} images of 500x375 per call, {repeats} timed call(s)")
    print(f"{'row':6} {'protocol':45} {'mode':8} {'images/s':>9} {'s/image':>8} {'GMAC/img':>9} "
          f"{'of peak':>8}")  # fmt: skip
    for row in args.rows.split(","):
        protocol = TABLE2_PROTOCOLS[row]
        if protocol.arch not in models:
            torch.manual_seed(0)
            models[protocol.arch] = build_model(protocol.arch).to(device).eval()
        model = models[protocol.arch]
        desc = (f"{protocol.arch}, {protocol.views}, scales {protocol.scales}, {protocol.offsets}"
                if protocol.views == "dense" else f"{protocol.arch}, 10 views")  # fmt: skip
        for bf16 in (False, True) if gpu else (False,):
            rate, macs = measure(model, protocol, images, device, bf16, repeats)
            share = f"{2 * macs * rate / (peak * 1e12):8.1%}" if peak and bf16 else f"{'—':>8}"
            print(f"{row:6} {desc:45} {'bf16' if bf16 else 'fp32':8} {rate:9.2f} "
                  f"{1 / rate:8.2f} {macs / 1e9:9.1f} {share}")  # fmt: skip
        if row == "T2-5":
            print(f"{'':6} paper (§3.4): 6 scales on a K20x, about "
                  f"{PAPER_SECONDS_PER_IMAGE_6_SCALES:.0f} s per image, "
                  f"{1 / PAPER_SECONDS_PER_IMAGE_6_SCALES:.2f} images/s")  # fmt: skip
    print("ensembles (T2-8, T2-9) cost their members' sum: 7 × T2-4 and 7 × T2-7")


if __name__ == "__main__":
    main()
