"""Layer arithmetic of the two networks: sizes, strides, windows, parameters and connections.

Everything here follows from an :class:`~overfeat.models.ArchSpec` alone, with floor division at
every convolution and pooling exactly as the release computes it (overfeat-release.md §1.1:
``floor((in + 2p - k) / s) + 1``). The paper's tables are checked against these functions in the
tests, never typed in here (ARCHITECTURE.md, "Geometry").

Vocabulary (§3.3, Fig. 3; Table 5's column names):

- *layer-5 map*: the unpooled output of the last convolution (``model.features``), ``(h5, w5)``;
- *offsets* Δ: the last max-pool (size = stride = k) is applied at every (Δx, Δy) ∈ {0..k−1}²
  (*fine* stride) or at (0, 0) only (*coarse* stride, Table 2 caption);
- *post-pool map*: the pooled map of one offset, cropped to the size all offsets share;
- *classifier map*: the classifier (a K×K convolution, then 1×1s) slid over one post-pool map;
- *output map*: the classifier maps of all offsets interleaved (Fig. 3e), ``(hc·d, wc·d)`` with
  ``d = k`` (fine) or 1 (coarse);
- *window*: the input square one output sees as the classifier's input, 231 (fast) / 221
  (accurate), the training crop size; the window of output ``(r, c)`` starts at
  ``(r·s, c·s)`` with ``s`` the output stride (16/12 fine, 32/36 coarse).

Sizes are ``(rows, cols)`` = ``(H, W)`` throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

from overfeat.models import ArchSpec

__all__ = [
    "OFFSETS",
    "TABLE4_CONNECTIONS_M",
    "LayerSize",
    "classifier_map_size",
    "connections",
    "dropped_border",
    "feature_sizes",
    "format_table4",
    "format_table5",
    "layer5_size",
    "layer5_stride",
    "offsets_per_side",
    "output_map_size",
    "output_stride",
    "parameter_count",
    "post_pool_size",
    "receptive_field",
    "table5_row",
    "total_stride",
]

Size = tuple[int, int]

# Table 2 caption: "Fine: Δ = 0, 1, 2; coarse: Δ = 0." Δ runs over every shift of the last pool,
# {0..k−1}; for the fast model (k = 2) that gives Δ ∈ {0, 1}. The paper never says how fine stride
# was applied to the fast model (FACTS §9.6): decision FAST_FINE_OFFSETS = {0, 1}, all shifts of
# its 2×2 pool, output stride 16.
OFFSETS = ("fine", "coarse")

# Table 4 (FACTS §2), millions of connections at the training input size. Quoted only to print
# next to the arithmetic; nothing is derived from them.
TABLE4_CONNECTIONS_M = {"fast": 2810, "accurate": 5369}


@dataclass(frozen=True)
class LayerSize:
    """One layer at one input size: ``in_size`` → conv → ``conv_size`` → pool → ``out_size``.

    ``pool`` is 1 where the layer has no pool. For the last feature layer ``out_size`` is the
    unpooled layer-5 map (the last pool is applied per offset, see :func:`output_map_size`).
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    pool: int
    in_size: Size
    conv_size: Size
    out_size: Size


def _conv(n: int, kernel: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - kernel) // stride + 1


def _check_size(spec: ArchSpec, size: Size) -> Size:
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (rows, cols) with both ≥ 1, got {size!r}")
    return int(size[0]), int(size[1])


def feature_sizes(spec: ArchSpec, size: Size) -> list[LayerSize]:
    """Per feature layer: input, convolution and pooled sizes for an input of ``size = (H, W)``.

    Every size floors (overfeat-release.md §1.1). The last layer's pool is *not* applied here:
    its ``out_size`` is the unpooled layer-5 map of Table 5's "Layer 5 pre-pool" column.
    """
    h, w = _check_size(spec, size)
    rows = []
    in_ch = 3
    last = len(spec.layers)
    for i, layer in enumerate(spec.layers, start=1):
        ch = _conv(h, layer.kernel, layer.stride, layer.padding)
        cw = _conv(w, layer.kernel, layer.stride, layer.padding)
        pool = layer.pool if layer.pool and i != last else 1
        rows.append(
            LayerSize(
                name=f"conv{i}",
                in_channels=in_ch,
                out_channels=layer.channels,
                kernel=layer.kernel,
                stride=layer.stride,
                padding=layer.padding,
                pool=pool,
                in_size=(h, w),
                conv_size=(ch, cw),
                out_size=(ch // pool, cw // pool),
            )
        )
        h, w = ch // pool, cw // pool
        in_ch = layer.channels
    return rows


def layer5_size(spec: ArchSpec, size: Size) -> Size:
    """Unpooled layer-5 map ``(h5, w5)`` for an input ``(H, W)`` (Table 5, "Layer 5 pre-pool")."""
    return feature_sizes(spec, size)[-1].out_size


def offsets_per_side(spec: ArchSpec, offsets: str) -> int:
    """``d``: how many Δ values per axis: k (the last pool's size) for fine, 1 for coarse."""
    if offsets == "fine":
        return spec.last_pool
    if offsets == "coarse":
        return 1
    raise ValueError(f"offsets must be one of {OFFSETS}, got {offsets!r}")


def post_pool_size(spec: ArchSpec, size: Size, offsets: str = "fine") -> Size:
    """Pooled map per offset ``(hp, wp)``, cropped to the size every offset shares.

    Offset Δ pools ``floor((h5 − Δ) / k)`` cells; the largest Δ (= d − 1) has the fewest, and
    every offset is cropped to that count so the maps interleave exactly (Table 5, "post-pool").
    """
    k = spec.last_pool
    d = offsets_per_side(spec, offsets)
    h5, w5 = layer5_size(spec, size)
    return (h5 - (d - 1)) // k, (w5 - (d - 1)) // k


def classifier_map_size(spec: ArchSpec, size: Size, offsets: str = "fine") -> Size:
    """Classifier output per offset ``(hc, wc)`` (Table 5, "Classifier map (pre-reshape)")."""
    hp, wp = post_pool_size(spec, size, offsets)
    kk = spec.classifier_kernel
    return max(0, hp - kk + 1), max(0, wp - kk + 1)


def output_map_size(spec: ArchSpec, size: Size, offsets: str = "fine") -> Size:
    """Interleaved output map ``(hc·d, wc·d)`` (Table 5, "Classifier map size"; Fig. 3e)."""
    d = offsets_per_side(spec, offsets)
    hc, wc = classifier_map_size(spec, size, offsets)
    return hc * d, wc * d


def dropped_border(spec: ArchSpec, size: Size, offsets: str = "fine") -> dict[int, Size]:
    """Pooled cells each offset Δ loses to the common crop: ``{Δ: (rows, cols)}``, each 0 or 1.

    What is dropped is always at the bottom/right border: offset Δ's last pooled row/column,
    i.e. layer-5 rows ``Δ + k·hp …`` that fit a pool cell for small Δ but not for Δ = d − 1,
    and with it that offset's last row/column of windows (they would make the interleaved map
    ragged). Those windows lie inside the image and are not evaluated: e.g. at 221×221 fine
    stride yields no window at all, while coarse stride yields one. Table 5's sizes all have
    ``h5 ≡ k − 1 (mod k)``: nothing is dropped there (:func:`overfeat.scales.tiling_size`).
    """
    k = spec.last_pool
    d = offsets_per_side(spec, offsets)
    h5, w5 = layer5_size(spec, size)
    hp, wp = post_pool_size(spec, size, offsets)
    return {delta: ((h5 - delta) // k - hp, (w5 - delta) // k - wp) for delta in range(d)}


def layer5_stride(spec: ArchSpec) -> int:
    """Input pixels between neighbouring layer-5 cells: 16 fast, 12 accurate (the fine stride)."""
    s = 1
    for i, layer in enumerate(spec.layers, start=1):
        s *= layer.stride
        if layer.pool and i != len(spec.layers):
            s *= layer.pool
    return s


def total_stride(spec: ArchSpec) -> int:
    """Subsampling ratio with the last pool: 4·2·2·2 = 32 fast, 2·3·2·3 = 36 accurate (§3.3)."""
    return layer5_stride(spec) * spec.last_pool


def output_stride(spec: ArchSpec, offsets: str = "fine") -> int:
    """Input pixels between neighbouring outputs: total stride / d (16 or 12 fine; §3.3 "x12")."""
    return total_stride(spec) // offsets_per_side(spec, offsets)


def receptive_field(spec: ArchSpec, padding_context: bool = False) -> int:
    """Side of the input window behind one output, found by running the size arithmetic backwards.

    Default: the *window*, the smallest input giving a 1×1 output (231 fast, 221 accurate); a
    padded 3×3 layer keeps sizes, so it widens nothing. With ``padding_context=True``: every
    input pixel that can reach the output in a dense pass, where the zero-padding of the 3×3
    layers is replaced by real neighbours (327 fast, 317 accurate): a window's output in a dense
    pass therefore depends on up to ``(327 − 231) / 2 = 48`` pixels of context on each side.
    """
    r = spec.classifier_kernel * spec.last_pool
    for i in range(len(spec.layers), 0, -1):
        layer = spec.layers[i - 1]
        if layer.pool and i != len(spec.layers):
            r *= layer.pool
        pad = 0 if padding_context else layer.padding
        r = (r - 1) * layer.stride + layer.kernel - 2 * pad
    return r


def _classifier_layers(spec: ArchSpec, num_classes: int) -> list[tuple[str, int, int, int]]:
    """``(name, in_channels, out_channels, kernel)`` of each classifier layer."""
    widths = (*spec.classifier, num_classes)
    in_ch = spec.layers[-1].channels
    out = []
    for j, out_ch in enumerate(widths):
        kernel = spec.classifier_kernel if j == 0 else 1
        out.append((f"fc{spec.first_classifier_layer + j}", in_ch, out_ch, kernel))
        in_ch = out_ch
    return out


def parameter_count(spec: ArchSpec, num_classes: int = 1000) -> dict[str, int]:
    """Weights + biases per layer (``conv1`` … ``fc8``/``fc9``) from the spec (Table 4)."""
    counts = {}
    in_ch = 3
    for i, layer in enumerate(spec.layers, start=1):
        counts[f"conv{i}"] = layer.channels * (in_ch * layer.kernel**2 + 1)
        in_ch = layer.channels
    for name, cin, cout, k in _classifier_layers(spec, num_classes):
        counts[name] = cout * (cin * k * k + 1)
    return counts


def connections(
    spec: ArchSpec,
    size: Size | None = None,
    num_classes: int = 1000,
    include_bias: bool = False,
) -> dict[str, int]:
    """Connections per layer at input ``size`` (default: the training crop), Table 4.

    Convention (the paper states none, FACTS §2): one connection = one multiply-accumulate of a
    weight with an input value, counted over every output of every convolution, the zero-padded
    border of the 3×3 layers included (it is computed like any other tap); pooling and ReLU count
    nothing. ``include_bias=True`` adds one connection per output for its bias.
    """
    size = (spec.input_size, spec.input_size) if size is None else size
    counts = {}
    for row in feature_sizes(spec, size):
        outputs = row.out_channels * row.conv_size[0] * row.conv_size[1]
        taps = row.in_channels * row.kernel**2 + (1 if include_bias else 0)
        counts[row.name] = outputs * taps
    h, w = post_pool_size(spec, size, "coarse")
    for name, cin, cout, k in _classifier_layers(spec, num_classes):
        h, w = h - k + 1, w - k + 1
        counts[name] = cout * h * w * (cin * k * k + (1 if include_bias else 0))
    return counts


def table5_row(spec: ArchSpec, size: Size, offsets: str = "fine") -> dict[str, Size]:
    """One row of Table 5 for input ``size``: every column, as ``(rows, cols)`` pairs.

    ``post_pool`` is per offset (Table 5 prints it as "(hp×wp)×(d×d)"), ``offset_grid`` is
    ``(d, d)``, ``classifier`` is per offset, ``output`` is the interleaved map.
    """
    d = offsets_per_side(spec, offsets)
    return {
        "input": _check_size(spec, size),
        "layer5": layer5_size(spec, size),
        "post_pool": post_pool_size(spec, size, offsets),
        "offset_grid": (d, d),
        "classifier": classifier_map_size(spec, size, offsets),
        "output": output_map_size(spec, size, offsets),
    }


def _x(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


def format_table5(spec: ArchSpec, sizes: list[Size], offsets: str = "fine") -> str:
    """Table 5 recomputed for ``sizes`` (rows × cols), plus the total output count."""
    lines = [
        f"Table 5 ({spec.name}, {offsets} stride): input | layer 5 pre-pool | post-pool "
        "| classifier map (pre-reshape) | classifier map",
    ]
    total = 0
    for i, size in enumerate(sizes, start=1):
        r = table5_row(spec, size, offsets)
        d = r["offset_grid"][0]
        lines.append(
            f"  {i} | {_x(r['input'])} | {_x(r['layer5'])} | ({_x(r['post_pool'])})x({d}x{d})"
            f" | ({_x(r['classifier'])})x({d}x{d})xC | {_x(r['output'])}xC"
        )
        total += r["output"][0] * r["output"][1]
    lines.append(f"  outputs per image per flip over {len(sizes)} scales: {total}")
    return "\n".join(lines)


def format_table4(spec: ArchSpec, num_classes: int = 1000) -> str:
    """Parameters and connections at the training size, next to Table 4's numbers."""
    params = parameter_count(spec, num_classes)
    macs = connections(spec, num_classes=num_classes)
    macs_b = connections(spec, num_classes=num_classes, include_bias=True)
    paper = TABLE4_CONNECTIONS_M[spec.name]
    size = spec.input_size
    lines = [f"Table 4 ({spec.name}, input {size}x{size}): layer | parameters | MACs | MACs+bias"]
    for name in params:
        lines.append(f"  {name} | {params[name]:,} | {macs[name]:,} | {macs_b[name]:,}")
    tw, tb = sum(macs.values()), sum(macs_b.values())
    lines.append(f"  total parameters: {sum(params.values()):,}")
    lines.append(
        f"  connections: weights-only {tw / 1e6:.1f}M ({(tw / 1e6 - paper) / paper:+.2%} vs paper), "
        f"with biases {tb / 1e6:.1f}M ({(tb / 1e6 - paper) / paper:+.2%}); Table 4: {paper}M"
    )
    return "\n".join(lines)
