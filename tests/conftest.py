"""Shared fixtures: simulators over real sockets, and profiles/services bound to them.

Async clients are opened inside test bodies (pytest-asyncio tears down async-generator
fixtures in another task), so the fixtures here are synchronous: a running simulator in
its own thread, and factories.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from core.audit import AuditLog
from core.config import Profile
from core.service import Labdeck
from labdeck.demo import demo_profile
from simulator import SimulatorConfig, start_in_thread

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PVE_API = SHARED / "pve-api"

# Tests never read the developer's real configuration or keyring.
os.environ.setdefault("XDG_CONFIG_HOME", str(ROOT / "tests" / ".no-such-config"))


@pytest.fixture(scope="session")
def pve_schema() -> ModuleType:
    """../shared/pve-api/check_schema.py (the real PVE 9 schema validator)."""
    script = PVE_API / "check_schema.py"
    if not script.exists():
        pytest.skip("../shared/pve-api not present")
    spec = importlib.util.spec_from_file_location("pve_check_schema", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- secret canary
# Every secret a simulator of this suite hands out is a canary: none may appear in any test's
# captured stdout, stderr or log records, nor in a snapshot. Checked at the end of the session.
CANARIES: set[str] = set()
_LEAKS: list[str] = []


def _register_canaries(handle: object) -> None:
    for attr in ("token", "readonly_token"):
        CANARIES.add(getattr(handle, attr).secret)
    for attr in ("login", "readonly_login"):
        CANARIES.add(getattr(handle, attr).password)
    for attr in ("truenas_api_key", "truenas_readonly_api_key"):
        key = getattr(handle, attr, None)
        if key:
            CANARIES.add(key.split("-", 1)[1])  # the secret part of "<id>-<secret>"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for section, content in report.sections:
        for canary in CANARIES:
            if canary in content:
                _LEAKS.append(f"{report.nodeid} ({section})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    snapshots = ROOT / "tests" / "__snapshots__"
    for svg in snapshots.rglob("*.svg") if snapshots.exists() else []:
        text = svg.read_text(errors="replace")
        _LEAKS.extend(f"snapshot {svg.name}" for canary in CANARIES if canary in text)
    if _LEAKS:
        print("\nSECRET LEAK: a simulator secret appeared in:", *sorted(set(_LEAKS)), sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _config(**overrides: object) -> SimulatorConfig:
    # The whole session logs in to TrueNAS from 127.0.0.1: past middlewared's 20 logins a
    # minute, a login waited 1-10 s and failed with "Rate Limit Exceeded" (seen in a full run)
    base: dict[str, object] = {"seed": 7, "speed": 50.0, "dynamic": False,
                               "truenas_rate_limit": 10_000}  # fmt: skip
    base.update(overrides)
    return SimulatorConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sim() -> Iterator[object]:
    """One seeded simulator for read-only tests (do not change its state)."""
    handle = start_in_thread(_config())
    _register_canaries(handle)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def fresh_sim() -> Iterator[object]:
    """A simulator of one's own, for tests that change state."""
    handle = start_in_thread(_config())
    _register_canaries(handle)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., object]]:
    """Start simulators with custom settings; all are stopped after the test."""
    handles: list[object] = []

    def start(**overrides: object) -> object:
        handle = start_in_thread(_config(**overrides))
        _register_canaries(handle)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()  # type: ignore[attr-defined]


@pytest.fixture
def audit_log(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")


@pytest.fixture
def make_service(audit_log: AuditLog) -> Callable[..., Labdeck]:
    """``make_service(handle, allow_writes=False, face="cli")`` -> a Labdeck on that simulator.

    Use it inside the test body: ``async with make_service(sim) as lab: ...``.
    """

    def build(
        handle: object,
        *,
        allow_writes: bool = False,
        face: str = "cli",
        readonly_token: bool = False,
        protected: list[str] | None = None,
        audit_reads: bool = False,
    ) -> Labdeck:
        profile: Profile = demo_profile(
            handle,  # type: ignore[arg-type]
            allow_writes=allow_writes,
            readonly_token=readonly_token,
        )
        if protected:
            profile.policy.protected = list(protected)
        return Labdeck(profile, face=face, audit=audit_log, audit_reads=audit_reads)

    return build
