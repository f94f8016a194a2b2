"""Settings of one simulator instance and the demo API tokens it accepts."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.seed import DEFAULT_POOL_COUNT

if TYPE_CHECKING:
    from simulator.faults import FaultRule


@dataclass(frozen=True)
class SimulatorConfig:
    """What to serve and how the simulated cluster behaves.

    ``auth_fail_delay``: real pveproxy answers every failed authentication after a
    fixed 3 s delay; the default here is 0 so tests stay fast. Set 3.0 to mimic it.
    ``speed``: simulated seconds per real second (tasks and metric drift).
    ``dynamic=False`` freezes guest and node metrics for reproducible screenshots.
    ``truenas_rate_limit``: calls a minute to each TrueNAS method that needs no login (the
    logins) from one address before "Rate Limit Exceeded", as middlewared's 20; a test
    session whose many clients all come from 127.0.0.1 raises it.
    ``pools``: resource pools to create; the default three (prod, lab, media) are the demo's
    household, more get seeded team names (see ``simulator.seed``).
    """

    host: str = "127.0.0.1"
    port: int = 0
    nodes: int = 3
    guests: int = 24
    pools: int = DEFAULT_POOL_COUNT
    seed: int = 7
    speed: float = 1.0
    dynamic: bool = True
    auth_fail_delay: float = 0.0
    cluster_name: str = "labdeck-demo"
    # a TrueNAS JSON-RPC endpoint beside the PVE API (same CA), emulating this release
    truenas: bool = True
    truenas_version: str = "25.10"
    truenas_rate_limit: int = 20
    # fault injection: a spec ('GET /cluster/resources=503x2', see simulator.faults) or rules
    faults: str | tuple[FaultRule, ...] = ()


@dataclass(frozen=True)
class DemoToken:
    """An API token the simulator accepts. The secret stays out of ``repr``."""

    user: str
    token_name: str
    secret: str = field(repr=False)

    @property
    def token_id(self) -> str:
        """``user@realm!tokenname``, as PVE writes it in UPIDs and ACLs."""
        return f"{self.user}!{self.token_name}"

    @property
    def header(self) -> str:
        """The value of the ``Authorization`` header."""
        return f"PVEAPIToken={self.token_id}={self.secret}"


def demo_tokens(seed: int) -> tuple[DemoToken, DemoToken]:
    """The full-privilege and the audit-only token, stable for a given seed."""
    rng = random.Random(f"labdeck-tokens-{seed}")
    full = DemoToken("root@pam", "labdeck", str(uuid.UUID(int=rng.getrandbits(128), version=4)))
    audit = DemoToken(
        "auditor@pve", "readonly", str(uuid.UUID(int=rng.getrandbits(128), version=4))
    )
    return full, audit


@dataclass(frozen=True)
class DemoLogin:
    """A user name and password for ticket login (``POST /access/ticket``)."""

    user: str
    password: str = field(repr=False)


def demo_logins(seed: int) -> tuple[DemoLogin, DemoLogin]:
    """Passwords of the two demo users (the owners of the demo tokens), stable per seed."""
    rng = random.Random(f"labdeck-passwords-{seed}")
    full = DemoLogin("root@pam", f"demo-{rng.getrandbits(64):016x}")
    audit = DemoLogin("auditor@pve", f"audit-{rng.getrandbits(64):016x}")
    return full, audit
