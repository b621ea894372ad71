"""The packages' layers hold, and the check of them (`lint-imports`, run by `make lint`) fails on
an import against them: shown on a copy of the tree with one such import added."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "conformance", "reference", "simulators", "scenarios", "sessionlab")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def copy_of_the_tree(destination: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", destination / "pyproject.toml")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return destination


def test_the_tree_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_imports(copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "imports"),
    [
        pytest.param("contract/upward.py", "conformance.verdicts", id="contract-imports-checks"),
        pytest.param("reference/sideways.py", "simulators.ide", id="reference-imports-simulator"),
        pytest.param("simulators/upward.py", "conformance.targets", id="simulator-imports-targets"),
        pytest.param("conformance/upward.py", "scenarios.runner", id="checks-import-plans"),
        pytest.param("scenarios/upward.py", "sessionlab.cli", id="plans-import-command-line"),
    ],
)
def test_an_import_against_the_layers_fails_the_lint(
    tmp_path: Path, module: str, imports: str
) -> None:
    tree = copy_of_the_tree(tmp_path)
    (tree / module).write_text(f"import {imports}  # against the layers\n", encoding="utf-8")
    result = lint_imports(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert f"{module[:-3].replace('/', '.')} -> {imports}" in result.stdout
