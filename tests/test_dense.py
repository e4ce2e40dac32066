"""Dense evaluation with offset max-pooling (§3.3, Fig. 3), windows, and the votes of §3.3.

The dense output is checked against the network run window by window, with the reference loops
written here. Toy widths (1/16) and 5 classes keep it fast; float64 keeps the tolerance tight;
Kaiming-scaled weights and non-zero biases keep the scores O(1), so a tolerance cannot hide a
wrong answer.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from overfeat import ACCURATE, FAST, ArchSpec, ConvSpec, OverFeat
from overfeat.dense import dense_scores, interleave_offsets, offset_max_pool, window_boxes
from overfeat.scales import (
    TABLE2_PROTOCOLS,
    ClassificationProtocol,
    ensemble_class_vector,
    multiscale_class_vector,
    resize_shorter_side,
    scale_input_size,
    ten_view_class_vector,
)

WIDTH = 1 / 16
CLASSES = 5

# Two scales per network (accurate: Table 5 scales 1 and 2; fast: its tiling sizes nearest to
# them) and one size that tiles nothing, where offsets 0 lose a pooled cell at the border.
SIZES = {
    "fast": [(247, 247), (279, 311), (270, 300)],
    "accurate": [(245, 245), (281, 317), (250, 262)],
}
SPECS = {"fast": FAST, "accurate": ACCURATE}

# Worked by hand from Tables 1 and 3: input pixels between layer-5 cells (fast 4·2·2, accurate
# 2·3·2), the window side, and the layer-5 side of one window (fast 231 → 56 → 28 → 24 → 12;
# accurate 221 → 108 → 36 → 30 → 15).
LAYER5_STRIDE = {"fast": 16, "accurate": 12}
WINDOW = {"fast": 231, "accurate": 221}
WINDOW_LAYER5 = {"fast": 12, "accurate": 15}
# The zero-padded 3×3 layers (3 fast, 4 accurate) each reach one layer-5 cell further.
PADDED_CONVS = {"fast": 3, "accurate": 4}


def _toy(spec: ArchSpec, seed: int = 0) -> OverFeat:
    torch.manual_seed(seed)
    model = OverFeat(spec.scaled(WIDTH), num_classes=CLASSES).double().eval()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.uniform_(m.bias, -0.1, 0.1)
    return model


def _without_inner_padding(spec: ArchSpec) -> ArchSpec:
    """The same geometry with every padded 3×3 layer made a 1×1 layer (sizes unchanged)."""
    layers = tuple(
        replace(layer, kernel=1, padding=0) if layer.padding else layer for layer in spec.layers
    )
    return replace(spec, layers=layers)


def _image(size, seed=1):
    torch.manual_seed(seed)
    return torch.rand(2, 3, *size, dtype=torch.float64) * 4 - 2


def _assert_close(got, want):
    scale = want.abs().max().item()
    assert scale > 0.05, "scores too small for the comparison to mean anything"
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * scale)


# ---------------------------------------------------------------- dense vs window by window


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_dense_equals_crop_by_crop_model_at_every_offset_without_inner_padding(arch):
    """With the padded 3×3 layers made 1×1 (same sizes, no padding), each dense output IS the
    plain network on its window's crop at training size, at every offset, at several scales."""
    model = _toy(_without_inner_padding(SPECS[arch]))
    for size in SIZES[arch]:
        x = _image(size)
        dense = dense_scores(model, x, "fine")
        boxes = window_boxes(model, size, "fine")
        assert dense.shape[-2:] == boxes.shape[:2]
        rows, cols = boxes.shape[:2]
        k, s = SPECS[arch].last_pool, LAYER5_STRIDE[arch]
        crops, seen_offsets = [], set()
        for r in range(rows):
            for c in range(cols):
                x1, y1, x2, y2 = boxes[r, c].tolist()
                assert x2 - x1 + 1 == WINDOW[arch] and y2 - y1 + 1 == WINDOW[arch]
                assert x2 < size[1] and y2 < size[0]
                crops.append(x[:, :, y1 : y2 + 1, x1 : x2 + 1])
                seen_offsets.add(((y1 // s) % k, (x1 // s) % k))
        assert seen_offsets == {(dy, dx) for dy in range(k) for dx in range(k)}
        with torch.no_grad():  # the crops batched: (rows·cols·N, 3, window, window)
            out = model(torch.cat(crops))
        assert out.shape[-2:] == (1, 1)
        ref = out[:, :, 0, 0].reshape(rows, cols, x.shape[0], CLASSES).permute(2, 3, 0, 1)
        _assert_close(dense, ref)
        # the comparison can fail: one window to the right is a different answer
        assert not torch.allclose(dense[..., 1:], ref[..., :-1], rtol=1e-3, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_dense_equals_each_window_with_its_padding_context_at_every_offset(arch):
    """The real networks: each dense output is the network on its window, with the layer-5
    neighbours the padded 3×3 layers see inside the image: crop the window plus 48 px of
    context (clipped at the image), run layers 1–5, keep the window's layer-5 block, pool it
    once at its own origin, run the classifier."""
    model = _toy(SPECS[arch])
    s, side = LAYER5_STRIDE[arch], WINDOW_LAYER5[arch]
    margin = PADDED_CONVS[arch] * s  # 48 px for both networks
    for size in SIZES[arch]:
        x = _image(size)
        dense = dense_scores(model, x, "fine")
        boxes = window_boxes(model, size, "fine")
        # crops of the same shape and window position share one batched call
        groups: dict[tuple, list] = {}
        for r in range(boxes.shape[0]):
            for c in range(boxes.shape[1]):
                x1, y1, x2, y2 = boxes[r, c].tolist()
                ex1, ey1 = max(0, x1 - margin), max(0, y1 - margin)
                ex2, ey2 = min(size[1] - 1, x2 + margin), min(size[0] - 1, y2 + margin)
                oy, ox = (y1 - ey1) // s, (x1 - ex1) // s
                key = (ey2 - ey1, ex2 - ex1, oy, ox)
                groups.setdefault(key, []).append((r, c, x[:, :, ey1 : ey2 + 1, ex1 : ex2 + 1]))
        ref = torch.full_like(dense, math.nan)
        with torch.no_grad():
            for (_, _, oy, ox), members in groups.items():
                layer5 = model.features(torch.cat([crop for _, _, crop in members]))
                block = layer5[:, :, oy : oy + side, ox : ox + side]
                out = model.classifier(model.pool(block))[:, :, 0, 0].split(x.shape[0])
                for (r, c, _), o in zip(members, out):
                    ref[:, :, r, c] = o
        _assert_close(dense, ref)


@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_padded_layers_make_dense_differ_from_isolated_crops(arch):
    """Inside an image the padded 3×3 layers see real neighbours where an isolated crop sees
    zeros (dense.py docstring): the plain network on a crop is NOT the dense output."""
    model = _toy(SPECS[arch])
    size = SIZES[arch][1]
    x = _image(size)
    dense = dense_scores(model, x, "fine")
    x1, y1, x2, y2 = window_boxes(model, size, "fine")[1, 1].tolist()
    with torch.no_grad():
        alone = model(x[:, :, y1 : y2 + 1, x1 : x2 + 1])[:, :, 0, 0]
    assert not torch.allclose(dense[:, :, 1, 1], alone, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_coarse_stride_is_the_plain_network_on_the_whole_image(arch):
    """Coarse stride (Δ = 0 only) is one max-pool at the origin: ``model(x)`` itself."""
    model = _toy(SPECS[arch])
    for size in SIZES[arch]:
        x = _image(size)
        with torch.no_grad():
            _assert_close(dense_scores(model, x, "coarse"), model(x))


# ---------------------------------------------------------------- the pieces, worked by hand


def test_offset_max_pool_takes_each_offsets_2x2_maxima_hand_worked():
    """5×5 map 0..24, 2×2 pool: offset (Δy, Δx) pools rows Δy.., cols Δx..; each 2×2 block's
    maximum is its bottom-right value, e.g. (0, 0): 6, 8, 16, 18."""
    layer5 = torch.arange(25.0).view(1, 1, 5, 5)
    pooled = offset_max_pool(layer5, 2, "fine")
    assert pooled.shape == (4, 1, 2, 2)
    assert pooled[0, 0].tolist() == [[6, 8], [16, 18]]  # Δ = (0, 0)
    assert pooled[1, 0].tolist() == [[7, 9], [17, 19]]  # Δ = (0, 1)
    assert pooled[2, 0].tolist() == [[11, 13], [21, 23]]  # Δ = (1, 0)
    assert pooled[3, 0].tolist() == [[12, 14], [22, 24]]  # Δ = (1, 1)
    coarse = offset_max_pool(layer5, 2, "coarse")
    assert coarse[0, 0].tolist() == [[6, 8], [16, 18]]


def test_offset_max_pool_crops_every_offset_to_the_common_size():
    """4×4 map, 2×2 pool: offset 0 could pool 2 cells, offset 1 only 1; both keep 1."""
    layer5 = torch.arange(16.0).view(1, 1, 4, 4)
    pooled = offset_max_pool(layer5, 2, "fine")
    assert pooled.shape == (4, 1, 1, 1)
    assert pooled.flatten().tolist() == [5, 6, 9, 10]


def test_interleave_offsets_places_offset_dy_dx_at_row_i_d_plus_dy():
    """Fig. 3e: offset (Δy, Δx)'s cell (i, j) lands at output (i·d + Δy, j·d + Δx)."""
    d, n = 3, 2
    maps = torch.zeros(d * d * n, 1, 2, 2)
    for dy in range(d):
        for dx in range(d):
            for b in range(n):
                for i in range(2):
                    for j in range(2):
                        maps[(dy * d + dx) * n + b, 0, i, j] = (
                            1000 * b + 100 * dy + 10 * dx + 2 * i + j
                        )
    out = interleave_offsets(maps, d)
    assert out.shape == (n, 1, 6, 6)
    for b in range(n):
        for r in range(6):
            for c in range(6):
                i, dy, j, dx = r // d, r % d, c // d, c % d
                assert out[b, 0, r, c] == 1000 * b + 100 * dy + 10 * dx + 2 * i + j


def test_window_boxes_accurate_scale1_fine_are_12_px_apart_and_span_the_image():
    """245×245 at fine stride: 3×3 windows of 221 px starting at 0, 12, 24; the last one ends
    at pixel 244, the image's last (Table 5 sizes tile exactly)."""
    boxes = window_boxes(ACCURATE, (245, 245), "fine")
    assert boxes.dtype == torch.int64 and boxes.shape == (3, 3, 4)
    assert boxes[0, :, 0].tolist() == [0, 12, 24]
    assert boxes[:, 0, 1].tolist() == [0, 12, 24]
    assert boxes[2, 2].tolist() == [24, 24, 244, 244]


def test_window_boxes_fast_coarse_are_32_px_apart():
    """263×295 at coarse stride: (263−231)/32+1 = 2 rows, (295−231)/32+1 = 3 cols."""
    boxes = window_boxes(FAST, (263, 295), "coarse")
    assert boxes.shape == (2, 3, 4)
    assert boxes[1, 2].tolist() == [64, 32, 294, 262]


def test_dense_scores_rejects_an_input_smaller_than_the_window():
    with pytest.raises(ValueError, match="at least 221"):
        dense_scores(_toy(ACCURATE), _image((200, 240)), "fine")


# ---------------------------------------------------------------- votes (§3.3 i–iii), stubs

STUB_SPEC = ArchSpec(
    name="stub",
    layers=(ConvSpec(2, 1, pool=1),),
    classifier=(),
    classifier_kernel=1,
    input_size=1,
    first_classifier_layer=2,
)


class SizeAndFlipStub(nn.Module):
    """Scores known by construction, for one image whose channel 2 is 1 on the left half:
    class 0 is the input's row count at location (0, 0) and 0 elsewhere; class 1 is, at every
    location, channel 2 of the input's leftmost column (1 unflipped, 0 flipped)."""

    spec = STUB_SPEC

    def __init__(self):
        super().__init__()
        self.pool = nn.Identity()
        self.classifier = nn.Identity()

    def features(self, x):
        out = torch.zeros(x.shape[0], 2, 4, 4, dtype=x.dtype)
        out[:, 0, 0, 0] = x.shape[-2]
        out[:, 1] = x[:, 2, :4, :1]
        return out


def _half_image(h=300, w=400):
    x = torch.zeros(1, 3, h, w, dtype=torch.float64)
    x[:, 2, :, : w // 2] = 1.0
    return x


def test_multiscale_vote_is_mean_over_scales_and_flips_of_the_spatial_max_raw():
    """Raw scores: class 0 = mean of the scales' row counts (245, 281), flip-independent;
    class 1 = spatial max 1 unflipped, 0 flipped → 1 without flips, 0.5 with."""
    sizes = [(245, 245), (281, 317)]
    with_flips = multiscale_class_vector(
        SizeAndFlipStub(), _half_image(), sizes, True, softmax=False
    )
    no_flips = multiscale_class_vector(
        SizeAndFlipStub(), _half_image(), sizes, False, softmax=False
    )
    assert with_flips[0].tolist() == pytest.approx([263.0, 0.5])
    assert no_flips[0].tolist() == pytest.approx([263.0, 1.0])


def test_multiscale_vote_applies_softmax_at_each_location_before_the_spatial_max():
    """Unflipped: location (0,0) has scores (H, 1) → p ≈ (1, 0); elsewhere (0, 1) → p1 = e/(1+e).
    Flipped: (H, 0) → (1, 0); elsewhere (0, 0) → (½, ½). Spatial max then mean over the flips:
    (1, (e/(1+e) + ½) / 2). Softmax after the max would give class 1 ≈ (e^{1−H} + ½)/2 instead."""
    got = multiscale_class_vector(
        SizeAndFlipStub(), _half_image(), [(245, 245)], True, softmax=True
    )
    p1 = math.e / (1 + math.e)
    assert got[0].tolist() == pytest.approx([1.0, (p1 + 0.5) / 2], abs=1e-12)


def test_fixed_scale_turns_the_rectangle_to_a_portrait_image():
    """SCALE_RESIZE_MODE "fixed": a landscape image becomes 281×317, a portrait one 317×281."""
    assert scale_input_size((375, 500), (281, 317), ACCURATE) == (281, 317)
    assert scale_input_size((500, 375), (281, 317), ACCURATE) == (317, 281)
    got = multiscale_class_vector(
        SizeAndFlipStub(), _half_image(400, 300), [(281, 317)], False, softmax=False
    )
    assert got[0, 0].item() == 317  # the stub reports the rows it was given


def test_images_of_different_sizes_and_orientations_vote_in_one_call():
    """A list of images: each is resized to each scale in its own orientation (fixed mode), so
    class 0 (the rows the stub saw) is (245 + 281)/2 = 263 for landscape images and
    (245 + 317)/2 = 281 for the portrait one; flips give class 1 = ½ for each."""
    images = [_half_image(300, 400)[0], _half_image(400, 300)[0], _half_image(375, 500)[0]]
    got = multiscale_class_vector(
        SizeAndFlipStub(), images, [(245, 245), (281, 317)], True, softmax=False
    )
    assert got.flatten().tolist() == pytest.approx([263.0, 0.5, 281.0, 0.5, 263.0, 0.5])


def test_aspect_mode_keeps_the_ratio_and_snaps_the_long_side_to_a_tiling_size():
    """375×500 at scale 2, "aspect": shorter side 281, longer 281·500/375 ≈ 375, snapped to the
    nearest accurate tiling size 221 + 12·(3n − 1): 353 (22 away) or 389 (14 away) → 389."""
    assert scale_input_size((375, 500), (281, 317), ACCURATE, "aspect") == (281, 389)
    assert scale_input_size((500, 375), (281, 317), ACCURATE, "aspect") == (389, 281)


def test_ten_view_input_has_shorter_side_256_and_floored_long_side():
    """§3.1: 375×500 → 256×⌊256·500/375⌋ = 256×341; 500×333 → ⌊256·500/333⌋ = 384 × 256."""
    assert resize_shorter_side(torch.rand(1, 3, 375, 500)).shape[-2:] == (256, 341)
    assert resize_shorter_side(torch.rand(1, 3, 500, 333)).shape[-2:] == (384, 256)


def test_table2_protocols_use_the_named_scales():
    """Row T2-4 is the fast model at scales (1, 2, 4, 6); T2-7 (accurate, "4 scales") takes the
    same indices (decision ACCURATE_FOUR_SCALES); T2-6 is the 10-view row."""
    assert TABLE2_PROTOCOLS["T2-4"].sizes == ((247, 247), (279, 311), (375, 471), (471, 567))
    assert TABLE2_PROTOCOLS["T2-7"].sizes == ((245, 245), (281, 317), (389, 461), (461, 569))
    assert TABLE2_PROTOCOLS["T2-2"].offsets == "coarse"
    assert TABLE2_PROTOCOLS["T2-6"].views == "ten_view"
    assert TABLE2_PROTOCOLS["T2-9"].models == 7
    with pytest.raises(ValueError, match="scales must be indices 1..6"):
        ClassificationProtocol("fast", scales=(7,))


class TopLeftStub(nn.Module):
    """``model(crop)``: class 0 = channel 0 at the crop's top-left pixel, class 1 = channel 1
    there. With channel 0 = column index and channel 1 = row index, that is the crop's origin."""

    spec = replace(STUB_SPEC, input_size=221)

    def forward(self, x):
        return x[:, :2, :1, :1]


def test_ten_view_averages_4_corners_centre_and_their_flips_hand_worked():
    """256×256, 221 crops: origins x ∈ {0, 35, 0, 35, 17}, y ∈ {0, 0, 35, 35, 17}. A flipped
    crop's top-left is the crop's top-right column x + 220. Mean x = (87 + 1187)/10 = 127.4,
    mean y = 2·87/10 = 17.4."""
    x = torch.zeros(1, 3, 256, 256, dtype=torch.float64)
    x[:, 0] = torch.arange(256.0).view(1, 256)
    x[:, 1] = torch.arange(256.0).view(256, 1)
    got = ten_view_class_vector(TopLeftStub(), x, softmax=False)
    assert got[0].tolist() == pytest.approx([127.4, 17.4])


def test_ten_view_of_a_wider_image_moves_the_right_corners_hand_worked():
    """256×300 (in a list with the 256×256 one): x origins {0, 79, 0, 79, 39}; mean class 0 =
    (197 + 1297)/10 = 149.4; the rows, and the square image's answer, are unchanged."""
    images = []
    for w in (256, 300):
        x = torch.zeros(3, 256, w, dtype=torch.float64)
        x[0] = torch.arange(float(w)).view(1, w)
        x[1] = torch.arange(256.0).view(256, 1)
        images.append(x)
    got = ten_view_class_vector(TopLeftStub(), images, softmax=False)
    assert got.flatten().tolist() == pytest.approx([127.4, 17.4, 149.4, 17.4])


class ConstantStub(nn.Module):
    """Every location scores ``scores`` (a C-vector) whatever the input."""

    spec = STUB_SPEC

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.tensor(scores, dtype=torch.float64)
        self.pool = nn.Identity()
        self.classifier = nn.Identity()

    def features(self, x):
        return self.scores.view(1, -1, 1, 1).expand(x.shape[0], -1, 3, 3).clone()


def test_ensemble_is_the_mean_of_the_members_class_vectors():
    """Two members voting softmax((0, ln 3)) = (¼, ¾) and softmax((ln 3, 0)) = (¾, ¼): the
    ensemble's vector is (½, ½) (decision ENSEMBLE_MEAN_OF_CLASS_VECTORS)."""
    protocol = ClassificationProtocol("accurate", scales=(1, 2), offsets="fine")
    models = [ConstantStub([0.0, math.log(3)]), ConstantStub([math.log(3), 0.0])]
    x = torch.rand(1, 3, 300, 400, dtype=torch.float64)
    assert protocol.class_vector(models[0], x)[0].tolist() == pytest.approx([0.25, 0.75])
    assert ensemble_class_vector(models, x, protocol)[0].tolist() == pytest.approx([0.5, 0.5])
