"""What a reproduction keeps between invocations, and when it may not reuse it.

- Cache keys are the content of the network files (decision CONTENT_KEYS): other weights in the
  same file, of the same size, give new numbers, not the old ones "(reused)".
- A row interrupted part way continues where it stopped (decision ROW_PROGRESS_SAVED) and ends
  with what an uninterrupted run computes.
- A run's report holds every row the run has finished on the same images with the same
  networks, whichever invocation ran it (decision RUN_MERGES_FINISHED_ROWS).

Networks are toy-width OverFeat networks saved as training checkpoints, or full-size files in
the release's layout (``tests/test_release.py``'s documented offsets); images are a small
synthetic ILSVRC set, or the real ILSVRC2012 validation images of ../shared/data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from test_release import DOC_FAST, DOC_TOTALS
from test_reproduce_table2 import make_run

from overfeat import inference
from overfeat.cli import main
from overfeat.data.synthetic import SyntheticConfig, write_synthetic
from overfeat.reproduce import content, partial, runner
from overfeat.reproduce.content import FileHashes
from overfeat.reproduce.networks import from_checkpoints
from overfeat.reproduce.partial import PartialRow
from overfeat.reproduce.runner import RunOptions, run_row, validation_samples
from overfeat.reproduce.table2 import Table2Request, reproduce_table2
from overfeat.scales import TABLE2_PROTOCOLS

QUIET = RunOptions(batch_size=2, workers=0, progress=False)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """12 validation images (3 classes × 4): enough batches of 2 to stop a row part way."""
    root = tmp_path_factory.mktemp("data") / "small"
    write_synthetic(root, SyntheticConfig(seed=4, classes=3, train_per_class=1, val_per_class=4,
                                          det_images=0))  # fmt: skip
    return root


def _file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def _rewrite_keeping_mtime(path, write) -> None:
    """Rewrite ``path`` in place (same inode, same size) with ``write(file)``, then set its
    modification time back, as ``cp -p`` over an old copy would."""
    st = path.stat()
    with open(path, "r+b") as f:
        write(f)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


# ----------------------------------------------------------------------------- content keys


def test_file_hashes_are_remembered_and_redone_when_the_file_changes(tmp_path, monkeypatch):
    hashed: list[str] = []
    real = content._hash_file
    monkeypatch.setattr(content, "_hash_file", lambda p: hashed.append(p.name) or real(p))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"a" * 1000)
    memo = tmp_path / "cache" / "sha256.json"

    assert FileHashes(memo).sha256(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert FileHashes(memo).sha256(weights) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert hashed == ["w.bin"]  # the second process read the digest from the memo

    _rewrite_keeping_mtime(weights, lambda f: f.write(b"b" * 1000))
    assert FileHashes(memo).sha256(weights) == hashlib.sha256(b"b" * 1000).hexdigest()
    assert hashed == ["w.bin", "w.bin"]


def test_a_checkpoint_rewritten_in_place_gives_its_own_numbers(small_data, tmp_path):
    """A run folder whose checkpoint is replaced by another network of the same shape, under
    the same file name: the row is recomputed and equals a fresh run of the new network."""
    run = make_run(tmp_path / "fast", "fast", 3, seed=0)
    request = Table2Request(data=str(small_data), rows=("T2-2",), checkpoints=(f"fast={run}",),
                            name="swap", cache=str(tmp_path / "cache"),
                            reports=str(tmp_path / "reports"), options=QUIET)  # fmt: skip
    reproduce_table2(request)
    work = tmp_path / "cache" / "table2" / "swap"
    before = (work / "predictions" / "T2-2.txt").read_text()
    ckpt = next(run.glob("checkpoint-*.pt"))
    old_size = ckpt.stat().st_size

    make_run(tmp_path / "other", "fast", 3, seed=1)
    shutil.copyfile(tmp_path / "other" / ckpt.name, ckpt)  # same name, new weights
    assert ckpt.stat().st_size == old_size
    csv = reproduce_table2(request)
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert not meta["rows_from_earlier_invocations"]
    record = meta["rows"]["T2-2"]
    assert record["networks"][0]["sha256"] == {str(ckpt.resolve()): _file_sha256(ckpt)}

    fresh = Table2Request(data=str(small_data), rows=("T2-2",),
                          checkpoints=(f"fast={tmp_path / 'other'}",), name="fresh",
                          cache=str(tmp_path / "cache2"), reports=str(tmp_path / "reports2"),
                          options=QUIET)  # fmt: skip
    reproduce_table2(fresh)
    expected = (tmp_path / "cache2" / "table2" / "fresh" / "predictions" / "T2-2.txt").read_text()
    after = (work / "predictions" / "T2-2.txt").read_text()
    assert after == expected and after != before


# overfeat-release.md §1.2 as tests/test_release.py writes it down: the fast file's float count
# and the offset of its last bias (fc8.b, 1000 floats in ILSVRC2012_ID order).
FAST_FLOATS = DOC_TOTALS["fast"][0]
FAST_LAST_BIAS = next(offset for name, _, offset in DOC_FAST if name == "fc8.b")


def _favour(f, ilsvrc_id: int) -> None:
    """Make the file a full-size fast network that classifies every image as ``ilsvrc_id``:
    weights 0 (a sparse file), last bias +10 at that class and −10 elsewhere."""
    f.truncate(4 * FAST_FLOATS)
    bias = np.full(1000, -10.0, dtype="<f4")
    bias[ilsvrc_id - 1] = 10.0
    f.seek(4 * FAST_LAST_BIAS)
    f.write(bias.tobytes())


@pytest.mark.slow
def test_swapped_release_weights_of_the_same_size_give_the_new_numbers(
    val_mini_dir, devkit_dir, tmp_path, monkeypatch, capsys
):
    """A user's path: ``--release-weights DIR --rows T2-2 --limit 50`` with one set of
    weights, then ``net_weight_0`` overwritten with other weights (same size, its modification
    time kept) and the same command without ``--cache``: the numbers are the new weights',
    counted here from the ground truth."""
    import scipy.io

    meta_mat = devkit_dir / "t12" / "meta.mat"
    synsets = scipy.io.loadmat(meta_mat, squeeze_me=True)["synsets"]
    wnid_id = {str(s["WNID"]): int(s["ILSVRC2012_ID"]) for s in synsets if int(s["ILSVRC2012_ID"]) <= 1000}
    solution = pd.read_csv(val_mini_dir / "LOC_val_solution.csv").sort_values("ImageId").head(6)
    truth = [p.split()[0] for p in solution.PredictionString]
    common = max(set(truth), key=truth.count)  # weights A: right on these images
    absent = next(w for w in sorted(wnid_id) if w not in truth)  # weights B: wrong on every one

    monkeypatch.chdir(tmp_path)  # the default --cache and --reports land here
    (tmp_path / "weights").mkdir()
    weights = tmp_path / "weights" / "net_weight_0"
    with open(weights, "wb") as f:
        _favour(f, wnid_id[common])
    argv = ["reproduce", "table2", "--data", str(val_mini_dir), "--release-weights", "weights",
            "--meta", str(meta_mat), "--rows", "T2-2", "--limit", "6", "--no-progress",
            "--workers", "0"]  # fmt: skip
    csv = tmp_path / "reports" / "table2" / "ilsvrc2012-val-mini-release-first6.csv"

    assert main(argv) == 0
    first = pd.read_csv(csv).set_index("row").at["T2-2", "top1_error"]
    assert first == pytest.approx(100 * sum(w != common for w in truth) / 6)
    capsys.readouterr()

    _rewrite_keeping_mtime(weights, lambda f: _favour(f, wnid_id[absent]))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "(reused)" not in out
    assert pd.read_csv(csv).set_index("row").at["T2-2", "top1_error"] == 100.0
    meta = json.loads(csv.with_suffix(".json").read_text())
    digest = _file_sha256(weights)
    assert meta["rows"]["T2-2"]["networks"][0]["sha256"][str(weights.resolve())] == digest
    assert meta["networks_sha256"]["released fast network (net_weight_0)"][str(weights.resolve())] == digest

    hashed = []
    monkeypatch.setattr(content, "_hash_file", lambda p: hashed.append(p) or "")
    assert main(argv) == 0
    assert "(reused)" in capsys.readouterr().out and hashed == []  # remembered, not read again


# ----------------------------------------------------------------------------- resumable rows


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, raised by the network itself part way through a row."""


def _ref(run, num_classes, stop_after=None, seen_on_disk=None, work=None):
    """The checkpoint's NetworkRef, its network stopping (Ctrl-C) at forward call
    ``stop_after + 1``; at that moment, before any handler runs, the images the row's saved
    state on disk says are done go to ``seen_on_disk``."""
    ref = from_checkpoints({"fast": [run]}, num_classes)["fast"][0]
    if stop_after is None:
        return ref

    def load():
        model = ref.load()
        calls = [0]

        def hook(module, args):
            calls[0] += 1
            if calls[0] > stop_after:
                states = list((work / "partial").glob("*/state.npy"))
                seen_on_disk.append(int((np.load(states[0]) != 0).sum()) if states else 0)
                raise Interrupted

        model.features.register_forward_pre_hook(hook)
        return model

    return type(ref)(ref.arch, ref.key, ref.label, ref.full_size, load, files=ref.files)


@pytest.mark.parametrize("save_seconds", [0.0, 1e9], ids=["saved-every-batch", "saved-on-ctrl-c"])
def test_an_interrupted_row_continues_with_the_images_it_had_not_finished(
    small_data, tmp_path, monkeypatch, save_seconds
):
    """T2-2 (one scale, flips in the same call: one forward call per batch of 2) stops at its
    4th batch: 3 batches, 6 images, are kept (saved as they finish, or when Ctrl-C arrives);
    the same call again decodes only the other 6 images, and its vectors, predictions and
    errors are those of a row that ran uninterrupted."""
    monkeypatch.setattr(partial, "SAVE_SECONDS", save_seconds)
    run = make_run(tmp_path / "fast", "fast", 3, seed=2)
    samples, classes = validation_samples(small_data)
    assert len(samples) == 12
    protocol = TABLE2_PROTOCOLS["T2-2"]
    work = tmp_path / "work"
    seen_on_disk: list[int] = []
    stopping = _ref(run, len(classes), stop_after=3, seen_on_disk=seen_on_disk, work=work)
    with pytest.raises(KeyboardInterrupt):
        run_row("T2-2", protocol, [stopping], samples, work, QUIET)
    # On disk before any handler ran: the 3 finished batches when saved as they finish; nothing
    # when only Ctrl-C saves (and it still keeps them: see the second call).
    assert seen_on_disk == [6 if save_seconds == 0 else 0]
    assert not (work / "rows" / "T2-2.json").exists()

    decoded: list[str] = []
    real_decode = inference.decode_rgb
    monkeypatch.setattr(inference, "decode_rgb", lambda p: decoded.append(p) or real_decode(p))
    record = run_row("T2-2", protocol, [_ref(run, len(classes))], samples, work, QUIET)
    assert decoded == [p for p, _ in samples[6:]]
    assert not (work / "partial").exists() or not any((work / "partial").iterdir())

    whole = run_row("T2-2", protocol, [_ref(run, len(classes))], samples, tmp_path / "whole", QUIET)
    assert record["harness"] == whole["harness"]
    assert (work / "predictions" / "T2-2.txt").read_text() == (
        tmp_path / "whole" / "predictions" / "T2-2.txt").read_text()  # fmt: skip
    (ours,) = [p for p in (work / "vectors").glob("*.npy") if not p.name.endswith(".decoded.npy")]
    theirs = tmp_path / "whole" / "vectors" / ours.name
    np.testing.assert_allclose(np.load(ours), np.load(theirs), rtol=0, atol=1e-6)


def test_an_interrupted_command_exits_130_and_the_same_command_finishes_the_row(
    small_data, tmp_path, monkeypatch, capsys
):
    """Through ``overfeat reproduce table2``: Ctrl-C part way through a row ends the command
    with "interrupted" and status 130; the same command computes the rest and writes the
    report, its numbers those of an uninterrupted run."""
    monkeypatch.setattr(partial, "SAVE_SECONDS", 1e9)
    run = make_run(tmp_path / "fast", "fast", 3, seed=2)
    real = runner._member_vectors
    images_seen: list[int] = []

    def stop_in_second_batch(members, protocol, samples, options, desc, part):
        images_seen.append(len(part.todo()))
        if len(images_seen) == 1:
            model = members[0].load()
            calls = [0]

            def hook(module, args):
                calls[0] += 1
                if calls[0] > 1:
                    raise KeyboardInterrupt

            model.features.register_forward_pre_hook(hook)
            members = [type(members[0])(members[0].arch, members[0].key, members[0].label,
                                        False, lambda: model, files=members[0].files)]  # fmt: skip
        return real(members, protocol, samples, options, desc, part)

    monkeypatch.setattr(runner, "_member_vectors", stop_in_second_batch)
    argv = ["reproduce", "table2", "--data", str(small_data), "--checkpoints", f"fast={run}",
            "--rows", "T2-2", "--batch-size", "2", "--workers", "0", "--no-progress",
            "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports")]  # fmt: skip
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert main(argv) == 0
    assert images_seen == [12, 10]  # the first batch of 2 was kept
    csv = next((tmp_path / "reports" / "table2").glob("*.csv"))
    ours = pd.read_csv(csv).set_index("row").loc["T2-2"]
    assert main([*argv[:-4], "--cache", str(tmp_path / "c2"), "--reports", str(tmp_path / "r2")]) == 0
    theirs = pd.read_csv(next((tmp_path / "r2" / "table2").glob("*.csv"))).set_index("row").loc["T2-2"]
    assert (ours.top1_error, ours.top5_error) == (theirs.top1_error, theirs.top5_error)


def test_saved_progress_is_picked_up_and_unreadable_progress_is_started_again(tmp_path):
    folder = tmp_path / "partial" / "row"
    row = PartialRow(folder, 4, 1)
    row.record(np.array([0, 1]), [np.full((2, 3), 7.0, dtype=np.float32)])
    row.skip(np.array([2]))
    row.save()
    again = PartialRow(folder, 4, 1)
    assert again.todo().tolist() == [3]
    assert again.decoded.tolist() == [True, True, False, False]
    np.testing.assert_array_equal(again.vectors[0][:2], 7.0)
    assert PartialRow(folder, 5, 1).todo().tolist() == [0, 1, 2, 3, 4]  # other images: anew

    row = PartialRow(folder, 4, 1)
    row.record(np.array([0]), [np.ones((1, 3), dtype=np.float32)])
    row.save()
    (folder / "0.npy").write_bytes(b"damaged")
    assert PartialRow(folder, 4, 1).todo().tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- one run, one report


def test_rows_run_one_at_a_time_make_one_report(small_data, tmp_path, monkeypatch, capsys):
    """``--rows T2-2`` then ``--rows T2-3`` (same data, limit and networks): the second report
    holds both, T2-2 as the first invocation computed it, without computing it again; with
    other networks under the same run name, T2-2 is not merged."""
    calls: list[str] = []
    real = runner._member_vectors

    def spy(members, protocol, samples, options, desc, part):
        calls.append(desc.split()[0])
        return real(members, protocol, samples, options, desc, part)

    monkeypatch.setattr(runner, "_member_vectors", spy)
    run = make_run(tmp_path / "fast", "fast", 3, seed=0)

    def command(rows, fast):
        return ["reproduce", "table2", "--data", str(small_data), "--checkpoints", f"fast={fast}",
                "--rows", rows, "--limit", "8", "--workers", "0", "--no-progress", "--name", "r",
                "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports")]  # fmt: skip

    assert main(command("T2-2", run)) == 0
    csv = tmp_path / "reports" / "table2" / "r.csv"
    t2_2 = pd.read_csv(csv).set_index("row").loc["T2-2"]
    assert main(command("T2-3", run)) == 0
    assert calls == ["T2-2", "T2-3"]
    out = capsys.readouterr().out
    assert "T2-2: top-1" in out and "from an earlier invocation" in out
    table = pd.read_csv(csv).set_index("row")
    assert list(table.index) == ["T2-2", "T2-3"]
    assert (table.at["T2-2", "top1_error"], table.at["T2-2", "top5_error"]) == (
        t2_2.top1_error, t2_2.top5_error)  # fmt: skip
    meta = json.loads(csv.with_suffix(".json").read_text())
    assert meta["rows_from_earlier_invocations"] == ["T2-2"]
    assert set(meta["rows"]) == {"T2-2", "T2-3"}
    # The per-image outcomes merge the same way: both rows, each counting the errors its row
    # reports, in the report's file and in the run folder's.
    from evaluation.outcomes import read_outcomes

    outcomes = read_outcomes(csv.with_name("r.outcomes.csv.gz"))
    assert read_outcomes(tmp_path / "cache" / "table2" / "r" / "outcomes.csv.gz").equals(outcomes)
    assert len(outcomes) == 8
    for row in ("T2-2", "T2-3"):
        for metric in ("top1", "top5"):
            wrong = outcomes[f"{row}:{metric}_wrong"]
            assert 100 * wrong.sum() / 8 == pytest.approx(table.at[row, f"{metric}_error"])

    other = make_run(tmp_path / "fast-other", "fast", 3, seed=1)
    assert main(command("T2-3", other)) == 0
    assert list(pd.read_csv(csv)["row"]) == ["T2-3"]
    assert not any(c.startswith("T2-2") for c in read_outcomes(csv.with_name("r.outcomes.csv.gz")))
