"""Layer arithmetic against the paper's Tables 4 and 5 (FACTS §2, §3) and against PyTorch's own
shape inference (networks built on the meta device: shapes without memory or arithmetic)."""

from __future__ import annotations

import pytest
import torch

from overfeat import ACCURATE, FAST, build_model
from overfeat.dense import dense_scores
from overfeat.geometry import (
    connections,
    dropped_border,
    feature_sizes,
    format_table4,
    layer5_size,
    output_stride,
    receptive_field,
    table5_row,
    total_stride,
)
from overfeat.scales import TABLE5_SIZES, scale_sizes, tiling_size

# Table 5 as the paper prints it (FACTS §3): input, layer 5 pre-pool, post-pool per offset,
# classifier map per offset, classifier map. Row 5's middle columns are the CORRECTED values;
# the printed ones are in TABLE5_ROW5_PRINTED.
TABLE5 = [
    ((245, 245), (17, 17), (5, 5), (1, 1), (3, 3)),
    ((281, 317), (20, 23), (6, 7), (2, 3), (6, 9)),
    ((317, 389), (23, 29), (7, 9), (3, 5), (9, 15)),
    ((389, 461), (29, 35), (9, 11), (5, 7), (15, 21)),
    ((425, 497), (32, 38), (10, 12), (6, 8), (18, 24)),
    ((461, 569), (35, 44), (11, 14), (7, 10), (21, 30)),
]
TABLE5_ROW5_PRINTED = ((32, 35), (10, 11), (6, 7))


@pytest.mark.parametrize("row", TABLE5, ids=[f"scale{i}" for i in range(1, 7)])
def test_table5_accurate_model_sizes_at_every_scale(row):
    size, layer5, post_pool, classifier, output = row
    got = table5_row(ACCURATE, size, "fine")
    assert got["layer5"] == layer5
    assert got["post_pool"] == post_pool
    assert got["offset_grid"] == (3, 3)  # "(Δx, Δy) = {0, 1, 2}"
    assert got["classifier"] == classifier
    assert got["output"] == output


def test_table5_row5_as_printed_is_not_what_the_arithmetic_gives():
    """FACTS §3/§9.1: 425x497 gives 32x38 / (10x12) / (6x8), agreeing with the row's own
    18x24xC, not the printed 32x35 / (10x11) / (6x7)."""
    got = table5_row(ACCURATE, (425, 497), "fine")
    printed = TABLE5_ROW5_PRINTED
    assert got["layer5"] != printed[0]
    assert got["post_pool"] != printed[1]
    assert got["classifier"] != printed[2]
    assert got["output"] == (18, 24)


def test_table5_size_281x317_is_rows_by_cols():
    """Fig. 3 caption: the 281x317 scale has a 20x23 layer-5 map, so H = 281, W = 317."""
    assert layer5_size(ACCURATE, (281, 317)) == (20, 23)
    assert layer5_size(ACCURATE, (317, 281)) == (23, 20)


def test_six_scales_give_1575_outputs_per_image_and_flip():
    """FACTS §3: 9 + 54 + 135 + 315 + 432 + 630 = 1575 ([SLIDES-ZLL] "Total 1575")."""
    counts = [table5_row(ACCURATE, s, "fine")["output"] for s in scale_sizes(ACCURATE)]
    assert [h * w for h, w in counts] == [9, 54, 135, 315, 432, 630]
    assert sum(h * w for h, w in counts) == 1575


@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_sizes_match_pytorch_shape_inference_at_every_scale(arch):
    """Layer-5 and dense output sizes from the arithmetic equal the shapes the modules produce,
    at every scale and at odd sizes that tile nothing; where the arithmetic says no window fits,
    dense_scores refuses with a clear error."""
    spec = {"fast": FAST, "accurate": ACCURATE}[arch]
    with torch.device("meta"):
        model = build_model(arch, num_classes=7)
    for size in [*scale_sizes(spec), *TABLE5_SIZES, (240, 333), (300, 250)]:
        x = torch.empty(1, 3, *size, device="meta")
        assert tuple(model.features(x).shape[-2:]) == layer5_size(spec, size)
        for offsets in ("fine", "coarse"):
            want = table5_row(spec, size, offsets)["output"]
            if 0 in want:  # e.g. fast at 245: fine stride needs 231 + 16 px
                with pytest.raises(ValueError, match="needs at least"):
                    dense_scores(model, x, offsets)
            else:
                assert tuple(dense_scores(model, x, offsets).shape) == (1, 7, *want)


def test_total_stride_32_fast_36_accurate():
    """FACTS §1: fast 4·2·2·2 = 32; accurate "2x3x2x3, or 36" (§3.3)."""
    assert total_stride(FAST) == 32
    assert total_stride(ACCURATE) == 36


def test_fine_stride_is_16_fast_12_accurate():
    """§3.3: offset pooling gives "x12 instead of x36"; the fast model's 2×2 pool gives 16."""
    assert output_stride(ACCURATE, "fine") == 12
    assert output_stride(FAST, "fine") == 16
    assert output_stride(FAST, "coarse") == 32


def test_receptive_field_231_fast_221_accurate():
    """The window one output sees is the training crop (Tables 1 and 3)."""
    assert receptive_field(FAST) == 231
    assert receptive_field(ACCURATE) == 221


def test_receptive_field_with_padding_context_adds_48_px_per_side():
    """Worked by hand: 3 padded 3×3 layers at 16 px (fast) and 4 at 12 px (accurate) each reach
    one layer-5 cell further on each side: 231 + 2·48 = 327, 221 + 2·48 = 317."""
    assert receptive_field(FAST, padding_context=True) == 327
    assert receptive_field(ACCURATE, padding_context=True) == 317


def test_release_output_sizes_per_layer_at_the_training_size():
    """overfeat-release.md §1.1: fast 231 → 56 → 28 → 24 → 12 → 12 → 12 → 12;
    accurate 221 → 108 → 36 → 30 → 15 → 15 ×4."""
    fast = [(r.conv_size[0], r.out_size[0]) for r in feature_sizes(FAST, (231, 231))]
    assert fast == [(56, 28), (24, 12), (12, 12), (12, 12), (12, 12)]
    acc = [(r.conv_size[0], r.out_size[0]) for r in feature_sizes(ACCURATE, (221, 221))]
    assert acc == [(108, 36), (30, 15), (15, 15), (15, 15), (15, 15), (15, 15)]


def test_connections_weights_only_by_hand_and_next_to_table4():
    """Weights-only MACs at the training size, written out from Tables 1/3 and the release's
    layer sizes: fast 2801.4M, accurate 5355.4M; both within 0.35% below Table 4's 2810M and
    5369M (FACTS §2: the paper's convention is not stated)."""
    fast = (
        96 * 56 * 56 * 3 * 11 * 11
        + 256 * 24 * 24 * 96 * 5 * 5
        + 512 * 12 * 12 * 256 * 9
        + 1024 * 12 * 12 * 512 * 9
        + 1024 * 12 * 12 * 1024 * 9
        + 3072 * 1024 * 6 * 6
        + 4096 * 3072
        + 1000 * 4096
    )
    accurate = (
        96 * 108 * 108 * 3 * 7 * 7
        + 256 * 30 * 30 * 96 * 7 * 7
        + 512 * 15 * 15 * 256 * 9
        + 512 * 15 * 15 * 512 * 9
        + 1024 * 15 * 15 * 512 * 9
        + 1024 * 15 * 15 * 1024 * 9
        + 4096 * 1024 * 5 * 5
        + 4096 * 4096
        + 1000 * 4096
    )
    assert sum(connections(FAST).values()) == fast
    assert sum(connections(ACCURATE).values()) == accurate
    for count, paper in ((fast, 2810e6), (accurate, 5369e6)):
        assert -0.0035 < (count - paper) / paper < 0
    print("\n" + format_table4(FAST) + "\n" + format_table4(ACCURATE))


def test_connections_with_biases_add_one_per_output():
    """Fast conv1 has 96·56·56 outputs, each with one bias: +301,056."""
    diff = connections(FAST, include_bias=True)["conv1"] - connections(FAST)["conv1"]
    assert diff == 96 * 56 * 56


def test_every_table5_size_is_a_tiling_size_of_the_accurate_model():
    """§4.2 "dimensions are adjusted to fit exactly the stride": each Table 5 side is
    221 + 12·(3n − 1): 245 (n=1), 281 (2), 317 (3), 389 (5), 425 (6), 461 (7), 497 (8), 569 (10)."""
    want = {245: 1, 281: 2, 317: 3, 389: 5, 425: 6, 461: 7, 497: 8, 569: 10}
    for side, n in want.items():
        assert tiling_size(ACCURATE, n) == side == 221 + 12 * (3 * n - 1)
    assert scale_sizes(ACCURATE) == TABLE5_SIZES


def test_table5_sizes_drop_nothing_for_the_accurate_model_but_leave_2_px_in_fast_conv1():
    """FACTS §3: at Table 5 sizes accurate pools divide evenly; the fast conv1 leaves 2 px."""
    for size in TABLE5_SIZES:
        assert all(v == (0, 0) for v in dropped_border(ACCURATE, size, "fine").values())
        conv1 = feature_sizes(FAST, size)[0].conv_size  # 11×11, stride 4
        assert ((conv1[0] - 1) * 4 + 11, (conv1[1] - 1) * 4 + 11) == (size[0] - 2, size[1] - 2)


def test_fast_scales_are_the_nearest_tiling_sizes_231_plus_16_times_2n_minus_1():
    """Decision FAST_SCALE_RULE: per side the size 231 + 16·(2n − 1) nearest to Table 5's;
    e.g. 389 lies between 375 (14 away) and 407 (18 away)."""
    assert scale_sizes(FAST) == (
        (247, 247),
        (279, 311),
        (311, 375),
        (375, 471),
        (439, 503),
        (471, 567),
    )
    for size in scale_sizes(FAST):
        assert all(v == (0, 0) for v in dropped_border(FAST, size, "fine").values())
        assert all((side - 231) % 16 == 0 and (side - 231) // 16 % 2 == 1 for side in size)


def test_dropped_border_accurate_at_221_loses_offset0s_last_pooled_cell():
    """221: layer 5 is 15×15; offset 0 pools 5 cells, offsets 1 and 2 only 4 (⌊14/3⌋, ⌊13/3⌋),
    so offset 0's fifth cell is dropped, each offset keeps 4 pooled cells, and fine stride has
    no window at the training size (coarse has its one)."""
    assert dropped_border(ACCURATE, (221, 221), "fine") == {0: (1, 1), 1: (0, 0), 2: (0, 0)}
    assert table5_row(ACCURATE, (221, 221), "fine")["post_pool"] == (4, 4)
    assert table5_row(ACCURATE, (221, 221), "fine")["output"] == (0, 0)  # < the 5×5 classifier
    assert table5_row(ACCURATE, (221, 221), "coarse")["output"] == (1, 1)
    assert dropped_border(ACCURATE, (221, 221), "coarse") == {0: (0, 0)}
