"""The localization regressor (§4.2, Fig. 8), its box parameterisation and training targets, and
the box geometry between original image, scale image and mirror image (overfeat/boxes.py).

Expected boxes are computed here from the window arithmetic alone: output (r, c) at stride s
has its window at (x, y) = (c·s, r·s), side S = 231 (fast) / 221 (accurate), s = 16 / 12 fine
and 32 / 36 coarse (Tables 1 and 3 multiplied out by hand).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from overfeat import ACCURATE, FAST, build_model
from overfeat.boxes import (
    flip_boxes,
    ordered_boxes,
    original_to_scale_image,
    resize_boxes,
    scale_image_to_original,
    to_pixel_boxes,
)
from overfeat.dense import dense_scores, window_boxes
from overfeat.regression import (
    BoxRegressor,
    class_boxes,
    decode_boxes,
    dense_boxes,
    dense_scores_and_boxes,
    encode_boxes,
    per_class_regressor,
    regression_targets,
    regressor_loss,
    single_class_regressor,
    window_side,
)
from overfeat.scales import scale_sizes

WIDTH = 1 / 16
CLASSES = 5
SIDE = {"fast": 231, "accurate": 221}
STRIDE = {("fast", "fine"): 16, ("fast", "coarse"): 32, ("accurate", "fine"): 12,
          ("accurate", "coarse"): 36}  # fmt: skip
SPECS = {"fast": FAST, "accurate": ACCURATE}


def _toy(arch, seed=0):
    torch.manual_seed(seed)
    return build_model(arch, num_classes=CLASSES, width=WIDTH).eval()


def _image(size, n=2, seed=1):
    torch.manual_seed(seed)
    return torch.rand(n, 3, *size) * 4 - 2


# ------------------------------------------------------------------------------ the network


@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_fig8_layer_sizes_at_full_width(arch):
    with torch.device("meta"):
        scr = single_class_regressor(SPECS[arch])
        pcr = per_class_regressor(SPECS[arch], 1000)
    k = {"fast": 6, "accurate": 5}[arch]
    assert tuple(scr.layers.reg1.weight.shape) == (4096, 1024, k, k)
    assert tuple(scr.layers.reg2.weight.shape) == (1024, 4096, 1, 1)
    assert tuple(scr.layers.reg3.weight.shape) == (4, 1024, 1, 1)
    assert tuple(pcr.layers.reg3.weight.shape) == (4000, 1024, 1, 1)


@pytest.mark.parametrize("arch", ["fast", "accurate"])
@pytest.mark.parametrize("kind", ["scr", "pcr"])
def test_dense_boxes_share_the_score_map_at_two_scales(arch, kind):
    model = _toy(arch)
    reg = BoxRegressor(model.spec, kind, CLASSES, width=WIDTH).eval()
    offsets = "fine"  # coarse maps: test_a_known_box_decodes_...
    for size in scale_sizes(SPECS[arch])[:2]:
        x = _image(size)
        with torch.no_grad():
            boxes = dense_boxes(model, reg, x, offsets)
            scores = dense_scores(model, x, offsets)
            both = dense_scores_and_boxes(model, reg, x, offsets)
        channels = 4 if kind == "scr" else 4 * CLASSES
        assert boxes.shape == (2, channels, *scores.shape[-2:])
        # at these tiling sizes windows S px wide, s px apart, span the image exactly (Table 5
        # for accurate: 3x3 and 6x9)
        s, side = STRIDE[(arch, offsets)], SIDE[arch]
        assert boxes.shape[-2:] == ((size[0] - side) // s + 1, (size[1] - side) // s + 1)
        assert window_boxes(model, size, offsets).shape[:2] == boxes.shape[-2:]
        torch.testing.assert_close(both[0], scores, rtol=0, atol=0)
        torch.testing.assert_close(both[1], boxes, rtol=0, atol=0)


# -------------------------------------------------------------------- decoding, every frame


def _known_regressor(model, t):
    """A regressor whose output is ``t`` at every window: output layer weights 0, bias t."""
    reg = single_class_regressor(model.spec, width=WIDTH).eval()
    with torch.no_grad():
        reg.layers.reg3.weight.zero_()
        reg.layers.reg3.bias.copy_(torch.tensor(t))
    return reg


def _expected_original(arch, offsets, scale, image, t, flipped, rows, cols):
    """The boxes in the original image, from the window origin arithmetic (module docstring)."""
    s, side = STRIDE[(arch, offsets)], SIDE[arch]
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    # in the image the network saw (the mirror image when flipped), continuous edges
    left, right = c * s + t[0] * side, c * s + side + t[2] * side
    top, bottom = r * s + t[1] * side, r * s + side + t[3] * side
    h, w = scale
    if flipped:  # edge u of the mirror image is edge w − u of the scale image
        left, right = w - right, w - left
    fx, fy = image[1] / w, image[0] / h
    return np.stack([left * fx, top * fy, right * fx - 1, bottom * fy - 1], axis=-1)


@pytest.mark.parametrize("arch", ["fast", "accurate"])
@pytest.mark.parametrize("offsets", ["fine", "coarse"])
def test_a_known_box_decodes_to_the_expected_image_box_at_every_scale_and_flip(arch, offsets):
    model = _toy(arch)
    t = (0.125, -0.0625, 0.25, -0.375)
    reg = _known_regressor(model, t)
    image = (375, 500)
    for scale in scale_sizes(SPECS[arch])[:3]:
        x = _image(scale, n=1)
        with torch.no_grad():
            out = dense_boxes(model, reg, torch.cat([x, x.flip(-1)]), offsets)
        windows = window_boxes(model, scale, offsets)
        rows, cols = windows.shape[:2]
        decoded = decode_boxes(out, windows, window_side(model))  # (2, rows, cols, 4)
        # in the frame the network saw: exact (dyadic t, float32 integers)
        s, side = STRIDE[(arch, offsets)], SIDE[arch]
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        seen = np.stack(
            [c * s + t[0] * side, r * s + t[1] * side, c * s + side - 1 + t[2] * side,
             r * s + side - 1 + t[3] * side], axis=-1,
        )  # fmt: skip
        np.testing.assert_array_equal(decoded[0].numpy(), seen)
        np.testing.assert_array_equal(decoded[1].numpy(), seen)
        for flipped, d in ((False, decoded[0]), (True, decoded[1])):
            got = scale_image_to_original(d.double(), scale, image, flipped)
            want = _expected_original(arch, offsets, scale, image, t, flipped, rows, cols)
            np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)


def test_an_untrained_regressor_predicts_each_window_itself():
    model = _toy("accurate")
    reg = single_class_regressor(model.spec, width=WIDTH)
    size = (281, 317)
    with torch.no_grad():
        out = dense_boxes(model, reg, _image(size, n=1))
    windows = window_boxes(model, size)
    torch.testing.assert_close(decode_boxes(out, windows, 221)[0], windows.float())


def test_per_class_outputs_are_channels_4c_to_4c_plus_3():
    outputs = torch.arange(2 * 12 * 1 * 1, dtype=torch.float32).view(2, 12, 1, 1)  # C = 3
    got = class_boxes(outputs, torch.tensor([2, 0]))
    np.testing.assert_array_equal(got[:, :, 0, 0].numpy(), [[8, 9, 10, 11], [12, 13, 14, 15]])
    assert class_boxes(outputs[:, :4]) is not None
    with pytest.raises(ValueError, match="classes"):
        class_boxes(outputs)


# --------------------------------------------------------------------------- training targets


def test_the_target_of_a_window_hand_worked():
    # accurate, 389x461 (Table 5 scale 4): 15x21 windows of side 221, 12 px apart
    windows = window_boxes(ACCURATE, (389, 461))
    box = torch.tensor([[50, 40, 150, 200]])  # 101 x 161 pixels
    targets, trained = regression_targets(box, windows, 221)
    # window (r=1, c=2) spans x 24..244, y 12..232: the box is inside; edge offsets
    # 50 − 24, 40 − 12, 150 − 244, 200 − 232, over 221
    np.testing.assert_allclose(targets[1, 2].numpy(), np.array([26, 28, -94, -32]) / 221)
    assert trained[1, 2]
    # c = 8 spans x 96..316: columns 96..150 of the box's 101 are inside, 55/101 ≥ 0.5
    assert trained[1, 8]
    np.testing.assert_allclose(targets[1, 8].numpy(), np.array([-46, 28, -166, -32]) / 221)
    # c = 9 spans x 108..328: 43/101 < 0.5, left out
    assert not trained[1, 9]
    # r = 14 spans y 168..388: rows 168..200, 33/161 < 0.5
    assert not trained[14, 2]
    assert trained.sum() == trained[:, :9].sum()  # nothing right of column 8


def test_half_the_box_inside_is_trained():
    windows = window_boxes(ACCURATE, (389, 461))
    box = torch.tensor([[10, 20, 109, 119]])  # 100 x 100, inside rows 0..220
    _, trained = regression_targets(box, windows, 221)
    assert trained[0, 5]  # x 60..280: columns 60..109, exactly 50 of 100
    assert not trained[0, 6]  # x 72..292: 38 of 100


def test_a_window_inside_a_larger_box_is_trained():
    # REGRESSOR_OVERLAP_RULE: the overlap is over the smaller of box and window; a box larger
    # than the window counts the part of the window it covers
    windows = window_boxes(ACCURATE, (389, 461))  # 15 x 21 windows of side 221, 12 px apart
    whole = torch.tensor([[0, 0, 460, 388]])  # the whole image: every window lies inside it
    assert regression_targets(whole, windows, 221)[1].all()
    box = torch.tensor([[0, 0, 300, 388]])  # 301 x 389, larger than a window
    targets, trained = regression_targets(box, windows, 221)
    # c = 15 spans x 180..400: columns 180..300, 121 of the window's 221 ≥ 0.5; edge offsets
    # 0 − 180, 0 − 0, 300 − 400, 388 − 220, over 221
    assert trained[0, 15] and trained[14, 15]
    np.testing.assert_allclose(targets[0, 15].numpy(), np.array([-180, 0, -100, 168]) / 221)
    # c = 16 spans x 192..412: 109 of 221 < 0.5, left out
    assert not trained[:, 16:].any()
    assert trained[:, :16].all()


def test_each_window_targets_the_box_it_sees_most_of():
    windows = window_boxes(ACCURATE, (389, 461))
    boxes = torch.tensor([[0, 0, 99, 99], [200, 0, 299, 99]])
    targets, trained = regression_targets(boxes, windows, 221)
    # window c=0 (x 0..220) sees all of box 0 and 21 columns of box 1; c=10 (x 120..340)
    # sees none of box 0 and all of box 1
    torch.testing.assert_close(targets[0, 0], encode_boxes(boxes[0], windows[0, 0], 221))
    torch.testing.assert_close(targets[0, 10], encode_boxes(boxes[1], windows[0, 10], 221))
    assert trained[0, 0] and trained[0, 10]


def test_no_box_trains_no_window():
    windows = window_boxes(FAST, (247, 247))
    targets, trained = regression_targets(torch.zeros(0, 4), windows, 231)
    assert targets.shape == (*windows.shape[:2], 4)
    assert not trained.any()


def test_encode_then_decode_is_the_identity():
    windows = window_boxes(FAST, (279, 311))
    rng = np.random.default_rng(0)
    boxes = torch.tensor(rng.uniform(-50, 300, (1, *windows.shape)))
    t = encode_boxes(boxes, windows, 231)
    torch.testing.assert_close(decode_boxes(t.permute(0, 3, 1, 2), windows, 231), boxes)


def test_loss_is_the_mean_squared_distance_over_trained_windows():
    outputs = torch.zeros(1, 4, 1, 3, requires_grad=True)
    targets = torch.tensor([[[[1.0, 0, 0, 0], [1, 2, 2, 0], [5, 5, 5, 5]]]])  # (1, 1, 3, 4)
    trained = torch.tensor([[[True, True, False]]])
    loss = regressor_loss(outputs, targets, trained)
    assert loss.item() == pytest.approx((1 + 9) / 2)  # |(1,0,0,0)|² = 1, |(1,2,2,0)|² = 9
    loss.backward()
    assert (outputs.grad[..., 2] == 0).all()  # the left-out window gets no gradient
    empty = regressor_loss(outputs, targets, torch.zeros_like(trained))
    assert empty.item() == 0.0 and empty.requires_grad


def test_per_class_loss_uses_each_image_s_class():
    outputs = torch.zeros(1, 8, 1, 1)
    outputs[0, 4:8] = 1.0  # class 1's box
    targets = torch.ones(1, 1, 1, 4)
    trained = torch.ones(1, 1, 1, dtype=torch.bool)
    assert regressor_loss(outputs, targets, trained, torch.tensor([1])).item() == 0.0
    assert regressor_loss(outputs, targets, trained, torch.tensor([0])).item() == 4.0


def test_bad_regressor_arguments_are_refused():
    with pytest.raises(ValueError, match="kind"):
        BoxRegressor(FAST, "xyz")
    with pytest.raises(ValueError, match="windows"):
        decode_boxes(torch.zeros(1, 4, 2, 3), torch.zeros(3, 2, 4), 231)
    with pytest.raises(ValueError, match="boxes must be"):
        regression_targets(torch.zeros(4), window_boxes(FAST, (247, 247)), 231)


# --------------------------------------------------------------------------------- box frames


def test_resize_and_flip_hand_worked():
    # 500 px wide → 250: columns 100..199 are the span [100, 200) → [50, 100) = columns 50..99
    box = torch.tensor([100.0, 40, 199, 79])
    np.testing.assert_array_equal(resize_boxes(box, (400, 500), (200, 250)).numpy(),
                                  [50, 20, 99, 39])  # fmt: skip
    # mirrored in 250 columns: 249 − 99, 249 − 50
    np.testing.assert_array_equal(flip_boxes([50.0, 20, 99, 39], 250).numpy(), [150, 20, 199, 39])
    both = original_to_scale_image(box, (400, 500), (200, 250), flipped=True)
    np.testing.assert_array_equal(both.numpy(), [150, 20, 199, 39])


def test_original_to_scale_and_back_is_the_identity():
    rng = np.random.default_rng(1)
    boxes = torch.tensor(rng.uniform(0, 300, (50, 4)))
    for flipped in (False, True):
        there = original_to_scale_image(boxes, (375, 500), (245, 245), flipped)
        back = scale_image_to_original(there, (245, 245), (375, 500), flipped)
        torch.testing.assert_close(back, boxes)


def test_a_whole_image_box_stays_the_whole_image():
    whole = torch.tensor([0.0, 0, 499, 374])
    got = scale_image_to_original(torch.tensor([0.0, 0, 316, 280]), (281, 317), (375, 500), True)
    torch.testing.assert_close(got, whole)


def test_pixel_boxes_round_and_clip():
    boxes = torch.tensor([[-3.2, 10.5, 120.6, 11.4], [600, 5, 700, 9], [10, 10, 8, 12]])
    got = to_pixel_boxes(boxes, (375, 500))
    # round half to even (10.5 → 10), clip to 0..499 / 0..374; wholly right of the image: the
    # last column; inverted: one pixel wide
    np.testing.assert_array_equal(got.numpy(), [[0, 10, 121, 11], [499, 5, 499, 9],
                                                [10, 10, 10, 12]])  # fmt: skip


def test_ordered_boxes_sort_edges_and_keep_one_pixel():
    got = ordered_boxes(torch.tensor([[20.0, 5, 10, 15], [4, 4, 3.5, 4]]))
    # x edges at 20 and 10 + 1 = 11, in the wrong order: the span [11, 20), x1 = 11, x2 = 19;
    # x span [4, 4.5) is half a pixel: widened about 4.25 to [3.75, 4.75)
    np.testing.assert_allclose(got.numpy(), [[11, 5, 19, 15], [3.75, 4, 3.75, 4]])
