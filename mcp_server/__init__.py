"""labdeck's MCP face: tools generated from ``core.ops``, served over stdio or streamable HTTP.

stdio: stdout belongs to the protocol. HTTP: ``/mcp`` behind a bearer token and Origin/Host
checks (``mcp_server.http``). Either way everything else (logging) goes to stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mcp_server.server import build_server

if TYPE_CHECKING:
    from pydantic import SecretStr

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
    token: SecretStr | None = None,
    clusters: Mapping[str, Callable[[], Labdeck]] | None = None,
) -> None:
    """Serve the catalogue until the client disconnects (stdio) or the process is stopped.

    ``clusters`` (profile name -> factory) are the clusters besides the default one that
    tools reach through their ``cluster`` argument (see ``build_server``).
    ``streamable-http`` serves ``http://host:port/mcp`` and requires ``token`` (the bearer
    token clients must send); it is refused without one. Over stdio the tools are generated
    when the client first lists them, so ``initialize`` is answered quickly (a client starts
    a stdio server each time it starts); a long-running HTTP server generates them at start.
    """
    from core.errors import ConfigError

    if transport not in TRANSPORTS:
        raise ConfigError(
            f"unknown MCP transport {transport!r}.", hint=f"Use one of: {', '.join(TRANSPORTS)}."
        )
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if transport == "streamable-http":
        from mcp_server import http

        checked = http.check_token(token)  # before anything is built or bound
        server = build_server(
            service_factory, allow_writes=allow_writes, clusters=clusters, tools_on_first_use=False
        )
        http.serve(server, token=checked, host=host, port=port)
        return
    build_server(service_factory, allow_writes=allow_writes, clusters=clusters).run("stdio")
