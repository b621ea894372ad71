"""sessionlab as a user installs it: the wheel built from this checkout, installed with its
dependencies into a fresh virtualenv, and `verify`, `run` and `serve` run from a folder outside the
checkout, so that nothing is imported from it.

No package index is reached. The dependencies come from this test's own wheelhouse: each
distribution the project's virtualenv has installed is packed back into a wheel, but only those
that the built wheel's own metadata asks for (its `Requires-Dist`, no extras, and theirs in turn).
pip then resolves and installs the wheel from that wheelhouse alone (`--no-index`) into a
virtualenv that sees no other site-packages.

What this proves: the wheel holds every module and data file the three commands read (plans,
requirement catalogue, schemas), and its declared dependencies, without any extra, are enough to
run them: a run-time import left to the `test` extra fails here as it would for a user.
What it does not prove: that an index would resolve the same versions (the wheelhouse holds the
versions installed here, nothing newer or older), nor that the sdist builds.
"""

import base64
import hashlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.fixtures.stack import deadline

ROOT = Path(__file__).resolve().parents[1]
# What goes into the wheel; copied, since an in-tree build would leave build/ in the checkout.
SOURCES = (
    "pyproject.toml",
    "README.md",
    "contract",
    "conformance",
    "reference",
    "simulators",
    "scenarios",
    "sessionlab",
)
DATA_FILES = (
    "contract/requirements.yaml",
    "contract/schemas/Health.json",
    "scenarios/plans/tp1-create.yaml",
    "reference/migrations/script.py.mako",
    "reference/migrations/versions/0001_first_schema.py",
    "sessionlab/reference-process.yaml",
)
# Not packed: pip writes these itself when it installs.
INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def _offline_env(**extra: str) -> dict[str, str]:
    """The environment with pip's configuration of this machine (indexes, links, constraints)
    and any PYTHONPATH into the checkout taken out."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PIP_") and name not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _run(
    *argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> str:
    result = subprocess.run(
        [str(word) for word in argv],
        cwd=cwd,
        env=_offline_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=deadline(timeout),
        check=False,
    )
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout[-4000:]}"
    return result.stdout + result.stderr


def _build_wheel(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    _run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"),
        *("--wheel-dir", dist, source),
        cwd=work,
    )
    (wheel,) = dist.glob("sessionlab-*.whl")
    return wheel


def _requirements(metadata: list[str] | None, extras: set[str]) -> Iterator[Requirement]:
    for line in metadata or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
            yield requirement


def _dependency_closure(wheel: Path) -> list[importlib.metadata.Distribution]:
    """The installed distributions the wheel's metadata asks for, without extras, transitively."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    wanted = [
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    found: dict[str, importlib.metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = list(_requirements(wanted, set()))
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if key in found and extras <= extras_seen[key]:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        found[key] = distribution
        extras_seen[key] = extras_seen.get(key, set()) | extras
        todo.extend(_requirements(distribution.requires, extras_seen[key]))
    return list(found.values())


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _pack(distribution: importlib.metadata.Distribution, wheelhouse: Path) -> Path:
    """An installed distribution back as a wheel: its files under site-packages, as recorded.
    Console scripts are not packed: pip makes them anew from entry_points.txt."""
    site = Path(str(distribution.locate_file("")))
    files = [
        path
        for path in distribution.files or []
        if ".." not in path.parts and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]
    info = next(path.parts[0] for path in files if path.parts[0].endswith(".dist-info"))
    tags = [
        line.split(":", 1)[1].strip()
        for line in (site / info / "WHEEL").read_text().splitlines()
        if line.startswith("Tag:")
    ]
    parts = [list(dict.fromkeys(tag.split("-")[i] for tag in tags)) for i in range(3)]
    name = re.sub(r"[-_.]+", "_", distribution.metadata["Name"])
    wheel = wheelhouse / f"{name}-{distribution.version}-{'-'.join('.'.join(p) for p in parts)}.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in files:
            source = site / path
            if (path.parts[0] == info and path.name in INSTALL_ONLY) or not source.is_file():
                continue
            data = source.read_bytes()
            archive.writestr(str(path), data)
            record.append(f"{path},sha256={_digest(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies in it; its bin folder."""
    setuptools = Version(importlib.metadata.version("setuptools"))
    if setuptools < Version("70.1"):
        reason = f"setuptools {setuptools} cannot build a wheel offline; `make` installs >= 70.1"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("packaging")
    wheel = _build_wheel(work)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert set(DATA_FILES) <= names
    assert len([n for n in names if n.startswith("scenarios/plans/")]) == len(
        list((ROOT / "scenarios" / "plans").glob("*.yaml"))
    )
    wheelhouse = work / "wheelhouse"
    wheelhouse.mkdir()
    for distribution in _dependency_closure(wheel):
        _pack(distribution, wheelhouse)
    venv = work / "venv"
    # The interpreter this virtualenv stands on, not the project's virtualenv: nothing of that
    # one's site-packages is visible in the new one (--system-site-packages is off).
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    _run(
        sys.executable,
        *("-m", "pip", "--python", venv / "bin" / "python", "install", "--no-index"),
        *("--find-links", wheelhouse, wheel),
        cwd=work,
    )
    return venv / "bin"


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout: no `conformance` folder to import from."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def _in_venv(bin_dir: Path) -> dict[str, str]:
    # As an activated virtualenv has it; launched targets find `sessionlab` on PATH.
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_the_installed_packages_are_the_wheels_not_the_checkout(
    installed: Path, elsewhere: Path
) -> None:
    code = (
        "import conformance, reference, scenarios, simulators, pytest; print(conformance.__file__)"
    )
    where = Path(_run(installed / "python", "-c", code, cwd=elsewhere).strip())
    assert where.is_relative_to(installed.parent / "lib")
    assert not where.is_relative_to(ROOT)


def test_verify_runs_from_the_installed_wheel(installed: Path, elsewhere: Path) -> None:
    output = _run(
        installed / "sessionlab",
        "verify",
        "--only",
        "G-HEALTH-1",
        cwd=elsewhere,
        env=_in_venv(installed),
    )
    assert "G-HEALTH-1" in output
    assert "CONFORMS" in output


def test_run_runs_a_shipped_plan_from_the_installed_wheel(installed: Path, elsewhere: Path) -> None:
    output = _run(
        installed / "sessionlab", "run", "--only", "TP-1", cwd=elsewhere, env=_in_venv(installed)
    )
    assert "TP-1" in output
    assert "1 passed, 0 failed, 0 skipped" in output


def test_serve_runs_from_the_installed_wheel(installed: Path, elsewhere: Path) -> None:
    process = subprocess.Popen(
        [
            installed / "sessionlab",
            *("serve", "--runtime-port", "0", "--gateway-port", "0"),
            *("--data-dir", elsewhere / "data"),
        ],
        cwd=elsewhere,
        env=_offline_env(**_in_venv(installed)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        gateway = None
        for line in process.stdout:
            match = re.match(r"^\s+gateway\s+(http://\S+)", line)
            if match:
                gateway = match.group(1)
            if line.startswith("Stop with"):
                break
        assert gateway is not None, "serve printed no gateway URL"
        health = httpx.get(f"{gateway}/health", timeout=deadline(10))
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        process.send_signal(signal.SIGTERM)
        assert process.wait(deadline(20)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
