"""Decoding ImageNet's awkward files (issue 4 item 1): each kind decoded, or skipped and counted.

Every damaged file is built here from known pixels, so the expected result is independent of the
decoder: decodable kinds must give back those pixels (exactly for PNG, within JPEG loss otherwise),
undecodable kinds must give ``None``, one warning naming the file, and a count.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from overfeat.data import (
    ClassificationDataset,
    CorruptImage,
    CorruptImageWarning,
    collate_skip_corrupt,
    decode_rgb,
)
from overfeat.data.transforms import EvalTransform, Normalization, resize_smallest_side

H, W = 48, 64


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    """Smooth colour ramps (JPEG keeps them well), ``(H, W, 3)`` uint8."""
    y, x = np.mgrid[:H, :W]
    return np.stack(
        [x * 255 // (W - 1), y * 255 // (H - 1), (x + y) * 255 // (W + H - 2)], -1
    ).astype(np.uint8)


def _jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_plain_rgb_jpeg_decodes_to_its_pixels(tmp_path, pixels):
    path = _write(tmp_path, "a.JPEG", _jpeg_bytes(Image.fromarray(pixels)))
    out = np.asarray(decode_rgb(path), dtype=np.int16)
    assert out.shape == (H, W, 3)
    assert np.abs(out - pixels).mean() < 3


def test_grayscale_jpeg_decodes_to_rgb_with_three_equal_channels(tmp_path, pixels):
    gray = Image.fromarray(pixels).convert("L")
    path = _write(tmp_path, "gray.JPEG", _jpeg_bytes(gray))
    out = np.asarray(decode_rgb(path), dtype=np.int16)
    assert out.shape == (H, W, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert np.abs(out[..., 0] - np.asarray(gray, dtype=np.int16)).mean() < 3


def test_cmyk_jpeg_decodes_to_the_original_colours(tmp_path, pixels):
    cmyk = Image.fromarray(pixels).convert("CMYK")
    path = _write(tmp_path, "cmyk.JPEG", _jpeg_bytes(cmyk))
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"  # the file really is CMYK
    out = np.asarray(decode_rgb(path), dtype=np.int16)
    assert out.shape == (H, W, 3)
    # An inverted-CMYK mix-up would give about 255 - pixels: mean error near 128.
    assert np.abs(out - pixels).mean() < 6


def test_png_named_jpeg_decodes_exactly(tmp_path, pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    path = _write(tmp_path, "really_a_png.JPEG", buf.getvalue())
    assert np.array_equal(np.asarray(decode_rgb(path)), pixels)


def test_rgba_and_palette_pngs_decode_to_rgb(tmp_path, pixels):
    rgba = np.concatenate([pixels, np.full((H, W, 1), 7, np.uint8)], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    out = decode_rgb(_write(tmp_path, "rgba.JPEG", buf.getvalue()))
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), pixels)
    pal = Image.fromarray(pixels).quantize(16)
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    out = decode_rgb(_write(tmp_path, "pal.JPEG", buf.getvalue()))
    assert np.array_equal(np.asarray(out), np.asarray(pal.convert("RGB")))


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_undecodable_file_raises_corrupt_image_naming_it(tmp_path, pixels, kind):
    good = _jpeg_bytes(Image.fromarray(pixels))
    data = {
        "truncated": good[: len(good) // 2],
        "garbage": np.random.default_rng(0).bytes(2000),
        "empty": b"",
    }[kind]
    path = _write(tmp_path, f"{kind}.JPEG", data)
    with pytest.raises(CorruptImage) as err:
        decode_rgb(path)
    assert str(path) in str(err.value)


def _dataset(paths, labels) -> ClassificationDataset:
    norm = Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # raw 0-255 values out
    return ClassificationDataset(
        list(zip(map(str, paths), labels)),
        classes=["n00000001", "n00000002"],
        transform=EvalTransform(crop=32, resize=40, normalization=norm),
    )


def test_dataset_skips_counts_and_warns_once_per_damaged_file(tmp_path, pixels):
    good = _jpeg_bytes(Image.fromarray(pixels))
    files = {
        "ok.JPEG": good,
        "truncated.JPEG": good[: len(good) // 3],
        "garbage.JPEG": np.random.default_rng(1).bytes(999),
        "empty.JPEG": b"",
        "gray.JPEG": _jpeg_bytes(Image.fromarray(pixels).convert("L")),
        "cmyk.JPEG": _jpeg_bytes(Image.fromarray(pixels).convert("CMYK")),
    }
    paths = [_write(tmp_path, n, d) for n, d in files.items()]
    ds = _dataset(paths, [0, 1, 0, 1, 0, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = [ds[i] for i in range(len(ds))]
        second = [ds[i] for i in range(len(ds))]  # the same files again: counted, not re-warned
    broken = {"truncated.JPEG", "garbage.JPEG", "empty.JPEG"}
    for name, item in zip(files, first):
        assert (item is None) == (name in broken), name
    assert [x is None for x in first] == [x is None for x in second]
    assert ds.num_skipped == 2 * len(broken)
    ours = [w for w in caught if issubclass(w.category, CorruptImageWarning)]
    assert len(ours) == len(broken)
    assert {next(n for n in broken if n in str(w.message)) for w in ours} == broken


def test_a_corrupt_training_image_is_named_with_what_was_done_and_no_advice_to_delete(tmp_path):
    """Deleting a training file would change the data set without a trace; the warning says the
    file was skipped for this epoch and counted, and that it was left as it is."""
    path = _write(tmp_path, "n00000001_7.JPEG", b"\xff\xd8 not the rest of a JPEG")
    ds = _dataset([path], [0])
    with pytest.warns(CorruptImageWarning) as caught:
        assert ds[0] is None
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(f"{path}: cannot decode (")
    assert "skipped for this epoch and counted" in message
    assert "train_skipped / val_skipped" in message and "left as it is" in message
    for advice in ("delete", "remove", "re-download", "silence"):
        assert advice not in message
    assert ds.num_skipped == 1


def test_collate_skip_corrupt_drops_nones_and_counts_them():
    a, b = torch.zeros(3, 4, 4), torch.ones(3, 4, 4)
    images, labels, n_skipped = collate_skip_corrupt([(a, 3), None, (b, 5), None])
    assert images.shape == (2, 3, 4, 4) and torch.equal(images[1], b)
    assert labels.tolist() == [3, 5] and labels.dtype == torch.int64
    assert n_skipped == 2
    images, labels, n_skipped = collate_skip_corrupt([None, None])
    assert images.shape[0] == 0 and labels.shape == (0,) and n_skipped == 2


def test_large_jpeg_is_drafted_no_smaller_than_twice_the_resize_target(tmp_path):
    # A 1600x1200 photograph-like gradient; decision JPEG_DRAFT allows DCT scaling down to a short
    # side of 2 x 256 = 512, so 1200 -> 600 (scale 1/2; 1/4 would give 300 < 512).
    y, x = np.mgrid[:1200, :1600]
    arr = np.stack([x * 255 // 1599, y * 255 // 1199, (x // 7 + y // 5) % 256], -1).astype(np.uint8)
    path = _write(tmp_path, "big.JPEG", _jpeg_bytes(Image.fromarray(arr)))
    drafted = decode_rgb(path, short_side=256)
    assert drafted.size == (800, 600)
    full = decode_rgb(path)
    assert full.size == (1600, 1200)
    a = np.asarray(resize_smallest_side(drafted, 256), dtype=np.int16)
    b = np.asarray(resize_smallest_side(full, 256), dtype=np.int16)
    assert a.shape == b.shape and np.abs(a - b).mean() < 3


def test_16_bit_grayscale_png_is_scaled_to_8_bits_not_clipped(tmp_path):
    arr = (np.arange(H * W).reshape(H, W) * 21).astype(np.uint16)  # up to 64,491
    path = tmp_path / "deep.JPEG"
    Image.fromarray(arr).save(path, format="PNG")
    out = np.asarray(decode_rgb(path))
    assert out.shape == (H, W, 3) and np.array_equal(out[..., 1], (arr >> 8).astype(np.uint8))
