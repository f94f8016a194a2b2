"""labdeck's MCP face: tools generated from ``core.ops``, served over stdio.

stdout belongs to the protocol: everything else (logging) goes to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from mcp_server.server import build_server

if TYPE_CHECKING:
    from core.service import Labdeck

__all__ = ["build_server", "run"]

TRANSPORTS = ("stdio", "streamable-http")


def run(
    service_factory: Callable[[], Labdeck],
    *,
    transport: str = "stdio",
    allow_writes: bool = False,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> None:
    """Serve the catalogue until the client disconnects (stdio) or the process is stopped."""
    from core.errors import ConfigError

    if transport not in TRANSPORTS:
        raise ConfigError(
            f"unknown MCP transport {transport!r}.", hint=f"Use one of: {', '.join(TRANSPORTS)}."
        )
    if transport == "streamable-http":
        # It needs bearer-token auth and Origin checks before it may listen (see DESIGN.md).
        raise ConfigError(
            f"the streamable-http transport (on {host}:{port}) is not supported yet.",
            hint="Use the default stdio transport: `labdeck mcp`.",
        )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    build_server(service_factory, allow_writes=allow_writes).run("stdio")
