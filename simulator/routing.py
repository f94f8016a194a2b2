"""Route table types: a method + path template, its parameters and permission."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from simulator.auth import Principal
from simulator.params import Param

if TYPE_CHECKING:
    from simulator.state import ClusterState


@dataclass(frozen=True)
class Reply:
    """Handler result with envelope extras (``total`` for task logs)."""

    data: Any
    total: int | None = None


@dataclass(frozen=True)
class EncodedJson:
    """Handler result already encoded as compact JSON text (what ``data`` would encode
    to); the envelope splices it in unparsed. For hot listings only."""

    text: str


@dataclass(frozen=True)
class Call:
    """Everything a handler may use: validated params, the caller, the cluster."""

    state: ClusterState
    principal: Principal
    params: dict[str, Any]
    server: ServerFacts


def _nobody(userid: str) -> Principal | None:
    return None


@dataclass(frozen=True)
class ServerFacts:
    """Facts about the serving process that some answers include."""

    cert_fingerprint: str
    # Finds the principal behind ``user@realm`` or ``user@realm!token`` (permission dumps).
    lookup_principal: Callable[[str], Principal | None] = _nobody


RouteHandler = Callable[[Call], Any]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: RouteHandler
    params: Mapping[str, Param]
    # (path template, privilege): checked before validation, like PVE, on raw values.
    # ``"A|B"`` as privilege means any one of them (PVE's ``check_any``).
    permission: tuple[str, str] | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.template))
        object.__setattr__(self, "regex", re.compile(pattern + "$"))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.regex.match(path)
        return found.groupdict() if found else None


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self._routes = routes

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            found = route.match(path)
            if found is not None:
                return route, found
        return None
