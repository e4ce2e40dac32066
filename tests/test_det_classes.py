"""The DET label space: the ILSVRC hierarchy (evaluation/hierarchy.py) and the detector's DET
class layer (overfeat/engine/det_classes.py), against facts read by hand from the 2014 devkit's
meta_clsloc.mat and meta_det.mat (ilsvrc-devkit/README.md)."""

from __future__ import annotations

import math

import pytest
import torch

from evaluation.hierarchy import Hierarchy, det_class_cover, det_class_mapping
from evaluation.labels import ClassLabels, DetLabels
from overfeat.engine.det_classes import det_class_layer
from overfeat.engine.detector import DetClasses, detector_network
from overfeat.models import build_model


@pytest.fixture(scope="module")
def hierarchy(devkit_dir):
    return Hierarchy.from_devkit_meta(devkit_dir / "t14/meta_clsloc.mat")


@pytest.fixture(scope="module")
def mapping(devkit_dir):
    return det_class_mapping(devkit_dir / "t14/meta_clsloc.mat", devkit_dir / "t14/meta_det.mat")


def test_hierarchy_has_1860_synsets_and_1000_leaves(hierarchy):
    assert len(hierarchy.wnids) == 1860 and hierarchy.num_leaves == 1000
    assert hierarchy.wnids[0] == "n02119789" and hierarchy.wnids[1000] == "n00001740"  # entity


def test_chihuahua_lies_under_dog(hierarchy):
    assert "n02085620" in hierarchy.leaves_under("n02084071")


def test_dog_has_118_clsloc_descendants(hierarchy):
    assert len(hierarchy.leaves_under("n02084071")) == 118


def test_person_covers_scuba_diver_groom_and_ballplayer(mapping):
    assert set(mapping["n00007846"]) == {"n10565667", "n10148035", "n09835506"}


def test_all_200_det_classes_map_150_to_themselves(mapping, devkit_dir):
    cls = set(ClassLabels.from_devkit_meta(devkit_dir / "t14/meta_clsloc.mat").wnids)
    assert len(mapping) == 200 and all(mapping.values())
    itself = [d for d, v in mapping.items() if v == (d,)]
    assert len(itself) == 150 and set(itself) == set(mapping) & cls
    # The other 50 are ancestors: none is a CLS-LOC class, every covered class is one.
    assert all(d not in cls and set(v) <= cls for d, v in mapping.items() if d not in itself)
    assert list(mapping)[0] == "n02672831" and list(mapping)[-1] == "n02391049"  # DET_IDs 1, 200


def test_det_class_outside_the_hierarchy_is_named():
    h = Hierarchy(wnids=("a", "b", "top"), children=((), (), (0, 1)), num_leaves=2)
    with pytest.raises(ValueError, match="nowhere"):
        det_class_cover(h, ["top", "nowhere"])


def test_shared_dag_child_counted_once():
    # "c" is reached through both "x" and "y" (meta_clsloc.mat has 75 such two-parent synsets).
    h = Hierarchy(
        wnids=("a", "b", "c", "x", "y", "top"),
        children=((), (), (), (0, 2), (1, 2), (3, 4)),
        num_leaves=3,
    )
    assert h.leaves_under("top") == ("a", "b", "c") and h.leaves_under("x") == ("a", "c")


def test_det_layer_keeps_shared_rows_bit_for_bit_and_background(mapping, devkit_dir):
    cls = ClassLabels.from_devkit_meta(devkit_dir / "t14/meta_clsloc.mat").wnids
    det = DetLabels.from_devkit_meta(devkit_dir / "t14/meta_det.mat").wnids
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(1001, 64, 1, 1, generator=g), torch.randn(1001, generator=g)
    new_w, new_b = det_class_layer(weight, bias, cls, det, mapping)
    assert new_w.shape == (201, 64, 1, 1) and new_b.shape == (201,)
    shared = [(k, cls.index(d)) for k, d in enumerate(det) if d in cls]
    assert len(shared) == 150
    for k, i in shared:
        assert torch.equal(new_w[k], weight[i]) and torch.equal(new_b[k], bias[i])
    assert torch.equal(new_w[200], weight[1000]) and torch.equal(new_b[200], bias[1000])
    dog = det.index("n02084071")
    breeds = [cls.index(w) for w in mapping["n02084071"]]
    torch.testing.assert_close(new_b[dog], bias[breeds].mean() + math.log(118))


def test_ancestor_starts_with_its_descendants_summed_softmax_mass():
    # Hand-made: classes a, b, c + background; DET classes "ab" (over a and b) and c itself.
    cls = ["a", "b", "c"]
    weight = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.5, -1.0], [0.1, 0.2]])
    bias = torch.tensor([0.5, 0.5, 0.25, -0.1])
    new_w, new_b = det_class_layer(weight, bias, cls, ["ab", "c"], {"ab": ("a", "b"), "c": ("c",)})
    torch.testing.assert_close(new_w[0], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(new_b[0], torch.tensor(0.5 + math.log(2.0)))
    assert torch.equal(new_w[1], weight[2]) and torch.equal(new_b[1], bias[2])
    assert torch.equal(new_w[2], weight[3]) and torch.equal(new_b[2], bias[3])
    # A feature on which a and b score alike (1 + 2 + 0.5 = 3 + 0 + 0.5): the ancestor's
    # probability is P(a) + P(b) of the old layer, every other output's is unchanged.
    x = torch.tensor([1.0, 1.0])
    old = torch.softmax(weight @ x + bias, dim=0)
    new = torch.softmax(new_w @ x + new_b, dim=0)
    torch.testing.assert_close(new, torch.stack([old[0] + old[1], old[2], old[3]]))
    # On any other feature it never starts above them (mean + log n ≤ log Σ exp, Jensen).
    for x in torch.randn(20, 2, generator=torch.Generator().manual_seed(1)):
        old = torch.softmax(weight @ x + bias, dim=0)
        new = torch.softmax(new_w @ x + new_b, dim=0)
        assert new[0] <= old[0] + old[1] + 1e-6


def test_det_class_covering_no_network_class_is_named():
    weight, bias = torch.zeros(3, 2), torch.zeros(3)
    with pytest.raises(ValueError, match="zz"):
        det_class_layer(weight, bias, ["a", "b"], ["a", "zz"], {"a": ("a",), "zz": ("q",)})


def test_detector_network_in_the_det_label_space_converts_only_the_class_layer():
    classifier = build_model("fast", num_classes=3, width=1 / 16)
    cstate = {"model": classifier.state_dict(), "model_config": classifier.config}
    det = DetClasses(["a", "b", "c"], ["ab", "c"], {"ab": ("a", "b"), "c": ("c",)})
    plain = detector_network(cstate, dropout=0.0, seed=3).state_dict()
    model = detector_network(cstate, dropout=0.0, seed=3, det_classes=det)
    assert model.num_classes == 3  # 2 DET classes + background
    mine = model.state_dict()
    for name, value in plain.items():
        if not name.startswith("classifier.fc8"):
            assert torch.equal(mine[name], value), name
    w, b = plain["classifier.fc8.weight"], plain["classifier.fc8.bias"]
    assert torch.equal(mine["classifier.fc8.weight"][1], w[2])  # c keeps its row
    assert torch.equal(mine["classifier.fc8.weight"][2], w[3])  # background: the plain one's
    torch.testing.assert_close(mine["classifier.fc8.weight"][0], w[:2].mean(dim=0))
    torch.testing.assert_close(mine["classifier.fc8.bias"][0], b[:2].mean() + math.log(2.0))
