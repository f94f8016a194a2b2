"""``labdeck serve``: the dashboard in a web browser, through textual-serve.

textual-serve runs one command per browser tab and relays its terminal over a websocket.
That command is labdeck itself (``python -m labdeck``), so a tab gets exactly the
dashboard ``labdeck`` would show in a terminal. textual-serve has no authentication:
whoever reaches the port drives the dashboard with its token's rights, so it binds to
loopback unless told otherwise, and says so loudly when told otherwise.

With ``--demo`` one simulator runs in this process and every tab's dashboard talks to it.
How to reach it (including its token) goes to the children in a mode-0600 config file
named by ``LABDECK_CONFIG``; secrets never go in a command line, which ``ps`` shows.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import TuiSettings
    from simulator.server import SimulatorHandle

#: variables that would override the demo config file in the children (see core.config)
_OVERRIDING_ENV = ("LABDECK_", "PROXMOX_", "TRUENAS_")
NO_AUTH_WARNING = (
    "labdeck: warning: serving on {host}, which is not loopback. textual-serve has no "
    "authentication: anyone who can reach this port gets the dashboard, with its token's "
    "rights. Prefer 127.0.0.1 behind an SSH tunnel or an authenticating proxy."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def free_port(host: str) -> int:
    """A port free on ``host`` right now (textual-serve needs the real port for its URLs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host.strip("[]"), 0))
        return int(probe.getsockname()[1])


def public_url(host: str, port: int) -> str:
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}"


def dashboard_command(*, config: str | None, profile: str | None) -> str:
    """The shell command textual-serve runs per tab: this Python, this labdeck."""
    words = [sys.executable, "-m", "labdeck"]
    if config:
        words += ["--config", str(Path(config).expanduser().resolve())]
    if profile:
        words += ["--profile", profile]
    return shlex.join(words)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return (
            "{ "
            + ", ".join(f"{_toml_value(str(k))} = {_toml_value(v)}" for k, v in value.items())
            + " }"
        )
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def to_toml(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of flat tables (values: str, int, float, bool, or a table inline).

    The table named ``""`` holds the top-level keys; give it first.
    """
    lines: list[str] = []
    for name, table in tables.items():
        if name:
            lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in table.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


def demo_config(handle: SimulatorHandle, tui: TuiSettings) -> str:
    """The config a served tab needs to reach the shared simulator (it holds its token)."""
    token = handle.token
    tables: dict[str, Mapping[str, Any]] = {
        "": {"profile": "demo"},  # named as in `labdeck demo`: the header says "demo@..."
        "profiles.demo.pve": {
            "host": handle.host,
            "port": handle.port,
            "user": token.user,
            "token_name": token.token_name,
            "token_value": token.secret,
            "ca_bundle": str(handle.ca_path),
        },
        "profiles.demo.policy": {"allow_writes": True},  # as `labdeck demo`: a throwaway cluster
        "tui": tui.model_dump(exclude_none=True),
    }
    if handle.truenas_url:
        tables["profiles.demo.truenas"] = {
            "url": handle.truenas_url,
            "api_key": handle.truenas_api_key,
            "ca_bundle": str(handle.ca_path),
        }
    return to_toml(tables)


def write_private(path: Path, text: str) -> Path:
    """Create ``path`` with mode 0600 from the start (never readable by others, even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def serve(
    *,
    host: str,
    port: int,
    command: str,
    url: str | None = None,
    print_fn: Callable[[str], None] = print,
) -> None:
    """Serve ``command`` until SIGINT/SIGTERM (textual-serve stops its children then)."""
    from textual_serve.server import Server

    if port == 0:
        port = free_port(host)
    url = url or public_url(host, port)
    if not is_loopback(host):
        print(NO_AUTH_WARNING.format(host=host), file=sys.stderr, flush=True)
    print_fn(f"labdeck: dashboard at {url}/ (Ctrl+C stops)")
    Server(command, host=host.strip("[]"), port=port, title="labdeck", public_url=url).serve()


def serve_demo(
    *,
    host: str,
    port: int,
    tui: TuiSettings,
    url: str | None = None,
    print_fn: Callable[[str], None] = print,
) -> None:
    """One simulator for every tab; its config in a private temporary directory."""
    from labdeck.demo import start_demo

    handle = start_demo()
    try:
        with tempfile.TemporaryDirectory(prefix="labdeck-serve-") as tmp:
            config = write_private(Path(tmp) / "demo.toml", demo_config(handle, tui))
            for name in [n for n in os.environ if n.startswith(_OVERRIDING_ENV)]:
                del os.environ[name]  # the children must see the simulator, not the cluster
            os.environ["LABDECK_CONFIG"] = str(config)  # inherited by textual-serve's children
            serve(host=host, port=port, command=dashboard_command(config=None, profile=None),
                  url=url, print_fn=print_fn)  # fmt: skip
    finally:
        handle.stop()
