"""Which methods each release serves, who may call them, and helpers to check arguments."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.truenas.errors import invalid, validation
from simulator.truenas.jobs import JobManager
from simulator.truenas.query import run_query
from simulator.truenas.state import RELEASES, TrueNasState

ALL = RELEASES
BEFORE_26 = ("25.04", "25.10")
FROM_2510 = ("25.10", "26")


@dataclass
class Session:
    """One WebSocket connection's login and options."""

    peer: str
    username: str | None = None
    roles: frozenset[str] = frozenset()
    legacy_jobs: bool = True
    private_methods: bool = False
    py_exceptions: bool = False
    subscriptions: dict[str, str] = field(default_factory=dict)  # id -> event name

    @property
    def authenticated(self) -> bool:
        return self.username is not None

    @property
    def full_admin(self) -> bool:
        return "FULL_ADMIN" in self.roles

    def has_role(self, role: str) -> bool:
        if self.full_admin or role in self.roles:
            return True
        if role.endswith("_READ"):
            if "READONLY_ADMIN" in self.roles:
                return True
            return role.removesuffix("_READ") + "_WRITE" in self.roles
        return False


@dataclass
class Ctx:
    state: TrueNasState
    jobs: JobManager
    session: Session
    method: str
    message_id: Any = None
    fail_delay: float = 0.0

    @property
    def release(self) -> str:
        return self.state.release


Handler = Callable[[Ctx, list[Any]], Any]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    handler: Handler
    releases: tuple[str, ...]
    private_in: tuple[str, ...] = ()
    auth: str = "roles"  # "none" | "session" | "roles"
    roles: tuple[str, ...] = ()
    job: bool = False
    max_args: int = 0
    read_only: bool = False


REGISTRY: dict[str, MethodSpec] = {}


def method(name: str, *, roles: tuple[str, ...] = (), auth: str = "roles", job: bool = False,
           args: int = 0, releases: tuple[str, ...] = ALL, private_in: tuple[str, ...] = (),
           read_only: bool = False) -> Callable[[Handler], Handler]:  # fmt: skip
    def register(fn: Handler) -> Handler:
        REGISTRY[name] = MethodSpec(name, fn, releases, private_in, auth, roles, job, args,
                                    read_only)  # fmt: skip
        return fn

    return register


def query_method(name: str, key: str, role: str, *, releases: tuple[str, ...] = ALL,
                 private_in: tuple[str, ...] = ()) -> None:  # fmt: skip
    def handler(ctx: Ctx, args: list[Any]) -> Any:
        filters = args[0] if args else []
        options = args[1] if len(args) > 1 else {}
        return run_query(ctx.state.rendered(key), filters, options)

    method(name, roles=(role,), args=2, releases=releases, private_in=private_in,
           read_only=True)(handler)  # fmt: skip


def served(release: str) -> dict[str, MethodSpec]:
    """Methods callable on ``release`` (public and private ones)."""
    return {n: m for n, m in REGISTRY.items() if release in m.releases or release in m.private_in}


def allowed(spec: MethodSpec, session: Session) -> bool:
    if spec.auth != "roles" or session.full_admin:
        return True
    return any(session.has_role(role) for role in spec.roles)


# ---- argument checks (pydantic-like messages, dotted attribute paths) -----------------------
_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean", dict: "dictionary", list: "list"}


def type_ok(value: Any, kind: Any) -> bool:
    if kind is Any:
        return True
    kinds = kind if isinstance(kind, tuple) else (kind,)
    for k in kinds:
        if k is None and value is None:
            return True
        if k is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if k in (str, bool, dict, list) and isinstance(value, k):
            return True
    return False


def _kind_name(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_TYPE_NAMES.get(k, "null") for k in kinds)


def arg(args: list[Any], index: int, name: str, kind: Any, *, default: Any = ...) -> Any:
    if index >= len(args):
        if default is ...:
            raise invalid(name, "Field required")
        return copy.deepcopy(default)
    value = args[index]
    if not type_ok(value, kind):
        raise invalid(name, f"Input should be a valid {_kind_name(kind)}")
    return value


def check_fields(data: dict[str, Any], prefix: str, fields: dict[str, Any],
                 required: tuple[str, ...] = (),
                 choices: dict[str, tuple[Any, ...]] | None = None) -> None:  # fmt: skip
    errors: list[tuple[str, str]] = []
    for key in required:
        if key not in data:
            errors.append((f"{prefix}.{key}", "Field required"))
    for key, value in data.items():
        if key not in fields:
            errors.append((f"{prefix}.{key}", "Extra inputs are not permitted"))
        elif not type_ok(value, fields[key]):
            errors.append((f"{prefix}.{key}", f"Input should be a valid {_kind_name(fields[key])}"))
        elif choices and key in choices and value not in choices[key]:
            options = ", ".join(repr(c) for c in choices[key])
            errors.append((f"{prefix}.{key}", f"Input should be {options}"))
    if errors:
        raise validation(errors)
