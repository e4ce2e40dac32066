"""The user interface: ``nox -s <session> [-- args]``.

Heavy sessions (tests, train, benchmark, gpu_check, reproduce_*) share ONE virtual environment,
``.nox/overfeat``, because PyTorch alone fills several GB; it is created on first use and
re-installed only when ``pyproject.toml`` changes. ``lint`` has its own small environment.

Set ``OVERFEAT_TORCH`` to the pip requirement(s) for PyTorch (default: the pinned CUDA build,
which also runs on the CPU); set it to an empty string to keep a PyTorch you installed yourself.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).resolve().parent
ENV = ROOT / ".nox" / "overfeat"
TORCH = os.environ.get("OVERFEAT_TORCH", "torch==2.14.1 torchvision==0.29.1").split()


def _python(session: nox.Session) -> str:
    """The shared environment's interpreter, created or refreshed as needed."""
    py = ENV / "bin" / "python"
    stamp = ENV / ".installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + " ".join(TORCH).encode())
    if not py.exists():
        session.run(sys.executable, "-m", "venv", str(ENV), external=True)
    if not stamp.exists() or stamp.read_text() != want.hexdigest():
        pip = [str(py), "-m", "pip", "install", "--quiet"]
        if TORCH:
            session.run(*pip, *TORCH, external=True)
        session.run(*pip, "-e", f"{ROOT}[dev]", external=True)
        stamp.write_text(want.hexdigest())
    return str(py)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Run the test suite (CPU; ``gpu`` tests skip themselves without CUDA)."""
    session.run(_python(session), "-m", "pytest", *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session(python=False)
def train(session: nox.Session) -> None:
    """Train a network: ``nox -s train -- classifier --data DIR --arch fast --out RUN``."""
    session.run(_python(session), "-m", "overfeat", "train", *session.posargs, external=True)


@nox.session(python=False)
def benchmark(session: nox.Session) -> None:
    """Run benchmarks: ``nox -s benchmark -- NAME [ARGS]`` (every one, with defaults, when no
    name is given; gpu_check has its own session); ARGS pass through to ``benchmarks/NAME.py``."""
    py = _python(session)
    if session.posargs:
        name, *args = session.posargs
        session.run(py, str(ROOT / "benchmarks" / f"{name}.py"), *args, external=True)
        return
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if path.stem != "gpu_check":  # needs a GPU, or --dry-run: nox -s gpu_check
            session.run(py, str(path), external=True)


@nox.session(python=False)
def gpu_check(session: nox.Session) -> None:
    """Everything a GPU machine should be checked for, in one run of at most 8 minutes on one
    H100/H200 (environment, inference, training, determinism, localization, the gate's cheap
    suites): ``nox -s gpu_check [-- --dry-run | --parts inference,training | --data DIR]``;
    writes ``reports/benchmarks/gpu-<device>.txt`` and ``.json``."""
    session.run(_python(session), str(ROOT / "benchmarks" / "gpu_check.py"), *session.posargs,
                external=True)  # fmt: skip


@nox.session(python=False)
def make_synthetic(session: nox.Session) -> None:
    """Write a synthetic ILSVRC: ``nox -s make_synthetic -- OUT [--seed S --classes N ...]``."""
    session.run(_python(session), "-m", "overfeat", "make-synthetic", *session.posargs, external=True)


def _reproduce(session: nox.Session, artifact: str) -> None:
    session.run(
        _python(session), "-m", "overfeat", "reproduce", artifact, "--readme", "README.md",
        *session.posargs, external=True,
    )  # fmt: skip


@nox.session(python=False)
def reproduce_table2(session: nox.Session) -> None:
    """Table 2: ``nox -s reproduce_table2 [-- --data DIR --release-weights DIR ...]``; with no
    arguments, the embedded default (synthetic data, toy networks trained on this machine)."""
    _reproduce(session, "table2")


@nox.session(python=False)
def reproduce_figure9(session: nox.Session) -> None:
    """Figure 9: ``nox -s reproduce_figure9 [-- --data DIR --checkpoints classifier=RUN scr=RUN
    pcr=RUN ...]``; with no arguments, the embedded default (synthetic data, the toy classifier
    of Table 2's default and its regressors, trained on this machine)."""
    _reproduce(session, "figure9")


@nox.session(python=False)
def reproduce_detection(session: nox.Session) -> None:
    """Detection (§5): ``nox -s reproduce_detection [-- --data DIR --checkpoints detector=RUN
    regressor=RUN ...]``; with no arguments, the embedded default (synthetic DET images, a toy
    detector and regressor trained on this machine)."""
    _reproduce(session, "detection")


@nox.session(python=False)
def reproduce_all(session: nox.Session) -> None:
    """Every artifact in one run (Tables 4, 5, 2, Figure 9, detection) and the reports/README.md
    index: ``nox -s reproduce_all [-- --data DIR --train ...]``; with no arguments, the embedded
    default of each."""
    _reproduce(session, "all")


@nox.session(python=False)
def reproduce_table4(session: nox.Session) -> None:
    """Table 4: parameters and connections from the layer arithmetic, beside the paper's."""
    _reproduce(session, "table4")


@nox.session(python=False)
def reproduce_table5(session: nox.Session) -> None:
    """Table 5: the six scales and their map sizes from the layer arithmetic."""
    _reproduce(session, "table5")


@nox.session(python=False)
def report(session: nox.Session) -> None:
    """Re-render every report, reports/README.md and the README's tables from the saved CSV/JSON
    (no network runs)."""
    _reproduce(session, "report")


@nox.session(python=False)
def regression(session: nox.Session) -> None:
    """The CI regression gate: ``nox -s regression [-- --suite NAME --subset PATH ...]``; every
    suite against reports/baselines/, the table in reports/regression/, exit 1 on a regression."""
    session.run(_python(session), "-m", "overfeat", "regression", *session.posargs, external=True)
