"""``overfeat train regressor``: the localization regressor's training, §4.2.

"We fix the feature extraction layers (1-5) from the classification network and train the
regression network using an ℓ2 loss between the predicted and true bounding box for each
example" (§4.2). Layers 1–5 of a classifier run's newest checkpoint are loaded and frozen (no
gradient, eval mode); a :class:`~overfeat.regression.BoxRegressor` (SCR or PCR) learns on the
pooled layer-5 maps at every offset (:func:`~overfeat.regression.dense_boxes`), every window
compared with its target box (:func:`~overfeat.regression.regression_targets`: windows that see
less than half of the box left out), at several of the test scales ("the same set of scales as
described in Section 3"). The loop, checkpoints, resume and DDP are
:mod:`overfeat.engine.spatial`'s.

A regressor checkpoint (``checkpoint-S.pt``) holds, besides the loop's ``train_config``,
``optimizer``, ``scheduler``, ``progress``, ``meters``::

    regressor               the BoxRegressor's state_dict
    regressor_config        {"kind": "scr" | "pcr", "num_classes": C, "width": w}
    classifier_run          the classifier run's absolute path
    classifier_config       that checkpoint's model_config (build_model(**it) rebuilds it)
    classifier_checkpoint   the checkpoint file name in classifier_run
    classifier_features_sha256   digest of its layers 1–5, to tell when the file changed

:func:`load_regressor` and :func:`load_classifier_of` read them back for inference.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from overfeat.data import readers
from overfeat.data.boxed import BoxedImages, BoxedSource, clsloc_training_images
from overfeat.data.label_space import DET_SPACE, det_training_index
from overfeat.data.sampler import epoch_permutation
from overfeat.dense import interleave_offsets, offset_max_pool, window_boxes
from overfeat.engine.checkpoint import find_latest_valid, load_checkpoint
from overfeat.engine.distributed import DistEnv
from overfeat.engine.spatial import (
    SpatialBatch,
    SpatialConfig,
    SpatialTask,
    classifier_checkpoint,
    group_by_shape,
    spatial_recipe,
)
from overfeat.geometry import offsets_per_side
from overfeat.models import ArchSpec, OverFeat, build_model
from overfeat.regression import BoxRegressor, regression_targets, regressor_loss, window_side
from overfeat.scales import scale_sizes

__all__ = [
    "REGRESSOR_RECIPES",
    "REGRESSOR_REQUIRED_KEYS",
    "RegressorConfig",
    "RegressorTask",
    "features_digest",
    "load_classifier_of",
    "load_regressor",
    "regressor_recipe",
    "regressor_training_images",
    "train_regressor",
]

REGRESSOR_REQUIRED_KEYS = (
    "regressor", "regressor_config", "classifier_run", "classifier_config",
    "classifier_checkpoint", "train_config", "optimizer", "scheduler", "progress",
)  # fmt: skip


@dataclass(frozen=True)
class RegressorConfig(SpatialConfig):
    """A regressor run's settings: the spatial loop's, the regressor's ``kind`` (``"scr"``,
    ``"pcr"``) and ``width`` (multiplier of the 4096 / 1024 hidden layers; 0: the classifier's
    width, decision REGRESSOR_WIDTH)."""

    kind: str = "scr"
    width: float = 0.0

    # Which windows train and toward what (REGRESSOR_OVERLAP_RULE, BOX_PARAMETERISATION): part
    # of a run's cache key (overfeat.reproduce.networks.config_key), so that networks trained
    # under an earlier rule are trained again rather than reused.
    TARGETS: ClassVar[str] = "overlap over the smaller area >= 0.5; edge offsets in window sides"

    def __post_init__(self):
        super().__post_init__()
        if self.kind not in ("scr", "pcr") or self.width < 0:
            raise ValueError(
                f"invalid regressor setting(s): kind={self.kind!r} (scr or pcr), "
                f"width={self.width!r} (≥ 0; 0 = the classifier's)"
            )


# Decision REGRESSOR_RECIPE. The paper gives no optimiser, learning rate, batch or length for the
# regressor (FACTS §6.3, §10).
# - "paper": §3.1's optimiser as it stands (SGD, lr 5e-2 at batch 128, momentum 0.6, weight
#   decay 1e-5, the rate halved at milestones), 12 epochs over the boxed training images, halved
#   after 6 and 9, on all six scales (decision REGRESSOR_SCALES: "the same set of scales as
#   described in Section 3"). On the synthetic set at width 1/8 (batch 16, so lr 6.25e-3 by
#   LINEAR_LR_SCALING) it lowered the loss as the toy recipe does (0.282 → 0.252 in 3 epochs
#   against 0.38 for the untrained regressor); not run at full size here.
# - "toy": CPU-sized, tried on the synthetic set with the toy classifier (width 1/8): batch 16,
#   lr 5e-3 with momentum 0.9, 8 epochs halved after 5 and 7, on the four scales of Figure 9's
#   "4 scales" (1, 2, 4, 6; FIGURE9_SCALES), 4 minutes on 2 cores. Trained at scales 1 and 2 only
#   (lr 2e-2: 5e-3 ended 8 epochs at 0.201, 2e-2 at 0.186, 5e-2 stalled at 0.23), SCR's top-5
#   localization error was 65.8 / 63.3 / 65.8 / 75.8% at 1–4 scales, no better than each window's
#   own box at 1–2 scales: at scales 4 and 6 it extrapolated. On all four scales at lr 5e-3 (the
#   gate's rate, GATE_REGRESSOR_LR; 2e-2 not tried there): 55.8 / 50.8 / 53.3 / 62.5%, against
#   65.0 / 62.5 / 73.3 / 88.3 for the windows' own boxes and 71.7 / 71.7 / 72.5 / 74.2 for the
#   whole image.
REGRESSOR_RECIPES: dict[str, dict] = {
    "paper": {
        "scales": (1, 2, 3, 4, 5, 6),
        "epochs": 12,
        "lr_milestones": (6, 9),
        "batch_size": 128,
        "lr": 5e-2,
        "momentum": 0.6,
        "weight_decay": 1e-5,
    },
    "toy": {
        "scales": (1, 2, 4, 6),
        "epochs": 8,
        "lr_milestones": (5, 7),
        "batch_size": 16,
        "lr": 5e-3,
        "momentum": 0.9,
        "weight_decay": 1e-5,
    },
}


def regressor_recipe(name: str, **overrides) -> RegressorConfig:
    """A :class:`RegressorConfig` for recipe ``name`` (REGRESSOR_RECIPE) with ``overrides``."""
    return spatial_recipe(RegressorConfig, REGRESSOR_RECIPES, name, **overrides)


def features_digest(model: OverFeat) -> str:
    """SHA-256 of layers 1–5's parameters, in state_dict order (what a regressor was fit to)."""
    h = hashlib.sha256()
    for name, t in model.features.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def object_classes(state: dict) -> int:
    """The object classes of a classifier-format checkpoint: its outputs, less the background
    class for a detector run (``overfeat.engine.detector``)."""
    if "detector" in state:
        return int(state["detector"]["num_object_classes"])
    return int(state["model_config"]["num_classes"])


def regressor_training_images(data: str | Path, state: dict, kind: str) -> BoxedSource:
    """The boxed CLS-LOC training images of ``data`` a regressor of ``kind`` on the network of
    checkpoint ``state`` learns from, in that network's label space (REGRESSOR_DET_SPACE).

    Decision REGRESSOR_DET_SPACE: on a detector in the DET label space (DET_LABEL_SPACE) a
    per-class regressor has one box per DET output, and learns from the images whose class a
    DET output covers, each image and box taking the covering DET class (DET_TRAINING_CLASS, as
    the detector's training objects); the others have no output to box. A single-class
    regressor names no class, so it learns from every boxed image, as on a classifier. Either
    way a data set in which a DET output covers no class is refused, as one of another class
    count is for a classifier: it is not the data the detector was made from."""
    det = state.get("detector", {})
    if det.get("label_space") != DET_SPACE:
        return clsloc_training_images(data)
    cover = {d: tuple(det["det_cover"][d]) for d in det["classes"]}
    if kind == "scr":
        source = clsloc_training_images(data)
    else:
        source = replace(clsloc_training_images(data, det_training_index(det["classes"], cover)),
                         classes=list(det["classes"]))  # fmt: skip
    _, cls_wnids, _ = readers.classification_samples(data, "train")
    # An ancestor covers every CLS-LOC class under it (dog: 118 breeds), the detector's classifier
    # only some (imagenette-10: one breed), so what must hold is that each output has images.
    present = set(cls_wnids)
    empty = [d for d in det["classes"] if not present & set(cover[d])]
    if empty:
        raise ValueError(
            f"--data {data}: {len(empty)} of the detector's DET outputs cover no class of this "
            f"data set ({', '.join(f'{d}: {list(cover[d])[:3]}' for d in empty[:3])}"
            f"{' ...' if len(empty) > 3 else ''}); pass the data set its classifier was trained on"
        )
    return source


def _network(state: dict) -> OverFeat:
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model"])
    return model.eval()


class RegressorCollate:
    """Samples → :class:`SpatialBatch` whose groups hold ``images (n, 3, h, w)``, ``targets
    (n, H', W', 4)`` float32, ``trained (n, H', W')`` bool and ``classes (n,)``: the §4.2 targets
    of each image against the boxes of its own class (decision REGRESSOR_IMAGE_CLASS_BOXES: a
    CLS-LOC image's class is the one its label names, the class whose box a localization guess
    must match; boxes of other classes are not its regressor's business)."""

    def __init__(self, spec: ArchSpec, offsets: str):
        self.spec, self.offsets = spec, offsets

    def __call__(self, batch) -> SpatialBatch:
        kept = [b for b in batch if b is not None]
        groups = []
        for size, samples in group_by_shape(kept):
            windows = window_boxes(self.spec, size, self.offsets)
            targets, trained = zip(*(
                regression_targets(s.boxes[s.classes == s.label], windows, window_side(self.spec))
                for s in samples
            ))  # fmt: skip
            groups.append({
                "images": torch.stack([s.image for s in samples]),
                "targets": torch.stack(targets).float(),
                "trained": torch.stack(trained),
                "classes": torch.tensor([s.label for s in samples], dtype=torch.int64),
            })  # fmt: skip
        return SpatialBatch(groups, len(kept), len(batch) - len(kept))


class RegressorTask(SpatialTask):
    """§4.2 as a task of the spatial loop: frozen layers 1–5, a trained BoxRegressor."""

    REQUIRED_KEYS = REGRESSOR_REQUIRED_KEYS
    # The loss of predicting every window itself (the untrained regressor), on the same windows.
    stat_names = ("window_loss_sum",)

    def __init__(self, config: RegressorConfig, env: DistEnv, state: dict | None):
        if state is None:
            run, name, cstate = classifier_checkpoint(config.classifier)
        else:
            # A resumed run keeps the features it started with, even if the classifier run has
            # trained on since.
            run, name = Path(state["classifier_run"]), state["classifier_checkpoint"]
            cstate = _stored_classifier(run, name, state, config.out)
        self.classifier_run, self.classifier_name = run, name
        self.classifier_config = dict(cstate["model_config"])
        self.features_net = _network(cstate).requires_grad_(False).to(env.device)
        self.digest = features_digest(self.features_net)
        spec = self.features_net.spec
        self.num_classes = object_classes(cstate)
        source = regressor_training_images(config.data, cstate, config.kind)
        det_space = cstate.get("detector", {}).get("label_space") == DET_SPACE
        if len(source.classes) != self.num_classes and not det_space:
            raise ValueError(
                f"--data {config.data}: {len(source.classes)} classes, but the network of "
                f"{run / name} has {self.num_classes}; pass the data set it was trained on"
            )
        if config.max_train_samples and config.max_train_samples < len(source.records):
            keep = epoch_permutation(len(source.records), config.seed, -1)
            keep = keep[: config.max_train_samples].sort().values.tolist()
            source = replace(source, records=[source.records[i] for i in keep])
        sizes = scale_sizes(spec)
        self.dataset = BoxedImages(source, spec, [sizes[s - 1] for s in config.scales],
                                   config.seed)  # fmt: skip
        # Decision REGRESSOR_WIDTH: by default the regressor's hidden layers are scaled as the
        # classifier's own (4096·w, 1024·w), so a toy classifier gets a toy regressor.
        width = config.width or float(self.classifier_config["width"])
        torch.manual_seed(config.seed)  # identical initial weights in every process
        self.module = BoxRegressor(spec, config.kind, self.num_classes, width)
        self.regressor_config = {"kind": config.kind, "num_classes": self.num_classes,
                                 "width": width}  # fmt: skip
        if state is not None:
            _load_regressor_state(self.module, state["regressor"], state["_path"])
        self.ddp_module = self.module
        self.offsets = config.offsets
        self.kind = config.kind
        self.collate = RegressorCollate(spec, config.offsets)

    def windows(self, group: dict) -> int:
        return int(group["trained"].sum())

    def loss(self, net: nn.Module, group: dict):
        spec = self.features_net.spec
        with torch.no_grad():
            pooled = offset_max_pool(self.features_net.features(group["images"]),
                                     spec.last_pool, self.offsets)  # fmt: skip
        out = interleave_offsets(net(pooled), offsets_per_side(spec, self.offsets)).float()
        trained, targets = group["trained"], group["targets"]
        classes = group["classes"] if self.kind == "pcr" else None
        loss_sum = regressor_loss(out, targets, trained, classes) * trained.sum()
        window_loss = targets.pow(2).sum(-1)[trained].sum()
        return loss_sum, [window_loss]

    def empty_loss(self, net: nn.Module) -> torch.Tensor:
        spec = self.features_net.spec
        k, c5 = spec.classifier_kernel, spec.layers[-1].channels
        device = next(self.module.parameters()).device
        return net(torch.zeros(1, c5, k, k, device=device)).sum() * 0.0

    def checkpoint_state(self) -> dict:
        return {
            "regressor": self.module.state_dict(),
            "regressor_config": dict(self.regressor_config),
            "classifier_run": str(self.classifier_run),
            "classifier_config": dict(self.classifier_config),
            "classifier_checkpoint": self.classifier_name,
            "classifier_features_sha256": self.digest,
        }

    def summarize(self, sums: dict) -> dict:
        n = sums["windows"]
        return {"train_window_loss": sums["window_loss_sum"] / n if n else float("nan")}

    def environment(self) -> dict:
        sizes = self.dataset.scales
        return {
            "task": "regressor",
            "regressor": self.regressor_config,
            "classifier_run": str(self.classifier_run),
            "classifier_checkpoint": self.classifier_name,
            "scale_sizes": [list(s) for s in sizes],
        }


def train_regressor(config: RegressorConfig, resume: str | None = None, env=None,
                    command: str | None = None) -> dict:  # fmt: skip
    """Train (or resume) a regressor run, §4.2 (:func:`overfeat.engine.spatial.train_spatial`)."""
    from overfeat.engine.spatial import train_spatial

    return train_spatial(RegressorTask, config, resume, env, command)


# ------------------------------------------------------------------------------ loading


def _load_regressor_state(module: BoxRegressor, weights: dict, where) -> None:
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise ValueError(
            f"{where}: the stored regressor does not fit its classifier's layer 5 "
            f"({first[-1].strip() if first else e}); the run's classifier checkpoint was "
            "replaced by a network of another width or architecture"
        ) from None


def _stored_classifier(run: Path, name: str, state: dict, where) -> dict:
    """The classifier checkpoint a regressor run was trained on, checked unchanged."""
    path = Path(run) / name
    if not path.is_file():
        raise ValueError(
            f"{where}: its classifier checkpoint {path} is gone (pruned or moved); restore that "
            "file, or train a new regressor on the classifier run as it is now"
        )
    cstate = load_checkpoint(path)
    if cstate["model_config"] != state["classifier_config"]:
        raise ValueError(
            f"{where}: {path} now holds a {cstate['model_config']} network, the regressor was "
            f"trained on {state['classifier_config']}; restore the original checkpoint"
        )
    want = state.get("classifier_features_sha256")
    if want is not None and features_digest(_network(cstate)) != want:
        raise ValueError(
            f"{where}: the layers 1–5 in {path} are not the ones the regressor was trained on "
            "(the file was overwritten); restore it or train a new regressor"
        )
    return cstate


def _regressor_state(run_dir: str | os.PathLike) -> tuple[Path, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the message below says what is missing
        found = find_latest_valid(run_dir, required=REGRESSOR_REQUIRED_KEYS)
    if found is None:
        raise ValueError(
            f"{run_dir}: no readable regressor checkpoint (checkpoint-*.pt written by 'overfeat "
            f"train regressor'); train one with 'overfeat train regressor --classifier RUN "
            f"--data DIR --out {run_dir}', or pass the folder such a run wrote"
        )
    return found


def load_classifier_of(run_dir: str | os.PathLike) -> nn.Module:
    """The network a regressor run was trained on (eval mode), read from the classifier
    checkpoint file it names; a ``ValueError`` when that file is gone or changed."""
    path, state = _regressor_state(run_dir)
    cstate = _stored_classifier(Path(state["classifier_run"]), state["classifier_checkpoint"],
                                state, path)  # fmt: skip
    return _network(cstate)


def load_regressor(
    run_dir: str | os.PathLike,
    classifier: nn.Module | None = None,
    classifier_label: str | None = None,
) -> BoxRegressor:
    """The trained regressor of ``run_dir`` (its newest readable checkpoint), in eval mode.

    ``classifier``: the network whose layers 1–5 it will read (default: the one it was trained
    on, :func:`load_classifier_of`). A network of another architecture, width or class count
    than the training one is a ``ValueError``, and so is the same shape with other layer 1–5
    weights (decision REGRESSOR_FEATURES_REFUSED); ``classifier_label`` names it in the message.
    """
    path, state = _regressor_state(run_dir)
    if classifier is None:
        classifier = load_classifier_of(run_dir)
    want = state["classifier_config"]
    got = {
        "arch": getattr(getattr(classifier, "spec", None), "name", type(classifier).__name__),
        "width": getattr(classifier, "width", None),
        "num_classes": getattr(classifier, "num_classes", None),
    }
    wrong = [f"{k} {got[k]!r} (trained on {want[k]!r})" for k in got if got[k] != want[k]]
    if wrong:
        raise ValueError(
            f"{run_dir}: the classifier given does not match the one this regressor was trained "
            f"on ({'; '.join(wrong)}; {state['classifier_run']}/{state['classifier_checkpoint']}); "
            f"pass that network, e.g. load_classifier_of({str(run_dir)!r})"
        )
    digest = state.get("classifier_features_sha256")
    if digest is not None and isinstance(classifier, OverFeat) and features_digest(classifier) != digest:
        # Decision REGRESSOR_FEATURES_REFUSED: a regressor reads layer-5 maps; on other layers
        # 1–5 (a released network, another run of the same shape) its boxes are those of a
        # network it never saw, so they are refused rather than reported with a warning.
        given = f" ({classifier_label})" if classifier_label else ""
        raise ValueError(
            f"regressor run {run_dir} was trained on the layers 1–5 of "
            f"{state['classifier_run']}/{state['classifier_checkpoint']}; the classifier "
            f"given{given} has other layer 1–5 weights, so the regressor's boxes would not fit "
            "it. Pass the classifier it was trained on, or train a regressor on this one: "
            "'overfeat train regressor --classifier RUN --data DIR --out NEW_RUN' (for the "
            "released networks, make RUN with 'overfeat import-release DIR --out RUN')"
        )
    cfg = state["regressor_config"]
    reg = BoxRegressor(classifier.spec, cfg["kind"], int(cfg["num_classes"]), float(cfg["width"]))
    _load_regressor_state(reg, state["regressor"], path)
    return reg.eval()
