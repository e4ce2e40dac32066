"""``nox -s gpu_check -- --dry-run``: every part of the GPU check (environment, inference,
training, determinism, localization, the gate's cheap suites) runs at toy sizes on the CPU,
each within its time cap, and is reported in the text and the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_check import CAPS, PARTS  # noqa: E402


def test_dry_run_caps_sum_to_under_two_minutes_and_gpu_caps_to_under_eight():
    assert sum(gpu for gpu, _ in CAPS.values()) <= 8 * 60 - 20  # the processes' start-up
    assert sum(dry for _, dry in CAPS.values()) <= 2 * 60 - 5


@pytest.mark.slow
def test_dry_run_reports_every_part(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out",
         str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    tail = proc.stdout[-4000:] + proc.stderr[-2000:]
    record = json.loads((tmp_path / "gpu-dry-run-cpu.json").read_text())
    text = (tmp_path / "gpu-dry-run-cpu.txt").read_text()
    assert list(record["parts"]) == list(PARTS)
    for name, part in record["parts"].items():
        assert part["status"] == "ok", f"{name}: {part}\n{tail}"
        assert part["wall_s"] <= part["cap_s"]
        assert f"## {name}" in text and f"-- {name}: ok" in text
    assert proc.returncode == 0, tail
    assert record["seconds"] < 120
    parts = {name: part["result"] for name, part in record["parts"].items()}
    assert parts["environment"]["torch"] and parts["environment"]["bf16_peak_tflops"] > 0
    rows = [r["row"] for r in parts["inference"]["rows"]]
    assert rows == ["T2-2", "T2-3", "T2-4", "T2-5", "T2-6", "T2-7"]
    for r in parts["inference"]["rows"]:
        assert r["fp32_images_per_s"] > 0 and r["bf16_images_per_s"] > 0
        assert 0 <= r["max_abs_diff"] < 1
    assert {(r["arch"], r["loader"]) for r in parts["training"]["rows"]} >= {
        ("fast", "pil"), ("accurate", "pil")}  # fmt: skip
    assert all(r["images_per_s"] > 0 and r["mfu"] > 0 for r in parts["training"]["rows"])
    # The CPU computes the same bits in either mode: both resumed runs equal their whole runs.
    assert parts["determinism"]["deterministic"]["bit_for_bit"]
    assert parts["determinism"]["default"]["bit_for_bit"]
    # the merges in CPU workers and batched on the device (MERGE_PATH) give the same output
    assert parts["localization"]["ratio"]["identical_output"]
    assert parts["localization"]["ratio"]["merge_device"] == "cpu"
    assert parts["localization"]["ratio"]["images_per_s"]["device"] > 0
    assert {r["scales"][-1] for r in parts["localization"]["split"]} == {1, 2}
    assert parts["gate"]["exit_code"] == 0
