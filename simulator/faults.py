"""Fault injection: make the simulator fail the way real servers and networks do.

A :class:`FaultRule` matches requests (PVE: HTTP method + path; TrueNAS: JSON-RPC method
name), optionally only the Nth match, at most ``count`` times or with a probability drawn
from the simulator's seeded RNG, and names a *kind* of failure. The first rule that fires
decides what happens to a request; requests no rule fires on are served normally.

Rules come from ``SimulatorConfig.faults`` (a spec string or rules), ``labdeck sim --faults``
or, while running, ``handle.faults.add(...)``. :data:`SPEC_HELP` documents the spec grammar.
The injector is shared by the event loop that serves requests and the test thread that adds
rules, so every public method takes one lock.
"""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import json
import random
import re
import textwrap
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from simulator.errors import ApiError, die, permission_denied
from simulator.http import HttpRequest, HttpResponse
from simulator.pve_api import PveApi, error_response
from simulator.tasks import looks_like_upid

if TYPE_CHECKING:
    from simulator.model import Guest
    from simulator.truenas.errors import RpcError

BASE_PATH = "/api2/json"
DEFAULT_HOLD_S = 30.0  # ``timeout``: the longest a request is held before its connection drops
DEFAULT_SLOW_S = 2.0
DEFAULT_RETRY_AFTER_S = 1.0

# kind -> what it does (also the help text of ``labdeck sim --faults``)
KINDS: dict[str, str] = {
    "401": "authentication refused ('authentication failure', as pveproxy answers a revoked "
    "token or an expired ticket); TrueNAS: not authenticated",
    "403": "missing privilege ('Permission check failed (/vms/100, VM.PowerMgmt)', the path "
    "and privilege of the route); TrueNAS: not authorized",
    "500": "internal server error; TrueNAS: a CallError",
    "503": "service unavailable",
    "429": "too many requests, with Retry-After (429:SECONDS, default 1)",
    "slow": "answer after a delay (slow:SECONDS, default 2)",
    "timeout": "accept but never answer; the connection drops after timeout:SECONDS (default 30)"
    " or when the client gives up",
    "reset": "close the TCP connection abruptly instead of answering; reset:after runs the "
    "request first (a write happens, its answer is lost)",
    "malformed": "HTTP 200 with a body that is not valid JSON; TrueNAS: a frame that is not JSON",
    "task-fail": "a write's task (TrueNAS: job) ends with an error and error log lines",
    "agent-down": "'QEMU guest agent is not running' for agent/* calls",
    "cert-change": "serve a new certificate from a different CA from now on and drop every "
    "connection (fires once unless xCOUNT says otherwise)",
    "ws-drop": "TrueNAS: close the WebSocket while the call runs (its answer is lost); "
    "ws-drop:after closes it right after answering (mid-job for job methods)",
}
PVE_ONLY = frozenset({"503", "429", "reset", "agent-down"})
RPC_ONLY = frozenset({"ws-drop"})
_TAKES_SECONDS = frozenset({"429", "slow", "timeout"})
_TAKES_AFTER = frozenset({"reset", "ws-drop"})
_METHODS = ("GET", "POST", "PUT", "DELETE")

SPEC_HELP = """\
Fault spec: comma-separated rules, each  [METHOD] PATTERN=KIND[:ARG][xCOUNT][@NTH][%PROB]
  METHOD   GET, POST, PUT, DELETE or * (any; the default); RPC for a TrueNAS method
  PATTERN  PVE: a path below /api2/json, * matching anything (also '/');
           RPC: a TrueNAS method name, * allowed (pool.dataset.*)
  xCOUNT   fire COUNT times, then serve normally      @NTH  only the NTH matching request
  %PROB    fire with probability PROB (0..1), drawn from the seeded RNG
  KIND     {kinds}
Example: 'GET /cluster/resources=503x2,POST */status/start=reset,RPC pool.dataset.create=ws-drop'
"""


def spec_help() -> str:
    """:data:`SPEC_HELP` with every kind described (``labdeck sim --help``, the README)."""
    width = max(len(kind) for kind in KINDS)
    lines = []
    for kind, text in KINDS.items():
        wrapped = textwrap.wrap(text, 88 - width, break_on_hyphens=False)
        lines.append(f"{kind:<{width}}  {wrapped[0]}")
        lines += [" " * (width + 2) + more for more in wrapped[1:]]
    return SPEC_HELP.format(kinds="\n           ".join(lines))


@dataclass
class FaultRule:
    """What to break and when. ``path`` is a regex matched in full against the path below
    ``/api2/json`` (e.g. ``/nodes/[^/]+/qemu/100/status/start``); ``rpc`` a TrueNAS method
    name, ``*`` allowed. ``seconds``: slow's delay, timeout's longest hold, 429's Retry-After.
    ``after``: reset/ws-drop only once the request ran. ``message`` replaces the default text
    of 403, 500, 503 and task-fail."""

    kind: str
    method: str | None = None
    path: str | None = None
    rpc: str | None = None
    nth: int | None = None
    count: int | None = None
    probability: float = 1.0
    seconds: float | None = None
    after: bool = False
    message: str | None = None
    spec: str | None = field(default=None, compare=False)  # the --faults text it came from
    seen: int = field(default=0, init=False, compare=False)
    fired: int = field(default=0, init=False, compare=False)
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.method is not None:
            self.method = self.method.upper()
            if self.method not in (*_METHODS, "*"):
                raise ValueError(f"{self.method!r} is not an HTTP method ({', '.join(_METHODS)})")
        if self.rpc is not None and (self.path is not None or self.method not in (None, "*")):
            raise ValueError("a rule matches either a TrueNAS method (rpc) or an HTTP request")
        face = "TrueNAS" if self.rpc is not None else "Proxmox VE"
        if self.kind in (PVE_ONLY if self.rpc is not None else RPC_ONLY):
            raise ValueError(f"fault kind {self.kind!r} does not apply to {face} requests")
        if self.after and self.kind not in _TAKES_AFTER:
            raise ValueError(f"':after' only applies to {' and '.join(sorted(_TAKES_AFTER))}")
        if self.nth is not None and self.nth < 1:
            raise ValueError("nth counts from 1")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.seconds is not None and not 0.0 <= self.seconds <= 3600.0:
            raise ValueError("seconds must be between 0 and 3600")
        if self.kind == "cert-change" and self.count is None and self.nth is None:
            self.count = 1  # every request would otherwise mint a new certificate
        if self.rpc is None:
            pattern = self.path or ".*"
            try:
                self._regex = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"path {pattern!r} is not a regular expression: {exc}") from None

    @property
    def label(self) -> str:
        """The rule in spec form; the key of :attr:`FaultInjector.hits`."""
        if self.spec is not None:
            return self.spec
        if self.rpc is not None:
            target = f"RPC {self.rpc}"
        else:
            target = f"{self.method or '*'} {self.path or '.*'}"
        text = f"{target}={self.kind}"
        if self.seconds is not None:
            text += f":{self.seconds:g}"
        if self.after:
            text += ":after"
        if self.count is not None:
            text += f"x{self.count}"
        if self.nth is not None:
            text += f"@{self.nth}"
        if self.probability < 1.0:
            text += f"%{self.probability:g}"
        return text

    def hold_s(self, default: float) -> float:
        return default if self.seconds is None else self.seconds

    def matches_http(self, method: str, path: str) -> bool:
        if self._regex is None or self.method not in (None, "*", method):
            return False
        if self.kind == "task-fail" and method == "GET":
            return False  # only writes start tasks
        if self.kind == "agent-down" and "/agent/" not in path:
            return False  # only guest agent calls reach the agent
        return self._regex.fullmatch(path) is not None

    def matches_rpc(self, name: str) -> bool:
        return self.rpc is not None and fnmatch.fnmatchcase(name, self.rpc)


# ---------------------------------------------------------------------------- the spec
_RULE = re.compile(
    r"^(?:(?P<method>[A-Za-z]+|\*)\s+)?(?P<pattern>\S+)=(?P<kind>[a-z0-9-]+?)"
    r"(?::(?P<arg>[0-9.]+|after))?(?:x(?P<count>\d+))?(?:@(?P<nth>\d+))?(?:%(?P<p>[0-9.]+))?$"
)


def parse_spec(spec: str) -> list[FaultRule]:
    """``'GET /cluster/resources=503x2,POST */status/start=reset'`` -> rules.

    Raises ``ValueError`` naming the rule that is wrong and why.
    """
    rules = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        try:
            rules.append(_parse_rule(item))
        except ValueError as exc:
            raise ValueError(f"fault rule {item!r}: {exc}") from None
    return rules


def _parse_rule(text: str) -> FaultRule:
    found = _RULE.match(text)
    if found is None:
        raise ValueError("expected [METHOD] PATTERN=KIND[:ARG][xCOUNT][@NTH][%PROB]")
    method, pattern, kind, arg = found["method"], found["pattern"], found["kind"], found["arg"]
    seconds: float | None = None
    if arg is not None and arg != "after":
        if kind not in _TAKES_SECONDS:
            raise ValueError(f"{kind} takes no number (only {', '.join(sorted(_TAKES_SECONDS))})")
        try:
            seconds = float(arg)
        except ValueError:
            raise ValueError(f"{arg!r} is not a number of seconds") from None
    common: dict[str, Any] = {
        "kind": kind,
        "count": int(found["count"]) if found["count"] else None,
        "nth": int(found["nth"]) if found["nth"] else None,
        "probability": float(found["p"]) if found["p"] else 1.0,
        "seconds": seconds,
        "after": arg == "after",
        "spec": text,
    }
    if method is not None and method.upper() == "RPC":
        return FaultRule(rpc=pattern, **common)
    if not pattern.startswith(("/", "*")):
        raise ValueError("a Proxmox VE path starts with '/' (or '*'); TrueNAS rules start with RPC")
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return FaultRule(method=method, path=regex, **common)


def as_rules(faults: str | Iterable[FaultRule]) -> list[FaultRule]:
    """Spec text or rules -> fresh rules (counters at zero, so configs can be reused)."""
    if isinstance(faults, str):
        return parse_spec(faults)
    return [replace(rule) for rule in faults]


# ---------------------------------------------------------------------------- the injector
class FaultInjector:
    """The active rules of one simulator; thread-safe (tests add rules from their thread)."""

    def __init__(self, seed: int = 7, faults: str | Iterable[FaultRule] = ()) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"labdeck-faults-{seed}")
        self._rules: list[FaultRule] = as_rules(faults)
        self._hits: collections.Counter[str] = collections.Counter()

    def add(self, kind: str | FaultRule, **match: Any) -> FaultRule:
        """``add("503", method="GET", path="/cluster/resources", count=2)`` or a rule."""
        rule = kind if isinstance(kind, FaultRule) else FaultRule(kind, **match)
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_spec(self, spec: str) -> list[FaultRule]:
        """Add the rules of a ``--faults`` spec."""
        rules = parse_spec(spec)
        with self._lock:
            self._rules.extend(rules)
        return rules

    def clear(self) -> None:
        """Back to normal service: no rules, no hits."""
        with self._lock:
            self._rules.clear()
            self._hits.clear()

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    @property
    def hits(self) -> dict[str, int]:
        """How often each rule fired, by :attr:`FaultRule.label`."""
        with self._lock:
            return dict(self._hits)

    def pick_http(self, method: str, path: str) -> FaultRule | None:
        return self._pick(lambda rule: rule.matches_http(method, path))

    def pick_rpc(self, name: str) -> FaultRule | None:
        return self._pick(lambda rule: rule.matches_rpc(name))

    def unfire(self, rule: FaultRule) -> None:
        """The rule turned out not to apply (a write that started no task): not a hit."""
        with self._lock:
            rule.fired -= 1
            self._hits[rule.label] -= 1
            if self._hits[rule.label] <= 0:
                del self._hits[rule.label]

    def _pick(self, matches: Callable[[FaultRule], bool]) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if not matches(rule):
                    continue
                rule.seen += 1
                if rule.nth is not None and rule.seen != rule.nth:
                    continue
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                self._hits[rule.label] += 1
                return rule
        return None


# ---------------------------------------------------------------------------- PVE
class FaultyPveApi:
    """In front of :class:`PveApi`: records every request, then applies the fault that fires.

    ``on_cert_change`` swaps the server certificate and drops every connection.
    """

    def __init__(self, api: PveApi, injector: FaultInjector,
                 record: Callable[[str, str], None],
                 on_cert_change: Callable[[], None]) -> None:  # fmt: skip
        self._api = api
        self._injector = injector
        self._record = record
        self._on_cert_change = on_cert_change

    async def handle(self, request: HttpRequest) -> HttpResponse:
        self._record(request.method, request.path)
        path = request.path
        if path.startswith(BASE_PATH + "/"):
            path = path[len(BASE_PATH) :].rstrip("/") or "/"
        rule = self._injector.pick_http(request.method, path)
        if rule is None:
            return await self._api.handle(request)
        return await self._apply(rule, request, path)

    async def _apply(self, rule: FaultRule, request: HttpRequest, path: str) -> HttpResponse:
        kind = rule.kind
        if kind == "slow":
            await asyncio.sleep(rule.hold_s(DEFAULT_SLOW_S))
            return await self._api.handle(request)
        if kind == "timeout":
            return HttpResponse(0, "", drop="hold", hold_s=rule.hold_s(DEFAULT_HOLD_S))
        if kind == "reset":
            if rule.after:
                await self._api.handle(request)
            return HttpResponse(0, "", drop="reset")
        if kind == "cert-change":
            self._on_cert_change()
            return HttpResponse(0, "", drop="reset")
        if kind == "malformed":
            answer = await self._api.handle(request)
            # A reply cut short, as a broken proxy or a crashed worker leaves it.
            return HttpResponse(200, "OK", answer.body[: max(1, len(answer.body) // 2)])
        if kind == "task-fail":
            return await self._fail_task(rule, request)
        return _error_answer(rule, self._api, request.method, path)

    async def _fail_task(self, rule: FaultRule, request: HttpRequest) -> HttpResponse:
        answer = await self._api.handle(request)
        upid = _upid_of(answer)
        task = None
        if upid is not None:
            task = self._api.state.tasks.get(upid.split(":")[1], upid)
        if task is None or task.finished:
            self._injector.unfire(rule)
            return answer
        error = rule.message or _task_error(task.kind, task.ident)
        end = task.end_at
        first = [(at, line) for at, line in task.log[:1] if not line.startswith("TASK ")]
        task.exitstatus = error
        task.log = [*first, (end, error), (end, f"TASK ERROR: {error}")]
        task.on_finish = None  # a failed worker changes nothing
        guest = _task_guest(self._api, task.ident)
        if guest is not None:
            guest.lock = None  # a failing worker holds no config lock (workers.start_worker)
        return answer


def _error_answer(rule: FaultRule, api: PveApi, method: str, path: str) -> HttpResponse:
    kind = rule.kind
    if kind == "401":
        return error_response(ApiError(401, "authentication failure", bare=True))
    if kind == "403":
        if rule.message:
            return error_response(ApiError(403, rule.message))
        where, privilege = _permission_of(api, method, path)
        return error_response(permission_denied(where, privilege))
    if kind == "500":
        return error_response(die(rule.message or "got unexpected error (injected fault)"))
    if kind == "503":
        return error_response(ApiError(503, rule.message or "Service Unavailable", bare=True))
    if kind == "429":
        response = error_response(ApiError(429, "Too Many Requests", bare=True))
        response.headers.append(("Retry-After", f"{rule.hold_s(DEFAULT_RETRY_AFTER_S):g}"))
        return response
    assert kind == "agent-down", kind
    return error_response(die("QEMU guest agent is not running"))


def _permission_of(api: PveApi, method: str, path: str) -> tuple[str, str]:
    """The ACL path and privilege the route checks (PVE names them in its 403 message)."""
    found = api.router.find(method, path)
    permission = found[0].permission if found is not None else None
    if found is None or permission is None:
        return "/", "Sys.Audit"
    params = found[1]
    template, privilege = permission
    where = re.sub(r"\{(\w+)\}", lambda m: params.get(m[1], ""), template)
    return where, privilege.split("|")[0]


def _upid_of(answer: HttpResponse) -> str | None:
    if answer.status != 200:
        return None
    try:
        data = json.loads(answer.body).get("data")
    except (ValueError, AttributeError):
        return None
    return data if isinstance(data, str) and looks_like_upid(data) else None


def _task_error(kind: str, ident: str) -> str:
    """An error text like the worker's own, by task type."""
    if kind == "qmstart":
        return f"start failed: QEMU exited with code 1 (VM {ident})"
    if kind == "vzstart":
        return f"startup for container '{ident}' failed"
    return f"command '{kind}' failed: exit code 1"


def _task_guest(api: PveApi, ident: str) -> Guest | None:
    return api.state.guests.get(int(ident)) if ident.isdigit() else None


# ---------------------------------------------------------------------------- TrueNAS
# (simulator.truenas is imported inside the functions: its server imports this module)
def rpc_error(rule: FaultRule) -> RpcError | None:
    """The JSON-RPC error a TrueNAS rule answers with, if it is an error kind."""
    from simulator.truenas.errors import call_error, not_authenticated, not_authorized

    if rule.kind == "401":
        return not_authenticated()
    if rule.kind == "403":
        return not_authorized()
    if rule.kind == "500":
        return call_error(14, rule.message or "[EFAULT] injected fault: internal error")
    return None


def failing_finish(rule: FaultRule) -> Callable[[], Any]:
    """A job ``finish`` that fails the job (task-fail on a job method)."""
    from simulator.truenas.jobs import JobError

    def finish() -> Any:
        raise JobError(rule.message or "injected fault: the job failed")

    return finish


MALFORMED_FRAME = '{"jsonrpc": "2.0", "id": '  # a reply cut short: not JSON


async def hold(rule: FaultRule) -> None:
    """``timeout`` on TrueNAS: never answer; the call's task ends after the hold."""
    await asyncio.sleep(rule.hold_s(DEFAULT_HOLD_S))
