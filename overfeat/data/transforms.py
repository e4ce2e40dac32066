"""Training and evaluation transforms of §3.1: smallest side 256, random crop + flip, normalise.

Sermanet et al. 2014 §3.1 (FACTS.md §6.1): "Each image is downsampled so that the smallest
dimension is 256 pixels. We then extract 5 random crops (and their horizontal flips) of size
221x221 pixels". The crop is the network's training input size, ``ArchSpec.input_size``:
221 for *accurate* (Table 3), 231 for *fast* (Table 1).

Every random choice is drawn from a ``numpy.random.Generator`` the caller passes in; the datasets
derive it from ``(seed, epoch, index)`` alone (:func:`sample_rng`), so batches are identical for any
number of loader workers and after a resume.

A transform maps an RGB ``PIL.Image`` (any size) to a float32 tensor ``(3, crop, crop)``; with
``output="uint8"`` it maps a ``(3, H, W)`` uint8 tensor (:func:`overfeat.data.decode.decode_uint8`)
to the uint8 crop, and :func:`normalize_uint8` finishes the job on the device (the training
loader's path: a quarter of the bytes between processes, the float work on the GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from overfeat.models import ARCHS
from overfeat.normalization import RELEASE_MEAN as _RELEASE_MEAN
from overfeat.normalization import RELEASE_STD as _RELEASE_STD

__all__ = [
    "CROP_SIZE_FROM_ARCH",
    "EvalTransform",
    "FLIP_PROBABILITY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NORMALIZATIONS",
    "Normalization",
    "RELEASE_MEAN",
    "RELEASE_STD",
    "RESIZE_SHORT_SIDE",
    "TrainTransform",
    "eval_transform",
    "OUTPUTS",
    "image_to_tensor",
    "normalize_uint8",
    "resize_smallest_side",
    "resize_smallest_side_uint8",
    "sample_rng",
    "shorter_side_size",
    "train_transform",
]

# §3.1: "downsampled so that the smallest dimension is 256 pixels" (training); the paper's
# single-view evaluation (Table 2, "4 corners + center") works on the same 256 images.
RESIZE_SHORT_SIDE = 256

# FACTS §9.4 (221 in §3.1's text vs 231 in Table 1): decision CROP_SIZE_FROM_ARCH, the training crop
# is the architecture's own input size (fast 231, accurate 221), the only size at which each
# network's output is 1x1 as §3.1 requires ("the network is treated as non-spatial").
CROP_SIZE_FROM_ARCH = {name: spec.input_size for name, spec in ARCHS.items()}

# §3.1 says "horizontal flips" without a rate: decision FLIP_PROBABILITY, each crop is flipped with
# probability 1/2, so crops and their flips are seen equally often, as "5 crops and their flips".
FLIP_PROBABILITY = 0.5

# The paper states no input normalisation (FACTS §10). The released networks' wrapper (FACTS §6.1,
# [JHJIN]) subtracts the scalar 118.380948 and divides by 61.896913 on 0-255 RGB pixels.
RELEASE_MEAN = (_RELEASE_MEAN,) * 3
RELEASE_STD = (_RELEASE_STD,) * 3
# The per-channel statistics torchvision uses, on 0-255 pixels.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclass(frozen=True)
class Normalization:
    """``(pixel - mean) / std`` per RGB channel, pixels on the 0-255 scale."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# Decision NORMALIZATION_RELEASE: the default is the release's scalar mean/std, the only
# normalisation documented for OverFeat networks; trained and imported released weights then share
# one input pipeline, so their results compare like for like. "imagenet" stays available.
NORMALIZATIONS = {
    "release": Normalization(RELEASE_MEAN, RELEASE_STD),
    "imagenet": Normalization(IMAGENET_MEAN, IMAGENET_STD),
}
DEFAULT_NORMALIZATION = "release"

# What a transform returns: normalised float32 (every caller's default), or the uint8 crop that
# the training loader hands from its worker processes to the device (160 KB per 231x231 image
# instead of 640 KB; decision UINT8_BATCHES in overfeat.engine.train).
OUTPUTS = ("float32", "uint8")


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample's random choices: a pure function of ``(seed, epoch, index)``.

    numpy's ``SeedSequence`` hashes the three integers, so neighbouring samples and epochs get
    statistically independent streams, and no global RNG or worker identity enters.
    """
    if min(seed, epoch, index) < 0:
        raise ValueError(f"seed, epoch and index must be >= 0, got {(seed, epoch, index)}")
    return np.random.default_rng([seed, epoch, index])


def resize_smallest_side(img: Image.Image, size: int = RESIZE_SHORT_SIDE) -> Image.Image:
    """Resize so that ``min(width, height) == size``, keeping the aspect ratio (§3.1).

    The long side is ``floor(size * long / short)`` (floor as everywhere in this project, and as
    torchvision's ``Resize(int)``); bilinear with PIL's antialiasing (decision RESIZE_BILINEAR).
    """
    w, h = img.size
    if min(w, h) == size:
        return img
    new_h, new_w = shorter_side_size(h, w, size)
    return img.resize((new_w, new_h), Image.BILINEAR)


def shorter_side_size(height: int, width: int, side: int) -> tuple[int, int]:
    """``(height, width)`` after resizing the shorter side to ``side``: the long side is
    ``floor(side · long / short)``. The one rule for PIL images here and tensors in
    ``overfeat.scales``."""
    if height <= width:
        return side, side * width // height
    return side * height // width, side


def resize_smallest_side_uint8(x: torch.Tensor, size: int = RESIZE_SHORT_SIDE) -> torch.Tensor:
    """:func:`resize_smallest_side` for a ``(3, H, W)`` uint8 tensor: the same output size.

    Decision RESIZE_UINT8: bilinear with antialiasing by torch's uint8 kernel, which follows
    PIL's filter (measured: at most 1 grey level apart, on 0.2% of the pixels of an
    ImageNet-sized photograph) at about 2.5x its speed; the training loader's resize."""
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    out = shorter_side_size(h, w, size)
    return F.interpolate(x[None], size=out, mode="bilinear", antialias=True, align_corners=False)[0]


def normalize_uint8(x: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """``x: (..., 3, h, w)`` uint8 on any device → normalised float32, the same arithmetic (and
    on the CPU the same bits) as the float transforms' own normalisation."""
    mean = torch.tensor(norm.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return (x.float() - mean) / std


def _to_tensor(pixels: np.ndarray, norm: Normalization) -> torch.Tensor:
    """``pixels: (h, w, 3) uint8`` → normalised float32 ``(3, h, w)``."""
    if not (pixels.flags.c_contiguous and pixels.flags.writeable):
        pixels = pixels.copy(order="C")  # torch refuses read-only arrays (PIL's are)
    x = torch.from_numpy(pixels).permute(2, 0, 1).float()
    mean = torch.tensor(norm.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(norm.std, dtype=torch.float32).view(3, 1, 1)
    return (x - mean) / std


def image_to_tensor(img: Image.Image, normalization: str = DEFAULT_NORMALIZATION) -> torch.Tensor:
    """A whole RGB image, unresized, as a normalised float32 ``(3, H, W)`` tensor."""
    return _to_tensor(np.asarray(img), _normalization(normalization))


@dataclass(frozen=True)
class TrainTransform:
    """§3.1 training view: smallest side ``resize``, a uniformly placed ``crop``² crop, flipped with
    probability ``FLIP_PROBABILITY``, normalised. Output ``(3, crop, crop)`` float32.

    One crop per image per epoch (decision ONE_CROP_PER_VISIT): §3.1's "5 random crops" per image
    are read as the crops an image contributes over training, each drawn afresh at every visit.

    ``output="uint8"``: input a ``(3, H, W)`` uint8 tensor, output the ``(3, crop, crop)`` uint8
    crop, unnormalised (:func:`normalize_uint8` on the device); the same draws, so the same crop.
    """

    crop: int
    resize: int = RESIZE_SHORT_SIDE
    normalization: Normalization = NORMALIZATIONS[DEFAULT_NORMALIZATION]
    output: str = "float32"

    takes_rng = True  # the dataset passes the per-sample generator

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop {self.crop} must be in 1..resize ({self.resize})")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")

    def draw(self, h: int, w: int, rng: np.random.Generator) -> tuple[int, int, bool]:
        """The crop's top-left ``(y0, x0)`` in the resized ``h × w`` image and the flip, drawn
        from the sample's generator in this order (every loader draws them so)."""
        y0 = int(rng.integers(0, h - self.crop + 1))
        x0 = int(rng.integers(0, w - self.crop + 1))
        return y0, x0, bool(rng.random() < FLIP_PROBABILITY)

    def __call__(self, img, rng: np.random.Generator) -> torch.Tensor:
        if self.output == "uint8":
            x = resize_smallest_side_uint8(img, self.resize)
            y0, x0, flip = self.draw(x.shape[1], x.shape[2], rng)
            x = x[:, y0 : y0 + self.crop, x0 : x0 + self.crop]
            return (x.flip(-1) if flip else x).contiguous()
        pixels = np.asarray(resize_smallest_side(img, self.resize))
        y0, x0, flip = self.draw(pixels.shape[0], pixels.shape[1], rng)
        pixels = pixels[y0 : y0 + self.crop, x0 : x0 + self.crop]
        if flip:
            pixels = pixels[:, ::-1]
        return _to_tensor(pixels, self.normalization)


@dataclass(frozen=True)
class EvalTransform:
    """Evaluation view: smallest side ``resize``, the centre ``crop``² crop (offsets
    ``floor((side - crop) / 2)``), normalised. Output ``(3, crop, crop)`` float32. Deterministic.
    ``output="uint8"``: as :class:`TrainTransform`'s."""

    crop: int
    resize: int = RESIZE_SHORT_SIDE
    normalization: Normalization = NORMALIZATIONS[DEFAULT_NORMALIZATION]
    output: str = "float32"

    takes_rng = False

    def __post_init__(self) -> None:
        if not 0 < self.crop <= self.resize:
            raise ValueError(f"crop {self.crop} must be in 1..resize ({self.resize})")
        if self.output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {self.output!r}")

    def __call__(self, img, rng: np.random.Generator | None = None) -> torch.Tensor:
        if self.output == "uint8":
            x = resize_smallest_side_uint8(img, self.resize)
            y0, x0 = (x.shape[1] - self.crop) // 2, (x.shape[2] - self.crop) // 2
            return x[:, y0 : y0 + self.crop, x0 : x0 + self.crop].contiguous()
        pixels = np.asarray(resize_smallest_side(img, self.resize))
        h, w = pixels.shape[:2]
        y0 = (h - self.crop) // 2
        x0 = (w - self.crop) // 2
        return _to_tensor(pixels[y0 : y0 + self.crop, x0 : x0 + self.crop], self.normalization)


def _crop_for(arch: str) -> int:
    try:
        return CROP_SIZE_FROM_ARCH[arch]
    except KeyError:
        raise ValueError(
            f"arch must be one of {sorted(CROP_SIZE_FROM_ARCH)}, got {arch!r}"
        ) from None


def train_transform(
    arch: str, normalization: str = DEFAULT_NORMALIZATION, output: str = "float32"
) -> TrainTransform:
    """The §3.1 training transform for ``"fast"`` (231 crops) or ``"accurate"`` (221 crops)."""
    return TrainTransform(_crop_for(arch), normalization=_normalization(normalization),
                          output=output)  # fmt: skip


def eval_transform(
    arch: str, normalization: str = DEFAULT_NORMALIZATION, output: str = "float32"
) -> EvalTransform:
    """Resize to 256 and centre-crop the architecture's input size."""
    return EvalTransform(_crop_for(arch), normalization=_normalization(normalization),
                         output=output)  # fmt: skip


def _normalization(name: str) -> Normalization:
    try:
        return NORMALIZATIONS[name]
    except KeyError:
        raise ValueError(
            f"normalization must be one of {sorted(NORMALIZATIONS)}, got {name!r}"
        ) from None
