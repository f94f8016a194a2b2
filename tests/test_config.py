"""Settings: TOML file, LABDECK_* and PROXMOX_* env vars, precedence, and secret safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import load_settings, normalise_fingerprint
from core.errors import ConfigError
from core.secrets import read_secret_file, resolve_secret

_ENV_PREFIXES = ("LABDECK_", "PROXMOX_", "TRUENAS_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES) or key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write_config(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_no_config_file_gives_an_unconfigured_default_profile() -> None:
    profile = load_settings().resolve()
    assert profile.name == "default"
    assert not profile.pve.configured
    assert profile.policy.allow_writes is False
    assert profile.pve.verify_ssl is True


def test_toml_default_profile_and_named_profiles(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "xdg" / "labdeck" / "config.toml",
        """
[pve]
host = "pve1.lan"
user = "labdeck@pve"
token_name = "dash"

[policy]
protected = ["100", "tag:prod"]

[profiles.lab2.pve]
host = "10.0.0.5"
port = 8443
user = "ops@pve"
token_name = "mcp"

[profiles.lab2.policy]
allow_writes = true
""",
    )
    settings = load_settings()
    assert settings._toml_path == path
    default = settings.resolve()
    assert (default.pve.host, default.pve.port) == ("pve1.lan", 8006)
    assert default.policy.protected == ["100", "tag:prod"]
    lab2 = settings.resolve("lab2")
    assert (lab2.pve.host, lab2.pve.port, lab2.pve.user) == ("10.0.0.5", 8443, "ops@pve")
    assert lab2.policy.allow_writes is True
    with pytest.raises(ConfigError, match="no profile named 'nope'.*lab2"):
        settings.resolve("nope")


def test_proxmox_env_vars_of_the_replaced_server_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXMOX_HOST", "https://pve.example.lan:8006/")
    monkeypatch.setenv("PROXMOX_USER", "root@pam")
    monkeypatch.setenv("PROXMOX_TOKEN_NAME", "mcp")
    monkeypatch.setenv("PROXMOX_TOKEN_VALUE", "s3cr3t-canary")
    monkeypatch.setenv("PROXMOX_VERIFY_SSL", "false")
    monkeypatch.setenv("PROXMOX_PORT", "8443")
    pve = load_settings().resolve().pve
    assert pve.host == "pve.example.lan"
    assert pve.port == 8443
    assert pve.token_id == "root@pam!mcp"
    assert pve.verify_ssl is False
    assert pve.token_value is not None and pve.token_value.get_secret_value() == "s3cr3t-canary"
    # the secret never shows in a repr or a dump
    assert "s3cr3t-canary" not in repr(pve)
    assert "s3cr3t-canary" not in pve.model_dump_json()


def test_precedence_flags_over_labdeck_env_over_proxmox_env_over_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(
        tmp_path / "xdg" / "labdeck" / "config.toml", '[pve]\nhost = "from-file"\nport = 1\n'
    )
    assert load_settings().resolve().pve.host == "from-file"
    monkeypatch.setenv("PROXMOX_HOST", "from-proxmox-env")
    assert load_settings().resolve().pve.host == "from-proxmox-env"
    assert load_settings().resolve().pve.port == 1  # untouched keys still come from the file
    monkeypatch.setenv("LABDECK_PVE_HOST", "from-labdeck-env")
    assert load_settings().resolve().pve.host == "from-labdeck-env"
    flags = load_settings(pve={"host": "from-flag"})
    assert flags.resolve().pve.host == "from-flag"


def test_labdeck_env_sets_nested_keys_with_underscores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABDECK_PVE_TOKEN_NAME", "dash")
    monkeypatch.setenv("LABDECK_POLICY_ALLOW_WRITES", "true")
    monkeypatch.setenv("LABDECK_PROFILE", "default")
    settings = load_settings()
    assert settings.resolve().pve.token_name == "dash"
    assert settings.resolve().policy.allow_writes is True


def test_config_with_secret_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "xdg" / "labdeck" / "config.toml",
        '[pve]\nhost = "h"\ntoken_value = "canary-secret-123"\n',
        mode=0o644,
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "chmod 600" in str(info.value)
    assert "canary-secret-123" not in str(info.value)
    path.chmod(0o600)
    assert load_settings().resolve().pve.host == "h"


def test_world_readable_config_without_secret_is_fine(tmp_path: Path) -> None:
    write_config(
        tmp_path / "xdg" / "labdeck" / "config.toml",
        '[pve]\nhost = "h"\ntoken_file = "/x"\n',
        mode=0o644,
    )
    assert load_settings().resolve().pve.host == "h"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[pve]\nport = "eighty"\n', "pve.port"),
        ("[pve]\nport = 70000\n", "pve.port"),
        ('[pve]\nhostt = "x"\n', "pve.hostt"),
        ('[pve]\nuser = "root"\n', "name@realm"),
        ('[pve]\nfingerprint = "abc"\n', "SHA-256"),
        ("[pve\n", "not valid TOML"),
    ],
)
def test_bad_config_gives_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    write_config(tmp_path / "xdg" / "labdeck" / "config.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in str(info.value)


def test_fingerprint_forms_are_normalised() -> None:
    raw = "ab" * 32
    assert normalise_fingerprint(raw) == ":".join(["AB"] * 32)
    assert normalise_fingerprint(":".join(["ab"] * 32)) == ":".join(["AB"] * 32)


def test_secret_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-secret\n")
    secret.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_secret_file(secret, what="token")
    secret.chmod(0o600)
    assert read_secret_file(secret, what="token").get_secret_value() == "file-secret"


def test_missing_secret_says_where_to_put_it() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_secret(
            value=None, file=None, keyring_entry=None, what="token", setting_names="X or Y"
        )
    assert "X or Y" in str(info.value)
