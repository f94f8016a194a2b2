"""The streamable HTTP transport: the SDK's ``/mcp`` app behind our own guard, under uvicorn.

Every HTTP request passes ``McpHttpGuard`` before the SDK sees it:

1. an ``Origin`` header, when present, must be one of the server's own loopback (or bound)
   origins, else 403 — a web page the user happens to visit cannot drive the tools;
2. the ``Host`` header must name the server (DNS rebinding), else 421 — skipped when the
   server listens on a wildcard address (0.0.0.0 / ::), where any of the machine's names is
   legitimate and the bearer token is what keeps strangers out;
3. ``Authorization: Bearer <token>`` must match, compared in constant time, else 401.

The SDK's own transport-security settings (allowed hosts and origins) are set to the same
lists, so the two layers agree. The token is never logged, echoed or put in an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from starlette.responses import Response

from core.errors import ConfigError, LabdeckError

if TYPE_CHECKING:
    import uvicorn
    from mcp.server import MCPServer
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"
# names and hints, not secrets:
TOKEN_ENV = "LABDECK_MCP_TOKEN"  # noqa: S105
TOKEN_WHAT = "MCP bearer token"  # noqa: S105
MIN_TOKEN_CHARS = 16
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 -- names, compared against, never bound here
GRACEFUL_SHUTDOWN_S = 3


# ---------------------------------------------------------------- the token


def resolve_token(
    token_file: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> SecretStr:
    """The bearer token: ``--token-file`` (0600) first, then ``LABDECK_MCP_TOKEN``.

    Never from a command-line argument. Raises ``ConfigError`` (exit 2 at the shell) when
    there is none, when the file is readable by others, or when it is too short to guess.
    """
    from core.secrets import read_secret_file

    env = os.environ if environ is None else environ
    if token_file:
        token = read_secret_file(Path(token_file), what=TOKEN_WHAT)
    elif env.get(TOKEN_ENV, "").strip():
        token = SecretStr(env[TOKEN_ENV].strip())
    else:
        raise ConfigError(
            "the streamable-http transport needs a bearer token, and none is set.",
            hint=(
                f"Set {TOKEN_ENV}, or pass --token-file PATH (a file only you can read: "
                f"chmod 600 PATH). Make one with: {MAKE_TOKEN}"
            ),
        )
    check_token(token)
    return token


def check_token(token: SecretStr | None) -> SecretStr:
    """Refuse a missing, short or header-unsafe token (the message never shows it)."""
    value = "" if token is None else token.get_secret_value()
    if token is None or not value:
        raise ConfigError(
            "the streamable-http transport needs a bearer token.",
            hint=f"Set {TOKEN_ENV} or pass --token-file PATH.",
        )
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"the {TOKEN_WHAT} is too short (fewer than {MIN_TOKEN_CHARS} characters).",
            hint=f"Make a strong one with: {MAKE_TOKEN}",
        )
    if any(ch.isspace() for ch in value) or not value.isprintable() or not value.isascii():
        raise ConfigError(
            f"the {TOKEN_WHAT} must be printable ASCII without spaces (it travels in a header).",
            hint=f"Make one with: {MAKE_TOKEN}",
        )
    return token


# ---------------------------------------------------------------- addresses


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _authority(host: str, port: int) -> str:
    name = host.lower()
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"  # an IPv6 literal
    return f"{name}:{port}"


@dataclass(frozen=True, slots=True)
class Allowed:
    """Who may talk to the server: ``Host`` header values and ``Origin`` values."""

    #: None: any Host (a wildcard bind); the token still applies
    hosts: frozenset[str] | None
    origins: frozenset[str]


def allowed_for(host: str, port: int) -> Allowed:
    """The loopback names on ``port``, plus the bound address itself when it is specific."""
    names = list(LOOPBACK_NAMES)
    wildcard = host.strip("[]") in WILDCARD_HOSTS
    if not wildcard:
        names.append(host)  # e.g. 127.0.0.2 or a LAN address: what clients will dial
    authorities = {_authority(name, port) for name in names}
    return Allowed(
        hosts=None if wildcard else frozenset(authorities),
        origins=frozenset(f"http://{a}" for a in authorities),
    )


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket; the port is known before serving (``--port 0`` works)."""
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None,
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except socket.gaierror as exc:
        raise ConfigError(
            f"cannot resolve the MCP bind address {host!r}: {exc.strerror}.",
            hint="Pass an IP address with --host (the default is 127.0.0.1).",
        ) from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default: bursts of agents connecting at once wait, not retry
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise LabdeckError(
            f"cannot listen on {_authority(host, port)}: {exc.strerror}.",
            hint="Pick another --port, or stop what is using it.",
        ) from None
    return sock


# ---------------------------------------------------------------- the guard


def _json_response(
    status: int, error: str, message: str, headers: Iterable[tuple[str, str]] = ()
) -> Response:
    body = json.dumps({"error": error, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=dict(headers))


class McpHttpGuard:
    """ASGI middleware: Origin, Host and bearer-token checks in front of the MCP app."""

    def __init__(self, app: ASGIApp, *, token: SecretStr, allowed: Allowed) -> None:
        self.app = app
        self._expected = check_token(token).get_secret_value().encode("ascii")
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":  # websockets: not part of MCP, never let through
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._forward(scope, receive, send)

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the MCP app; end a response it left open (an SSE stream cut at shutdown)."""
        started = finished = False

        async def watched(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

        await self.app(scope, receive, watched)
        if started and not finished:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _refusal(self, scope: Scope) -> Response | None:
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope.get("headers", ()):
            headers.setdefault(name.lower(), []).append(value)
        client = scope.get("client") or ("?", 0)

        origins = headers.get(b"origin", [])
        if origins:
            # exact: browsers serialise an origin in lower case, with no path
            origin = origins[0].decode("latin-1").strip()
            if len(origins) > 1 or origin not in self.allowed.origins:
                # %r: a peer-supplied value stays on one line
                logger.warning(
                    "refused an MCP request from %s: foreign Origin %r", client[0], origin[:200]
                )
                return _json_response(
                    403,
                    "forbidden_origin",
                    "This MCP server does not accept requests from web pages of other origins.",
                )
        if self.allowed.hosts is not None:
            hosts = headers.get(b"host", [])
            host = hosts[0].decode("latin-1").strip() if len(hosts) == 1 else ""
            if host not in self.allowed.hosts:
                logger.warning(
                    "refused an MCP request from %s: unexpected Host %r", client[0], host[:200]
                )
                return _json_response(
                    421, "misdirected", "This MCP server does not answer to that Host name."
                )
        values = headers.get(b"authorization", [])
        scheme, _, presented = (values[0] if len(values) == 1 else b"").partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            logger.warning("refused an MCP request from %s: no bearer token", client[0])
            return _json_response(
                401,
                "unauthorized",
                "A bearer token is required: send 'Authorization: Bearer <token>' "
                f"(the server's {TOKEN_ENV} or --token-file).",
                [("WWW-Authenticate", 'Bearer realm="labdeck"')],
            )
        if not hmac.compare_digest(presented.strip(), self._expected):
            logger.warning("refused an MCP request from %s: wrong bearer token", client[0])
            return _json_response(
                401,
                "invalid_token",
                "The bearer token is not this server's.",
                [("WWW-Authenticate", 'Bearer realm="labdeck", error="invalid_token"')],
            )
        return None


# ---------------------------------------------------------------- the app and the server


def build_app(server: MCPServer, *, token: SecretStr, host: str, port: int) -> ASGIApp:
    """The SDK's streamable HTTP app at ``/mcp``, wrapped in ``McpHttpGuard``."""
    from mcp.server.transport_security import TransportSecuritySettings

    allowed = allowed_for(host, port)
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=allowed.hosts is not None,
        allowed_hosts=sorted(allowed.hosts or ()),
        allowed_origins=sorted(allowed.origins),
    )
    inner = server.streamable_http_app(
        streamable_http_path=MCP_PATH, transport_security=security, host=host
    )
    return McpHttpGuard(inner, token=token, allowed=allowed)


def uvicorn_server(app: ASGIApp) -> uvicorn.Server:
    """uvicorn configured to stay quiet (no access log, no stdout) and to stop promptly."""
    import uvicorn

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,  # keep the process's logging: everything on stderr
        access_log=False,
        ws="none",
        proxy_headers=False,  # no one in front of us gets to rewrite the client address
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,  # open SSE streams end the wait
    )
    return uvicorn.Server(config)


def bind_warning(host: str) -> str | None:
    if is_loopback(host):
        return None
    return (
        f"the MCP server listens on {host}, which is reachable from other machines: "
        "anyone who can reach it and holds the bearer token can use the tools. "
        "Prefer 127.0.0.1 with an SSH tunnel or a TLS reverse proxy."
    )


def serve(server: MCPServer, *, token: SecretStr, host: str, port: int) -> None:
    """Serve ``server`` over streamable HTTP until the process is stopped."""
    check_token(token)
    warning = bind_warning(host)
    if warning is not None:
        logger.warning(warning)
    sock = listen(host, port)
    bound_port = sock.getsockname()[1]
    app = build_app(server, token=token, host=host, port=bound_port)
    print(
        f"labdeck: MCP server (streamable HTTP) on http://{_authority(host, bound_port)}{MCP_PATH}"
        " (send 'Authorization: Bearer <token>')",
        file=sys.stderr,
        flush=True,
    )
    try:
        asyncio.run(uvicorn_server(app).serve(sockets=[sock]))
    finally:
        with contextlib.suppress(OSError):
            sock.close()
