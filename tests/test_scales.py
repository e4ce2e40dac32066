"""The Table 2 protocol votes (§3.3) are a trained network's test-time answer: whatever mode the
caller left the network in, they run it with dropout off and build no autograd graph, and they
hand it back in the mode they found it."""

from __future__ import annotations

import pytest
import torch

from overfeat.models import build_model
from overfeat.scales import (
    ClassificationProtocol,
    ensemble_class_vector,
    multiscale_class_vector,
    scale_sizes,
    ten_view_class_vector,
)

SMALL = 1 / 16  # toy width: the paper's geometry, few channels


def _training_network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("fast", num_classes=10, width=SMALL).train()
    assert model.classifier.drop6.p == 0.5
    return model


def _image(h: int = 256, w: int = 256) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))


def test_dropout_makes_a_training_mode_network_random_on_its_own():
    """The premise: called directly in training mode, two forward passes differ."""
    model, x = _training_network(), _image(231, 231)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def _eval_mode_reference(model, vote):
    """The same vote computed with the network put in eval mode by hand, beforehand."""
    model.eval()
    with torch.no_grad():
        expected = vote(model)
    model.train()
    return expected


@pytest.mark.parametrize(
    "vote",
    [
        lambda m: multiscale_class_vector(m, _image(), scale_sizes(m.spec)[:1]),
        lambda m: ten_view_class_vector(m, _image()),
        lambda m: ClassificationProtocol("fast", (1,), "coarse").class_vector(m, _image()),
        lambda m: ClassificationProtocol("fast", views="ten_view").class_vector(m, _image()),
        lambda m: ensemble_class_vector([m, m], _image(), ClassificationProtocol("fast")),
    ],
    ids=["multiscale", "ten_view", "protocol_dense", "protocol_ten_view", "ensemble"],
)
def test_votes_of_a_training_mode_network_are_its_eval_mode_votes_and_leave_it_training(vote):
    model = _training_network()
    expected = _eval_mode_reference(model, vote)
    first, second = vote(model), vote(model)
    assert torch.equal(first, second)
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    assert model.training and all(m.training for m in model.modules())
    assert not first.requires_grad and first.grad_fn is None


def test_each_submodule_gets_back_its_own_mode():
    """A network with one part frozen in eval mode (and the rest training) keeps that mix."""
    model = _training_network()
    model.features.eval()
    before = {name: m.training for name, m in model.named_modules()}
    multiscale_class_vector(model, _image(), scale_sizes(model.spec)[:1], offsets="coarse")
    assert {name: m.training for name, m in model.named_modules()} == before


def test_no_graph_even_for_an_input_that_requires_grad():
    model = _training_network()
    x = _image().requires_grad_()
    v = multiscale_class_vector(model, x, scale_sizes(model.spec)[:1], offsets="coarse")
    assert not v.requires_grad and v.grad_fn is None
    assert all(p.grad is None for p in model.parameters())


def test_mode_is_restored_when_the_vote_fails():
    model = _training_network()
    with pytest.raises(ValueError, match="at least"):
        multiscale_class_vector(model, _image(), [(100, 100)])
    assert model.training and all(m.training for m in model.modules())
