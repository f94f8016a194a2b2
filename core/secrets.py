"""Resolve secrets from the keyring, a 0600 file, or the settings — never from argv.

A resolved secret stays a ``SecretStr`` until the moment a header is built.
"""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import SecretStr

from core.errors import ConfigError


def read_secret_file(path: Path, *, what: str) -> SecretStr:
    """Read a one-line secret from a file that only its owner can read."""
    path = path.expanduser()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc.strerror}.") from None
    if mode & 0o077:
        raise ConfigError(
            f"{what} file {path} is readable by others (mode {mode:04o}).",
            hint=f"Run: chmod 600 {path}",
        )
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} file {path}: {exc}.") from None
    if not text:
        raise ConfigError(f"{what} file {path} is empty.")
    return SecretStr(text)


def read_keyring(entry: str, *, what: str) -> SecretStr:
    """``service`` or ``service:username`` in the OS keyring (username defaults to 'token')."""
    service, _, username = entry.partition(":")
    try:
        import keyring  # imported lazily: it probes desktop backends at import time
        import keyring.errors
    except ImportError:
        raise ConfigError(
            f"{what} is configured in the keyring ({entry!r}) but the 'keyring' package is "
            "not installed.",
            hint="pip install keyring, or use a 0600 token_file.",
        ) from None
    try:
        value = keyring.get_password(service, username or "token")
    except keyring.errors.KeyringError as exc:
        raise ConfigError(
            f"the OS keyring could not be read for {what} ({type(exc).__name__}).",
            hint="Unlock the keyring or use a 0600 token_file instead.",
        ) from None
    if not value:
        raise ConfigError(
            f"no {what} in the keyring under {entry!r}.",
            hint="Store it with: labdeck config set-token (or keyring set SERVICE USER).",
        )
    return SecretStr(value)


def resolve_secret(
    *,
    value: SecretStr | None,
    file: Path | None,
    keyring_entry: str | None,
    what: str,
    setting_names: str,
) -> SecretStr:
    """The first configured source wins: keyring, file, then the plain value."""
    if keyring_entry:
        return read_keyring(keyring_entry, what=what)
    if file is not None:
        return read_secret_file(file, what=what)
    if value is not None and value.get_secret_value():
        return value
    raise ConfigError(
        f"no {what} configured.",
        hint=f"Set one of {setting_names} (a 0600 file or the keyring is safest).",
    )
