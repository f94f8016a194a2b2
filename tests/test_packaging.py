"""The wheel is complete and runs on its own: every package, the stylesheet, the console
script, one version. Built without network (hatchling is a dev dependency)."""

from __future__ import annotations

import json
import os
import shutil
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


def _uv(tool_venv: Path) -> str:
    """uv from this venv (``make lock`` puts it there) or PATH; else pip installs it, once."""
    for candidate in (Path(sys.executable).with_name("uv"), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(tool_venv / "bin" / "python"),
         "install", "--quiet", "--no-compile", "uv"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return str(tool_venv / "bin" / "uv")


def test_wheel_installs_and_runs_in_a_clean_venv_and_with_uvx(wheel: Path, tmp_path: Path) -> None:
    """What a person does: a fresh venv (no system packages), pip install the wheel with its
    dependencies from the registry, run labdeck; then ``uvx --from the.whl labdeck``."""
    venv = tmp_path / "venv"
    # --without-pip: the dev venv's pip installs into it (--python), a lot faster than ensurepip
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-compile", str(wheel)],
        check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))  # fmt: skip

    def run(*argv: str) -> str:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    modules = (
        "import labdeck, textual, mcp; print(labdeck.__file__, textual.__file__, mcp.__file__)"
    )
    where = run(str(venv / "bin" / "python"), "-c", modules)
    assert all(path.startswith(str(venv)) for path in where.split())  # nothing from elsewhere
    assert (
        run(str(venv / "bin" / "labdeck"), "--version").strip() == f"labdeck {labdeck.__version__}"
    )
    ops = json.loads(run(str(venv / "bin" / "labdeck"), "ops", "--json"))
    names = {op["name"] for op in ops}
    assert {"pve_list_guests", "pve_start_guest", "truenas_list_datasets"} <= names
    assert all(op["params"]["type"] == "object" for op in ops)
    nodes = json.loads(
        run(str(venv / "bin" / "labdeck"), "call", "pve_list_nodes", "--demo", "--json")
    )
    # the embedded simulator, its TLS and the client all work from the installed wheel
    assert [node["node"] for node in nodes["nodes"]] == ["pve1", "pve2", "pve3"]

    uv_env = {
        **env,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
    }
    done = subprocess.run(
        [_uv(venv), "tool", "run", "--from", str(wheel), "labdeck", "--version"],
        capture_output=True, text=True, env=uv_env, cwd=tmp_path, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"labdeck {labdeck.__version__}"
