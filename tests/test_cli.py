"""The command line, run as a person runs it: a subprocess, real sockets, real exit codes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env_for(handle=None, tmp_path: Path | None = None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LABDECK_", "PROXMOX_", "TRUENAS_"))
    }
    if tmp_path is not None:
        env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
        env["XDG_STATE_HOME"] = str(tmp_path / "state")
    if handle is not None:
        env.update(
            PROXMOX_HOST=handle.host,
            PROXMOX_PORT=str(handle.port),
            PROXMOX_USER=handle.token.user,
            PROXMOX_TOKEN_NAME=handle.token.token_name,
            PROXMOX_TOKEN_VALUE=handle.token.secret,
            LABDECK_PVE_CA_BUNDLE=handle.ca_path,
        )
    env.update(extra)
    return env


def labdeck(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdeck", *args],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT, check=False,
    )  # fmt: skip


def assert_clean_failure(proc: subprocess.CompletedProcess[str], code: int, needle: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_help_and_version(tmp_path):
    proc = labdeck("--help", env=env_for(tmp_path=tmp_path))
    assert proc.returncode == 0
    for command in ("demo", "mcp", "call", "ops", "sim"):
        assert command in proc.stdout
    version = labdeck("--version", env=env_for(tmp_path=tmp_path))
    assert version.stdout.startswith("labdeck 0.")


def test_console_script_is_installed(tmp_path):
    script = Path(sys.executable).with_name("labdeck")
    proc = subprocess.run(
        [str(script), "ops"], capture_output=True, text=True, env=env_for(tmp_path=tmp_path),
        timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "pve_list_guests" in proc.stdout


def test_ops_lists_the_catalogue_with_access(tmp_path):
    proc = labdeck("ops", env=env_for(tmp_path=tmp_path))
    assert proc.returncode == 0
    lines = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()[:-2] if line}
    assert lines["pve_list_guests"] == "read"
    assert lines["pve_start_guest"] == "write"
    assert lines["pve_stop_guest"] == "write!"
    as_json = json.loads(labdeck("ops", "--json", env=env_for(tmp_path=tmp_path)).stdout)
    by_name = {op["name"]: op for op in as_json}
    assert "vmid" in by_name["pve_guest_status"]["params"]["properties"]


def test_no_config_says_how_to_configure_or_run_the_demo(tmp_path):
    proc = labdeck(env=env_for(tmp_path=tmp_path))
    assert proc.returncode == 2
    assert "labdeck demo" in proc.stderr
    assert "PROXMOX_HOST" in proc.stderr


def test_call_demo_lists_guests_as_json(tmp_path):
    proc = labdeck("call", "pve_list_guests", "kind=qemu", "fields=vmid,name,type", "--json",
                   "--demo", env=env_for(tmp_path=tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    assert table["columns"] == ["vmid", "name", "type"]
    assert table["rows"] and {row[2] for row in table["rows"]} == {"qemu"}


def test_call_human_output_is_a_table(sim, tmp_path):
    proc = labdeck("call", "pve_list_guests", "node=pve1", env=env_for(sim, tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["VMID", "NAME", "NODE", "STATUS"]
    assert all(" pve1 " in f" {line} " for line in lines[1:-1])
    assert lines[-1].endswith(f"of {len(lines) - 2}")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["pve_guest_status", "vmid=99999"], 1, "no guest with vmid 99999"),
        (["pve_guest_status", "vmid=abc"], 2, "vmid"),
        (["pve_guest_status", "vmid"], 2, "key=value"),
        (["pve_guest_status", "vmid=100", "node=not a node"], 2, "node"),
        (["pve_frobnicate"], 2, "unknown operation"),
    ],
)
def test_bad_input_gets_a_clear_error_and_no_traceback(sim, tmp_path, args, code, needle):
    proc = labdeck("call", *args, env=env_for(sim, tmp_path))
    assert_clean_failure(proc, code, needle)


def test_wrong_token_and_server_down_are_clear(sim, make_sim, tmp_path):
    wrong = labdeck("call", "pve_list_nodes",
                    env=env_for(sim, tmp_path, PROXMOX_TOKEN_VALUE="nope-canary"))  # fmt: skip
    assert_clean_failure(wrong, 1, "refused the API token root@pam!labdeck")
    assert "nope-canary" not in wrong.stderr + wrong.stdout
    down = make_sim()
    env = env_for(down, tmp_path, LABDECK_PVE_CA_BUNDLE=sim.ca_path)
    down.stop()
    proc = labdeck("call", "pve_list_nodes", env=env)
    assert_clean_failure(proc, 1, "cannot connect")


def test_writes_need_allow_writes_and_disruptive_ones_yes(fresh_sim, tmp_path):
    env = env_for(fresh_sim, tmp_path)
    stopped = json.loads(
        labdeck("call", "pve_list_guests", "status=stopped", "--json", env=env).stdout
    )["rows"][0][0]
    refused = labdeck("call", "pve_start_guest", f"vmid={stopped}", env=env)
    assert_clean_failure(refused, 1, "read-only")
    assert "--allow-writes" in refused.stderr
    started = labdeck(
        "call", "pve_start_guest", f"vmid={stopped}", "--allow-writes", "--json", env=env
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["status_after"] == "running"
    unconfirmed = labdeck("call", "pve_stop_guest", f"vmid={stopped}", "--allow-writes", env=env)
    assert_clean_failure(unconfirmed, 1, "--yes")
    stopped_again = labdeck("call", "pve_stop_guest", f"vmid={stopped}", "--allow-writes", "--yes",
                            env=env)  # fmt: skip
    assert stopped_again.returncode == 0, stopped_again.stderr
    assert "status_after: stopped" in stopped_again.stdout
    audit = (tmp_path / "state" / "labdeck" / "audit.jsonl").read_text().splitlines()
    writes = [json.loads(e) for e in audit if json.loads(e)["access"] == "write"]
    outcomes = [(e["operation"], e["outcome"]) for e in writes]
    assert outcomes == [
        ("pve_start_guest", "refused"),
        ("pve_start_guest", "ok"),
        ("pve_stop_guest", "refused"),
        ("pve_stop_guest", "ok"),
    ]
    assert fresh_sim.token.secret not in "\n".join(audit)


def test_sim_prints_how_to_reach_it_and_serves(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "sim", "--port", "0", "--guests", "30", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for(tmp_path=tmp_path),
        cwd=ROOT,
    )  # fmt: skip
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 30
        while len(lines) < 6 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
        facts = dict(line.split(": ", 1) for line in lines)
        url = facts["PVE URL"]
        assert url.startswith("https://127.0.0.1:") and url.endswith("/api2/json")
        assert facts["PVE token"].startswith("PVEAPIToken=root@pam!labdeck=")
        assert facts["read-only token"].startswith("PVEAPIToken=auditor@pve!readonly=")
        assert Path(facts["CA certificate"]).exists()
        assert len(facts["CA SHA-256 fingerprint"].split(":")) == 32
        import ssl

        import httpx

        response = httpx.get(
            url + "/cluster/resources",
            params={"type": "vm"},
            headers={"Authorization": facts["PVE token"]},
            verify=ssl.create_default_context(cafile=facts["CA certificate"]),
        )
        assert response.status_code == 200
        assert len(response.json()["data"]) == 30
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in proc.stderr.read()


def test_audit_shows_calls_and_follows_new_ones(sim, tmp_path):
    env = env_for(sim, tmp_path)
    empty = labdeck("audit", env=env)
    assert empty.returncode == 0 and "no entries yet" in empty.stderr
    assert labdeck("call", "pve_list_nodes", env=env).returncode == 0
    assert labdeck("call", "pve_stop_guest", "vmid=100", env=env).returncode == 1
    shown = labdeck("audit", env=env)
    assert shown.returncode == 0
    first, second = shown.stdout.splitlines()
    assert "cli  read   pve_list_nodes" in first and first.endswith("ok")
    assert "write  pve_stop_guest" in second and "refused: " in second
    follower = subprocess.Popen(
        [sys.executable, "-m", "labdeck", "audit", "--follow", "-n", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # let it reach the end of the file before the next call is logged
        assert labdeck("call", "pve_list_pools", env=env).returncode == 0
        ready, _, _ = select.select([follower.stdout], [], [], 15)
        assert ready, "audit --follow printed nothing within 15 s"
        line = follower.stdout.readline()
        assert json.loads(line)["operation"] == "pve_list_pools"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert "Traceback" not in follower.stderr.read()
