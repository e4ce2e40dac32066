"""Read the originally released OverFeat weights (``net_weight_0`` fast, ``net_weight_1`` accurate).

Sermanet et al. 2014, §3.2 (FACTS.md §7): "we release a feature extractor named 'OverFeat' ... a
fast and accurate one". The file format is in shared/reference/overfeat-release.md §1.2: one raw
block of little-endian float32, no header, the conv/FC tensors back to back in forward order
``W1, b1, W2, b2, …``, each ``W`` C-contiguous ``[out][in][kh][kw]`` (PyTorch's ``Conv2d.weight``
layout; the release cross-correlates as PyTorch does, so nothing is flipped or transposed).

The layout (every tensor's name, shape and float offset) is derived from the project's own
networks (:func:`overfeat.build_model` on the ``meta`` device), never typed in, and checked against
the release's documented totals (:data:`RELEASE_DOCUMENTED`). The file is memory-mapped, so the
~560 MB are copied once, straight into the parameters.

The weights are under NYU's licence (internal research and evaluation only, no redistribution):
they are read from a path the user supplies and never downloaded, cached or copied by the project.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from overfeat.models import ARCHS, OverFeat, build_model
from overfeat.normalization import RELEASE_MEAN, RELEASE_STD

__all__ = [
    "RELEASE_DOCUMENTED",
    "RELEASE_FILE_NAMES",
    "RELEASE_MEAN",
    "RELEASE_STD",
    "ReleaseLayout",
    "ReleaseNet",
    "ReleaseNormalize",
    "ReleaseTensor",
    "ReleaseWeightsWarning",
    "load_release",
    "release_layout",
    "release_layouts",
    "resolve_weights_file",
]

# overfeat-release.md §1.5–§1.6: the release reads ``net_weight_<net_idx>``, net 0 = small/fast
# (its default), net 1 = large/accurate (``-l``).
RELEASE_FILE_NAMES: dict[str, str] = {"fast": "net_weight_0", "accurate": "net_weight_1"}

# overfeat-release.md §1.2 (offsets of net_init.hpp, checked against the liboverfeat.a disassembly):
# (float offset of the last bias, total floats). The layout derived from our networks must agree.
RELEASE_DOCUMENTED: dict[str, tuple[int, int]] = {
    "fast": (145_919_872, 145_920_872),
    "accurate": (144_655_488, 144_656_488),
}


_FLOAT_BYTES = 4
_GZIP_MAGIC = b"\x1f\x8b"


class ReleaseWeightsWarning(UserWarning):
    """A release weight file that loads but looks unusual (trailing bytes, an unexpected name)."""


# --------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class ReleaseTensor:
    """One tensor of the weight file: ``name`` as the release documents it (``conv1.W``,
    ``fc8.b``), the project parameter it fills, its shape and its offset in floats."""

    name: str
    parameter: str
    shape: tuple[int, ...]
    offset: int

    @property
    def count(self) -> int:
        return int(np.prod(self.shape))


@dataclass(frozen=True)
class ReleaseLayout:
    """Where every parameter of one network sits in a release-format file.

    ``arch``/``width``/``num_classes`` rebuild the network with :func:`overfeat.build_model`; the
    released files are ``width=1.0, num_classes=1000``. A width-scaled layout is the same format
    at toy size (tests and demos).
    """

    arch: str
    width: float
    num_classes: int
    tensors: tuple[ReleaseTensor, ...]

    @property
    def total_floats(self) -> int:
        last = self.tensors[-1]
        return last.offset + last.count

    @property
    def nbytes(self) -> int:
        return self.total_floats * _FLOAT_BYTES

    @property
    def file_name(self) -> str:
        return RELEASE_FILE_NAMES[self.arch]

    @property
    def is_release(self) -> bool:
        """True for the layout of the released file itself (full width, 1000 classes)."""
        return self.width == 1.0 and self.num_classes == 1000

    def build(self, activation: str = "release", device: str | torch.device = "meta") -> OverFeat:
        """The network this layout describes, uninitialised on ``device`` (``meta``: no memory)."""
        with torch.device(device):
            return build_model(self.arch, self.num_classes, self.width, activation=activation)


def release_layout(arch: str, width: float = 1.0, num_classes: int = 1000) -> ReleaseLayout:
    """Derive the file layout from the network's own parameters (overfeat-release.md §1.2).

    Every convolution (features, then the classifier's "FC" convolutions) contributes ``W`` then
    ``b``, in forward order, packed back to back: each offset is the previous offset plus the
    previous count. For the released networks the totals are checked against the documentation.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    layout = ReleaseLayout(arch, width, num_classes, ())
    model = layout.build()
    tensors: list[ReleaseTensor] = []
    offset = 0
    for module_name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        short = module_name.rsplit(".", 1)[-1]
        for suffix, attr in (("W", "weight"), ("b", "bias")):
            shape = tuple(getattr(module, attr).shape)
            tensors.append(
                ReleaseTensor(f"{short}.{suffix}", f"{module_name}.{attr}", shape, offset)
            )
            offset += tensors[-1].count
    if offset != sum(p.numel() for p in model.parameters()):
        raise RuntimeError(
            f"{arch}: the network has parameters outside its convolutions; the release layout "
            "holds convolution weights and biases only (overfeat-release.md §1.2)"
        )
    layout = ReleaseLayout(arch, width, num_classes, tuple(tensors))
    if layout.is_release:
        documented = RELEASE_DOCUMENTED[arch]
        derived = (layout.tensors[-1].offset, layout.total_floats)
        if derived != documented:
            raise RuntimeError(
                f"{arch}: derived (last bias offset, total floats) {derived} differ from the "
                f"release's documented {documented} (overfeat-release.md §1.2); "
                "overfeat/models.py no longer matches the released network"
            )
    return layout


@cache
def release_layouts() -> dict[str, ReleaseLayout]:
    """The layouts of the two released files, ``{"fast": …, "accurate": …}``."""
    return {arch: release_layout(arch) for arch in RELEASE_FILE_NAMES}


# -------------------------------------------------------------------------------- normalisation
class ReleaseNormalize(nn.Module):
    """Layer 0 of the released networks: ``(x − 118.380948) / 61.896913`` (overfeat-release.md §1.1).

    ``x: (N, 3, H, W)`` RGB → a new tensor of the same shape (the input is never modified).
    ``input_scale`` is the value of a white pixel in the caller's input: 255 (the release's own
    0–255 pixels, bit-exact constants) or 1 for 0–1 tensors (constants divided by 255, §1.3).
    """

    def __init__(self, input_scale: float = 255.0):
        super().__init__()
        self.input_scale = float(input_scale)
        factor = self.input_scale / 255.0
        self.mean = RELEASE_MEAN * factor
        self.std = RELEASE_STD * factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean:g}, std={self.std:g}, input_scale={self.input_scale:g}"


# -------------------------------------------------------------------------------------- loading
@dataclass(frozen=True, eq=False)
class ReleaseNet:
    """A released network loaded into the project's :class:`~overfeat.models.OverFeat`.

    ``model`` (eval mode) expects normalised input: apply ``normalize`` first, or call
    :meth:`class_scores`. ``class_order`` is ``"release"`` (output ``i`` = ILSVRC2012_ID ``i + 1``)
    or ``"sorted"`` (sorted-WNID index, after :func:`overfeat.release.permute_classifier_to_sorted`).
    """

    model: OverFeat
    normalize: ReleaseNormalize
    layout: ReleaseLayout
    path: Path
    class_order: str = "release"

    @property
    def arch(self) -> str:
        return self.layout.arch

    @torch.no_grad()
    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        """``images: (N, 3, H, W)`` RGB 0–255 → raw scores ``(N, C, H', W')``, a fresh tensor
        on every call (the release's Python API returned views of one buffer, issue #39)."""
        return self.model(self.normalize(images)).clone()


def resolve_weights_file(path: str | Path, arch: str | None = None) -> Path:
    """``path`` is a weight file, or a directory holding ``net_weight_0``/``net_weight_1``.

    In a directory, ``arch`` picks the file; without it the release's default, the fast net
    (``net_weight_0``), is taken when present, else the accurate one.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        archs = [arch] if arch is not None else list(RELEASE_FILE_NAMES)
        for a in archs:
            if a not in RELEASE_FILE_NAMES:
                raise ValueError(f"arch must be one of {sorted(RELEASE_FILE_NAMES)}, got {a!r}")
            candidate = path / RELEASE_FILE_NAMES[a]
            if candidate.is_file():
                return candidate
        wanted = " or ".join(RELEASE_FILE_NAMES[a] for a in archs)
        raise FileNotFoundError(
            f"{path}: no {wanted} in this directory; point at the folder where the release's "
            "overfeat-weights.tgz was unpacked (its data/default/), or at the file itself"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such weight file; pass the released net_weight_0/net_weight_1 or their "
            "directory (obtain them from the official OverFeat page, see the README)"
        )
    return path


def _probable_content(path: Path, size: int, expected: ReleaseLayout) -> str:
    """A short guess at what a file too small for ``expected`` is."""
    with path.open("rb") as f:
        head = f.read(512)
    if size == 0:
        return "an empty file (an interrupted download or copy)"
    if head.startswith(_GZIP_MAGIC):
        return "a gzip archive, probably overfeat-weights.tgz itself: unpack it (tar xzf) first"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return "an HTML/XML page, probably an error page saved by a failed download"
    return f"a truncated copy ({100.0 * size / expected.nbytes:.1f}% of {expected.file_name})"


def _choose_arch(
    path: Path, size: int, arch: str | None, layouts: Mapping[str, ReleaseLayout]
) -> str:
    if arch is not None:
        if arch not in layouts:
            raise ValueError(f"arch must be one of {sorted(layouts)}, got {arch!r}")
        return arch
    named = {name: a for a, name in RELEASE_FILE_NAMES.items()}.get(path.name)
    exact = [a for a, layout in layouts.items() if layout.nbytes == size]
    if exact:
        if named is not None and named != exact[0]:
            warnings.warn(
                f"{path}: named like the {named} network's file but its size "
                f"({size:,} bytes) is the {exact[0]} network's; loading it as {exact[0]}",
                ReleaseWeightsWarning,
                stacklevel=3,
            )
        return exact[0]
    if named is not None:
        return named
    # Decision RELEASE_ARCH_BY_SIZE: exact size first, then the file name; a size that is neither
    # network's exactly is never guessed: a file between the two sizes could be the accurate
    # file with trailing bytes or a truncated fast one.
    sizes = ", ".join(f"{a} {lay.nbytes:,}" for a, lay in layouts.items())
    smallest = min(layouts.values(), key=lambda lay: lay.nbytes)
    if size < smallest.nbytes:
        raise ValueError(
            f"{path}: {size:,} bytes is smaller than either released network ({sizes} bytes); "
            f"it is probably {_probable_content(path, size, smallest)}"
        )
    raise ValueError(
        f"{path}: {size:,} bytes matches no released network exactly ({sizes} bytes); "
        "say which it is with arch='fast'|'accurate' (--arch on the command line)"
    )


def load_release(
    path: str | Path,
    arch: str | None = None,
    *,
    activation: str = "release",
    layouts: Mapping[str, ReleaseLayout] | None = None,
) -> ReleaseNet:
    """Load ``net_weight_0`` (fast) or ``net_weight_1`` (accurate) into the project's network.

    ``path``: the file, or a directory holding it (see :func:`resolve_weights_file`).
    ``arch``: ``"fast"``/``"accurate"``; by default chosen by the file's size (then its name).
    ``activation``: ``"release"`` (decision RELEASE_ACTIVATION, the default) uses the release's
    threshold ``x > 1e-6 ? x : 0`` for exact parity; ``"relu"`` the project's ReLU (they differ
    only on (0, 1e-6]).
    ``layouts``: the file layouts to accept, by default :func:`release_layouts`; width-scaled
    layouts (:func:`release_layout`) read toy files of the same format.

    A file shorter than its network is refused; trailing bytes (which the release itself never
    reads) give a :class:`ReleaseWeightsWarning`. Returns a :class:`ReleaseNet` in eval mode.
    """
    layouts = release_layouts() if layouts is None else layouts
    path = resolve_weights_file(path, arch)
    size = path.stat().st_size
    arch = _choose_arch(path, size, arch, layouts)
    layout = layouts[arch]
    other = [a for a, lay in layouts.items() if a != arch and lay.nbytes == size]
    if size != layout.nbytes and other:
        # The fast file is longer than the accurate one: read as accurate it would only "warn".
        raise ValueError(
            f"{path}: {size:,} bytes is exactly the {other[0]} network's "
            f"{layouts[other[0]].file_name}, not the {arch} network's ({layout.nbytes:,} bytes); "
            f"pass arch={other[0]!r} (--arch {other[0]})"
        )
    if size < layout.nbytes:
        raise ValueError(
            f"{path}: {size:,} bytes, but the {arch} network's {layout.file_name} has "
            f"{layout.nbytes:,} bytes ({layout.total_floats:,} float32); this is probably "
            f"{_probable_content(path, size, layout)}"
        )
    if size > layout.nbytes:
        # Decision RELEASE_TRAILING_BYTES: the release reads up to its last tensor and never
        # notices more; we read the same floats and warn, since the size is undocumented.
        warnings.warn(
            f"{path}: {size - layout.nbytes:,} trailing bytes after the {arch} network's "
            f"{layout.total_floats:,} float32 ({layout.nbytes:,} bytes) are ignored, as the "
            "release ignores them; check that this is the released file",
            ReleaseWeightsWarning,
            stacklevel=2,
        )

    model = layout.build(activation=activation).to_empty(device="cpu")
    params = dict(model.named_parameters())
    data = np.memmap(path, dtype="<f4", mode="r", shape=(layout.total_floats,))
    try:
        with torch.no_grad():
            for t in layout.tensors:
                dst = params[t.parameter].detach().numpy()
                # One copy from the page cache into the parameter (native float32, C order).
                dst[...] = data[t.offset : t.offset + t.count].reshape(t.shape)
                if not np.isfinite(dst).all():
                    raise ValueError(
                        f"{path}: tensor {t.name} (floats {t.offset:,}..{t.offset + t.count:,}) "
                        "holds NaN or infinity; the file is corrupt, obtain it again"
                    )
    finally:
        del data  # closes the mapping
    model.eval()
    return ReleaseNet(model=model, normalize=ReleaseNormalize(), layout=layout, path=path)
