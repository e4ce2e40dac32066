"""The gate's tolerances measured across perturbations (a CPU kernel set and a thread count, each
in its own process): the names, the CPUs' refusal of a kernel set they lack, the scheduler's
concurrency, a suite's results through JSON, the tolerances a baseline file gets (against
numbers worked by hand), and a real measurement of the harness suite under two kernel sets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import overfeat.gate.perturb as perturb
from overfeat.cli import main
from overfeat.gate import GateConfig, run_gate
from overfeat.gate.baselines import Measured, SuiteResult, new_baseline
from overfeat.gate.perturb import (
    DEFAULT_PERTURBATIONS,
    MeasurementFailed,
    Perturbation,
    child_command,
    child_env,
    cpu_flags,
    measure_perturbations,
    parse_perturbations,
    run_scheduled,
    supported_kernel_sets,
)
from overfeat.gate.report import render_baselines_readme

X86_ALL = ("default", "avx2", "avx512")


# --- names -----------------------------------------------------------------------------------


def test_perturbation_names_are_kernel_set_and_thread_count_in_order():
    got = parse_perturbations("default-2t, avx2-1t,avx512-4t", supported=X86_ALL)
    assert got == (
        Perturbation("default-2t", 2, "default"),
        Perturbation("avx2-1t", 1, "avx2"),
        Perturbation("avx512-4t", 4, "avx512"),
    )
    assert got[1].env == {
        "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    }  # fmt: skip
    assert got[2].env["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE"
    assert got[0].env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def test_default_perturbations_span_both_thread_counts_of_both_kernel_sets():
    # What the decision asks of the default measurement: the machine's own kernels first (its run
    # is the baseline), and each of default and AVX2 at 2 and at 1 thread.
    assert DEFAULT_PERTURBATIONS[0].kernels == "default"
    spanned = {(p.kernels, p.threads) for p in DEFAULT_PERTURBATIONS}
    assert spanned == {("default", 2), ("default", 1), ("avx2", 2), ("avx2", 1)}


@pytest.mark.parametrize(
    "text", ["2,1", "default-0t,default-1t", "sse4-1t,default-1t", "default-2", "default-2t",
             "default-1t,default-1t", ""],
)  # fmt: skip
def test_malformed_lists_are_refused_naming_the_flag_and_the_forms(text):
    with pytest.raises(ValueError) as exc:
        parse_perturbations(text, supported=X86_ALL)
    message = str(exc.value)
    assert message.startswith("--measure ")
    assert "KERNELS-Nt" in message and "default-2t,default-1t,avx2-1t" in message


def test_kernel_set_the_cpu_lacks_is_refused_saying_which_it_runs():
    with pytest.raises(ValueError, match="cannot run the avx512 kernel set of avx512-1t") as exc:
        parse_perturbations("default-2t,avx512-1t", supported=("default", "avx2"))
    assert "no avx512f in /proc/cpuinfo's flags" in str(exc.value)
    assert "the sets it runs: default, avx2" in str(exc.value)


def test_supported_kernel_sets_follow_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) >= {"avx2", "fma"} and "avx512f" not in cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert supported_kernel_sets(cpu_flags(cpuinfo), "x86_64") == ("default", "avx2")
    assert supported_kernel_sets(frozenset({"avx2", "avx512f"}), "x86_64") == X86_ALL
    assert supported_kernel_sets(frozenset(), "x86_64") == ("default",)
    # Another architecture runs only its default, whatever its flags say.
    assert supported_kernel_sets(frozenset({"avx2", "avx512f"}), "aarch64") == ("default",)


def test_cli_bare_measure_means_the_default_list_and_a_bad_one_names_the_flag(monkeypatch, capsys):
    from overfeat.cli import build_parser

    monkeypatch.setattr(perturb, "supported_kernel_sets", lambda: X86_ALL)
    args = build_parser().parse_args(["regression", "--update-baselines", "--measure"])
    assert args.measure == DEFAULT_PERTURBATIONS
    args = build_parser().parse_args(["regression", "--measure", "avx2-2t,default-1t"])
    assert [p.name for p in args.measure] == ["avx2-2t", "default-1t"]
    assert build_parser().parse_args(["regression"]).measure == ()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["regression", "--measure", "2,1"])
    assert "argument --measure: --measure 2,1: '2' is not a perturbation" in capsys.readouterr().err


def test_cli_measure_without_update_baselines_is_refused_naming_the_fix(tmp_path, capsys):
    code = main(["regression", "--suite", "harness", "--measure", "default-2t,default-1t",
                 "--cache", str(tmp_path / "cache"), "--reports", str(tmp_path / "reports")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "--measure records tolerances" in err and "add --update-baselines" in err
    assert not (tmp_path / "cache").exists()


# --- the child processes -----------------------------------------------------------------------


def test_child_command_passes_the_configuration_and_its_own_cache(tmp_path, monkeypatch):
    config = GateConfig(suites=("harness", "synthetic"), shared_data=tmp_path / "shared",
                        subset=tmp_path / "subset", cache=tmp_path / "cache", workers=3)  # fmt: skip
    p = Perturbation.of("avx2", 1)
    argv = child_command(config, p, tmp_path / "r.json", ["--extra"])
    assert argv[1:6] == ["-m", "overfeat", "regression", "--emit-results", str(tmp_path / "r.json")]

    def given(flag: str) -> list[str]:
        return [argv[i + 1] for i, a in enumerate(argv) if a == flag]

    assert given("--threads") == ["1"]
    assert given("--cache") == [str(tmp_path / "cache" / "perturb-avx2-1t")]
    assert given("--shared-data") == [str(tmp_path / "shared")]
    assert given("--subset") == [str(tmp_path / "subset")]
    assert given("--workers") == ["3"] and given("--device") == ["cpu"]
    assert given("--suite") == ["harness", "synthetic"]
    assert "--no-progress" in argv and argv[-1] == "--extra"

    # A kernel variable the caller exported must not leak into the default set's process.
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    env = child_env(Perturbation.of("default", 2))
    assert "ATEN_CPU_CAPABILITY" not in env and env["OMP_NUM_THREADS"] == "2"
    assert child_env(p)["ATEN_CPU_CAPABILITY"] == "avx2"


def test_a_setting_the_command_line_cannot_pass_is_refused(tmp_path):
    config = GateConfig(suites=("harness",), cache=tmp_path, pretrained_limit=5)
    with pytest.raises(ValueError, match="does not set pretrained_limit"):
        measure_perturbations(config, DEFAULT_PERTURBATIONS[:2], out=lambda _: None)


class _Clock:
    """Fake processes that end after a number of polls, and what ran at each poll."""

    def __init__(self, polls: dict[str, int], fail: str | None = None) -> None:
        self.polls, self.fail, self.now = polls, fail, 0
        self.alive: dict[str, int] = {}  # name -> threads
        self.started: dict[str, int] = {}
        self.seen: list[dict[str, int]] = []
        self.terminated: list[str] = []

    def launch(self, p: Perturbation):
        clock, end = self, self.now + self.polls[p.name]
        self.alive[p.name] = p.threads
        self.started[p.name] = self.now

        class Fake:
            def poll(self):
                if clock.now < end:
                    return None
                return 1 if p.name == clock.fail else 0

            def terminate(self):
                clock.terminated.append(p.name)

        return Fake()

    def tick(self) -> None:
        self.now += 1
        self.seen.append(dict(self.alive))

    def on_end(self, p: Perturbation, status: int, seconds: float) -> None:
        del self.alive[p.name]
        if status:
            raise MeasurementFailed(p.name)


def test_scheduler_runs_the_one_thread_pair_together_never_over_the_cpus():
    ps = parse_perturbations("default-2t,default-1t,avx2-1t", supported=X86_ALL)
    clock = _Clock({"default-2t": 3, "default-1t": 2, "avx2-1t": 4})
    run_scheduled(ps, 2, clock.launch, clock.on_end, clock.tick)
    assert all(sum(alive.values()) <= 2 for alive in clock.seen)
    assert {"default-2t": 2} in clock.seen  # the two-thread one ran alone
    assert {"default-1t": 1, "avx2-1t": 1} in clock.seen  # the pair ran together
    assert clock.started == {"default-2t": 0, "default-1t": 3, "avx2-1t": 3}
    assert not clock.alive and not clock.terminated


def test_scheduler_starts_what_fits_first_and_runs_an_oversized_one_alone():
    ps = parse_perturbations("default-1t,default-4t,avx2-1t", supported=X86_ALL)
    clock = _Clock({"default-1t": 2, "default-4t": 2, "avx2-1t": 3})
    run_scheduled(ps, 2, clock.launch, clock.on_end, clock.tick)
    # The four-thread one cannot fit beside anything on 2 CPUs: it waits for both 1-thread ones.
    assert clock.started == {"default-1t": 0, "avx2-1t": 0, "default-4t": 3}
    assert {"default-4t": 4} in clock.seen
    assert all(len(alive) == 1 for alive in clock.seen if "default-4t" in alive)


def test_scheduler_stops_the_others_when_one_fails():
    ps = parse_perturbations("default-1t,avx2-1t,default-2t", supported=X86_ALL)
    clock = _Clock({"default-1t": 1, "avx2-1t": 5, "default-2t": 1}, fail="default-1t")
    with pytest.raises(MeasurementFailed, match="default-1t"):
        run_scheduled(ps, 2, clock.launch, clock.on_end, clock.tick)
    assert clock.terminated == ["avx2-1t"]
    assert "default-2t" not in clock.started


class _FakePopen:
    """A child that has already run: it wrote one log line and its results, reporting the
    kernels the perturbation asked for (AVX2 also for ``default``, as on a CPU without AVX-512)."""

    def __init__(self, argv, stdout, stderr, env):
        threads = int(argv[argv.index("--threads") + 1])
        stdout.write(f"[harness] ran with {env['OMP_NUM_THREADS']} threads\n")
        stdout.flush()
        result = SuiteResult("harness", {"e": Measured(0.5, "exact", 0.0)}, seconds=1.5)
        data = {"process": {"capability": "AVX2", "threads": threads,
                            "env": {k: env[k] for k in sorted(env) if k.endswith("_NUM_THREADS")}},
                "results": [result.to_json()]}  # fmt: skip
        Path(argv[argv.index("--emit-results") + 1]).write_text(json.dumps(data))

    def poll(self):
        return 0

    def terminate(self):
        pass


def test_measurement_reads_each_childs_results_and_says_when_two_ran_the_same_kernels(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(perturb.subprocess, "Popen", _FakePopen)
    config = GateConfig(suites=("harness",), cache=tmp_path / "cache")
    ps = parse_perturbations("default-2t,default-1t,avx2-1t", supported=X86_ALL)
    printed: list[str] = []
    runs = measure_perturbations(config, ps, printed.append, cpus=2)
    assert list(runs) == ["default-2t", "default-1t", "avx2-1t"]
    assert runs["avx2-1t"].results["harness"].metrics["e"].value == 0.5
    assert runs["default-1t"].info("harness") == {
        "name": "default-1t", "threads": 1, "kernels": "default",
        "env": {"MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}, "capability": "AVX2",
        "seconds": 1.5,
    }  # fmt: skip
    assert "[default-2t] [harness] ran with 2 threads" in printed
    assert any(line.startswith("[avx2-1t] done in ") for line in printed)
    repeat = "[avx2-1t] ran the same kernels (AVX2) and threads as default-1t: it measures no"
    assert f"{repeat} other machine" in printed
    assert (tmp_path / "cache" / "perturb-avx2-1t.log").read_text().startswith(
        "$ ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 "
    )


def test_a_failing_child_fails_the_measurement_with_its_log(tmp_path):
    config = GateConfig(suites=("harness",), cache=tmp_path / "cache")
    ps = parse_perturbations("default-1t,default-2t", supported=X86_ALL)
    printed: list[str] = []
    # An option the child's parser refuses: a real process that exits 2 within seconds.
    with pytest.raises(MeasurementFailed) as exc:
        measure_perturbations(config, ps, printed.append, argv_extra=["--no-such-flag"], cpus=2)
    log = tmp_path / "cache" / "perturb-default-1t.log"
    message = str(exc.value)
    assert message.startswith("perturbation default-1t exited with status 2")
    assert str(log) in message and "unrecognized arguments: --no-such-flag" in message
    assert "unrecognized arguments" in log.read_text()
    # The two-thread one waited for the CPUs and never started.
    assert not (tmp_path / "cache" / "perturb-default-2t.log").exists()
    assert any(line.startswith("[default-1t] ") and "unrecognized" in line for line in printed)


# --- results and baselines ---------------------------------------------------------------------


def test_suite_result_survives_json():
    result = SuiteResult(
        "det-synthetic",
        metrics={
            "mAP": Measured(0.0036331, "higher_is_better", 1e-5, "devkit DET rules", "det"),
            "loss": Measured(1.49951, "lower_is_better", 1e-5),
            "broken": Measured(float("nan"), "lower_is_better", 0.0),
        },
        data={"name": "synthetic-4dc6", "det_val_images": 30},
        settings={"scales": [1, 2], "val_limit": None},
        seconds=42.9,
    )
    back = SuiteResult.from_json(json.loads(json.dumps(result.to_json())))
    assert math.isnan(back.metrics.pop("broken").value)
    del result.metrics["broken"]
    assert back == result
    skipped = SuiteResult("train-real", settings={"a": 1}, skipped="absent")
    assert SuiteResult.from_json(json.loads(json.dumps(skipped.to_json()))) == skipped


def _results(values: dict[str, tuple[float, float, float]]) -> dict[str, SuiteResult]:
    how = {  # metric -> (direction, floor, group)
        "detector train loss": ("lower_is_better", 1e-5, ""),
        "T2-2 top-1 error": ("lower_is_better", 0.02, "errors"),
        "T2-3 top-1 error": ("lower_is_better", 0.02, "errors"),
        "true-class score": ("higher_is_better", 1e-5, ""),
        "devkit error": ("exact", 0.0, ""),
    }
    out = {}
    for i, name in enumerate(["default-2t", "default-1t", "avx2-1t"]):
        out[name] = SuiteResult("s", data={"n": 50}, seconds=10.0 + i, metrics={
            m: Measured(v[i], how[m][0], how[m][1], group=how[m][2]) for m, v in values.items()
        })  # fmt: skip
    return out


def test_new_baseline_tolerances_match_the_rule_worked_by_hand(tmp_path):
    runs = _results({
        # spread 1.49976 - 1.49951 = 0.00025; 3 x 0.00025 = 0.00075
        "detector train loss": (1.49951, 1.49964, 1.49976),
        # spreads 0.04 and 0; their group's is 0.04: 3 x 0.04 = 0.12 for both
        "T2-2 top-1 error": (0.52, 0.50, 0.54),
        "T2-3 top-1 error": (0.30, 0.30, 0.30),
        # spread 0.00123; 3 x 0.00123 = 0.00369, rounded up to 2 digits: 0.0037
        "true-class score": (0.30050, 0.30000, 0.30123),
        "devkit error": (0.99898, 0.99898, 0.99898),
    })  # fmt: skip
    info = [{"name": n, "capability": c} for n, c in
            [("default-2t", "AVX512"), ("default-1t", "AVX512"), ("avx2-1t", "AVX2")]]  # fmt: skip
    new = new_baseline(runs["default-2t"], None, runs, "overfeat regression --measure", info)
    m = new["metrics"]
    tolerance = {name: entry["tolerance"] for name, entry in m.items()}
    assert tolerance == pytest.approx({
        "detector train loss": 0.00075, "T2-2 top-1 error": 0.12,
        "true-class score": 0.0037, "devkit error": 0.0,
    }, rel=1e-12)  # fmt: skip
    # T2-3's group tolerance 0.12 is more than a quarter of its distance from 0 (0.30 / 4 =
    # 0.075; no chance value given): recorded as not gated, with why (GATE_TOLERANCE_SHARE).
    # T2-2's 0.12 is within 0.52 / 4 = 0.13.
    assert set(new["dropped"]) == {"T2-3 top-1 error"}
    assert new["dropped"]["T2-3 top-1 error"]["tolerance"] == pytest.approx(0.12)
    assert "exceeds 0.25 of its distance 0.3 from chance" in new["dropped"]["T2-3 top-1 error"]["reason"]
    assert m["detector train loss"]["baseline"] == 1.49951  # the first perturbation's value
    assert m["detector train loss"]["measurement"]["values_by_perturbation"] == {
        "default-2t": 1.49951, "default-1t": 1.49964, "avx2-1t": 1.49976,
    }  # fmt: skip
    dropped = new["dropped"]["T2-3 top-1 error"]["measurement"]
    assert dropped["spread"] == 0.0 and dropped["group_spread"] == pytest.approx(0.04)
    assert m["devkit error"]["measurement"]["rule"] == "0 (exact)"
    assert new["recorded"]["perturbations"] == info

    (tmp_path / "s.json").write_text(json.dumps(new))
    readme = render_baselines_readme(tmp_path).read_text()
    assert "| avx2-1t |  |  | AVX2 |  |" in readme
    assert "| metric | direction | baseline | default-2t | default-1t | avx2-1t | spread |" in readme
    assert "| T2-2 top-1 error | lower_is_better | 0.52 | 0.52 | 0.5 | 0.54 | 0.04 | 0.04 | 0.12 |" in readme
    assert "Not gated: **T2-3 top-1 error** (default-2t: 0.3 / default-1t: 0.3 / avx2-1t: 0.3)" in readme


def test_new_baseline_refuses_an_exact_metric_that_varied():
    runs = _results({"devkit error": (0.99898, 0.99898, 0.99899)})
    with pytest.raises(ValueError, match="exact metric varied across perturbations"):
        new_baseline(runs["default-2t"], None, runs, "c", None)


def test_baseline_update_without_measuring_keeps_the_recorded_perturbations():
    runs = _results({"detector train loss": (1.49951, 1.49964, 1.49976)})
    first = new_baseline(runs["default-2t"], None, runs, "c", [{"name": "default-2t"}])
    again = new_baseline(runs["default-1t"], first, None, "c")
    assert again["recorded"]["perturbations"] == [{"name": "default-2t"}]
    assert again["metrics"]["detector train loss"]["baseline"] == 1.49964
    assert again["metrics"]["detector train loss"]["tolerance"] == 0.00075


# --- a real measurement ------------------------------------------------------------------------


def test_harness_measured_under_default_and_avx2_kernels_in_own_processes(devkit_dir, tmp_path):
    if "avx2" not in supported_kernel_sets():
        pytest.skip("this CPU cannot run the avx2 kernel set")
    config = GateConfig(suites=("harness",), shared_data=devkit_dir.parent,
                        cache=tmp_path / "cache")  # fmt: skip
    printed: list[str] = []
    outcome = run_gate(config, tmp_path / "baselines", None, update=True,
                       measure=parse_perturbations("default-1t,avx2-1t"),
                       command="overfeat regression --measure default-1t,avx2-1t",
                       out=printed.append)  # fmt: skip
    assert outcome.exit_code == 0, "\n".join(printed)
    data = json.loads((tmp_path / "baselines" / "harness.json").read_text())
    recorded = {p["name"]: p for p in data["recorded"]["perturbations"]}
    assert list(recorded) == ["default-1t", "avx2-1t"]
    assert recorded["avx2-1t"]["capability"] == "AVX2"
    assert recorded["avx2-1t"]["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert recorded["default-1t"]["capability"] and recorded["default-1t"]["threads"] == 1
    assert all(p["seconds"] > 0 for p in recorded.values())
    assert len(data["metrics"]) == 8
    for name, m in data["metrics"].items():
        assert m["tolerance"] == 0.0, name
        assert list(m["measurement"]["values_by_perturbation"]) == ["default-1t", "avx2-1t"]
    for name in ("default-1t", "avx2-1t"):
        assert Path(tmp_path / "cache" / f"perturb-{name}.log").is_file()
        assert any(line.startswith(f"[{name}] done in ") for line in printed)
        assert any(line.startswith(f"[{name}] [harness] ") for line in printed)
    assert "| avx2-1t | 1 |" in (tmp_path / "baselines" / "README.md").read_text()


def test_a_metric_recorded_as_not_gated_is_not_judged(tmp_path):
    from overfeat.gate.baselines import compare, write_baseline

    runs = _results({"T2-2 top-1 error": (0.52, 0.50, 0.54), "T2-3 top-1 error": (0.30, 0.30, 0.30)})
    # Not measured anew: the dropped metric keeps being dropped, whatever its value now.
    base = new_baseline(runs["default-2t"], None, runs, "c", None)
    write_baseline(tmp_path, base)
    again = new_baseline(runs["default-1t"], base, None, "c")
    assert set(again["dropped"]) == {"T2-3 top-1 error"}
    rows = compare(runs["avx2-1t"], tmp_path)
    assert [(r.metric, r.status) for r in rows] == [("T2-2 top-1 error", "ok")]
