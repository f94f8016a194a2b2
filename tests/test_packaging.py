"""The wheel is complete and runs on its own: every package, the stylesheet, the console
script, one version. Built without network (hatchling is a dev dependency)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import labdeck

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("labdeck-*.whl")
    return built


def test_wheel_holds_every_package_the_stylesheet_and_metadata(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for package in ("labdeck", "core", "tui", "mcp_server", "simulator"):
        assert f"{package}/__init__.py" in names
    assert "tui/labdeck.tcss" in names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    meta = Parser().parsestr(zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode())
    assert meta["Version"] == labdeck.__version__
    assert meta["Requires-Python"] == ">=3.11"
    requires = " ".join(meta.get_all("Requires-Dist"))
    for dependency in ("textual", "httpx", "mcp", "pydantic-settings", "websockets"):
        assert dependency in requires
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "labdeck = labdeck.cli:main" in entry_points


def test_installed_wheel_runs_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target",
         str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # the wheel's copy comes first on sys.path; dependencies come from this venv
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import core, tui, simulator; print(core.__file__, tui.__file__)"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert all(path.startswith(str(target)) for path in where.stdout.split())
    version = subprocess.run(
        [str(target / "bin" / "labdeck"), "--version"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == f"labdeck {labdeck.__version__}"
    call = subprocess.run(
        [sys.executable, "-m", "labdeck", "call", "pve_list_nodes", "--demo", "--json"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    assert call.returncode == 0, call.stderr
    assert '"node": "pve1"' in call.stdout
