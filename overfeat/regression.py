"""The localization regressor, §4.2 and Fig. 8: a box predicted at every window.

The regression network takes the pooled layer-5 maps, the same maps the classifier sees at
every offset Δ (:func:`overfeat.dense.offset_max_pool`), and applies two hidden layers of 4096
and 1024 channels and an output layer of 4 box-edge values per window, all as convolutions so it
slides over the maps as the classifier does (§3.5): the first with the classifier's k×k kernel
(6 fast, 5 accurate; Fig. 8's "5x5 spatial neighbourhood"), the others 1×1. The output layer is
either shared by all classes (*single-class regression*, SCR, 4 outputs) or one per class
(*per-class regression*, PCR, 4·C outputs; §4.2's "1000 different versions, one for each class").

    x (N, 3, H, W)
      └─ model.features, offset_max_pool ─► pooled maps (d²·N, C5, hp, wp)   (shared with scores)
      └─ BoxRegressor ─► per-offset box maps        (d²·N, 4 or 4C, hc, wc)
      └─ interleave_offsets ─► box map              (N, 4 or 4C, H', W')    = dense_scores' map
      └─ decode_boxes ─► boxes in the scale image   (N, H', W', 4)          per window_boxes

Training (§4.2): layers 1–5 stay fixed; each window is compared with the ground-truth box
"shifted into the frame of reference" of the window (:func:`encode_boxes`), windows that see less
than half of the box are left out (:func:`regression_targets`), and the loss is ℓ2
(:func:`regressor_loss`). The decisions named here: BOX_PARAMETERISATION, REGRESSOR_INIT,
REGRESSOR_OVERLAP_RULE, REGRESSOR_TARGET_BOX, REGRESSOR_LOSS, PCR_CHANNELS.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from overfeat.dense import interleave_offsets, offset_max_pool
from overfeat.geometry import offsets_per_side, receptive_field
from overfeat.models import ArchSpec

__all__ = [
    "BOX_PARAMETERISATION",
    "REGRESSOR_HIDDEN",
    "REGRESSOR_OVERLAP",
    "BoxRegressor",
    "class_boxes",
    "decode_boxes",
    "dense_boxes",
    "dense_scores_and_boxes",
    "encode_boxes",
    "field_overlap",
    "per_class_regressor",
    "regression_targets",
    "regressor_loss",
    "single_class_regressor",
    "window_side",
]

# Fig. 8 / §4.2: the regressor's hidden layers.
REGRESSOR_HIDDEN = (4096, 1024)

# Decision BOX_PARAMETERISATION (§4.2 gives only "4 units which specify the coordinates for the
# bounding box edges"): each output is the offset of one box edge from the same edge of the
# window that predicts it, in units of the window side S (231 fast, 221 accurate):
#   x1 = wx1 + t0·S,  y1 = wy1 + t1·S,  x2 = wx2 + t2·S,  y2 = wy2 + t3·S
# (inclusive window (wx1, wy1, wx2, wy2) = (c·s, r·s, c·s + S − 1, r·s + S − 1)). The frame is
# the window's own, as §4.2's "shifted into the frame of reference of the regressor's translation
# offset" asks; in window sides the targets have the same range at every scale; and t = 0 is the
# window itself, the natural answer of an untrained regressor (REGRESSOR_INIT).
BOX_PARAMETERISATION = "edge offsets from the window's edges, in window sides"

# Decision REGRESSOR_OVERLAP_RULE (§4.2: "we do not train the regressor on bounding boxes with
# less than 50% overlap with the input field of view"): the overlap of a box and a window is
# their intersection over the smaller of the two, |box ∩ window| / min(|box|, |window|); a window
# is trained when it is ≥ 0.5. Not IoU: a small object the window sees whole, or a window lying
# wholly inside a large object, overlap the field of view completely at an IoU far below 0.5.
# The second case is what makes the large scales usable: there an object is larger than the
# window, and a window inside it must learn to point at edges it does not see. (The first rule
# tried here, the fraction of the box inside the window, left those windows out: on the
# synthetic set, SCR trained at scales 1, 2, 4 and 6 gave top-5 localization errors of 56.7 /
# 53.3 / 60.8 / 73.3% at 1–4 scales, this rule 55.8 / 50.8 / 53.3 / 62.5%.) The field of view
# is the window (231 / 221 px), not the 48 px of padding context around it (overfeat/dense.py).
REGRESSOR_OVERLAP = 0.5

# Decision REGRESSOR_INPUT_CHANNELS: the regressor reads the feature network's own layer-5 maps,
# 1024 channels in Tables 1 and 3 (and the released networks), not the 256 of Fig. 8 (FACTS §9.2).

# Decision PCR_CHANNELS: in a per-class regressor, class c's box is output channels 4c..4c+3.


def _he_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


class BoxRegressor(nn.Module):
    """The regression network of Fig. 8 on top of a network's pooled layer-5 maps (§4.2).

    ``spec`` is the feature network's :class:`~overfeat.models.ArchSpec` (``model.spec``: its
    last layer's channels are the input, its classifier kernel the first layer's); ``kind`` is
    ``"scr"`` (4 outputs) or ``"pcr"`` (4·``num_classes`` outputs, PCR_CHANNELS); ``width``
    multiplies the hidden layers (4096, 1024) for toy networks, as :func:`build_model`'s does.
    Modules: ``layers.reg1`` (k×k), ``layers.reg2`` (1×1), ``layers.reg3`` (1×1, the output).

    Decision REGRESSOR_INIT (the paper gives none for the regressor): He-normal hidden layers and
    biases 0, so the freshly stacked layers pass signal on the fixed features whatever their
    scale; the output layer all zeros, so an untrained regressor predicts each window itself
    (BOX_PARAMETERISATION).
    """

    def __init__(self, spec: ArchSpec, kind: str = "scr", num_classes: int = 1000,
                 width: float = 1.0):  # fmt: skip
        super().__init__()
        if kind not in ("scr", "pcr"):
            raise ValueError(
                f"kind must be 'scr' (single-class) or 'pcr' (per-class), got {kind!r}"
            )
        if kind == "pcr" and num_classes < 1:
            raise ValueError(f"a per-class regressor needs num_classes ≥ 1, got {num_classes}")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        self.spec, self.kind, self.num_classes, self.width = spec, kind, num_classes, width
        hidden = tuple(max(1, round(c * width)) for c in REGRESSOR_HIDDEN)
        outputs = 4 if kind == "scr" else 4 * num_classes
        self.layers = nn.Sequential(
            OrderedDict(
                reg1=nn.Conv2d(spec.layers[-1].channels, hidden[0], spec.classifier_kernel),
                relu1=nn.ReLU(inplace=True),
                reg2=nn.Conv2d(hidden[0], hidden[1], 1),
                relu2=nn.ReLU(inplace=True),
                reg3=nn.Conv2d(hidden[1], outputs, 1),
            )
        )
        _he_init(self.layers)
        nn.init.zeros_(self.layers.reg3.weight)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled: (B, C5, hp, wp)`` → raw box values ``(B, 4 or 4C, hp − k + 1, wp − k + 1)``."""
        return self.layers(pooled)


def single_class_regressor(spec: ArchSpec, width: float = 1.0) -> BoxRegressor:
    """SCR (§4.4, Fig. 9–10: the competition entry): one 4-value output shared by all classes."""
    return BoxRegressor(spec, "scr", width=width)


def per_class_regressor(
    spec: ArchSpec, num_classes: int = 1000, width: float = 1.0
) -> BoxRegressor:
    """PCR (§4.2: "1000 different versions, one for each class"): 4 values per class."""
    return BoxRegressor(spec, "pcr", num_classes, width)


# ------------------------------------------------------------------------------ dense boxes


def _pooled(model: nn.Module, x: torch.Tensor, offsets: str) -> torch.Tensor:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be (N, 3, H, W), got {tuple(x.shape)}")
    pooled = offset_max_pool(model.features(x), model.spec.last_pool, offsets)
    k = model.spec.classifier_kernel
    if min(pooled.shape[-2:]) < k:
        raise ValueError(
            f"input {x.shape[-2]}x{x.shape[-1]} gives {pooled.shape[-2]}x{pooled.shape[-1]} pooled "
            f"cells per offset, fewer than the regressor's {k}x{k}; use a larger image"
        )
    return pooled


def dense_boxes(
    model: nn.Module, regressor: BoxRegressor, x: torch.Tensor, offsets: str = "fine"
) -> torch.Tensor:
    """Raw regressor outputs at every window of ``x``, §4.2 on the maps of §3.3.

    ``x: (N, 3, H, W)`` → ``(N, 4 or 4C, H', W')``, output ``(r, c)`` belonging to the window
    ``window_boxes(model, (H, W), offsets)[r, c]``, the same map as
    :func:`overfeat.dense.dense_scores`. ``model`` supplies the (fixed) layers 1–5.
    """
    d = offsets_per_side(model.spec, offsets)
    return interleave_offsets(regressor(_pooled(model, x, offsets)), d)


def dense_scores_and_boxes(
    model: nn.Module, regressor: BoxRegressor, x: torch.Tensor, offsets: str = "fine"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class scores ``(N, C, H', W')`` and regressor outputs ``(N, 4 or 4C, H', W')`` of every
    window from one pass through layers 1–5 (the classifier and regressor share them, §4.1)."""
    d = offsets_per_side(model.spec, offsets)
    pooled = _pooled(model, x, offsets)
    return interleave_offsets(model.classifier(pooled), d), interleave_offsets(regressor(pooled), d)


def class_boxes(outputs: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """The 4 box values per window for each image's class: ``outputs: (N, 4 or 4C, H', W')``,
    ``classes: (N,)`` class indices (PCR_CHANNELS; ignored for SCR's 4 channels) →
    ``(N, 4, H', W')``."""
    if outputs.shape[1] == 4:
        return outputs
    if outputs.shape[1] % 4:
        raise ValueError(f"outputs must have 4 or 4·C channels, got {outputs.shape[1]}")
    if classes is None or tuple(classes.shape) != (outputs.shape[0],):
        raise ValueError(f"a per-class regressor needs classes of shape ({outputs.shape[0]},)")
    n, c4, h, w = outputs.shape
    idx = (classes.long().view(n, 1) * 4 + torch.arange(4, device=outputs.device)).view(n, 4, 1, 1)
    return outputs.gather(1, idx.expand(n, 4, h, w))


# --------------------------------------------------------------- parameterisation and targets


def _windows(windows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if windows.shape[-1:] != (4,):
        raise ValueError(f"windows must be (..., 4), got {tuple(windows.shape)}")
    return windows.to(dtype=like.dtype if like.is_floating_point() else torch.float64)


def encode_boxes(boxes: torch.Tensor, windows: torch.Tensor, side: int) -> torch.Tensor:
    """Boxes ``(..., 4)`` seen from windows ``(..., 4)`` (broadcast) of side ``side`` → the 4
    regressor values ``(..., 4)``: each edge's offset from the window's edge over ``side``
    (BOX_PARAMETERISATION)."""
    boxes = boxes if boxes.is_floating_point() else boxes.double()
    return (boxes - _windows(windows, boxes)) / side


def decode_boxes(outputs: torch.Tensor, windows: torch.Tensor, side: int) -> torch.Tensor:
    """Regressor values → boxes in the frame of the image the network saw (BOX_PARAMETERISATION).

    ``outputs: (N, 4, H', W')`` (SCR, or PCR through :func:`class_boxes`), ``windows: (H', W', 4)``
    from :func:`overfeat.dense.window_boxes`, ``side`` = ``receptive_field(spec)`` → ``(N, H',
    W', 4)`` real-valued inclusive boxes; to the original image with
    :func:`overfeat.boxes.scale_image_to_original`.
    """
    if outputs.dim() != 4 or outputs.shape[1] != 4:
        raise ValueError(f"outputs must be (N, 4, H', W'), got {tuple(outputs.shape)}")
    if tuple(windows.shape[:2]) != tuple(outputs.shape[-2:]):
        raise ValueError(
            f"windows {tuple(windows.shape)} do not match the output map {tuple(outputs.shape)}"
        )
    t = outputs.permute(0, 2, 3, 1)
    return _windows(windows, t) + t * side


def field_overlap(boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """|box ∩ window| / min(|box|, |window|) with inclusive widths: ``boxes (M, 4)``, ``windows
    (..., 4)`` → ``(..., M)`` float64 (REGRESSOR_OVERLAP_RULE's overlap)."""
    b = boxes.double().reshape(*([1] * (windows.dim() - 1)), -1, 4)
    w = windows.double().unsqueeze(-2)
    iw = torch.minimum(b[..., 2], w[..., 2]) - torch.maximum(b[..., 0], w[..., 0]) + 1
    ih = torch.minimum(b[..., 3], w[..., 3]) - torch.maximum(b[..., 1], w[..., 1]) + 1
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    box_area = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    window_area = (w[..., 2] - w[..., 0] + 1) * (w[..., 3] - w[..., 1] + 1)
    return inter / torch.minimum(box_area, window_area)


def regression_targets(
    boxes: torch.Tensor, windows: torch.Tensor, side: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The regressor's training targets at one scale, §4.2.

    ``boxes: (M, 4)`` ground truth in the frame of the image the network sees (the scale image,
    mirrored if it is: :func:`overfeat.boxes.original_to_scale_image`), ``windows: (H', W', 4)``
    (:func:`overfeat.dense.window_boxes`) → ``targets: (H', W', 4)`` float64 (:func:`encode_boxes`
    of each window's box) and ``trained: (H', W')`` bool, the windows that see at least
    REGRESSOR_OVERLAP with a box (:func:`field_overlap`, REGRESSOR_OVERLAP_RULE). ``M = 0``
    trains no window.

    Decision REGRESSOR_TARGET_BOX (the paper speaks of one box per example): with several boxes,
    a window's target is the box of the largest overlap (the first on a tie).
    """
    boxes = torch.as_tensor(boxes)
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (M, 4), got {tuple(boxes.shape)}")
    if windows.dim() != 3 or windows.shape[-1] != 4:
        raise ValueError(f"windows must be (H', W', 4), got {tuple(windows.shape)}")
    if len(boxes) == 0:
        return windows.new_zeros(windows.shape, dtype=torch.float64), windows.new_zeros(
            windows.shape[:2], dtype=torch.bool
        )
    overlap = field_overlap(boxes, windows)  # (H', W', M)
    best, which = overlap.max(dim=-1)  # the first maximum on a tie
    return encode_boxes(boxes.double()[which], windows, side), best >= REGRESSOR_OVERLAP


def regressor_loss(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    trained: torch.Tensor,
    classes: torch.Tensor | None = None,
) -> torch.Tensor:
    """ℓ2 loss between predicted and true boxes over the trained windows, §4.2.

    ``outputs: (N, 4 or 4C, H', W')`` (PCR: the channels of each image's ``classes: (N,)``),
    ``targets: (N, H', W', 4)``, ``trained: (N, H', W')`` bool → a scalar. Decision
    REGRESSOR_LOSS: the squared Euclidean distance between the 4 predicted and the 4 target
    values, averaged over the trained windows of the batch; 0 (with a zero gradient) when none is.
    """
    pred = class_boxes(outputs, classes).permute(0, 2, 3, 1)
    if pred.shape != targets.shape or trained.shape != pred.shape[:-1]:
        raise ValueError(
            f"outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)} and trained "
            f"{tuple(trained.shape)} do not describe the same windows"
        )
    if not trained.any():
        return pred.sum() * 0.0
    err = (pred - targets.to(pred.dtype)).pow(2).sum(dim=-1)
    return err[trained].mean()


def window_side(model: nn.Module | ArchSpec) -> int:
    """The window side S of BOX_PARAMETERISATION: 231 fast, 221 accurate."""
    return receptive_field(model if isinstance(model, ArchSpec) else model.spec)
