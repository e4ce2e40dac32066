"""The greedy merges run in worker processes beside the forward passes (MERGE_WORKERS): the same
merges as §4.3's loop written literally and as the main process, bit for bit and ties included,
and a localization or detection pass whose output does not depend on where its merges ran."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_localize import _classifier_run, _cli, _constant_regressor, _synthetic, _toy
from test_merge import _random_boxes, paper_loop

from overfeat.detect import DetectionProtocol, detect_dataset
from overfeat.inference import RunOptions, StageTimes
from overfeat.localize import (
    Candidates,
    LocalizationProtocol,
    localization_images,
    localize_dataset,
    merge_per_class,
    merged_batches,
)
from overfeat.merge_batched import DeviceMerges
from overfeat.merge_workers import MergedSet, MergePool, PendingMerges, default_merge_workers

WORKERS = 2


def _sets(seed: int) -> list[np.ndarray]:
    """Sets as a pass hands them over: random and clustered integer boxes, sets made of a few
    boxes repeated (every pair of copies ties), and one set larger than the matrix path."""
    rng = np.random.default_rng(seed)
    sets = [_random_boxes(rng, n, kind) for n in (3, 40, 60) for kind in
            ("uniform", "clustered", "ties")]  # fmt: skip
    sets.append(_random_boxes(rng, 700, "clustered"))
    sets.append(np.repeat(_random_boxes(rng, 5, "uniform"), 30, axis=0))
    return [np.asarray(s, dtype=np.float64) for s in sets]


def _clusters(assignment: np.ndarray) -> list[list[int]]:
    return sorted(np.flatnonzero(assignment == k).tolist() for k in range(assignment.max() + 1))


@pytest.fixture(scope="module")
def pool():
    with MergePool(WORKERS) as p:
        yield p


def test_workers_merge_every_set_as_the_paper_loop_and_the_main_process_do(pool):
    sets = _sets(0)
    in_workers = pool.submit(sets, 0.5).result()
    in_main = MergePool(0).submit(sets, 0.5).result()
    assert len(in_workers) == len(sets)
    for boxes, here, there in zip(sets, in_main, in_workers):
        assert np.array_equal(here.assignment, there.assignment)
        assert np.array_equal(here.boxes, there.boxes)  # bit for bit
        if len(boxes) <= 60:  # the literal loop is cubic
            assert _clusters(there.assignment) == sorted(sorted(c) for c in paper_loop(boxes, None))


def test_results_come_back_in_the_order_submitted_whatever_the_tasks(pool):
    """Sets are sent largest first and grouped into tasks; the results return in order."""
    sets = _sets(1)[::-1]
    got = pool.submit(sets, 0.5).result()
    assert [len(m.assignment) for m in got] == [len(s) for s in sets]


def _candidates(seed: int, classes: int = 4) -> Candidates:
    """One image's candidates: per class, a few boxes of a shared set (as a single-class
    regressor gives every class the same boxes) and some of its own."""
    rng = np.random.default_rng(seed)
    shared = _random_boxes(rng, 80, "ties")
    boxes, cls = [], []
    for c in range(classes):
        own = shared if c % 2 == 0 else _random_boxes(rng, 50, "clustered")
        boxes.append(own)
        cls.append(np.full(len(own), c))
    boxes = np.concatenate(boxes).astype(np.float64)
    n = len(boxes)
    return Candidates(boxes, rng.random(n), np.concatenate(cls).astype(np.int64),
                      np.ones(n, np.int64), np.zeros(n, bool), np.zeros((n, 2), np.int64))  # fmt: skip


def test_merged_batches_give_merge_per_class_per_image_in_workers_and_in_the_main_process(pool):
    cands = {i: _candidates(i) for i in range(5)}
    batches = [([0, 1], ["a", "b"]), ([2], ["c"]), ([3, 4], ["d", "e"])]

    def candidates_of(images):
        return [cands["abcde".index(x)] for x in images]

    for p in (pool, MergePool(0), DeviceMerges("cpu")):
        times = StageTimes()
        out = list(merged_batches(iter(batches), candidates_of, p, 0.5, times))
        assert [o[0] for o in out] == [b[0] for b in batches]
        for indices, _, merged in out:
            for i, m in zip(indices, merged):
                want = merge_per_class(cands[i], 0.5)
                for got, expected in zip(m, want):
                    assert np.array_equal(got, expected)
        # classes 0 and 2 share their boxes: one merge for both
        assert len(times.merge_sizes) == 5 * 3
        assert times.merge_cpu > 0


class _Recorder:
    """A pool that records when each batch's sets are submitted and collected."""

    lag = 1

    def __init__(self, events):
        self.events = events

    def submit(self, sets, threshold):
        batch = len([e for e in self.events if e[0] == "submit"])
        self.events.append(("submit", batch))
        recorder = self

        class Pending(PendingMerges):
            def result(self):
                recorder.events.append(("collect", batch))
                return [MergedSet(b, np.arange(len(b)), 0.0) for b in sets]

        return Pending()


def test_a_batch_is_merged_while_the_next_batch_runs_its_forward_pass():
    events: list = []
    cand = _candidates(0)

    def candidates_of(images):
        events.append(("forward", images[0]))
        return [cand]

    batches = [([i], [i]) for i in range(3)]
    for indices, _, _ in merged_batches(iter(batches), candidates_of, _Recorder(events), 0.5,
                                        StageTimes()):  # fmt: skip
        events.append(("done", indices[0]))
    assert events == [
        ("forward", 0), ("submit", 0),
        ("forward", 1), ("submit", 1), ("collect", 0), ("done", 0),
        ("forward", 2), ("submit", 2), ("collect", 1), ("done", 1),
        ("collect", 2), ("done", 2),
    ]  # fmt: skip


# ------------------------------------------------------------------ whole passes


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    _synthetic(root / "data", det_images=3)
    _classifier_run(root / "run", 3)
    return root


def _jittered_regressor(model, seed=0):
    """A regressor whose boxes move from window to window (its output layer drawn small)."""
    reg = _constant_regressor(model, [0.0] * 4)
    torch.manual_seed(seed)
    with torch.no_grad():
        reg.layers.reg3.weight.normal_(0, 1e-3)
    return reg


@pytest.mark.parametrize("source", ["window", "regressor"])
def test_localize_dataset_with_merge_workers_or_a_merge_device_equals_the_main_process_run(
    synthetic, source
):
    """Window boxes: the mirror image's windows coincide with the image's, so sets are full of
    exact ties; regressor boxes: every box differs. Two images per batch, three batches. In
    the main process, in merge workers, and batched on a merge device (MERGE_PATH)."""
    model = _toy("fast", classes=3)
    reg = _jittered_regressor(model) if source == "regressor" else None
    samples, _, _ = localization_images(synthetic / "data")
    protocol = LocalizationProtocol(scales=(1, 2), box_source=source)
    runs = [localize_dataset(model, reg, samples, protocol,
                             RunOptions(batch_size=2, workers=0, progress=False, merge_workers=w,
                                        merge_device=d))
            for w, d in ((0, None), (WORKERS, None), (0, "cpu"))]  # fmt: skip
    main = runs[0]
    for other in runs[1:]:
        for field in ("labels", "boxes", "scores", "decoded", "image_sizes", "merged"):
            assert np.array_equal(getattr(main, field), getattr(other, field), equal_nan=True), field
        assert main.names == other.names and len(main.names) == 6
        assert other.times.merge_sizes == main.times.merge_sizes
    workers = runs[1]
    assert set(workers.times.seconds) == {"forward", "decode", "merge"}


def test_detect_dataset_with_merge_workers_or_a_merge_device_equals_the_main_process_run(
    synthetic,
):
    from overfeat.data import open_detection

    torch.manual_seed(0)
    model = _toy("fast", classes=4)  # 3 object classes and the background
    paths = [p for p, _ in open_detection(synthetic / "data", "val").samples]
    protocol = DetectionProtocol(scales=(1, 2), box_source="window", threshold=0.05)
    runs = [detect_dataset(model, 3, None, paths, protocol,
                           RunOptions(batch_size=2, workers=0, progress=False, merge_workers=w,
                                      merge_device=d))
            for w, d in ((0, None), (WORKERS, None), (0, "cpu"))]  # fmt: skip
    assert sum(len(d.scores) for d in runs[0].detections) > 0
    for other in runs[1:]:
        for a, b in zip(runs[0].detections, other.detections):
            assert a.merged == b.merged
            for x, y in zip(a[:3], b[:3]):
                assert np.array_equal(x, y)


def test_the_gates_never_merges_fault_reaches_every_merge_of_a_pass(synthetic, monkeypatch):
    """The gate's "greedy merge never merges" fault patches the one function every merge of a
    pass calls in the main process (the gate's RunOptions keep 0 merge workers)."""
    from overfeat.gate.faults import CODE_FAULTS

    model = _toy("fast", classes=3)
    samples, _, _ = localization_images(synthetic / "data", limit=2)
    protocol = LocalizationProtocol(scales=(1,), box_source="window")
    options = RunOptions(batch_size=2, workers=0, progress=False)
    merged = localize_dataset(model, None, samples, protocol, options).merged
    (fault,) = [f for f in CODE_FAULTS if f.name == "merge-never-merges"]
    fault.inject(monkeypatch.setattr)
    unmerged = localize_dataset(model, None, samples, protocol, options).merged
    # 3 classes x 4 windows of scale 1 x 2 (the mirror image): nothing merged
    assert unmerged.tolist() == [24, 24] and (merged < unmerged).all()


def test_localize_command_writes_the_same_files_whatever_its_merge_workers(
    synthetic, tmp_path, capsys
):
    outs = []
    for workers, device in ((0, None), (WORKERS, None), (WORKERS, "cpu")):
        out = tmp_path / f"loc-{workers}-{device}.txt"
        rc = _cli("localize", "--classifier", synthetic / "run", "--box-source", "window",
                  "--scales", "1,2", "--data", synthetic / "data", "--out", out,
                  "--batch-size", 2, "--workers", 0, "--no-progress",
                  "--merge-workers", workers,
                  *(("--merge-device", device) if device else ()))  # fmt: skip
        printed = capsys.readouterr()
        assert rc == 0, printed.err
        # a merge device is driven by the main process, whatever --merge-workers says
        where = "in the main process" if device or not workers else f"in {workers} worker processes"
        assert where in printed.out
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_a_negative_merge_worker_count_is_refused(synthetic, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        _cli("localize", "--classifier", synthetic / "run", "--data", synthetic / "data",
             "--out", tmp_path / "x.txt", "--merge-workers", "-1")  # fmt: skip
    assert exit_.value.code == 2
    assert "--merge-workers" in capsys.readouterr().err


def test_default_merge_workers_are_the_cpus_this_process_may_use():
    import os

    assert default_merge_workers() == len(os.sched_getaffinity(0))
