"""The released-weights importer, class order, preprocessing and ``overfeat classify``.

Facts come from shared/reference/overfeat-release.md (§1.1 networks, §1.2 file layout and offsets,
§1.3 preprocessing and softmax, §1.4 class order) and the devkit's own meta.mat. Weight files are
written here by an independent writer (shapes from the paper's tables as ``ArchSpec``, values
position-coded), never by the code under test.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from overfeat.models import ARCHS, build_model
from overfeat.release import (
    RELEASE_MEAN,
    RELEASE_STD,
    ReleaseNormalize,
    ReleaseWeightsWarning,
    load_release,
    permute_classifier_to_sorted,
    release_layout,
    release_layouts,
    release_names,
    release_to_sorted,
    release_wnids,
    sorted_to_release,
)
from overfeat.release import classify as classify_mod
from overfeat.release import weights as weights_mod
from overfeat.release.classify import (
    exp_minus_approx,
    release_preprocess,
    release_resize_size,
    release_softmax,
)

SMALL = 1 / 16  # width of the toy networks written in the release layout

# overfeat-release.md §1.2, the tables of net_weight_0 and net_weight_1 as published:
# (name, shape, float offset).
DOC_FAST = [
    ("conv1.W", (96, 3, 11, 11), 0),
    ("conv1.b", (96,), 34_848),
    ("conv2.W", (256, 96, 5, 5), 34_944),
    ("conv2.b", (256,), 649_344),
    ("conv3.W", (512, 256, 3, 3), 649_600),
    ("conv3.b", (512,), 1_829_248),
    ("conv4.W", (1024, 512, 3, 3), 1_829_760),
    ("conv4.b", (1024,), 6_548_352),
    ("conv5.W", (1024, 1024, 3, 3), 6_549_376),
    ("conv5.b", (1024,), 15_986_560),
    ("fc6.W", (3072, 1024, 6, 6), 15_987_584),
    ("fc6.b", (3072,), 129_233_792),
    ("fc7.W", (4096, 3072, 1, 1), 129_236_864),
    ("fc7.b", (4096,), 141_819_776),
    ("fc8.W", (1000, 4096, 1, 1), 141_823_872),
    ("fc8.b", (1000,), 145_919_872),
]
DOC_ACCURATE = [
    ("conv1.W", (96, 3, 7, 7), 0),
    ("conv1.b", (96,), 14_112),
    ("conv2.W", (256, 96, 7, 7), 14_208),
    ("conv2.b", (256,), 1_218_432),
    ("conv3.W", (512, 256, 3, 3), 1_218_688),
    ("conv3.b", (512,), 2_398_336),
    ("conv4.W", (512, 512, 3, 3), 2_398_848),
    ("conv4.b", (512,), 4_758_144),
    ("conv5.W", (1024, 512, 3, 3), 4_758_656),
    ("conv5.b", (1024,), 9_477_248),
    ("conv6.W", (1024, 1024, 3, 3), 9_478_272),
    ("conv6.b", (1024,), 18_915_456),
    ("fc7.W", (4096, 1024, 5, 5), 18_916_480),
    ("fc7.b", (4096,), 123_774_080),
    ("fc8.W", (4096, 4096, 1, 1), 123_778_176),
    ("fc8.b", (4096,), 140_555_392),
    ("fc9.W", (1000, 4096, 1, 1), 140_559_488),
    ("fc9.b", (1000,), 144_655_488),
]
DOC_TOTALS = {"fast": (145_920_872, 583_683_488), "accurate": (144_656_488, 578_625_952)}


# ------------------------------------------------------------------------ the independent writer
def release_file_shapes(arch: str, width: float, num_classes: int = 1000):
    """(project parameter, shape) in the file's order (§1.2: W then b per layer, forward order),
    from the paper's tables as ``ArchSpec`` data."""
    spec = ARCHS[arch].scaled(width)
    shapes, in_ch = [], 3
    for i, layer in enumerate(spec.layers, start=1):
        shapes.append(
            (f"features.conv{i}.weight", (layer.channels, in_ch, layer.kernel, layer.kernel))
        )
        shapes.append((f"features.conv{i}.bias", (layer.channels,)))
        in_ch = layer.channels
    for j, out_ch in enumerate((*spec.classifier, num_classes)):
        k = spec.classifier_kernel if j == 0 else 1
        n = spec.first_classifier_layer + j
        shapes.append((f"classifier.fc{n}.weight", (out_ch, in_ch, k, k)))
        shapes.append((f"classifier.fc{n}.bias", (out_ch,)))
        in_ch = out_ch
    return shapes


def write_release_file(path: Path, arch: str, width: float = SMALL, seed: int | None = None):
    """Write raw little-endian float32 tensors back to back. ``seed=None``: every float holds its
    own position in the file (exact below 2**24); else He-scaled random weights for a usable net."""
    rng = None if seed is None else np.random.default_rng(seed)
    arrays, offset = {}, 0
    with open(path, "wb") as f:
        for name, shape in release_file_shapes(arch, width):
            count = math.prod(shape)
            if rng is None:
                values = np.arange(offset, offset + count, dtype=np.float64)
            elif name.endswith("bias"):
                values = rng.standard_normal(count) * 0.01
            else:
                values = rng.standard_normal(count) * math.sqrt(2.0 / math.prod(shape[1:]))
            values = values.astype("<f4")
            f.write(values.tobytes())
            arrays[name] = values.reshape(shape)
            offset += count
    return arrays


def small_layouts():
    return {arch: release_layout(arch, SMALL) for arch in ("fast", "accurate")}


def assert_parameters_equal(model, arrays):
    params = dict(model.named_parameters())
    assert sorted(params) == sorted(arrays)
    for name, expected in arrays.items():
        got = params[name].detach().numpy()
        assert got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)


# --------------------------------------------------------------------------- layout arithmetic
@pytest.mark.parametrize(("arch", "doc"), [("fast", DOC_FAST), ("accurate", DOC_ACCURATE)])
def test_full_size_layout_equals_the_release_doc_tables(arch, doc):
    # The transcribed table is self-consistent: each offset = previous offset + previous count.
    for (_, shape, offset), (_, _, nxt) in zip(doc, doc[1:]):
        assert offset + math.prod(shape) == nxt
    layout = release_layouts()[arch]
    assert [(t.name, t.shape, t.offset) for t in layout.tensors] == doc
    floats, nbytes = DOC_TOTALS[arch]
    assert (layout.total_floats, layout.nbytes) == (floats, nbytes)


def test_last_bias_offsets_are_the_documented_ones():
    layouts = release_layouts()
    assert [t.offset for t in layouts["fast"].tensors if t.name == "fc8.b"] == [145_919_872]
    assert [t.offset for t in layouts["accurate"].tensors if t.name == "fc9.b"] == [144_655_488]


def test_layout_refuses_a_network_that_disagrees_with_the_documented_totals(monkeypatch):
    monkeypatch.setitem(weights_mod.RELEASE_DOCUMENTED, "fast", (145_919_872, 145_920_873))
    with pytest.raises(RuntimeError, match="documented"):
        release_layout("fast")


# ---------------------------------------------------------------------------------- loading
@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_every_parameter_lands_in_its_place(tmp_path, arch):
    path = tmp_path / "weights.bin"
    arrays = write_release_file(path, arch)
    net = load_release(path, arch, layouts=small_layouts())
    assert net.arch == arch and not net.model.training
    assert_parameters_equal(net.model, arrays)


@pytest.mark.slow
def test_full_size_fast_file_loads_every_float_in_place(tmp_path):
    """Writes the real 583,683,488-byte layout (ramp mod 2**24, chunked) and reads it back."""
    chunk = 1 << 22
    path = tmp_path / "net_weight_0"
    shapes = release_file_shapes("fast", 1.0)

    def ramp(start, stop):
        return (np.arange(start, stop, dtype=np.int64) % (1 << 24)).astype("<f4")

    total = sum(math.prod(s) for _, s in shapes)
    with open(path, "wb") as f:
        for start in range(0, total, chunk):
            f.write(ramp(start, min(total, start + chunk)).tobytes())
    assert path.stat().st_size == DOC_TOTALS["fast"][1]
    net = load_release(tmp_path)  # a directory: the release's default net_weight_0
    params = dict(net.model.named_parameters())
    offset = 0
    for name, shape in shapes:
        got = params[name].detach().view(-1)
        assert tuple(params[name].shape) == shape
        count = math.prod(shape)
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            np.testing.assert_array_equal(
                got[start:stop].numpy(), ramp(offset + start, offset + stop), err_msg=name
            )
        offset += count


def test_short_file_is_refused_naming_file_size_and_expectation(tmp_path):
    path = tmp_path / "net_weight_0"
    write_release_file(path, "fast")
    full = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(full - 4000)
    with pytest.raises(ValueError) as err:
        load_release(path, layouts=small_layouts())
    msg = str(err.value)
    assert str(path) in msg
    assert f"{full - 4000:,}" in msg and f"{full:,}" in msg
    assert "truncated" in msg


@pytest.mark.parametrize(
    ("head", "guess"),
    [(b"\x1f\x8b\x08\x00", "gzip"), (b"<!DOCTYPE html><html>", "HTML"), (b"", "empty")],
)
def test_short_file_message_says_what_it_probably_is(tmp_path, head, guess):
    path = tmp_path / "net_weight_1"
    path.write_bytes(head + b"\0" * (100 if head else 0))
    with pytest.raises(ValueError, match=guess):
        load_release(path, layouts=small_layouts())


def test_file_of_the_other_network_is_named_in_the_refusal(tmp_path):
    path = tmp_path / "weights.bin"
    write_release_file(path, "accurate")  # smaller than the fast layout at this width
    assert path.stat().st_size < small_layouts()["fast"].nbytes
    with pytest.raises(ValueError, match="exactly the accurate network's net_weight_1"):
        load_release(path, "fast", layouts=small_layouts())


def test_larger_file_of_the_other_network_is_refused_not_read_with_a_warning(tmp_path):
    path = tmp_path / "net_weight_0"
    write_release_file(path, "fast")  # longer than the accurate layout at this width
    with pytest.raises(ValueError, match="exactly the fast network's net_weight_0"):
        load_release(path, "accurate", layouts=small_layouts())


def test_trailing_bytes_warn_and_the_weights_still_load(tmp_path):
    path = tmp_path / "net_weight_0"
    arrays = write_release_file(path, "fast")
    with open(path, "ab") as f:
        f.write(b"\xff" * 12)
    with pytest.warns(ReleaseWeightsWarning, match="12 trailing bytes"):
        net = load_release(path, layouts=small_layouts())
    assert_parameters_equal(net.model, arrays)


@pytest.mark.parametrize("arch", ["fast", "accurate"])
def test_network_is_chosen_by_file_size(tmp_path, arch):
    path = tmp_path / "unnamed.bin"
    write_release_file(path, arch)
    assert load_release(path, layouts=small_layouts()).arch == arch


@pytest.mark.parametrize(("arch", "extra"), [("fast", 4096), ("accurate", 8)])
def test_size_matching_neither_network_needs_arch(tmp_path, arch, extra):
    # accurate + 8 bytes lies between the two sizes: a truncated fast file would look the same.
    path = tmp_path / "unnamed.bin"
    write_release_file(path, arch)
    with open(path, "ab") as f:
        f.write(b"\0" * extra)
    with pytest.raises(ValueError, match="arch="):
        load_release(path, layouts=small_layouts())
    with pytest.warns(ReleaseWeightsWarning, match=f"{extra:,} trailing bytes"):
        assert load_release(path, arch, layouts=small_layouts()).arch == arch


def test_size_outranks_a_misleading_file_name_with_a_warning(tmp_path):
    path = tmp_path / "net_weight_1"
    arrays = write_release_file(path, "fast")
    with pytest.warns(ReleaseWeightsWarning, match="named like the accurate"):
        net = load_release(path, layouts=small_layouts())
    assert net.arch == "fast"
    assert_parameters_equal(net.model, arrays)


def test_directory_gives_fast_by_default_and_accurate_on_request(tmp_path):
    fast = write_release_file(tmp_path / "net_weight_0", "fast")
    accurate = write_release_file(tmp_path / "net_weight_1", "accurate")
    assert_parameters_equal(load_release(tmp_path, layouts=small_layouts()).model, fast)
    assert_parameters_equal(
        load_release(tmp_path, "accurate", layouts=small_layouts()).model, accurate
    )
    (tmp_path / "net_weight_1").unlink()
    with pytest.raises(FileNotFoundError, match="net_weight_1"):
        load_release(tmp_path, "accurate", layouts=small_layouts())


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "net_weight_0"
    write_release_file(path, "fast")
    with open(path, "r+b") as f:  # float 5 is inside conv1.W
        f.seek(5 * 4)
        f.write(np.array([np.nan], dtype="<f4").tobytes())
    with pytest.raises(ValueError, match="conv1.W"):
        load_release(path, layouts=small_layouts())


def test_loaded_network_uses_the_release_threshold_by_default(tmp_path):
    path = tmp_path / "net_weight_0"
    write_release_file(path, "fast")
    net = load_release(path, layouts=small_layouts())
    relu_net = load_release(path, activation="relu", layouts=small_layouts())
    x = torch.tensor([-1.0, 0.0, 5e-7, 1e-6, 2e-6, 3.0])
    # overfeat-release.md §1.1: y = x if x > 1e-6 else 0.
    expected = torch.tensor([0.0, 0.0, 0.0, 0.0, 2e-6, 3.0])
    torch.testing.assert_close(net.model.features.relu1(x.clone()), expected, rtol=0, atol=0)
    torch.testing.assert_close(relu_net.model.features.relu1(x.clone()), x.clamp(min=0))


# ---------------------------------------------------------------------------- normalisation
def test_normalisation_is_the_release_layer0_and_leaves_input_untouched():
    x = torch.arange(0, 256, dtype=torch.float64).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    before = x.clone()
    y = ReleaseNormalize()(x)
    torch.testing.assert_close(y, (before - 118.380948) / 61.896913)
    assert torch.equal(x, before)
    torch.testing.assert_close(ReleaseNormalize(input_scale=1.0)(x / 255.0), y)
    assert (RELEASE_MEAN, RELEASE_STD) == (118.380948, 61.896913)


def test_outputs_are_fresh_tensors_on_every_call(tmp_path):
    path = tmp_path / "net_weight_0"
    write_release_file(path, "fast", seed=0)
    net = load_release(path, layouts=small_layouts())
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 231, 231, generator=g) * 255
    b = torch.rand(2, 3, 231, 231, generator=g) * 255
    a_before = a.clone()
    first = net.class_scores(a)
    kept = first.clone()
    second = net.class_scores(b)
    assert torch.equal(first, kept)  # not overwritten by the second call
    assert not torch.equal(first, second)
    assert first.untyped_storage().data_ptr() != second.untyped_storage().data_ptr()
    assert torch.equal(a, a_before)


# ----------------------------------------------------------------------------------- classes
@pytest.fixture(scope="module")
def devkit_table(devkit_dir):
    """ILSVRC2012_ID → (WNID, words), read straight from the devkit's meta.mat."""
    import scipy.io

    mat = scipy.io.loadmat(
        str(devkit_dir / "t12" / "meta.mat"), squeeze_me=True, struct_as_record=False
    )
    table = {}
    for s in mat["synsets"]:
        if 1 <= int(s.ILSVRC2012_ID) <= 1000:
            table[int(s.ILSVRC2012_ID)] = (str(s.WNID), str(s.words))
    assert len(table) == 1000
    return table


@pytest.fixture(scope="module")
def labels(devkit_dir):
    from evaluation.labels import ClassLabels

    return ClassLabels.from_devkit_meta(devkit_dir / "t12" / "meta.mat")


def test_release_order_is_the_devkit_ilsvrc2012_id_order(labels, devkit_table):
    wnids = release_wnids(labels)
    assert list(wnids) == [devkit_table[i + 1][0] for i in range(1000)]
    assert list(release_names(labels)) == [devkit_table[i + 1][1] for i in range(1000)]
    # overfeat-release.md §1.4 spot checks (0-based release index).
    assert wnids[0] == "n02119789" and devkit_table[1][1].startswith("kit fox")
    assert wnids[999] == "n03255030" and devkit_table[1000][1].startswith("dumbbell")
    assert (wnids[448], wnids[629]) == ("n01440764", "n02206856")  # tench, bee


def test_the_two_cranes_map_to_two_different_wnids(labels):
    wnids, names = release_wnids(labels), release_names(labels)
    assert names[428].split(",")[0] == names[544].split(",")[0] == "crane"
    assert (wnids[428], wnids[544]) == ("n02012849", "n03126707")
    perm = sorted_to_release(labels)
    assert perm[428] != perm[544]


def test_permutation_to_sorted_wnid_order_agrees_with_the_devkit(labels, devkit_table):
    perm = release_to_sorted(labels)
    sorted_wnids = sorted(w for w, _ in devkit_table.values())
    assert sorted(perm.tolist()) == list(range(1000))
    assert [devkit_table[int(p) + 1][0] for p in perm] == sorted_wnids
    assert perm[0] == 448  # tench: sorted index 0, release index 448
    inverse = sorted_to_release(labels)
    assert inverse[0] == 278  # kit fox: release index 0, sorted index 278
    np.testing.assert_array_equal(perm[inverse], np.arange(1000))


def test_permuted_classifier_outputs_sorted_wnid_order(labels):
    torch.manual_seed(0)
    model = build_model("fast", width=SMALL).eval()
    x = torch.randn(2, 3, 231, 231)
    with torch.no_grad():
        before = model(x).flatten(1)
        permute_classifier_to_sorted(model, labels)
        after = model(x).flatten(1)
    wnids, sorted_wnids = release_wnids(labels), sorted(release_wnids(labels))
    for j in (0, 1, 278, 500, 999):
        i = wnids.index(sorted_wnids[j])
        torch.testing.assert_close(after[:, j], before[:, i])


def test_release_model_for_gives_sorted_wnid_outputs_with_labels(tmp_path, labels, monkeypatch):
    from overfeat.release import release_model_for

    monkeypatch.setattr(weights_mod, "release_layouts", small_layouts)
    write_release_file(tmp_path / "net_weight_1", "accurate", seed=5)
    plain = release_model_for("accurate", tmp_path)
    ordered = release_model_for("accurate", tmp_path, labels=labels)
    assert (plain.class_order, ordered.class_order) == ("release", "sorted")
    x = torch.rand(1, 3, 221, 221, generator=torch.Generator().manual_seed(0)) * 255
    before, after = plain.class_scores(x).flatten(), ordered.class_scores(x).flatten()
    sorted_wnids = sorted(release_wnids(labels))
    for j in (0, 278, 999):
        torch.testing.assert_close(after[j], before[release_wnids(labels).index(sorted_wnids[j])])


# ----------------------------------------------------------------------------- preprocessing
@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((300, 200), (347, 231)),  # 300·231/200 = 346.5, ImageMagick's floor(x + ½)
        ((200, 300), (231, 347)),
        ((500, 375), (308, 231)),  # 500·231/375 = 308
        ((231, 231), (231, 231)),
        ((100, 50), (462, 231)),  # enlarged
    ],
)
def test_shorter_side_becomes_231_keeping_the_aspect_ratio(size, expected):
    assert release_resize_size(*size) == expected


def test_centre_crop_takes_the_floor_offset_in_rgb_0_to_255():
    w, h = 300, 231  # already 231 high: no resize, crop offset (300 − 231) // 2 = 34
    pixels = np.zeros((h, w, 3), dtype=np.uint8)
    pixels[..., 0] = np.arange(w, dtype=np.uint8)[None, :]
    pixels[..., 1] = np.arange(h, dtype=np.uint8)[:, None]
    pixels[..., 2] = 7
    x = release_preprocess(Image.fromarray(pixels, "RGB"))
    assert x.shape == (3, 231, 231) and x.dtype == torch.float32
    assert torch.equal(x[0, 0], torch.arange(34, 34 + 231, dtype=torch.float32) % 256)
    assert torch.equal(x[1, :, 0], torch.arange(231, dtype=torch.float32))
    assert torch.equal(x[2], torch.full((231, 231), 7.0))
    tall = np.repeat(np.arange(260, dtype=np.uint8)[:, None, None], 231, axis=1)
    x = release_preprocess(Image.fromarray(np.repeat(tall, 3, axis=2), "RGB"))
    assert x[0, 0, 0] == (260 - 231) // 2


def test_resized_constant_image_keeps_its_colour_and_grey_becomes_rgb():
    x = release_preprocess(Image.new("RGB", (400, 300), (10, 200, 30)))
    assert x.shape == (3, 231, 231)
    assert torch.equal(x, torch.tensor([10.0, 200.0, 30.0]).view(3, 1, 1).expand(3, 231, 231))
    grey = release_preprocess(Image.new("L", (231, 240), 90))
    assert torch.equal(grey, torch.full((3, 231, 231), 90.0))


def test_accurate_net_fed_231_classifies_its_top_left_221():
    torch.manual_seed(0)
    model = build_model("accurate", width=SMALL, activation="release").eval()
    x = torch.randn(1, 3, 231, 231)
    with torch.no_grad():
        full, corner = model(x), model(x[..., :221, :221].contiguous())
    assert full.shape[-2:] == (1, 1)
    torch.testing.assert_close(full, corner)


# ----------------------------------------------------------------------------------- softmax
def test_approximate_exp_has_the_documented_errors_and_cutoff():
    x = torch.tensor([0.0, 1.0, 2.0, 4.0, 8.0, 12.9, 13.0, 20.0], dtype=torch.float64)
    approx = exp_minus_approx(x)
    rel = (approx - torch.exp(-x)).abs() / torch.exp(-x)
    assert approx[0] == 1.0
    # overfeat-release.md §1.3: 2e-6 at 1, 5e-5 at 2, 1.4e-3 at 4, 3% at 8, 22% at 12.9, 0 from 13.
    for got, doc in zip(rel[1:6].tolist(), (2e-6, 5e-5, 1.4e-3, 0.03, 0.22)):
        assert doc / 2 < got < doc * 1.5
    assert approx[6] == 0.0 and approx[7] == 0.0


def _reference_release_softmax(row):
    """Brute force, one float at a time, from the TH formula (1 / T(x)^8, T = 4th-order Taylor
    polynomial of e^(x/8) with the TH coefficients; 0 from x = 13)."""
    top = max(row)
    z = []
    for s in row:
        x = top - s
        t = 1.0 + x * (0.125 + x * (0.0078125 + x * (0.00032552083 + x * 1.0172526e-5)))
        z.append(1.0 / t**8 if x < 13.0 else 0.0)
    total = sum(z)
    return [v / total for v in z]


def test_release_softmax_matches_a_scalar_reference_and_zeroes_distant_classes():
    scores = torch.tensor([[3.0, 2.0, -5.0, -10.0, -9.99], [0.5, 0.5, 0.0, -1.0, 7.0]])
    got = release_softmax(scores)
    for row, expected in zip(got.tolist(), map(_reference_release_softmax, scores.tolist())):
        assert row == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert got[0, 3] == 0.0 and got[0, 4] > 0.0  # 13 below the top → exactly 0
    torch.testing.assert_close(got.sum(1), torch.ones(2))


# ---------------------------------------------------------------------------- command line
@pytest.fixture
def toy_release(tmp_path):
    """A release-layout directory with a usable toy fast network, and two 231×231 images."""
    weights = tmp_path / "weights"
    weights.mkdir()
    arrays = write_release_file(weights / "net_weight_0", "fast", seed=3)
    rng = np.random.default_rng(4)
    images = []
    for i in range(2):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (231, 231, 3), dtype=np.uint8), "RGB").save(path)
        images.append(path)
    return weights, arrays, images


def _expected_scores(arrays, image_path):
    """Raw scores of the toy net, built here from the writer's arrays and the release's layer 0."""
    model = build_model("fast", width=SMALL, activation="release").eval()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    x = torch.from_numpy(np.asarray(Image.open(image_path), dtype=np.float32)).permute(2, 0, 1)
    with torch.no_grad():
        return model(((x - 118.380948) / 61.896913)[None]).flatten().double()


def _classify(argv, capsys):
    parser = argparse.ArgumentParser()
    classify_mod.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["classify", *map(str, argv), "--width", str(SMALL)])
    rc = args.func(args)
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err


# Probabilities print with six significant digits (C++ cout, overfeat-release.md §1.6).
SIX_DIGITS = 6e-6
LINE = re.compile(r"^(?P<name>.+) (?P<p>[0-9.]+(e[-+][0-9]+)?)$")


def test_classify_prints_top_k_names_and_release_probabilities(
    toy_release, devkit_table, devkit_dir, capsys
):
    weights, arrays, images = toy_release
    meta = devkit_dir / "t12" / "meta.mat"
    rc, lines, _ = _classify(
        [images[0], "--release-weights", weights, "--meta", meta, "--top-classes", "4"], capsys
    )
    assert rc == 0 and len(lines) == 4  # one image: exactly the release's format, no header
    scores = _expected_scores(arrays, images[0])
    top = scores.argsort(descending=True)[:4].tolist()
    probs = _reference_release_softmax(scores.tolist())
    for line, idx in zip(lines, top):
        m = LINE.match(line)
        assert m, line
        assert m["name"] == devkit_table[idx + 1][1]
        assert float(m["p"]) == pytest.approx(probs[idx], rel=SIX_DIGITS)


def test_classify_without_meta_prints_ids_and_a_header_per_image(toy_release, capsys):
    weights, arrays, images = toy_release
    rc, lines, _ = _classify([*images, "--release-weights", weights, "--softmax", "exact"], capsys)
    assert rc == 0 and len(lines) == 2 * 6
    for block, path in zip((lines[:6], lines[6:]), images):
        assert block[0] == str(path)
        scores = _expected_scores(arrays, path)
        exact = torch.softmax(scores, 0)
        for line, idx in zip(block[1:], scores.argsort(descending=True)[:5].tolist()):
            m = LINE.match(line)
            assert m["name"] == f"ILSVRC2012_ID {idx + 1}"
            # Two images run as one batch: other float32 kernels, logits differ by ~1e-5.
            assert float(m["p"]) == pytest.approx(exact[idx].item(), rel=5e-5)


def test_classify_logs_progress_lines_and_keeps_standard_output_for_the_classes(
    toy_release, capsys
):
    """Several batches show progress on standard error (one line per 10% in a log, decision
    PROGRESS_LOG_LINES); standard output holds the class lines only."""
    weights, _, images = toy_release
    rc, lines, err = _classify([*images, "--release-weights", weights, "--batch-size", "1"],
                               capsys)  # fmt: skip
    assert rc == 0 and "\r" not in err
    assert [ln.split(" (")[0] for ln in err.splitlines()] == ["classify: 50%", "classify: 100%"]
    assert [lines[0], lines[6]] == [str(p) for p in images] and len(lines) == 2 * 6
    rc, _, err = _classify([*images, "--release-weights", weights], capsys)
    assert rc == 0 and err == ""  # one batch of the default 16: no progress to show


def test_classify_skips_and_counts_a_corrupt_image(toy_release, tmp_path, capsys):
    weights, _, images = toy_release
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    rc, lines, err = _classify([broken, images[0], "--release-weights", weights], capsys)
    assert rc == 1
    assert lines[0] == str(images[0]) and len(lines) == 6
    assert f"skipped {broken}" in err and "1 of 2 image(s) skipped" in err


def test_classify_reports_missing_weights_without_a_traceback(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.new("RGB", (231, 231)).save(img)
    rc, lines, err = _classify([img, "--release-weights", tmp_path / "nowhere"], capsys)
    assert rc == 2 and lines == []
    assert "nowhere" in err and "no such weight file" in err


def test_classify_is_a_registered_overfeat_command():
    from overfeat import cli

    assert "overfeat.release.classify" in cli.COMMANDS


# --------------------------------------------------------------- the real files (opt-in only)
REAL_WEIGHTS = os.environ.get("OVERFEAT_RELEASE_WEIGHTS")
REAL_SAMPLES = os.environ.get("OVERFEAT_RELEASE_SAMPLES")


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_WEIGHTS and REAL_SAMPLES),
    reason="set OVERFEAT_RELEASE_WEIGHTS (dir with net_weight_0/1) and OVERFEAT_RELEASE_SAMPLES "
    "(the release's samples/ with bee.jpg) to check the released outputs",
)
@pytest.mark.parametrize(("arch", "reported"), [("fast", 0.861293), ("accurate", 0.984824)])
def test_released_weights_classify_bee_as_the_release_does(arch, reported):
    """overfeat-release.md §1.3: the binaries print "bee 0.861293" (small) and "bee 0.984824"
    (large) for samples/bee.jpg. bee is ILSVRC2012_ID 630, release index 629 (§1.4)."""
    from overfeat.release.classify import read_image, release_top_classes

    net = load_release(REAL_WEIGHTS, arch)
    x = release_preprocess(read_image(Path(REAL_SAMPLES) / "bee.jpg"))[None]
    probs, outputs = release_top_classes(net, x, 5)
    assert outputs[0, 0].item() == 629
    # The resize is ImageMagick's (tests/test_release_resize.py), but the release's libjpeg and
    # float arithmetic are not this machine's; hence a tolerance, not equality.
    assert probs[0, 0].item() == pytest.approx(reported, abs=0.03)
