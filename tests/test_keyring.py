"""Secrets in the OS keyring: `labdeck config set-token` stores one read from stdin, and a
profile that names it (token_keyring) authenticates with it. See tests/support/file_keyring.py
for why a file-backed keyring stands in for the desktop one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABDECK_", "PROXMOX_"))}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "cfg"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        PYTHONPATH=str(ROOT / "tests" / "support"),
        PYTHON_KEYRING_BACKEND="file_keyring.FileKeyring",
        LABDECK_TEST_KEYRING=str(tmp_path / "keyring.json"),
        **extra,
    )
    return env


def labdeck(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdeck", *args], input=stdin, capture_output=True, text=True,
        env=env, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip


def test_set_token_stores_the_secret_and_a_profile_uses_it(sim, tmp_path):
    env = env_for(tmp_path)
    stored = labdeck(env, "config", "set-token", stdin=sim.token.secret + "\n")
    assert stored.returncode == 0, stored.stderr
    assert 'token_keyring = "labdeck:default-pve-token"' in stored.stdout
    assert sim.token.secret not in stored.stdout + stored.stderr
    keyring_file = json.loads((tmp_path / "keyring.json").read_text())
    assert list(keyring_file.values()) == [sim.token.secret]

    config = tmp_path / "cfg" / "labdeck" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(
        f'[pve]\nhost = "{sim.host}"\nport = {sim.port}\nuser = "{sim.token.user}"\n'
        f'token_name = "{sim.token.token_name}"\ntoken_keyring = "labdeck:default-pve-token"\n'
        f'ca_bundle = "{sim.ca_path}"\n'
    )
    config.chmod(0o644)  # no secret in the file, so others may read it
    listed = labdeck(env, "call", "pve_list_nodes", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["nodes"][0]["node"] == "pve1"
    shown = labdeck(env, "config", "show")
    assert shown.returncode == 0 and sim.token.secret not in shown.stdout


def test_set_token_for_a_named_profile_and_empty_input(tmp_path):
    env = env_for(tmp_path)
    stored = labdeck(env, "--profile", "lab2", "config", "set-token", "--kind", "truenas-api-key",
                     stdin="1-abc\n")  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    assert "[profiles.lab2.truenas]" in stored.stdout
    assert 'api_key_keyring = "labdeck:lab2-truenas-api-key"' in stored.stdout
    empty = labdeck(env, "config", "set-token", stdin="\n")
    assert empty.returncode == 2 and "nothing was stored" in empty.stderr


def test_a_missing_keyring_entry_says_how_to_store_it(sim, tmp_path):
    env = env_for(tmp_path, PROXMOX_HOST=sim.host, PROXMOX_PORT=str(sim.port),
                  PROXMOX_USER="root@pam", PROXMOX_TOKEN_NAME="labdeck",
                  LABDECK_PVE_TOKEN_KEYRING="labdeck:nothing-here",
                  LABDECK_PVE_CA_BUNDLE=sim.ca_path)  # fmt: skip
    proc = labdeck(env, "call", "pve_list_nodes")
    assert proc.returncode == 2
    assert "labdeck config set-token" in proc.stderr
