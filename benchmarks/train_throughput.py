"""Training throughput of the full-width networks, and the data loader's rate beside it.

Measures, in one run:

1. training images/s of the *fast* and *accurate* networks at full width (forward, backward and
   an SGD step at the training crop, §3.1), on the CPU (float32) and, when CUDA exists, on the GPU
   with bf16 autocast and channels_last (the engine's GPU settings);
2. the achieved fraction of the device's peak: multiply-accumulates per image (counted from the
   convolutions' output sizes, i.e. the layer arithmetic) × 2 FLOP × 3 (forward + backward, which
   costs about two forwards) × images/s ÷ peak FLOP/s;
3. the loader's images/s PER WORKER (one process, one thread) on ImageNet-sized JPEGs (500x375
   and 375x500 photographs' statistics: smooth fields plus grain, quality 90), side by side in
   one run and interleaved: a naive PIL loop (decode, resize the short side to 256, crop, flip,
   normalised float32: what a first data loader does), the project's loader (a
   ``ClassificationDataset`` with the engine's uint8 transform: libjpeg-turbo decode, torch's
   uint8 antialiased resize, the uint8 crop), and DALI's CPU pipeline where it is installed;
   with the bytes each hands from a worker to the main process per image;
4. loader images/s × ``--workers`` against the training step's appetite (≥ 1: it keeps up).

    python benchmarks/train_throughput.py                 # a few minutes on a 2-core CPU
    python benchmarks/train_throughput.py --peak-tflops 989 --gpu-batch 128
    python benchmarks/train_throughput.py --skip-train    # the loader comparison only
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evaluation.json_output import JSON_HELP, console, write_json
from overfeat.flags import DefaultsHelpFormatter
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


def imagenet_sized_jpegs(folder: Path, count: int, seed: int = 0) -> list[tuple[str, int]]:
    """``count`` JPEGs of ILSVRC's typical sizes (500x375 and 375x500, alternating): a smooth
    random field (an upsampled 12x16 grid) plus pixel grain, quality 90, about 100 KB each like
    the photographs; → ``[(path, label)]`` in ``folder/n0000000L/``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        w, h = (500, 375) if i % 2 == 0 else (375, 500)
        field = Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8))
        field = np.asarray(field.resize((w, h), Image.BICUBIC), dtype=np.int16)
        grain = rng.integers(-24, 25, (h, w, 3))
        label = i % 10
        path = folder / f"n{label:08d}" / f"img_{i}.JPEG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(field + grain, 0, 255).astype(np.uint8)).save(path, quality=90)
        out.append((str(path), label))
    return out


class NaivePilLoop:
    """What a first loader does per image (§3.1's view): PIL decode, ``resize`` of the short side
    to 256 (bilinear, antialiased), a random crop and flip, a normalised float32 tensor."""

    def __init__(self, crop: int, seed: int = 0):
        import numpy as np

        self.crop, self.rng = crop, np.random.default_rng(seed)

    def __call__(self, path: str) -> torch.Tensor:
        import numpy as np
        from PIL import Image

        img = Image.open(path).convert("RGB")
        w, h = img.size
        short = min(w, h)
        img = img.resize((w * 256 // short, h * 256 // short), Image.BILINEAR)
        x0 = int(self.rng.integers(0, img.size[0] - self.crop + 1))
        y0 = int(self.rng.integers(0, img.size[1] - self.crop + 1))
        pixels = np.asarray(img)[y0 : y0 + self.crop, x0 : x0 + self.crop]
        if self.rng.random() < 0.5:
            pixels = pixels[:, ::-1]
        x = torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()
        return (x - 118.380948) / 61.896913


def loader_rates(arch: str, images: int, repeats: int) -> dict:
    """Per-worker images/s of the naive PIL loop, the project's loader and (where installed)
    DALI's CPU pipeline on the same ImageNet-sized JPEGs, interleaved ``repeats`` times (the
    best of each is kept: the machine is shared); and bytes per image handed over."""
    from overfeat.data import ClassificationDataset, train_transform

    torch.set_num_threads(1)  # one worker's share of a machine
    crop = ARCHS[arch].input_size
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        samples = imagenet_sized_jpegs(Path(tmp), images)
        naive = NaivePilLoop(crop)
        dataset = ClassificationDataset(samples, [f"n{c:08d}" for c in range(10)],
                                        train_transform(arch, output="uint8"))  # fmt: skip
        runs = {
            "naive PIL loop": lambda: [naive(p) for p, _ in samples],
            "project loader": lambda: [dataset[(0, i)] for i in range(len(samples))],
        }
        dali = _dali_run(dataset, samples)
        if dali is not None:
            runs["DALI (CPU)"] = dali
        for _ in range(repeats):
            for name, run in runs.items():
                t0 = time.perf_counter()
                run()
                rate = len(samples) / (time.perf_counter() - t0)
                best[name] = max(best.get(name, 0.0), rate)
        sizes = {"naive PIL loop": naive(samples[0][0]), "project loader": dataset[(0, 0)][0]}
    return {
        "images_per_s": best,
        "bytes_per_image": {k: v.numel() * v.element_size() for k, v in sizes.items()},
    }


def _dali_run(dataset, samples):
    """A callable loading every sample once through DALI's CPU pipeline, or ``None``."""
    try:
        from overfeat.data.dali import DaliTrainLoader, dali_unavailable
    except ImportError:
        return None
    why = dali_unavailable()
    if why is not None:
        print(f"DALI: not measured ({why})")
        return None
    from overfeat.data.sampler import ShardedTrainSampler

    batch = 8
    sampler = ShardedTrainSampler(len(samples) // batch * batch, batch)
    loader = DaliTrainLoader(dataset, dataset.transform, sampler, torch.device("cpu"), threads=1)

    def run():
        loader.set_epoch(0)
        return [b for b in loader]

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=DefaultsHelpFormatter)  # fmt: skip
    p.add_argument("--cpu-batch", type=int, default=4, help="images per step on the CPU")
    p.add_argument("--cpu-steps", type=int, default=2, help="timed steps on the CPU")
    p.add_argument("--gpu-batch", type=int, default=128, help="images per step on a GPU")
    p.add_argument("--gpu-steps", type=int, default=10, help="timed steps on a GPU")
    p.add_argument("--loader-images", type=int, default=48, help="JPEGs the loaders read")
    p.add_argument("--loader-repeats", type=int, default=3, help="passes; the best counts")
    p.add_argument("--workers", type=int, default=2, help="loader workers per GPU, for the ratio")
    p.add_argument("--skip-train", action="store_true", help="the loader comparison only")
    p.add_argument("--peak-tflops", type=float, default=None, help="GPU peak (default: table)")
    p.add_argument("--json", default=None, help=JSON_HELP)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.redirect_stdout(console(args.json)):
        results = measure(args)
    write_json(args.json, results)
    return 0


def measure(args: argparse.Namespace) -> dict:
    """Run every measurement ``args`` asks for, printing a line each; → the numbers."""

    rows = []
    devices = [("cpu", torch.device("cpu"), args.cpu_batch, args.cpu_steps, False, False)]
    if torch.cuda.is_available():
        devices.append(("cuda", torch.device("cuda"), args.gpu_batch, args.gpu_steps, True, True))
    for arch in () if args.skip_train else ("fast", "accurate"):
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
        rates = loader_rates(arch, args.loader_images, args.loader_repeats)
        loader[arch] = rates
        ips, size = rates["images_per_s"], rates["bytes_per_image"]
        for name, rate in ips.items():
            handed = f", {size[name] / 1024:.0f} KB/image handed over" if name in size else ""
            print(f"load  {arch:8s} {name:15s} per worker: {rate:8.2f} images/s{handed}")
        print(f"ratio {arch:8s} project loader / naive PIL loop, per worker: "
              f"{ips['project loader'] / ips['naive PIL loop']:.2f}x (target >= 1.5x)")  # fmt: skip
    for row in rows:
        feed = loader[row["arch"]]["images_per_s"]["project loader"] * args.workers
        ratio = feed / row["train_images_per_s"]
        row["loader_to_train_ratio"] = ratio
        print(
            f"ratio {row['arch']:8s} loader ({args.workers} workers) / train step on "
            f"{row['device']}: {ratio:6.2f} "
            f"({'keeps up' if ratio >= 1 else 'loader-bound: add workers, CPU cores or DALI'})"
        )
    return {"train": rows, "loader": loader}


if __name__ == "__main__":
    raise SystemExit(main())
