"""A keyring backend that keeps secrets in a JSON file (path in LABDECK_TEST_KEYRING).

Why a stand-in: no OS keyring daemon (Secret Service over D-Bus) runs on CI machines, and
the tests must not touch a developer's real keyring. labdeck only calls the public
``keyring`` API, so selecting this backend with PYTHON_KEYRING_BACKEND exercises the same
code paths a desktop keyring would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _path(self) -> Path:
        return Path(os.environ["LABDECK_TEST_KEYRING"])

    def _load(self) -> dict[str, str]:
        path = self._path()
        return json.loads(path.read_text()) if path.exists() else {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\x00{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\x00{username}"] = password
        self._path().write_text(json.dumps(data))
        self._path().chmod(0o600)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service}\x00{username}", None)
        self._path().write_text(json.dumps(data))
