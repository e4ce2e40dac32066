"""The test-time classification protocol: scales, flips, views and votes (§3.3, Tables 2 and 5).

- **Scales** (Table 5): six input sizes, given for the accurate model; every one of them is a
  size at which every offset's pooled map tiles the layer-5 map exactly (:func:`tiling_size`).
  The fast model gets, per side, the tiling size nearest to the accurate one (decision
  FAST_SCALE_RULE).
- **Votes** (§3.3 steps i–iii): per scale and flip, the spatial max of each class over the dense
  output map; the mean of those vectors over scales and flips; top-k of the mean.
- **10 views** (Table 2 row 6, the baseline of [15]): 4 corners + centre crops of the image
  whose shorter side is 256, and their horizontal flips, averaged.
- **Ensembles** (Table 2 rows 8–9): the mean of the members' final class vectors.

:class:`ClassificationProtocol` describes one Table 2 row; :data:`TABLE2_PROTOCOLS` holds them,
keyed by the ``row_id`` prefix of ``paper/reported.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from overfeat.data.transforms import shorter_side_size
from overfeat.dense import dense_scores
from overfeat.geometry import layer5_stride, receptive_field
from overfeat.models import ARCHS, ArchSpec

__all__ = [
    "FOUR_SCALES",
    "RESIZE_FILTER",
    "RESIZE_MODES",
    "SCALE_RESIZE_MODE",
    "SOFTMAX_BEFORE_SPATIAL_MAX",
    "TABLE2_PROTOCOLS",
    "TABLE5_SIZES",
    "TEN_VIEW_SHORTER_SIDE",
    "ClassificationProtocol",
    "ensemble_class_vector",
    "multiscale_class_vector",
    "nearest_tiling_size",
    "resize",
    "resize_shorter_side",
    "scale_input_size",
    "scale_sizes",
    "spatial_max",
    "ten_view_class_vector",
    "tiling_size",
]

Size = tuple[int, int]

# Table 5's input sizes, (rows, cols): 281x317 gives the 20x23 layer-5 map of Fig. 3's caption
# only as H = 281, W = 317 (FACTS §3). These are the paper's chosen scales, an input to the
# protocol; every size derived from them comes from the layer arithmetic (overfeat.geometry).
TABLE5_SIZES: tuple[Size, ...] = (
    (245, 245),
    (281, 317),
    (317, 389),
    (389, 461),
    (425, 497),
    (461, 569),
)

# Decision SOFTMAX_BEFORE_SPATIAL_MAX (paper silent, FACTS §6.2/§10): class scores become
# probabilities (softmax over classes at each location) before the spatial max and the mean
# over scales/flips. §4.3 speaks of per-window "classification confidence" values (0.11, 0.5),
# i.e. probabilities per location, and the release's driver applies softmax to the network
# output. Raw scores stay available (``softmax=False``).
SOFTMAX_BEFORE_SPATIAL_MAX = True

# Decision SCALE_RESIZE_MODE (paper silent on how an image becomes a Table 5 rectangle):
# "fixed" resizes to exactly the scale's rows × cols, the rectangle turned to the image's
# orientation (a portrait image gets cols × rows), so every image yields Table 5's output counts
# (1575 per flip, FACTS §3) at the cost of a mild aspect change; "aspect" keeps the aspect ratio:
# shorter side = the scale's shorter side, longer side snapped to the nearest tiling size.
RESIZE_MODES = ("fixed", "aspect")
SCALE_RESIZE_MODE = "fixed"

# Decision RESIZE_FILTER (the paper names no filter): bilinear with antialiasing, so shrinking a
# large photo to scale 1 averages its pixels instead of skipping them.
RESIZE_FILTER = "bilinear"

# Table 2 row 6 / §3.1: the 10-view crops come from the image whose smallest dimension is 256.
TEN_VIEW_SHORTER_SIDE = 256


def tiling_size(spec: ArchSpec, n: int) -> int:
    """Side at which every fine offset yields exactly ``n`` classifier outputs, nothing dropped.

    ``window + s5·(k·n − 1)`` with ``s5`` the layer-5 stride (16/12) and ``k`` the last pool:
    ``k·n`` windows ``s5`` apart span exactly the input. Accurate: 245, 281, 317, … (every Table 5
    size is one, ``n`` = 1, 2, 3, 5, 6, 7, 8, 10); fast: 247, 279, 311, … (§4.2: "dimensions are
    adjusted to fit exactly the stride of our network").
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    return receptive_field(spec) + layer5_stride(spec) * (spec.last_pool * n - 1)


def nearest_tiling_size(spec: ArchSpec, pixels: int) -> int:
    """The :func:`tiling_size` nearest to ``pixels`` (ties to the smaller size)."""
    step = layer5_stride(spec) * spec.last_pool
    n = max(1, (pixels - tiling_size(spec, 1)) // step + 1)
    below, above = tiling_size(spec, n), tiling_size(spec, n + 1)
    if n == 1 and pixels < below:
        return below
    return below if pixels - below <= above - pixels else above


def scale_sizes(spec: ArchSpec) -> tuple[Size, ...]:
    """The six test scales (rows, cols) of ``spec``, scale 1 first.

    Decision FAST_SCALE_RULE (FACTS §9.6: Table 5 does not fit the fast model, whose conv1
    leaves 2 pixels at every Table 5 size): each side is the network's tiling size nearest to
    Table 5's; for the accurate model that is Table 5 itself. Fast: 247x247, 279x311, 311x375,
    375x471, 439x503, 471x567.
    """
    return tuple(
        (nearest_tiling_size(spec, h), nearest_tiling_size(spec, w)) for h, w in TABLE5_SIZES
    )


def scale_input_size(
    image_size: Size, scale: Size, spec: ArchSpec, mode: str = SCALE_RESIZE_MODE
) -> Size:
    """Rows × cols an image of ``image_size`` is resized to for ``scale`` (SCALE_RESIZE_MODE)."""
    h, w = image_size
    short, long = sorted(scale)
    if mode == "fixed":
        return (short, long) if h <= w else (long, short)
    if mode == "aspect":
        other = nearest_tiling_size(spec, round(short * max(h, w) / min(h, w)))
        return (short, other) if h <= w else (other, short)
    raise ValueError(f"mode must be one of {RESIZE_MODES}, got {mode!r}")


def resize(images: torch.Tensor, size: Size) -> torch.Tensor:
    """``images: (N, 3, H, W)`` float → ``(N, 3, *size)`` with RESIZE_FILTER, antialiased."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode=RESIZE_FILTER, align_corners=False, antialias=True)


def resize_shorter_side(images: torch.Tensor, side: int = TEN_VIEW_SHORTER_SIDE) -> torch.Tensor:
    """Resize so the shorter side is ``side``, keeping the aspect ratio (§3.1). (N,3,H,W).

    The long side follows ``overfeat.data.transforms.shorter_side_size``, the rule of its PIL
    counterpart at load time, so an image already resized there passes through unchanged.
    """
    return resize(images, shorter_side_size(*images.shape[-2:], side))


def spatial_max(scores: torch.Tensor, softmax: bool = SOFTMAX_BEFORE_SPATIAL_MAX) -> torch.Tensor:
    """§3.3 step (i): ``scores: (N, C, H', W')`` → the spatial max of each class ``(N, C)``.

    With ``softmax`` the scores at each location are first turned into probabilities over C.
    """
    if softmax:
        scores = scores.softmax(dim=1)
    return scores.amax(dim=(-2, -1))


Images = torch.Tensor | Sequence[torch.Tensor]


def _as_list(images: Images) -> list[torch.Tensor]:
    """A batch ``(N, 3, H, W)`` or a list of ``(3, H, W)`` images of any sizes → list of
    ``(1, 3, H, W)``."""
    if isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        return list(images.split(1))
    return [img if img.dim() == 4 else img.unsqueeze(0) for img in images]


def _resized_groups(
    images: Images, scale: Size, spec: ArchSpec, mode: str
) -> list[tuple[list[int], torch.Tensor]]:
    """The images resized for ``scale``, grouped by the size they get (one dense call each):
    ``[(indices into images, (n, 3, h, w))]``. A batch tensor stays one group."""
    if isinstance(images, torch.Tensor):
        target = scale_input_size(tuple(images.shape[-2:]), scale, spec, mode)
        return [(list(range(images.shape[0])), resize(images, target))]
    groups: dict[Size, list[int]] = {}
    items = _as_list(images)
    for i, img in enumerate(items):
        groups.setdefault(scale_input_size(tuple(img.shape[-2:]), scale, spec, mode), []).append(i)
    return [
        (idx, torch.cat([resize(items[i], target) for i in idx])) for target, idx in groups.items()
    ]


class _evaluating:
    """``with _evaluating(model):`` the network in eval mode (dropout off) and no autograd graph;
    every submodule's previous mode is restored on exit. The Table 2 votes are a trained network's
    test-time answer (§3.3), whatever mode the caller left it in."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.no_grad = torch.no_grad()

    def __enter__(self) -> None:
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        self.no_grad.__enter__()

    def __exit__(self, *exc) -> None:
        self.no_grad.__exit__(*exc)
        for m, training in self.modes:
            m.training = training


def multiscale_class_vector(
    model: nn.Module,
    images: Images,
    sizes: Sequence[Size],
    flips: bool = True,
    offsets: str = "fine",
    softmax: bool = SOFTMAX_BEFORE_SPATIAL_MAX,
    resize_mode: str = SCALE_RESIZE_MODE,
) -> torch.Tensor:
    """§3.3 steps (i)–(ii): mean over scales (and flips) of each class's spatial maximum.

    ``images``: a batch ``(N, 3, H, W)`` or a list of N ``(3, H, W)`` images of any sizes (each
    resized to each scale by :func:`scale_input_size`; images that get the same size share one
    dense pass); ``sizes``: the scales' (rows, cols) → ``(N, C)``. Step (iii), the top-1/top-5,
    is the caller's ``topk`` on the result.

    The network runs in eval mode (dropout off) without gradients, its previous mode restored
    after; the result does not require grad.
    """
    total: torch.Tensor | None = None
    with _evaluating(model):
        for size in sizes:
            for idx, x in _resized_groups(images, size, model.spec, resize_mode):
                if flips:  # image and mirror image in one batch: (2n, 3, h, w)
                    x = torch.cat([x, x.flip(-1)])
                v = spatial_max(dense_scores(model, x, offsets), softmax)
                v = v.reshape(2, len(idx), -1).sum(dim=0) if flips else v
                if total is None:
                    total = v.new_zeros(len(_as_list(images)), v.shape[-1])
                total[idx] += v
    return total / (len(sizes) * (2 if flips else 1))


def ten_view_class_vector(
    model: nn.Module, images: Images, softmax: bool = SOFTMAX_BEFORE_SPATIAL_MAX
) -> torch.Tensor:
    """Table 2 row 6: mean over 4 corner + centre crops and their horizontal flips.

    ``images``: ``(N, 3, H, W)`` or a list of ``(3, H, W)``, shorter side 256
    (:func:`resize_shorter_side`) → ``(N, C)``. Crops have the training crop's side (221
    accurate, 231 fast); the centre crop starts at ``((H − s) // 2, (W − s) // 2)``. All 10·N
    crops go through ``model`` in one batch, in eval mode (dropout off) and without gradients,
    the network's previous mode restored after.
    """
    s = model.spec.input_size
    views = []
    for img in _as_list(images):
        h, w = img.shape[-2:]
        if min(h, w) < s:
            raise ValueError(f"10-view needs images of at least {s}x{s}, got {h}x{w}")
        origins = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
        views.extend(img[:, :, y : y + s, x : x + s] for y, x in origins)
    crops = torch.cat(views)  # (5·N, 3, s, s), image-major
    with _evaluating(model):
        scores = model(torch.cat([crops, crops.flip(-1)]))
    if scores.shape[-2:] != (1, 1):
        raise ValueError(f"a {s}x{s} crop must give a 1x1 output, got {tuple(scores.shape)}")
    v = spatial_max(scores, softmax)  # (10·N, C): [crops, flipped crops]
    return v.reshape(2, -1, 5, v.shape[-1]).mean(dim=(0, 2))


@dataclass(frozen=True)
class ClassificationProtocol:
    """One row of Table 2: which network, which scales/offsets/flips or views, how many models.

    ``scales`` are 1-based indices into :func:`scale_sizes`; ``views`` is ``"dense"`` (the
    multi-scale dense protocol of §3.3) or ``"ten_view"`` (row 6, ``scales`` unused).
    """

    arch: str
    scales: tuple[int, ...] = (1,)
    offsets: str = "fine"
    flips: bool = True
    views: str = "dense"
    models: int = 1
    softmax: bool = SOFTMAX_BEFORE_SPATIAL_MAX

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {self.arch!r}")
        if self.views not in ("dense", "ten_view"):
            raise ValueError(f"views must be 'dense' or 'ten_view', got {self.views!r}")
        if self.offsets not in ("fine", "coarse"):
            raise ValueError(f"offsets must be 'fine' or 'coarse', got {self.offsets!r}")
        if not self.scales or any(not 1 <= s <= len(TABLE5_SIZES) for s in self.scales):
            raise ValueError(f"scales must be indices 1..{len(TABLE5_SIZES)}, got {self.scales}")

    @property
    def sizes(self) -> tuple[Size, ...]:
        all_sizes = scale_sizes(ARCHS[self.arch])
        return tuple(all_sizes[s - 1] for s in self.scales)

    def class_vector(self, model: nn.Module, images: Images) -> torch.Tensor:
        """One network's final class vector ``(N, C)`` for a batch ``(N, 3, H, W)`` or a list
        of N ``(3, H, W)`` images; the network votes in eval mode without gradients (its mode is
        restored after)."""
        with _evaluating(model):
            if self.views == "ten_view":
                shorter = [resize_shorter_side(img) for img in _as_list(images)]
                return ten_view_class_vector(model, shorter, self.softmax)
            return multiscale_class_vector(
                model, images, self.sizes, self.flips, self.offsets, self.softmax
            )


def ensemble_class_vector(
    models: Sequence[nn.Module], images: Images, protocol: ClassificationProtocol
) -> torch.Tensor:
    """Table 2 rows 8–9: the ensemble's class vector ``(N, C)``.

    Decision ENSEMBLE_MEAN_OF_CLASS_VECTORS (paper silent beyond "voting", FACTS §6.2/§10):
    each member's final class vector (after its own votes over scales and flips, in the
    protocol's score space, probabilities by default) is averaged with equal weight. Every
    member votes through :meth:`ClassificationProtocol.class_vector`: in eval mode, without
    gradients, its own mode restored after.
    """
    if not models:
        raise ValueError("an ensemble needs at least one model")
    return torch.stack([protocol.class_vector(m, images) for m in models]).mean(dim=0)


# Table 2's OverFeat rows, keyed by the row_id prefix of paper/reported.csv. Decision
# ACCURATE_FOUR_SCALES (FACTS §4/§10: which 4 scales the accurate and ensemble rows use is not
# stated): the fast row's (1, 2, 4, 6).
FOUR_SCALES = (1, 2, 4, 6)
TABLE2_PROTOCOLS: dict[str, ClassificationProtocol] = {
    "T2-2": ClassificationProtocol("fast", (1,), "coarse"),
    "T2-3": ClassificationProtocol("fast", (1,), "fine"),
    "T2-4": ClassificationProtocol("fast", FOUR_SCALES, "fine"),
    "T2-5": ClassificationProtocol("fast", (1, 2, 3, 4, 5, 6), "fine"),
    "T2-6": ClassificationProtocol("accurate", views="ten_view"),
    "T2-7": ClassificationProtocol("accurate", FOUR_SCALES, "fine"),
    "T2-8": ClassificationProtocol("fast", FOUR_SCALES, "fine", models=7),
    "T2-9": ClassificationProtocol("accurate", FOUR_SCALES, "fine", models=7),
}
