"""The safety policy every face goes through before a write is sent.

- read-only unless writes are allowed (profile ``allow_writes`` or the face's flag);
- protected guests (by vmid, ``name:``, ``tag:`` or ``pool:``) are never written to;
- destructive operations need a confirmation the face obtained from a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import ConfirmationRequired, PolicyDenied
from core.models import Guest
from core.ops import Operation


@dataclass(frozen=True, slots=True)
class Policy:
    allow_writes: bool = False
    protected: tuple[str, ...] = field(default_factory=tuple)
    #: when not None, the only write operations allowed
    allowed_operations: frozenset[str] | None = None

    def check_operation(self, op: Operation, *, confirmed: bool, how_to_allow: str) -> None:
        if op.read_only:
            return
        if not self.allow_writes:
            raise PolicyDenied(
                f"{op.name} changes the cluster, and labdeck is in read-only mode.",
                hint=how_to_allow,
            )
        if self.allowed_operations is not None and op.name not in self.allowed_operations:
            allowed = ", ".join(sorted(self.allowed_operations)) or "none"
            raise PolicyDenied(
                f"{op.name} is not in this profile's allowed write operations ({allowed}).",
                hint="Add it to [policy] allow_operations to allow it.",
            )
        if op.confirm and not confirmed:
            raise ConfirmationRequired(
                f"{op.name} is disruptive and needs an explicit confirmation.",
                hint="Confirm it (the dashboard asks; the CLI takes --yes).",
            )

    def protection_of(self, guest: Guest) -> str | None:
        """The rule that protects ``guest``, or None."""
        for rule in self.protected:
            kind, sep, value = rule.partition(":")
            if not sep:
                if rule.strip() == str(guest.vmid):
                    return rule
                continue
            kind = kind.strip().lower()
            value = value.strip()
            if (
                (kind == "vmid" and value == str(guest.vmid))
                or (kind == "name" and value == guest.name)
                or (kind == "tag" and value in guest.tags)
                or (kind == "pool" and value == guest.pool)
            ):
                return rule
        return None

    def check_guest(self, op: Operation, guest: Guest) -> None:
        if op.read_only:
            return
        rule = self.protection_of(guest)
        if rule is not None:
            raise PolicyDenied(
                f"guest {guest.vmid} ({guest.name}) is protected by the rule {rule!r}; "
                f"{op.name} is refused.",
                hint="Remove the rule from [policy] protected to allow writes to it.",
            )
