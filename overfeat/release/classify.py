"""``overfeat classify``: top-K classes of images as the released ``overfeat`` tool prints them.

The release's classification path (overfeat-release.md §1.3): the shorter side resized to 231
as ImageMagick's ``convert IMG -resize 231x231^`` does it (:mod:`overfeat.release.resize`), the
central square cropped at offset ``(long − short) / 2`` (floor), RGB pixels 0–255, the same
231×231 input for **both** networks (the accurate network, whose window is 221, then sees only
the top-left 221×221 and still gives a 1×1 output, §1.1), layer 0 normalisation, then a softmax
over the 1000 raw outputs. Each class is printed as one line, its name, a space and its
probability with six significant digits (C++ ``cout``, §1.6).

The release's names live in its class-name header, which is not redistributable: names here come
from the devkit meta's ``words`` (``--meta``), by position; without it the ILSVRC2012_ID is printed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from evaluation.labels import ClassLabels
from overfeat.flags import (
    CLASSIFY,
    add_batch_size_flag,
    add_deprecated_alias,
    add_device_flag,
    add_meta_flag,
)
from overfeat.progress import progress
from overfeat.release.classes import release_names
from overfeat.release.resize import fill_size, imagemagick_resize
from overfeat.release.weights import (
    RELEASE_FILE_NAMES,
    ReleaseNet,
    load_release,
    release_layout,
)

__all__ = [
    "RELEASE_CLASSIFY_SIZE",
    "exp_minus_approx",
    "read_image",
    "register",
    "release_preprocess",
    "release_resize_size",
    "release_softmax",
    "release_top_classes",
]

# overfeat-release.md §1.3: the CLI feeds 231×231 to both networks.
RELEASE_CLASSIFY_SIZE = 231

# Torch7 TH ``THExpMinusApprox`` (THLogAdd.c), which the release's SoftMax uses (§1.3): exp(−x)
# ≈ 1 / T(x)⁸, T the 4th-order Taylor polynomial of e^(x/8) with TH's decimal coefficients, and
# exactly 0 from x = 13 on.
_EXP_APPROX_COEFFS = (1.0, 0.125, 0.0078125, 0.00032552083, 1.0172526e-5)
_EXP_APPROX_CUTOFF = 13.0

# Decision CLASSIFY_PATH_HEADER: the release classifies one image per run; given several, each
# image's lines are preceded by a line holding its path (a single image prints exactly as the
# release does).


# ---------------------------------------------------------------------------------- preprocessing
def release_resize_size(
    width: int, height: int, short: int = RELEASE_CLASSIFY_SIZE
) -> tuple[int, int]:
    """The ``(width, height)`` after ``-resize 231x231^``: the shorter side becomes ``short``, the
    longer one ``floor(scale · side + ½)``, as ImageMagick rounds it (:func:`fill_size`)."""
    return fill_size(width, height, short)


def read_image(path: str | Path) -> Image.Image:
    """Decode an image file fully, in its own mode (raises ``OSError``/``ValueError`` when
    unreadable): ImageMagick picks its resize filter by it (grey, palette and alpha images get
    Mitchell), so :func:`release_preprocess` converts to RGB only after looking."""
    # Decision RELEASE_NO_EXIF_ROTATION: the release pipes files through ``convert`` without
    # ``-auto-orient`` (§1.3), so the EXIF orientation tag is not applied here either.
    with Image.open(path) as image:
        image.load()
        return image


def release_preprocess(image: Image.Image, size: int = RELEASE_CLASSIFY_SIZE) -> torch.Tensor:
    """The release's classification input: ``(3, size, size)`` float32, RGB, 0–255 (§1.3): the
    image resized as ``convert IMG -resize 231x231^ ppm:-`` resizes it (decision
    RELEASE_RESIZE_FILTER), then the centre crop of ``overfeatcmd``."""
    width, height = release_resize_size(*image.size, short=size)
    # Decision RELEASE_RESIZE_FILTER: ImageMagick 6's own default filter, reproduced in float64
    # (overfeat.release.resize): Mitchell (B = C = 1/3) when the area grows or the image is grey,
    # palette or has alpha, else Lanczos 3, in two separable passes each rounded and clamped to
    # 16 bits as the Q16 build does. Against `convert` 6.9.11, 2 samples in 8 million differ, by 1
    # (ImageNet JPEGs and random-noise PNGs, enlarged or shrunk); Pillow's Lanczos, used before,
    # differed by up to 43 on ImageNet 224×224 photos enlarged to 231.
    pixels = imagemagick_resize(image, width, height)
    # overfeatcmd: the central min(h, w) square, offset (long − short) / 2 rounded down.
    left, top = (width - size) // 2, (height - size) // 2
    crop = pixels[top : top + size, left : left + size].astype(np.float32)
    return torch.from_numpy(crop).permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------- probabilities
def exp_minus_approx(x: torch.Tensor) -> torch.Tensor:
    """The release's approximation of ``exp(-x)`` for ``x ≥ 0`` (any shape, computed in float64)."""
    x = x.double()
    a0, a1, a2, a3, a4 = _EXP_APPROX_COEFFS
    t = a0 + x * (a1 + x * (a2 + x * (a3 + x * a4)))
    return torch.where(x < _EXP_APPROX_CUTOFF, t.pow(-8), torch.zeros_like(x))


def release_softmax(scores: torch.Tensor) -> torch.Tensor:
    """``scores: (N, C)`` → ``(N, C)`` float32 probabilities as the release's SoftMax computes them:
    max subtracted, :func:`exp_minus_approx`, normalised; classes 13 or more below the top get 0."""
    x = scores.double()
    z = exp_minus_approx(x.amax(dim=1, keepdim=True) - x)
    return (z / z.sum(dim=1, keepdim=True)).float()


@torch.no_grad()
def release_top_classes(
    net: ReleaseNet, images: torch.Tensor, k: int, softmax: str = "release"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images: (N, 3, 231, 231)`` RGB 0–255 → ``(probs (N, k), outputs (N, k))``, best first.

    ``outputs`` are the network's output indices (release order: ILSVRC2012_ID − 1). Ranking is
    by the raw scores, which the approximate softmax can tie at 0 but never reorder.
    """
    scores = net.class_scores(images)
    if scores.shape[-2:] != (1, 1):
        raise ValueError(
            f"the network gives a {tuple(scores.shape[-2:])} output map for "
            f"{tuple(images.shape[-2:])} input; classification needs 1×1 (as the release says: "
            "'Can only determine class if the output is 1x1')"
        )
    scores = scores.flatten(1)
    # Decision CLASSIFY_SOFTMAX: by default the binary's approximate exp, so printed
    # probabilities match the release's to its own precision.
    if softmax == "release":
        probs = release_softmax(scores)
    elif softmax == "exact":
        probs = torch.softmax(scores.double(), dim=1).float()
    else:
        raise ValueError(f"softmax must be 'release' or 'exact', got {softmax!r}")
    # Decision CLASSIFY_RANK_BY_SCORES: rank by raw scores; classes the approximate softmax
    # sets to exactly 0 then keep their score order instead of an arbitrary one.
    top = scores.topk(k, dim=1).indices
    return probs.gather(1, top), top


# ---------------------------------------------------------------------------------- command line
def _top_k(text: str) -> int:
    k = int(text)
    if not 1 <= k <= 1000:
        raise argparse.ArgumentTypeError(f"--top-classes must be between 1 and 1000, got {k}")
    return k


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "classify",
        help="top-K classes of images with the originally released OverFeat weights",
        description=(
            "Classify images as the released OverFeat tool does (shorter side 231, centre crop "
            "231, both networks) with its weight files net_weight_0 (fast) / net_weight_1 "
            "(accurate), which you obtain from the official OverFeat page (NYU licence: internal "
            "research and evaluation only)."
        ),
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (any Pillow format)")
    p.add_argument(
        "--release-weights",
        required=True,
        metavar="DIR",
        help="directory holding net_weight_0/net_weight_1 (or one of the files)",
    )
    p.add_argument(
        "--arch",
        choices=sorted(RELEASE_FILE_NAMES),
        help="network (default: fast, the release's default, or the file's size for a file)",
    )
    # Decision FLAG_NAMES_SAY_WHAT: "--top" alone did not say top what; localize's --top-k was a
    # different number (classes per scale). The old spelling still works, with a notice.
    p.add_argument("--top-classes", type=_top_k, default=5, metavar="K",
                   help="the K most probable classes printed per image")  # fmt: skip
    add_deprecated_alias(p, "--top", "--top-classes")
    add_meta_flag(p, use="print its class names", absent="print ILSVRC2012_IDs")
    p.add_argument(
        "--softmax",
        choices=("release", "exact"),
        default="release",
        help="release: the binary's approximate exp (default); exact: torch.softmax",
    )
    add_batch_size_flag(p, CLASSIFY)
    add_device_flag(p, CLASSIFY)
    # Width-scaled networks in the release layout, for tests and demos without the real files.
    p.add_argument("--width", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _chunks(items: Sequence[str], n: int):
    for i in range(0, len(items), n):
        yield items[i : i + n]


def _classify_batch(net, batch, names, args, several: bool, bar) -> int:
    """Print the top classes of each image of ``batch``; → how many could not be read."""
    paths, inputs, skipped = [], [], 0
    for path in batch:
        try:
            inputs.append(release_preprocess(read_image(path)))
            paths.append(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            skipped += 1
            bar.write(f"overfeat classify: skipped {path}: {exc}")
    if not inputs:
        return skipped
    probs, outputs = release_top_classes(
        net, torch.stack(inputs).to(args.device), args.top_classes, args.softmax
    )
    for path, p_row, o_row in zip(paths, probs.tolist(), outputs.tolist()):
        if several:
            print(path)
        for p, o in zip(p_row, o_row):
            print(f"{names[o]} {p:.6g}")
    return skipped


def run(args: argparse.Namespace) -> int:
    try:
        labels = ClassLabels.from_devkit_meta(args.meta) if args.meta else None
        layouts = None
        if args.width != 1.0:
            layouts = {a: release_layout(a, args.width) for a in RELEASE_FILE_NAMES}
        net = load_release(args.release_weights, args.arch, layouts=layouts)
    except (OSError, ValueError) as exc:
        print(f"overfeat classify: error: {exc}", file=sys.stderr)
        return 2
    if labels is not None:
        names = release_names(labels)
    else:
        names = tuple(f"ILSVRC2012_ID {i + 1}" for i in range(net.layout.num_classes))
    net.model.to(args.device)
    several = len(args.images) > 1
    skipped = 0
    batches = list(_chunks(args.images, max(1, args.batch_size)))
    # A bar on a terminal, a line per 10% in a log (decision PROGRESS_LOG_LINES); stdout keeps
    # the class lines only.
    with progress(len(batches), "classify", len(batches) > 1, unit="batch") as bar:
        for batch in batches:
            skipped += _classify_batch(net, batch, names, args, several, bar)
            bar.update()
    if skipped:
        print(
            f"overfeat classify: {skipped} of {len(args.images)} image(s) skipped (unreadable)",
            file=sys.stderr,
        )
        return 1
    return 0
