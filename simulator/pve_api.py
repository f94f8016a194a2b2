"""PVE's request pipeline: base path, body parsing, auth, routing, permission,
parameter validation, handler, envelope -- in the order pveproxy applies them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from simulator import params as p
from simulator.auth import Authenticator, AuthFailure
from simulator.errors import ApiError, param_error, permission_denied
from simulator.http import HttpRequest, HttpResponse, parse_form
from simulator.pve_routes import build_routes
from simulator.routing import Call, EncodedJson, Reply, Router, ServerFacts
from simulator.state import ClusterState

BASE_PATH = "/api2/json"
log = logging.getLogger(__name__)


def _envelope(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as pveproxy's ``to_json($data, {utf8 => 1})``: non-ASCII text
    is sent as it is, not as ``\\u`` escapes."""
    return _utf8(json.dumps(payload, separators=(",", ":"), ensure_ascii=False))


def _utf8(text: str) -> bytes:
    # "replace": a lone surrogate (possible from a JSON request body) must not fail a reply
    return text.encode("utf-8", "replace")


def error_response(error: ApiError) -> HttpResponse:
    if error.bare:
        return HttpResponse(error.status, error.message, content_type=None)
    payload: dict[str, Any] = {"data": None, "message": error.message + "\n"}
    if error.errors:
        payload["errors"] = error.errors
    return HttpResponse(error.status, error.message, _envelope(payload))


def _body_params(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            decoded = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"unable to parse JSON body - {exc}", bare=True) from exc
        if not isinstance(decoded, dict):
            raise ApiError(400, "JSON body must be an object", bare=True)
        return decoded
    return dict(parse_form(request.body.decode("utf-8", "replace")))


class PveApi:
    """Turns HTTP requests into PVE API answers against one ``ClusterState``."""

    def __init__(
        self,
        state: ClusterState,
        authenticator: Authenticator,
        *,
        facts: ServerFacts,
        auth_fail_delay: float = 0.0,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.state = state
        self.router = Router(build_routes())
        self._auth = authenticator
        self._facts = facts
        self._auth_fail_delay = auth_fail_delay
        self._on_request = on_request

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if self._on_request is not None:
            self._on_request(request.method, request.path)
        try:
            return await self._handle(request)
        except ApiError as error:
            return error_response(error)
        except Exception:  # a simulator bug must still answer like a server would
            log.exception("simulator handler failed for %s %s", request.method, request.path)
            return error_response(ApiError(500, "internal simulator error"))

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        if request.path != BASE_PATH and not request.path.startswith(BASE_PATH + "/"):
            raise ApiError(501, "no such uri", bare=True)
        method = request.method
        if method in ("GET", "HEAD", "DELETE") and request.body:
            raise ApiError(501, "Unexpected content for method", bare=True)
        rel_path = request.path[len(BASE_PATH) :].rstrip("/") or "/"
        if rel_path == "/access/ticket":
            return await self._ticket(request)
        try:
            principal = self._auth.authenticate(request.headers, method)
        except AuthFailure as failure:
            if self._auth_fail_delay > 0:
                await asyncio.sleep(self._auth_fail_delay)
            raise ApiError(401, failure.reason, bare=True) from None
        self.state.advance()
        found = self.router.find(method, rel_path)
        if found is None:
            raise ApiError(501, f"Method '{method} {rel_path}' not implemented")
        route, path_params = found
        raw: dict[str, Any] = _body_params(request)
        raw.update(request.query)
        for name, value in path_params.items():
            if name in raw and raw[name] != value:
                raise param_error(
                    {name: "duplicate parameter (already defined in URI) with conflicting values!"}
                )
            raw[name] = value
        if route.permission is not None:
            template, privilege = route.permission
            path = template.format_map(_RawPath(raw))
            # "A|B": any one of them will do, as PVE's check_any (and its message) has it.
            if not any(principal.has(path, one) for one in privilege.split("|")):
                raise permission_denied(path, privilege)
        values, errors = p.validate(route.params, raw)
        if errors:
            raise param_error(errors)
        result = route.handler(Call(self.state, principal, values, self._facts))
        if isinstance(result, EncodedJson):
            return HttpResponse(200, "OK", _utf8('{"data":' + result.text + "}"))
        payload: dict[str, Any] = {}
        if isinstance(result, Reply):
            payload["data"] = result.data
            if result.total is not None:
                payload["total"] = result.total
        else:
            payload["data"] = result
        return HttpResponse(200, "OK", _envelope(payload))

    async def _ticket(self, request: HttpRequest) -> HttpResponse:
        """``/access/ticket`` needs no authentication ("user: world" in the schema)."""
        if request.method == "GET":  # a dummy PVE keeps for the GUI's login form
            return HttpResponse(200, "OK", _envelope({"data": None}))
        if request.method != "POST":
            raise ApiError(501, f"Method '{request.method} /access/ticket' not implemented")
        raw = _body_params(request)
        raw.update(request.query)
        values, errors = p.validate(TICKET_PARAMS, raw)
        if errors:
            raise param_error(errors)
        try:
            data = self._auth.login(values["username"], values["password"], values.get("realm"))
        except AuthFailure:
            # PVE holds a failed login until 3 s after the request started.
            if self._auth_fail_delay > 0:
                await asyncio.sleep(self._auth_fail_delay)
            raise ApiError(401, "authentication failure") from None
        data["clustername"] = self.state.cluster_name
        return HttpResponse(200, "OK", _envelope({"data": data}))


TICKET_PARAMS = {
    "username": p.text(optional=False, max_length=64),
    "password": p.text(optional=False),
    "realm": p.text(max_length=32),
    "otp": p.text(),
    "new-format": p.flag(),
    "tfa-challenge": p.text(),
    "path": p.text(max_length=64),
    "privs": p.text(max_length=64),
}


class _RawPath(dict[str, Any]):
    """Formats permission paths from raw values; a missing one stays empty like in PVE."""

    def __getitem__(self, key: str) -> Any:
        value = super().get(key, "")
        return ",".join(map(str, value)) if isinstance(value, list) else value
