"""A small HTTP/1.1 server (asyncio streams + h11) with TLS and keep-alive.

Our own server rather than uvicorn because PVE carries its error text in the
reason phrase (``HTTP/1.1 500 Configuration file ... does not exist``) and a
faithful simulator must set it exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"
MAX_BODY_BYTES = 512 * 1024
DISCARD_LIMIT_BYTES = 16 * 1024 * 1024
READ_CHUNK = 64 * 1024
IDLE_TIMEOUT_S = 75.0

ParamValue = str | list[str]


@dataclass
class HttpRequest:
    method: str
    path: str  # percent-decoded, without the query string
    query: dict[str, ParamValue]
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes
    peer: str = ""


@dataclass
class HttpResponse:
    status: int
    reason: str
    body: bytes = b""
    content_type: str | None = JSON_CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    # Fault injection (simulator.faults): instead of answering, "reset" aborts the connection
    # (TCP RST); "hold" stays silent until the client hangs up or ``hold_s`` passes, then aborts.
    drop: Literal["reset", "hold"] | None = None
    hold_s: float = 0.0


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def parse_form(text: str) -> dict[str, ParamValue]:
    """Form or query text to a dict; a repeated key becomes a list, like PVE."""
    out: dict[str, ParamValue] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        previous = out.get(key)
        if previous is None:
            out[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            out[key] = [previous, value]
    return out


def _reason_bytes(reason: str) -> bytes:
    first_line = reason.splitlines()[0] if reason else ""
    return first_line.encode("utf-8", "replace")


class HttpServer:
    """Serves ``handler`` over HTTPS on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self, handler: Handler, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connect, self._host, self._port, ssl=self._ssl
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Aborting the transports makes every connection handler see EOF and end on
        # its own; cancelling them instead upsets asyncio's stream callbacks.
        for writer in self._connections.values():
            writer.transport.abort()
        tasks = list(self._connections)
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2.0)
            for task in stuck:
                task.cancel()
        await self._server.wait_closed()
        self._server = None

    def drop_connections(self) -> int:
        """Abort every open connection (fault injection: a restart after a new certificate)."""
        writers = list(self._connections.values())
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await self._serve(reader, writer)
        except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
            pass  # the client went away; nothing to answer
        except h11.ProtocolError:
            log.warning("dropping a connection after an HTTP protocol error", exc_info=True)
        finally:
            self._connections.pop(task, None)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=READ_CHUNK)
        peer = writer.get_extra_info("peername")
        peer_text = str(peer[0]) if isinstance(peer, tuple) else ""
        while True:
            try:
                outcome = await self._read_request(conn, reader, peer_text)
            except h11.RemoteProtocolError as exc:
                bad = HttpResponse(exc.error_status_hint, "Bad Request", close=True)
                with contextlib.suppress(h11.LocalProtocolError):
                    await self._send(conn, writer, bad)
                return
            if outcome is None:
                return
            if isinstance(outcome, HttpResponse):
                await self._send(conn, writer, outcome)
                return
            response = await self._handler(outcome)
            if response.drop is not None:
                await _drop(reader, writer, response)
                return
            await self._send(conn, writer, response)
            if response.close or conn.our_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, peer: str
    ) -> HttpRequest | HttpResponse | None:
        """The next complete request, an error response to send, or None at EOF."""
        request: h11.Request | None = None
        body = bytearray()
        received = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), IDLE_TIMEOUT_S)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                received += len(event.data)
                if received <= MAX_BODY_BYTES:
                    body += event.data
                elif received > DISCARD_LIMIT_BYTES:
                    return _too_large()
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                if received > MAX_BODY_BYTES:
                    # Read to the end first: closing on unread data would reset the
                    # connection before the client sees the answer.
                    return _too_large()
                return _to_request(request, bytes(body), peer)

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, response: HttpResponse
    ) -> None:
        headers: list[tuple[str, str]] = [
            ("Server", "pve-api-daemon/3.0"),
            ("Cache-Control", "max-age=0"),
            ("Pragma", "no-cache"),
            ("Content-Length", str(len(response.body))),
        ]
        if response.content_type is not None:
            headers.append(("Content-Type", response.content_type))
        if response.close:
            headers.append(("Connection", "close"))
        headers.extend(response.headers)
        head = h11.Response(
            status_code=response.status,
            headers=headers,
            reason=_reason_bytes(response.reason),
        )
        chunks = [conn.send(head)]
        if response.body:
            chunks.append(conn.send(h11.Data(data=response.body)))
        chunks.append(conn.send(h11.EndOfMessage()))
        writer.write(b"".join(c for c in chunks if c))
        await writer.drain()


async def _drop(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: HttpResponse
) -> None:
    """Leave a request unanswered: hold it (bounded) if asked, then reset the connection."""
    if response.drop == "hold":
        # Read (and ignore) until the client hangs up (EOF) or the hold is over.
        with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError, OSError):
            async with asyncio.timeout(response.hold_s):
                while await reader.read(READ_CHUNK):
                    pass
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # linger 0: close() sends RST, not FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _too_large() -> HttpResponse:
    return HttpResponse(501, "for data too large", content_type=None, close=True)


def _to_request(event: h11.Request, body: bytes, peer: str) -> HttpRequest:
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    headers = {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in event.headers
    }
    return HttpRequest(
        method=event.method.decode("ascii").upper(),
        path=unquote(parts.path),
        query=parse_form(parts.query),
        headers=headers,
        body=body,
        peer=peer,
    )
