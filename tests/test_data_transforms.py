"""The §3.1 transforms: smallest side 256, random crop (221 accurate / 231 fast) + flip, centre crop
for evaluation, the release's normalisation; randomness a function of (seed, epoch, index) only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from overfeat.data.transforms import (
    RELEASE_MEAN,
    RELEASE_STD,
    EvalTransform,
    Normalization,
    TrainTransform,
    eval_transform,
    resize_smallest_side,
    sample_rng,
    train_transform,
)

RAW = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _coordinate_image(w: int, h: int) -> tuple[Image.Image, np.ndarray]:
    """Pixels that spell their own coordinates: R = x mod 256, G = x // 256 * 64 + y // 256,
    B = y mod 256, so a crop's position can be read from its pixels."""
    y, x = np.mgrid[:h, :w]
    arr = np.stack([x % 256, (x // 256) * 64 + y // 256, y % 256], -1).astype(np.uint8)
    return Image.fromarray(arr), arr


def _x(pixel: np.ndarray) -> int:
    """The x coordinate a pixel of :func:`_coordinate_image` spells."""
    return int(pixel[0]) + 256 * (int(pixel[1]) // 64)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((500, 375), (341, 256)),
        ((375, 500), (256, 341)),
        ((256, 300), (256, 300)),
        ((100, 50), (512, 256)),
    ],
)
def test_resize_makes_the_smallest_side_256_with_floor_on_the_long_side(size, expected):
    # Hand-worked: 256 * 500 / 375 = 341.33 -> 341; 256 * 100 / 50 = 512 (upsampling too).
    assert resize_smallest_side(Image.new("RGB", size), 256).size == expected


def test_training_crop_sizes_are_table1_and_table3_input_sizes():
    # Table 1 (fast): 231x231 input; Table 3 (accurate): 221x221 (FACTS.md §1, §9.4).
    img = Image.new("RGB", (300, 260))
    assert train_transform("fast")(img, sample_rng(0, 0, 0)).shape == (3, 231, 231)
    assert train_transform("accurate")(img, sample_rng(0, 0, 0)).shape == (3, 221, 221)
    assert eval_transform("fast")(img).shape == (3, 231, 231)
    assert eval_transform("accurate")(img).shape == (3, 221, 221)
    with pytest.raises(ValueError, match="arch must be one of"):
        train_transform("alexnet")


def test_release_normalisation_is_the_wrappers_scalar_mean_and_std():
    # [JHJIN] (FACTS.md §6.1): (pixel - 118.380948) / 61.896913 on 0-255 values.
    assert RELEASE_MEAN == (118.380948,) * 3 and RELEASE_STD == (61.896913,) * 3
    out = eval_transform("accurate")(Image.new("RGB", (256, 256), (180, 0, 255)))
    for c, v in enumerate((180, 0, 255)):
        assert torch.allclose(out[c], torch.tensor((v - 118.380948) / 61.896913), atol=1e-5)


def test_train_crop_is_a_contiguous_window_of_the_resized_image_maybe_mirrored():
    img, arr = _coordinate_image(300, 256)  # short side already 256: no resampling
    t = TrainTransform(crop=221, normalization=RAW)
    offsets, flips = set(), []
    for index in range(60):
        out = t(img, sample_rng(5, 0, index)).permute(1, 2, 0).numpy().astype(np.uint8)
        flipped = _x(out[0, 0]) > _x(out[0, -1])
        window = out[:, ::-1] if flipped else out
        x0, y0 = _x(window[0, 0]), int(window[0, 0, 2])
        assert np.array_equal(window, arr[y0 : y0 + 221, x0 : x0 + 221])
        offsets.add((x0, y0))
        flips.append(flipped)
    # Crops move over the whole 80x36 range of offsets, and about half are flipped.
    xs, ys = zip(*offsets)
    assert max(xs) - min(xs) > 40 and max(ys) - min(ys) > 18
    assert 15 <= sum(flips) <= 45


def test_eval_crop_is_the_centre_window_at_floor_offsets():
    img, arr = _coordinate_image(300, 256)
    out = EvalTransform(crop=231, normalization=RAW)(img).permute(1, 2, 0).numpy().astype(np.uint8)
    # Hand-worked: x0 = (300 - 231) // 2 = 34, y0 = (256 - 231) // 2 = 12.
    assert np.array_equal(out, arr[12:243, 34:265])


def test_sample_rng_is_a_pure_function_of_seed_epoch_index():
    draws = [sample_rng(1, 2, 3).integers(0, 2**31, 4).tolist() for _ in range(2)]
    assert draws[0] == draws[1]
    np.random.seed(123)
    torch.manual_seed(99)  # global RNGs play no part
    assert sample_rng(1, 2, 3).integers(0, 2**31, 4).tolist() == draws[0]
    others = {
        tuple(sample_rng(*k).integers(0, 2**31, 4).tolist())
        for k in [(0, 2, 3), (1, 0, 3), (1, 2, 0), (2, 1, 3), (1, 3, 2)]
    }
    assert tuple(draws[0]) not in others and len(others) == 5
