"""The originally released OverFeat networks (Sermanet et al. 2014, §3.2; FACTS.md §7).

- :mod:`overfeat.release.weights`: read ``net_weight_0``/``net_weight_1`` into the project's networks;
- :mod:`overfeat.release.classes`: the release's class order (ILSVRC2012_ID) ↔ sorted-WNID index;
- :mod:`overfeat.release.resize`: ImageMagick 6's ``-resize``, the release's resizing step;
- :mod:`overfeat.release.classify`: the release's preprocessing and the ``overfeat classify`` command.

The weights are the user's own copy (NYU licence: internal research and evaluation only, no
redistribution); nothing here downloads or caches them.
"""

from __future__ import annotations

from pathlib import Path

from evaluation.labels import ClassLabels
from overfeat.release.classes import (
    permute_classifier_to_sorted,
    release_names,
    release_to_sorted,
    release_wnids,
    sorted_to_release,
)
from overfeat.release.weights import (
    RELEASE_DOCUMENTED,
    RELEASE_FILE_NAMES,
    RELEASE_MEAN,
    RELEASE_STD,
    ReleaseLayout,
    ReleaseNet,
    ReleaseNormalize,
    ReleaseTensor,
    ReleaseWeightsWarning,
    load_release,
    release_layout,
    release_layouts,
    resolve_weights_file,
)

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
    "permute_classifier_to_sorted",
    "release_layout",
    "release_layouts",
    "release_model_for",
    "release_names",
    "release_to_sorted",
    "release_wnids",
    "resolve_weights_file",
    "sorted_to_release",
]


def release_model_for(
    arch: str,
    weights_dir: str | Path,
    *,
    labels: ClassLabels | None = None,
    activation: str = "release",
) -> ReleaseNet:
    """The released ``arch`` network from ``weights_dir`` (or the file itself), for evaluation.

    The entry point of every ``--release-weights DIR`` option. ``ReleaseNet.model`` is a plain
    :class:`~overfeat.models.OverFeat` (``features``/``pool``/``classifier``, so dense multi-scale
    inference applies unchanged); feed it ``ReleaseNet.normalize(x)`` with ``x`` RGB in 0–255
    (``ReleaseNormalize(input_scale=1.0)`` for 0–1 tensors). With ``labels`` (the devkit meta, or
    :func:`overfeat.data.class_order.ilsvrc2012_labels`), the last layer's rows are permuted so
    outputs follow the sorted-WNID index the rest of the project uses; without, outputs stay in
    the release's ILSVRC2012_ID order.
    """
    net = load_release(weights_dir, arch, activation=activation)
    if labels is None:
        return net
    permute_classifier_to_sorted(net.model, labels)
    return ReleaseNet(net.model, net.normalize, net.layout, net.path, class_order="sorted")
