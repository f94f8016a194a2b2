"""The person's dashboard preferences: the theme they picked, and their keymap.

The theme picked in the palette ("Theme") is kept in a small state file
(``$XDG_STATE_HOME/labdeck/tui.json``), not in the config file, which stays the person's
own text. ``[tui] theme`` in the config is the default. The file remembers which config
theme the pick was made over, so editing the config later wins again: the latest
explicit choice is the one shown.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from textual.binding import Binding
from textual.dom import DOMNode

from core.config import state_dir

STATE_FILE = "tui.json"


def default_state_path() -> Path:
    return state_dir() / STATE_FILE


@dataclass
class ThemeStore:
    """Reads and writes the picked theme; ``config_theme`` is ``[tui] theme`` (or None)."""

    path: Path
    config_theme: str | None = None

    def _read(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # no pick yet, or a damaged file: the config's theme applies
        return data if isinstance(data, dict) else {}

    def initial_theme(self) -> str | None:
        """The theme to start with: the last pick, unless the config changed since."""
        data = self._read()
        picked = data.get("theme")
        if isinstance(picked, str) and data.get("config_theme") == self.config_theme:
            return picked
        return self.config_theme

    def save(self, theme: str) -> None:
        """Write atomically (a crash never leaves half a file) with mode 0600."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"theme": theme, "config_theme": self.config_theme}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tui-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(payload + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _import_tui_modules() -> None:
    """Import every ``tui`` module, so bindings of screens opened later are known too."""
    import tui

    for module in pkgutil.walk_packages(tui.__path__, prefix="tui."):
        importlib.import_module(module.name)


def _subclasses(cls: type) -> Iterable[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def known_binding_ids() -> dict[str, Binding]:
    """Every binding id of the dashboard (the ids a keymap may name), with its binding."""
    _import_tui_modules()
    found: dict[str, Binding] = {}
    for cls in {*_subclasses(DOMNode)}:
        if not cls.__module__.startswith("tui."):
            continue
        for binding in cls.__dict__.get("BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                found.setdefault(binding.id, binding)
    return dict(sorted(found.items()))


def unknown_keymap_ids(keymap: dict[str, str]) -> list[str]:
    known = known_binding_ids()
    return sorted(binding_id for binding_id in keymap if binding_id not in known)
