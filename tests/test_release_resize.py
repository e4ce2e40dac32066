"""The release's resize, ``convert IMG -resize 231x231^`` (overfeat-release.md §1.3).

Checked against ImageMagick itself where ``convert`` is installed (ImageMagick 6, Q16 without
HDRI, the build the release ran with), and everywhere against geometry and Mitchell / Lanczos
weights worked by hand.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from overfeat.release.classify import read_image, release_preprocess, release_resize_size
from overfeat.release.resize import imagemagick_resize

IMAGENETTE_VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenette-10" / "val"
SIZE = 231


# ------------------------------------------------------------------------- geometry, by hand
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((300, 200), (347, 231)),  # 300 · 231/200 = 346.5: floor(346.5 + ½) = 347
        ((200, 300), (231, 347)),
        ((1600, 1088), (340, 231)),  # 1600 · 231/1088 = 339.71
        ((150, 200), (231, 308)),  # enlarged: 200 · 231/150 = 308
        ((224, 224), (231, 231)),
        ((233, 1000), (231, 991)),  # 1000 · 231/233 = 991.42
        ((231, 240), (231, 240)),  # already filled: unchanged
    ],
)
def test_fill_geometry_231x231_caret_rounds_the_longer_side_half_up(size, expected):
    assert release_resize_size(*size) == expected


# -------------------------------------------------------------------- the resampler, by hand
# Mitchell & Netravali (1988) with B = C = 1/3, in units of 1/1152:
#   |x| < 1:      (7|x|³ − 12|x|² + 16/3) / 6      → k(1/4) = 901, k(3/4) = 295
#   1 ≤ |x| < 2:  (−7/3|x|³ + 12|x|² − 20|x| + 32/3) / 6  → k(5/4) = −27
MITCHELL_1152 = {Fraction(1, 4): 901, Fraction(3, 4): 295, Fraction(5, 4): -27}


def test_mitchell_hand_values_are_the_papers_cubic():
    for x, k in MITCHELL_1152.items():
        if x < 1:
            value = (7 * x**3 - 12 * x**2 + Fraction(16, 3)) / 6
        else:
            value = (-Fraction(7, 3) * x**3 + 12 * x**2 - 20 * x + Fraction(32, 3)) / 6
        assert value == Fraction(k, 1152)


def test_enlarging_a_two_pixel_ramp_takes_mitchell_weights_worked_by_hand():
    """2 → 4 pixels: output i samples at (i + ½)/2 − ½ in input pixel coordinates, i.e. at
    −1/4, 1/4, 3/4, 5/4; its distances to the two input pixels are (1/4, 5/4), (1/4, 3/4),
    (3/4, 1/4), (5/4, 1/4); weights k(d), divided by their sum (the image edge cuts the rest)."""
    a, b = 50, 200
    k = MITCHELL_1152
    q, t, h = Fraction(1, 4), Fraction(3, 4), Fraction(5, 4)
    pairs = [(k[q], k[h]), (k[q], k[t]), (k[t], k[q]), (k[h], k[q])]
    expected = [round(Fraction(wa * a + wb * b, wa + wb)) for wa, wb in pairs]
    assert expected == [45, 87, 163, 205]  # 204.6 > 200: Mitchell's negative lobe overshoots
    ramp = Image.fromarray(np.array([[[a] * 3, [b] * 3]], dtype=np.uint8), "RGB")
    out = imagemagick_resize(ramp, 4, 1)
    assert out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == expected and (out[..., 1:] == out[..., :1]).all()


def _lanczos3(x: float) -> float:
    """sinc(x) · sinc(x/3), sinc(x) = sin(πx)/(πx), for 0 < |x| < 3."""
    return math.sin(math.pi * x) / (math.pi * x) * math.sin(math.pi * x / 3) / (math.pi * x / 3)


def test_halving_four_pixels_takes_stretched_lanczos_weights_worked_by_hand():
    """4 → 2 pixels (area shrinks: Lanczos): output 0 centres at input 1.0 − ½ = ½, output 1 at
    2½; the filter is stretched by 2, so input pixel p weighs L((p − centre) / 2)."""
    row = [10, 240, 60, 130]
    distances = {0: [-0.25, 0.25, 0.75, 1.25], 1: [-1.25, -0.75, -0.25, 0.25]}
    expected = []
    for i in (0, 1):
        w = [_lanczos3(d) for d in distances[i]]
        expected.append(round(sum(wi * v for wi, v in zip(w, row)) / sum(w)))
    image = Image.fromarray(np.array([[[v] * 3 for v in row]], dtype=np.uint8), "RGB")
    assert imagemagick_resize(image, 2, 1)[0, :, 0].tolist() == expected


@pytest.mark.parametrize(
    ("mode", "size"), [("RGB", (100, 80)), ("RGB", (500, 400)), ("L", (90, 60))]
)
def test_constant_image_stays_constant_enlarged_or_shrunk(mode, size):
    colour = (10, 200, 30) if mode == "RGB" else 90
    x = release_preprocess(Image.new(mode, size, colour))
    rgb = colour if mode == "RGB" else (colour,) * 3
    assert x.shape == (3, SIZE, SIZE)
    assert (x.numpy() == np.array(rgb, dtype=np.float32).reshape(3, 1, 1)).all()


# ------------------------------------------------------------------- against ImageMagick itself
@pytest.fixture(scope="module")
def convert():
    """ImageMagick 6's ``convert``, Q16 without HDRI; skips where it is absent or another build."""
    exe = shutil.which("convert")
    if exe is None:
        pytest.skip("ImageMagick's convert is not installed (apt-get install imagemagick)")
    version = subprocess.run([exe, "-version"], capture_output=True, text=True)
    first = version.stdout.splitlines()[0] if version.stdout else ""
    if version.returncode != 0 or not re.match(r"Version: ImageMagick 6\.\S+ Q16 ", first):
        pytest.skip(f"needs ImageMagick 6 Q16, the release's build; `convert -version`: {first!r}")
    if "HDRI" in version.stdout:
        pytest.skip("needs ImageMagick 6 Q16 without HDRI (HDRI skips the 16-bit rounding)")
    return exe


def _imagemagick_input(convert: str, path: Path, out: Path) -> np.ndarray:
    """``convert path -resize 231x231^`` then overfeatcmd's centre crop: (231, 231, 3) uint8."""
    subprocess.run([convert, str(path), "-resize", f"{SIZE}x{SIZE}^", str(out)], check=True)
    with Image.open(out) as image:
        resized = np.asarray(image.convert("RGB"))
    h, w = resized.shape[:2]
    assert (w, h) == release_resize_size(*Image.open(path).size)
    top, left = (h - SIZE) // 2, (w - SIZE) // 2
    return resized[top : top + SIZE, left : left + SIZE]


def _differences(convert: str, path: Path, tmp_path: Path) -> np.ndarray:
    reference = _imagemagick_input(convert, path, tmp_path / "convert.ppm").astype(np.float64)
    ours = release_preprocess(read_image(path)).permute(1, 2, 0).double().numpy()
    return np.abs(ours - reference)


def _random_png(path: Path, size: tuple[int, int], mode: str, seed: int) -> Path:
    w, h = size
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    image = image.quantize(64) if mode == "P" else image.convert(mode)
    image.save(path)
    return path


@pytest.mark.parametrize(
    ("size", "mode"),
    [
        ((150, 200), "RGB"),  # enlarged, portrait: Mitchell
        ((224, 224), "RGB"),  # enlarged by 231/224, as ImageNet-224 photos
        ((300, 200), "RGB"),  # enlarged, longer side on a half-pixel tie
        ((500, 375), "RGB"),  # shrunk: Lanczos
        ((1600, 1088), "RGB"),  # shrunk 4.7 times: Lanczos stretched
        ((500, 375), "L"),  # shrunk but grey: ImageMagick takes Mitchell
        ((500, 375), "P"),  # shrunk but palette: Mitchell
    ],
)
def test_random_png_matches_imagemagick_convert(convert, tmp_path, size, mode):
    path = _random_png(tmp_path / f"in_{mode}.png", size, mode, seed=sum(size))
    diff = _differences(convert, path, tmp_path)
    # No decoder in between: only ImageMagick's own float rounding may differ.
    assert diff.mean() <= 0.01 and diff.max() <= 1, (diff.mean(), diff.max())


@pytest.mark.skipif(not IMAGENETTE_VAL.is_dir(), reason=f"shared data absent: {IMAGENETTE_VAL}")
def test_imagenet_224_photos_from_the_jpeg_match_imagemagick_convert(convert, tmp_path):
    """Real 224×224 photos enlarged to 231, each decoded by Pillow here and by ImageMagick there:
    the issue's case, where Pillow's Lanczos differed by up to 30."""
    photos = [sorted(d.glob("*.JPEG"))[0] for d in sorted(IMAGENETTE_VAL.iterdir())[:4]]
    for path in photos:
        diff = _differences(convert, path, tmp_path)
        assert diff.mean() <= 0.01 and diff.max() <= 5, (path.name, diff.mean(), diff.max())
