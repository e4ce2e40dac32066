"""The package's layers, read from its source with ``ast``: what the reproductions are built on
never imports them, and the data layer never imports the training engine.

Layers, bottom up: ``overfeat.data`` (readers, decoding, samplers); the networks, dense
inference, localization and detection (``overfeat/*.py``), the released weights
(``overfeat.release``) and the training engine (``overfeat.engine``); the reproductions
(``overfeat.reproduce``); the regression gate built on them (``overfeat.gate``) and the command
line's dispatch (``overfeat/cli.py``, ``overfeat/__main__.py``). Every import counts, those inside
functions and under ``TYPE_CHECKING`` too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "overfeat"

# Modules that may import the reproductions: the reproductions themselves and what sits above.
ABOVE_REPRODUCE = ("reproduce/", "gate/", "cli.py", "__main__.py")


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of everything ``source`` (the text of ``module``, dotted) imports:
    ``import a.b``, ``from a.b import c`` (as ``a.b`` and ``a.b.c``: ``c`` may be a module),
    relative imports resolved against ``module``, and ``importlib.import_module("a.b")``."""
    package = module.rsplit(".", 1)[0] if not module.endswith("__init__") else module
    package = package.removesuffix(".__init__")
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.lineno, node.args[0].value))
    return out


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(source: str, relative: str) -> list[str]:
    """The layer rules broken by ``source``, the text of ``overfeat/<relative>``."""
    module = "overfeat." + relative.removesuffix(".py").replace("/", ".")
    found: dict[tuple[int, str], str] = {}  # one message per line and rule
    for line, name in imported_modules(source, module):
        if _within(name, "overfeat.reproduce") and not relative.startswith(ABOVE_REPRODUCE):
            found.setdefault((line, "reproduce"), f"overfeat/{relative}:{line} imports {name}, "
                             "a reproduction it is below")  # fmt: skip
        if _within(name, "overfeat.engine") and relative.startswith("data/"):
            found.setdefault((line, "engine"), f"overfeat/{relative}:{line} imports {name}: "
                             "overfeat.data is below the training engine")  # fmt: skip
    return list(found.values())


def test_no_module_below_the_reproductions_imports_them_and_data_never_imports_the_engine():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        found += violations(path.read_text(encoding="utf-8"), relative)
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "relative, source",
    [
        ("localize.py", "from overfeat.reproduce.runner import RunOptions"),
        ("localize.py", "def f():\n    from overfeat.reproduce import images"),
        ("detect.py", "import overfeat.reproduce.progress"),
        ("inference_cli.py", "from overfeat import reproduce"),
        ("engine/train.py", "from ..reproduce.networks import config_key"),
        ("release/classify.py", "importlib.import_module('overfeat.reproduce.cli')"),
        ("data/dali.py", "if TYPE_CHECKING:\n    from overfeat.engine.sampler import S"),
        ("data/readers.py", "from ..engine import checkpoint"),
    ],
)
def test_the_walker_catches_every_form_of_an_upward_import(relative, source):
    assert violations(source, relative)


@pytest.mark.parametrize(
    "relative, source",
    [
        ("reproduce/figure9.py", "from overfeat.localize import localize_dataset"),
        ("gate/run.py", "from overfeat.reproduce.runner import run_row"),
        ("cli.py", "importlib.import_module('overfeat.reproduce.cli')"),
        ("engine/train.py", "from overfeat.data.sampler import ShardedTrainSampler"),
        ("localize.py", "from .inference import RunOptions"),
        ("data/dali.py", "from .sampler import ShardedTrainSampler"),
    ],
)
def test_the_walker_passes_imports_that_run_downward(relative, source):
    assert not violations(source, relative)
