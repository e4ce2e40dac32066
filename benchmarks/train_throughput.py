"""Training throughput of the full-width networks, and the data loader's rate beside it.

Measures, in one run:

1. training images/s of the *fast* and *accurate* networks at full width (forward, backward and
   an SGD step at the training crop, §3.1), on the CPU (float32) and, when CUDA exists, on the GPU
   with bf16 autocast and channels_last (the engine's GPU settings);
2. the achieved fraction of the device's peak: multiply-accumulates per image (counted from the
   convolutions' output sizes, i.e. the layer arithmetic) × 2 FLOP × 3 (forward + backward, which
   costs about two forwards) × images/s ÷ peak FLOP/s;
3. data-loading images/s through the real decode path: synthetic JPEGs written by
   ``overfeat make-synthetic``, ``open_classification`` with the §3.1 train transform, a
   ``DataLoader`` with ``collate_skip_corrupt``; printed as the ratio to the training step's
   appetite (≥ 1: the loader keeps up).

    python benchmarks/train_throughput.py                 # a few minutes on a 2-core CPU
    python benchmarks/train_throughput.py --peak-tflops 989 --gpu-batch 128
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from overfeat.models import ARCHS, build_model

# Dense bf16 tensor-core peak, TFLOP/s, from NVIDIA's data sheets (H100/H200: "NVIDIA H100 Tensor
# Core GPU" and "NVIDIA H200" data sheets, BF16 Tensor Core without sparsity; A100: "NVIDIA A100
# Tensor Core GPU" data sheet; L4/L40S: their data sheets). Matched by substring of the device
# name, most specific first; --peak-tflops overrides.
BF16_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def peak_tflops(device_name: str) -> float | None:
    for key, value in BF16_PEAK_TFLOPS:
        if key in device_name:
            return value
    return None


def macs_per_image(model: nn.Module, size: int) -> int:
    """Multiply-accumulates of one forward pass at ``size``², counted per convolution as
    output elements × (in_channels / groups) × kernel area (FACTS §2's "connections")."""
    total = 0

    def hook(m: nn.Conv2d, _inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        total += out[0].numel() * (m.in_channels // m.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def train_images_per_second(
    arch: str, device: torch.device, batch: int, steps: int, bf16: bool, channels_last: bool
) -> float:
    """Images/s of full training steps (forward, cross-entropy, backward, SGD step)."""
    torch.manual_seed(0)
    size = ARCHS[arch].input_size
    model = build_model(arch).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.6, weight_decay=1e-5)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        with amp:
            loss = F.cross_entropy(model(x).flatten(1).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up: allocator, kernel selection
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - t0)


def loader_images_per_second(arch: str, workers: int, images: int, batch: int) -> float:
    """Images/s through decode → §3.1 train transform → DataLoader, on synthetic JPEGs."""
    from torch.utils.data import DataLoader

    from overfeat.data import collate_skip_corrupt, open_classification, train_transform
    from overfeat.data.synthetic import SyntheticConfig, write_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synthetic"
        classes = 10
        write_synthetic(
            root,
            SyntheticConfig(classes=classes, train_per_class=-(-images // classes),
                            val_per_class=0, det_images=0),
        )  # fmt: skip
        ds = open_classification(root, "train", transform=train_transform(arch))
        loader = DataLoader(
            ds, batch_size=batch, shuffle=False, num_workers=workers,
            collate_fn=collate_skip_corrupt, persistent_workers=False,
        )  # fmt: skip
        it = iter(loader)
        first = next(it)  # worker start-up is not the steady-state rate
        n, t0 = 0, time.perf_counter()
        for images_, _labels, _skipped in it:
            n += images_.shape[0]
        dt = time.perf_counter() - t0
        del first
        return n / dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-batch", type=int, default=4)
    p.add_argument("--cpu-steps", type=int, default=2)
    p.add_argument("--gpu-batch", type=int, default=128)
    p.add_argument("--gpu-steps", type=int, default=10)
    p.add_argument("--loader-images", type=int, default=160)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU peak (default: table)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)

    rows = []
    devices = [("cpu", torch.device("cpu"), args.cpu_batch, args.cpu_steps, False, False)]
    if torch.cuda.is_available():
        devices.append(("cuda", torch.device("cuda"), args.gpu_batch, args.gpu_steps, True, True))
    for arch in ("fast", "accurate"):
        macs = macs_per_image(build_model(arch), ARCHS[arch].input_size)
        for kind, dev, batch, steps, bf16, cl in devices:
            ips = train_images_per_second(arch, dev, batch, steps, bf16, cl)
            flops = macs * 2 * 3 * ips
            name = torch.cuda.get_device_name(dev) if kind == "cuda" else "cpu"
            peak = (args.peak_tflops or peak_tflops(name)) if kind == "cuda" else args.peak_tflops
            row = {
                "arch": arch, "device": name, "batch": batch, "bf16": bf16,
                "channels_last": cl, "macs_per_image": macs, "train_images_per_s": ips,
                "achieved_tflops": flops / 1e12,
                "fraction_of_peak": flops / (peak * 1e12) if peak else None,
            }  # fmt: skip
            rows.append(row)
            frac = f"{row['fraction_of_peak']:.1%} of {peak:g} TFLOP/s" if peak else "peak unknown"
            print(
                f"train {arch:8s} on {name} (batch {batch}, "
                f"{'bf16+channels_last' if bf16 else 'fp32'}): {ips:8.2f} images/s, "
                f"{macs / 1e6:.0f} MMAC/image, {flops / 1e12:.3f} TFLOP/s ({frac})"
            )

    loader = {}
    for arch in ("fast", "accurate"):
        ips = loader_images_per_second(arch, args.workers, args.loader_images, args.cpu_batch * 4)
        loader[arch] = ips
        print(f"load  {arch:8s} decode+transform, {args.workers} workers: {ips:8.2f} images/s")
    for row in rows:
        ratio = loader[row["arch"]] / row["train_images_per_s"]
        row["loader_to_train_ratio"] = ratio
        print(
            f"ratio {row['arch']:8s} loader / train step on {row['device']}: {ratio:6.2f} "
            f"({'keeps up' if ratio >= 1 else 'loader-bound: add workers or CPU cores'})"
        )
    if args.json:
        args.json.write_text(json.dumps({"train": rows, "loader_images_per_s": loader}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
