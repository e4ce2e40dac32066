"""The two networks (Tables 1, 3 and 4; overfeat-release.md §1.1–1.2). Full-size networks are
built on the meta device: exact shapes and counts, no memory, no arithmetic."""

from __future__ import annotations

import io

import pytest
import torch

from overfeat import ACCURATE, FAST, build_model
from overfeat.geometry import parameter_count

# Released weight files (overfeat-release.md §0, FACTS §2): 145,920,872 and 144,656,488 floats.
PARAMS = {"fast": 145_920_872, "accurate": 144_656_488}


def _meta(arch, **kw):
    with torch.device("meta"):
        return build_model(arch, **kw)


def _count_from_table(spec, num_classes=1000):
    """Weights + biases from the table's numbers alone, written out here."""
    total, in_ch = 0, 3
    for layer in spec.layers:
        total += layer.channels * in_ch * layer.kernel**2 + layer.channels
        in_ch = layer.channels
    kernel = spec.classifier_kernel
    for out_ch in (*spec.classifier, num_classes):
        total += out_ch * in_ch * kernel**2 + out_ch
        in_ch, kernel = out_ch, 1
    return total


@pytest.mark.parametrize("arch,spec", [("fast", FAST), ("accurate", ACCURATE)])
def test_parameter_count_equals_the_released_weight_files(arch, spec):
    """Table 4 (145M / 144M); exact counts from the release's offsets, three ways."""
    assert _count_from_table(spec) == PARAMS[arch]
    assert sum(parameter_count(spec).values()) == PARAMS[arch]
    assert sum(p.numel() for p in _meta(arch).parameters()) == PARAMS[arch]


def test_weight_shapes_are_the_release_files_tensors_in_order():
    """overfeat-release.md §1.2: W1, b1, W2, b2, … with FC layers stored as conv kernels."""
    fast = [tuple(p.shape) for name, p in _meta("fast").named_parameters() if "weight" in name]
    assert fast == [
        (96, 3, 11, 11),
        (256, 96, 5, 5),
        (512, 256, 3, 3),
        (1024, 512, 3, 3),
        (1024, 1024, 3, 3),
        (3072, 1024, 6, 6),
        (4096, 3072, 1, 1),
        (1000, 4096, 1, 1),
    ]
    acc = [tuple(p.shape) for name, p in _meta("accurate").named_parameters() if "weight" in name]
    assert acc == [
        (96, 3, 7, 7),
        (256, 96, 7, 7),
        (512, 256, 3, 3),
        (512, 512, 3, 3),
        (1024, 512, 3, 3),
        (1024, 1024, 3, 3),
        (4096, 1024, 5, 5),
        (4096, 4096, 1, 1),
        (1000, 4096, 1, 1),
    ]


def test_layers_are_named_as_the_tables_number_them():
    """Fast: conv1–conv5, fc6–fc8 (Table 1); accurate: conv1–conv6, fc7–fc9 (Table 3)."""
    fast = [
        n for n, _ in _meta("fast").named_modules() if n.split(".")[-1].startswith(("conv", "fc"))
    ]
    assert fast == [f"features.conv{i}" for i in range(1, 6)] + [
        f"classifier.fc{i}" for i in range(6, 9)
    ]
    acc = [
        n
        for n, _ in _meta("accurate").named_modules()
        if n.split(".")[-1].startswith(("conv", "fc"))
    ]
    assert acc == [f"features.conv{i}" for i in range(1, 7)] + [
        f"classifier.fc{i}" for i in range(7, 10)
    ]


@pytest.mark.parametrize("arch,side,layer5", [("fast", 231, 12), ("accurate", 221, 15)])
def test_training_crop_gives_one_output_and_an_unpooled_layer5_map(arch, side, layer5):
    """Tables 1/3: 231 (fast) and 221 (accurate) give a 1×1 output; ``features`` stops before
    the last pool (12×12 fast, 15×15 accurate, overfeat-release.md §1.1)."""
    model = _meta(arch, num_classes=10)
    x = torch.empty(2, 3, side, side, device="meta")
    assert tuple(model.features(x).shape) == (2, 1024, layer5, layer5)
    assert tuple(model(x).shape) == (2, 10, 1, 1)
    with pytest.raises(RuntimeError):  # one pixel less leaves no window for the classifier
        model(torch.empty(2, 3, side - 1, side - 1, device="meta"))


def test_width_scales_channels_and_keeps_the_geometry():
    model = _meta("accurate", width=1 / 16, num_classes=5)
    assert model.features.conv1.out_channels == 6 and model.classifier.fc7.out_channels == 256
    x = torch.empty(1, 3, 281, 317, device="meta")
    assert tuple(model(x).shape) == (1, 5, 2, 3)  # Table 5 scale 2 at coarse stride


def test_checkpoint_of_plain_values_rebuilds_the_same_network():
    """ARCHITECTURE.md: a checkpoint is a dict of plain values read with weights_only=True."""
    torch.manual_seed(0)
    model = build_model("fast", num_classes=3, width=1 / 32).eval()
    buf = io.BytesIO()
    torch.save({"config": model.config, "model": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    clone = build_model(**ckpt["config"]).eval()
    clone.load_state_dict(ckpt["model"])
    x = torch.rand(1, 3, 231, 231)
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))


def test_unknown_arch_and_activation_are_refused():
    with pytest.raises(ValueError, match="arch must be one of"):
        build_model("huge")
    with pytest.raises(ValueError, match="activation must be"):
        build_model("fast", activation="tanh", width=1 / 32)
