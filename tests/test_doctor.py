"""`labdeck doctor` against the simulator: passes with the full token, names the missing
privileges (with the pveum fix) for the audit-only one, and stops early on bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def doctor(
    env_extra: dict[str, str], tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABDECK_", "PROXMOX_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "state"))
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "labdeck", "doctor", *args],
        capture_output=True, text=True, env=env, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip


def sim_env(handle, token, **extra: str) -> dict[str, str]:
    return {
        "PROXMOX_HOST": handle.host,
        "PROXMOX_PORT": str(handle.port),
        "PROXMOX_USER": token.user,
        "PROXMOX_TOKEN_NAME": token.token_name,
        "PROXMOX_TOKEN_VALUE": token.secret,
        "LABDECK_PVE_CA_BUNDLE": handle.ca_path,
        **extra,
    }


def checks(proc: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_passes_with_the_full_token(sim, tmp_path):
    proc = doctor(sim_env(sim, sim.token, LABDECK_POLICY_ALLOW_WRITES="true"), tmp_path, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = checks(proc)
    for name in ("pve: DNS", "pve: TCP", "pve: TLS", "pve: auth", "pve: VM.PowerMgmt on /vms"):
        assert found[name]["outcome"] == "ok", found[name]
    assert "Proxmox VE 9" in found["pve: auth"]["detail"]
    days = int(found["pve: certificate expiry"]["detail"].split()[2])  # "valid for N more days"
    assert 700 < days <= 730
    assert sim.token.secret not in proc.stdout + proc.stderr


def test_doctor_names_missing_privileges_of_an_audit_token(sim, tmp_path):
    env = sim_env(sim, sim.readonly_token, LABDECK_POLICY_ALLOW_WRITES="true")
    proc = doctor(env, tmp_path)
    assert proc.returncode == 1
    assert "FAIL  pve: VM.PowerMgmt on /vms" in proc.stdout
    assert "pveum acl modify /vms --tokens 'auditor@pve!readonly'" in proc.stdout
    assert "ok    pve: VM.Audit on /vms" in proc.stdout
    # with writes off, the same token is all a read-only dashboard needs
    read_only = doctor(sim_env(sim, sim.readonly_token), tmp_path, "--json")
    assert read_only.returncode == 0, read_only.stdout
    assert checks(read_only)["pve: VM.PowerMgmt on /vms"]["outcome"] == "skip"


def test_doctor_reports_untrusted_tls_with_the_pin_to_use(sim, tmp_path):
    env = sim_env(sim, sim.token)
    del env["LABDECK_PVE_CA_BUNDLE"]
    proc = doctor(env, tmp_path, "--json")
    assert proc.returncode == 1
    tls = checks(proc)["pve: TLS"]
    assert tls["outcome"] == "FAIL"
    assert sim.cert_fingerprint in tls["fix"]
    assert checks(proc)["remaining checks"]["outcome"] == "skip"


def test_doctor_stops_at_a_wrong_token_and_a_closed_port(sim, make_sim, tmp_path):
    wrong = doctor(sim_env(sim, sim.token, PROXMOX_TOKEN_VALUE="bad-canary"), tmp_path, "--json")
    assert wrong.returncode == 1
    assert checks(wrong)["pve: auth"]["outcome"] == "FAIL"
    assert "bad-canary" not in wrong.stdout + wrong.stderr
    down = make_sim()
    env = sim_env(down, down.token)
    down.stop()
    closed = doctor(env, tmp_path, "--json")
    assert closed.returncode == 1
    assert checks(closed)["pve: TCP"]["outcome"] == "FAIL"


def test_doctor_without_config_says_what_to_add(tmp_path):
    proc = doctor({}, tmp_path)
    assert proc.returncode == 1
    assert "no [pve] host" in proc.stdout
