"""Streaming evaluators (reset / process / evaluate), in one process and across torch.distributed
ranks with DistributedSampler-style padded duplicates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.annotations import Annotation
from evaluation.evaluator import ClsLocEvaluator, DetEvaluator
from evaluation.labels import ClassLabels
from evaluation.tasks import DetGroundTruth

WNIDS = tuple(f"n{k:08d}" for k in range(10))


def tiny_truth():
    anns = {
        f"img{i}": Annotation(f"img{i}", 100, 100, np.array([[10, 10, 59, 59]]), (WNIDS[i % 10],))
        for i in range(8)
    }
    return anns, ClassLabels(WNIDS, None, ("",) * 10)


def test_streamed_batches_give_hand_counted_errors():
    anns, labels = tiny_truth()
    ev = ClsLocEvaluator(anns, labels)
    ev.reset()
    right, box = [10, 10, 59, 59], [10, 10, 59, 59]
    far = [70, 70, 99, 99]
    for i in range(8):
        # image i's label is i; images 0-3 right at guess 1 with the right box; 4-5 right class at
        # guess 2 but a far box; 6-7 never the right class.
        if i < 4:
            guesses = [i, 9 - i]
        elif i < 6:
            guesses = [9 - i, i]
        else:
            guesses = [(i + 1) % 10, (i + 2) % 10]
        boxes = [right, box] if i < 4 else [far, far]
        ev.process([f"img{i}"], torch.tensor([guesses]), torch.tensor([boxes]))
    out = ev.evaluate()
    assert out["cls_error_by_guesses"] == pytest.approx([4 / 8, 2 / 8, 2 / 8, 2 / 8, 2 / 8])
    assert out["loc_error_by_guesses"] == pytest.approx([4 / 8] * 5)
    assert out["num_images"] == 8 and out["duplicates_dropped"] == 0


def test_unprocessed_images_count_wrong_unless_only_processed():
    anns, labels = tiny_truth()
    ev = ClsLocEvaluator(anns, labels)
    ev.process(["img0"], np.array([[0]]))
    with pytest.warns(UserWarning, match="7 of 8 images were not processed"):
        assert ev.evaluate()["cls_error_by_guesses"][0] == 7 / 8
    ev = ClsLocEvaluator(anns, labels, only_processed=True)
    ev.process(["img0"], np.array([[0]]))
    assert ev.evaluate()["cls_error_by_guesses"][0] == 0.0


def _rank(rank, world, port, queue):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)  # fmt: skip
    anns, labels = tiny_truth()
    ev = ClsLocEvaluator(anns, labels)
    det = DetEvaluator(DetGroundTruth(("img0", "img1", "img2"), np.array([0, 1, 2]),
                                      np.array([0, 0, 0]), np.array([[0, 0, 9, 9]] * 3)), 1)  # fmt: skip
    # DistributedSampler over 7 images on 2 ranks pads to 8 by repeating the first image:
    # rank 0 gets 0,2,4,6; rank 1 gets 1,3,5,0. Image 0 must be counted once.
    mine = [0, 2, 4, 6] if rank == 0 else [1, 3, 5, 0]
    for i in mine:
        ev.process([f"img{i}"], np.array([[i if i != 5 else 9]]))
    # Detection: one true positive per image 0..2, and image 0 duplicated on rank 1.
    mine_det = [0, 2] if rank == 0 else [1, 0]
    for i in mine_det:
        det.process([f"img{i}"], [np.array([0])], [np.array([0.5])], [np.array([[0, 0, 9, 9]])])
    with pytest.warns(UserWarning, match="1 of 8 images were not processed"):
        out = ev.evaluate()
    queue.put((rank, out, det.evaluate()))
    dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_gather_counts_padded_duplicates_once():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    for _, cls, det in results:
        # 7 processed images (img7 never), img5 wrong, img7 missing: 2 wrong of 8.
        assert cls["cls_error_by_guesses"][0] == 2 / 8
        assert cls["duplicates_dropped"] == 1
        # 3 positives, 3 true positives once each; a counted duplicate would be a false positive.
        assert det["mAP"] == 1.0 and det["duplicates_dropped"] == 1


def test_det_process_refuses_labels_scores_boxes_of_different_lengths():
    # One score or box too many would shift every later detection onto another's box.
    truth = DetGroundTruth(("img0",), np.array([0]), np.array([0]), np.array([[0, 0, 9, 9]]))
    det = DetEvaluator(truth, 1)
    with pytest.raises(ValueError, match="img0: 2 labels, 2 scores, 3 boxes"):
        det.process(["img0"], [np.array([0, 0])], [np.array([0.9, 0.8])],
                    [np.array([[0, 0, 9, 9], [50, 50, 59, 59], [0, 0, 9, 9]])])  # fmt: skip
    with pytest.raises(ValueError, match="img0: 1 labels, 2 scores, 1 boxes"):
        det.process(["img0"], [np.array([0])], [np.array([0.9, 0.8])], [np.array([[0, 0, 9, 9]])])


def test_reuse_without_reset_warns_that_first_records_are_scored():
    # A second pass (e.g. the next epoch) without reset(): only the first pass's record of each
    # image is scored, so the second pass's perfect guesses must not go unnoticed.
    anns, labels = tiny_truth()
    ev = ClsLocEvaluator(anns, labels)
    names = [f"img{i}" for i in range(8)]
    ev.process(names, np.full((8, 1), 9))  # image i has label i: class 9 is always wrong
    ev.process(names, np.arange(8)[:, None])  # all right
    with pytest.warns(UserWarning, match=r"8 image\(s\) were processed more than once.*reset\(\)"):
        out = ev.evaluate()
    assert out["cls_error_by_guesses"][0] == 1.0 and out["duplicates_dropped"] == 8
    det = DetEvaluator(DetGroundTruth(("img0",), np.array([0]), np.array([0]),
                                      np.array([[0, 0, 9, 9]])), 1)  # fmt: skip
    for _ in range(2):
        det.process(["img0"], [np.array([0])], [np.array([0.5])], [np.array([[0, 0, 9, 9]])])
    with pytest.warns(UserWarning, match=r"1 image\(s\) were processed more than once"):
        det.evaluate()
