"""The two OverFeat networks, *fast* (Table 1) and *accurate* (Table 3), as data and as modules.

Sermanet et al. 2014, §3.1 and Tables 1 and 3; the released networks (``net_weight_0`` and
``net_weight_1``) have exactly these layers (shared/reference/overfeat-release.md §1.1).

Each network has three parts, named as the paper splits it (§3.3, Fig. 3):

- ``features``: layers 1–5 (1–6 for accurate), conv + ReLU (+ max-pool), **without** the last
  max-pool, so ``model.features(x)`` is the *unpooled* layer-5 map ``(N, C5, h, w)`` that dense
  inference max-pools at every offset Δ (§3.3 step a–b);
- ``pool``: the last, non-overlapping max-pool (2×2 fast, 3×3 accurate);
- ``classifier``: the "fully-connected" layers applied as convolutions (§3.5): a k×k convolution
  (k = 6 fast, 5 accurate), then 1×1, then 1×1, with dropout 0.5 after the first two (§3.1).

``model(x)`` returns raw class scores ``(N, num_classes, H', W')`` at coarse stride; a training-size
input (231 fast, 221 accurate) gives ``H' = W' = 1``.

Parameter counts at full width and 1000 classes: fast 145,920,872; accurate 144,656,488
(Table 4 rounds them to 145M and 144M).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

__all__ = [
    "ARCHS",
    "ACCURATE",
    "FAST",
    "ArchSpec",
    "ConvSpec",
    "OverFeat",
    "build_model",
]


@dataclass(frozen=True)
class ConvSpec:
    """One feature-extraction layer: convolution, ReLU, then an optional non-overlapping max-pool.

    ``pool`` is the pooling size and stride (the paper's pools all have size = stride, §3.1 (ii));
    0 means no pool. ``padding`` is the zero-padding on every side.
    """

    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: int = 0


@dataclass(frozen=True)
class ArchSpec:
    """A network as the paper's table gives it.

    ``layers`` are the feature layers in order; the pool of the **last** one is the network's
    last max-pool, which the module keeps apart (``OverFeat.pool``) so it can be applied at
    every offset. ``classifier`` are the output channels of the classifier layers except the
    last (whose width is the class count); the first classifier layer's kernel is
    ``classifier_kernel``, the others are 1×1. ``input_size`` is the training crop (§3.1, FACTS §9.4).
    ``first_classifier_layer`` is the paper's number of the first classifier layer (6 fast, 7
    accurate), used only to name modules as the tables do.
    """

    name: str
    layers: tuple[ConvSpec, ...]
    classifier: tuple[int, ...]
    classifier_kernel: int
    input_size: int
    first_classifier_layer: int

    @property
    def last_pool(self) -> int:
        return self.layers[-1].pool

    def scaled(self, width: float) -> ArchSpec:
        """The same geometry with every hidden channel count multiplied by ``width`` (≥ 1 each)."""
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if width == 1.0:
            return self

        def w(c: int) -> int:
            return max(1, round(c * width))

        return replace(
            self,
            layers=tuple(replace(layer, channels=w(layer.channels)) for layer in self.layers),
            classifier=tuple(w(c) for c in self.classifier),
        )


# Table 1 (fast): 231×231 input, conv 11×11/4 + pool 2, conv 5×5 + pool 2, three padded 3×3 convs,
# pool 2, classifier 6×6 → 3072 → 4096 → C.
FAST = ArchSpec(
    name="fast",
    layers=(
        ConvSpec(96, 11, stride=4, pool=2),
        ConvSpec(256, 5, pool=2),
        ConvSpec(512, 3, padding=1),
        ConvSpec(1024, 3, padding=1),
        ConvSpec(1024, 3, padding=1, pool=2),
    ),
    classifier=(3072, 4096),
    classifier_kernel=6,
    input_size=231,
    first_classifier_layer=6,
)

# Table 3 (accurate): 221×221 input, conv 7×7/2 + pool 3, conv 7×7 + pool 2, four padded 3×3 convs,
# pool 3, classifier 5×5 → 4096 → 4096 → C.
ACCURATE = ArchSpec(
    name="accurate",
    layers=(
        ConvSpec(96, 7, stride=2, pool=3),
        ConvSpec(256, 7, pool=2),
        ConvSpec(512, 3, padding=1),
        ConvSpec(512, 3, padding=1),
        ConvSpec(1024, 3, padding=1),
        ConvSpec(1024, 3, padding=1, pool=3),
    ),
    classifier=(4096, 4096),
    classifier_kernel=5,
    input_size=221,
    first_classifier_layer=7,
)

ARCHS: dict[str, ArchSpec] = {"fast": FAST, "accurate": ACCURATE}

# §3.1: "(µ, σ) = (0, 1 × 10−2)" for the weights. The paper does not say how biases start:
# decision BIAS_INIT_ZERO, they start at 0.
INIT_STD = 1e-2
DROPOUT = 0.5

# The release's non-linearity is ``x if x > 1e-6 else 0`` (overfeat-release.md §1.1); it differs
# from ReLU only on (0, 1e-6]. Used where exact parity with the released binaries matters.
RELEASE_THRESHOLD = 1e-6


def _activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "release":
        return nn.Threshold(RELEASE_THRESHOLD, 0.0, inplace=True)
    raise ValueError(f"activation must be 'relu' or 'release', got {kind!r}")


class OverFeat(nn.Module):
    """An OverFeat network built from an :class:`ArchSpec` (§3.1, Tables 1 and 3).

    Modules are named as the paper's tables number the layers: ``features.conv1`` …
    ``features.conv5`` (``conv6`` accurate), ``pool`` (the last max-pool), ``classifier.fc6`` …
    ``classifier.fc8`` (``fc7`` … ``fc9`` accurate).
    """

    def __init__(
        self,
        spec: ArchSpec,
        num_classes: int = 1000,
        activation: str = "relu",
        dropout: float = DROPOUT,
    ):
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.activation = activation
        self.width = 1.0  # set by build_model; recorded in ``config``
        feats: OrderedDict[str, nn.Module] = OrderedDict()
        in_ch = 3
        last = len(spec.layers)
        for i, layer in enumerate(spec.layers, start=1):
            feats[f"conv{i}"] = nn.Conv2d(
                in_ch, layer.channels, layer.kernel, stride=layer.stride, padding=layer.padding
            )
            feats[f"relu{i}"] = _activation(activation)
            if layer.pool and i != last:
                feats[f"pool{i}"] = nn.MaxPool2d(layer.pool, layer.pool)
            in_ch = layer.channels
        self.features = nn.Sequential(feats)
        self.pool = nn.MaxPool2d(spec.last_pool, spec.last_pool)

        cls: OrderedDict[str, nn.Module] = OrderedDict()
        n = spec.first_classifier_layer
        widths = (*spec.classifier, num_classes)
        for j, out_ch in enumerate(widths):
            kernel = spec.classifier_kernel if j == 0 else 1
            cls[f"fc{n + j}"] = nn.Conv2d(in_ch, out_ch, kernel)
            if j < len(widths) - 1:
                cls[f"relu{n + j}"] = _activation(activation)
                # §3.1: "DropOut with a rate of 0.5 in the fully connected layers (6th and 7th)".
                # Decision DROPOUT_AFTER_FIRST_TWO_CLASSIFIER_LAYERS: "6th and 7th" numbers the
                # fast network's layers; the accurate network's classifier is layers 7–9 (its
                # layer 6 is a convolution), so its dropout follows fc7 and fc8, the same two
                # places: after each classifier layer but the last.
                cls[f"drop{n + j}"] = nn.Dropout(dropout)
            in_ch = out_ch
        self.classifier = nn.Sequential(cls)
        self.reset_parameters()

    def reset_parameters(self, std: float = INIT_STD) -> None:
        """§3.1 initialisation: weights ~ N(0, std²), biases 0 (decision BIAS_INIT_ZERO)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, 3, H, W)`` → raw class scores ``(N, num_classes, H', W')`` at coarse stride."""
        return self.classifier(self.pool(self.features(x)))

    @property
    def config(self) -> dict:
        """Plain values that rebuild this network with ``build_model(**config)`` (checkpoints)."""
        return {
            "arch": self.spec.name,
            "num_classes": self.num_classes,
            "width": self.width,
            "activation": self.activation,
        }


def build_model(
    arch: str,
    num_classes: int = 1000,
    width: float = 1.0,
    activation: str = "relu",
) -> OverFeat:
    """Build the ``"fast"`` (Table 1) or ``"accurate"`` (Table 3) network.

    ``width`` multiplies every hidden channel count (geometry unchanged), for toy networks that
    train on a CPU; ``activation="release"`` uses the released binaries' threshold instead of ReLU.
    """
    try:
        spec = ARCHS[arch]
    except KeyError:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}") from None
    model = OverFeat(spec.scaled(width), num_classes=num_classes, activation=activation)
    model.width = width
    return model
