"""The throughput benchmark's MAC count, against Table 1 / Table 3 layer arithmetic by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from overfeat.models import ARCHS, build_model

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "train_throughput.py"
_spec = importlib.util.spec_from_file_location("train_throughput", _PATH)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# out_h × out_w × out_channels × (kernel² × in_channels), layer by layer, from Tables 1 and 3 with
# the sizes worked by hand (fast: 231 → 56 → 28 → 24 → 12 → 12 → 12 → 6 → 1;
# accurate: 221 → 108 → 36 → 30 → 15 → 15 … → 5 → 1).
FAST_MACS = (56 * 56 * 96 * 11 * 11 * 3 + 24 * 24 * 256 * 5 * 5 * 96
             + 12 * 12 * 512 * 9 * 256 + 12 * 12 * 1024 * 9 * 512 + 12 * 12 * 1024 * 9 * 1024
             + 3072 * 6 * 6 * 1024 + 4096 * 3072 + 1000 * 4096)  # fmt: skip
ACCURATE_MACS = (108 * 108 * 96 * 7 * 7 * 3 + 30 * 30 * 256 * 7 * 7 * 96
                 + 15 * 15 * 512 * 9 * 256 + 15 * 15 * 512 * 9 * 512
                 + 15 * 15 * 1024 * 9 * 512 + 15 * 15 * 1024 * 9 * 1024
                 + 4096 * 5 * 5 * 1024 + 4096 * 4096 + 1000 * 4096)  # fmt: skip


@pytest.mark.parametrize("arch, expected", [("fast", FAST_MACS), ("accurate", ACCURATE_MACS)])
def test_benchmark_counts_the_multiply_accumulates_of_the_paper_tables(arch, expected):
    assert bench.macs_per_image(build_model(arch), ARCHS[arch].input_size) == expected
    # FACTS.md §2: about 2801 M (fast) and 5355 M (accurate) at the training input sizes.
    assert round(expected / 1e6) == {"fast": 2801, "accurate": 5355}[arch]


def test_peak_table_matches_device_names_most_specific_first():
    assert bench.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench.peak_tflops("Tesla T4") is None
