"""Append-only audit log: one JSON line per write attempt. Never a secret."""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SECRETISH = re.compile(r"(token|secret|password|passwd|api_key|apikey|key)", re.IGNORECASE)


# free text sent into a guest may hold anything (passwords piped to a command): keep its size
_CONTENT_KEYS = frozenset({"input_data"})


def redact(value: Any, key: str = "") -> Any:
    if key and _SECRETISH.search(key) and not key.endswith(("_id", "name")):
        return "***"
    if key in _CONTENT_KEYS and isinstance(value, str):
        return f"<{len(value)} characters>"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class AuditLog:
    """JSON lines, file mode 0600, opened in append mode for every record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        line = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **redact(entry)}
        data = (json.dumps(line, sort_keys=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            fd = self._open()
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def ensure_writable(self) -> None:
        """Open the log for appending and write nothing; raises ``OSError`` as ``record`` would.

        Called before a change is sent, so that no change happens its line cannot follow.
        """
        with self._lock:
            os.close(self._open())

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
