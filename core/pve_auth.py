"""How a ``PveClient`` proves who it is: an API token, or a user + password ticket.

Tickets are what ``pveum``-less setups and some realms need. PVE tickets live two hours;
we renew ours (by posting the ticket as the password) once it is 1 h 45 min old, log in
again with the password when renewal fails, and writes carry the CSRF token that comes
with the ticket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx
from pydantic import SecretStr

from core.errors import AuthError, ServerError

TICKET_RENEW_AFTER_S = 105 * 60


class PveAuth(Protocol):
    #: who we are, safe to show: ``user@realm!token`` or ``user@realm``
    principal: str
    #: how to grant this principal a role: ``--tokens 'x'`` or ``--users 'x'``
    acl_flag: str

    def static_headers(self) -> dict[str, str]: ...

    async def request_headers(self, client: httpx.AsyncClient, method: str) -> dict[str, str]: ...

    async def renew_after_401(self, client: httpx.AsyncClient) -> bool:
        """Get fresh credentials after a 401; False when nothing could change."""
        ...

    def refused(self, reason: str) -> AuthError: ...


class TokenAuth:
    def __init__(self, token_id: str, secret: SecretStr) -> None:
        self.principal = token_id
        self.acl_flag = f"--tokens '{token_id}'"
        self._secret = secret

    def static_headers(self) -> dict[str, str]:
        return {"Authorization": f"PVEAPIToken={self.principal}={self._secret.get_secret_value()}"}

    async def request_headers(self, client: httpx.AsyncClient, method: str) -> dict[str, str]:
        return {}

    async def renew_after_401(self, client: httpx.AsyncClient) -> bool:
        return False  # a refused token stays refused

    def refused(self, reason: str) -> AuthError:
        return AuthError(
            f"Proxmox VE refused the API token {self.principal} ({reason}).",
            hint="Check user, token_name and the secret; the token may be revoked or expired.",
        )


class TicketAuth:
    def __init__(self, user: str, password: SecretStr) -> None:
        self.principal = user
        self.acl_flag = f"--users '{user}'"
        self._password = password
        self._ticket: str | None = None
        self._csrf: str | None = None
        self._obtained = 0.0
        self._lock = asyncio.Lock()
        #: logins and renewals made (tests and benchmarks read it)
        self.logins = 0

    def static_headers(self) -> dict[str, str]:
        return {}

    async def request_headers(self, client: httpx.AsyncClient, method: str) -> dict[str, str]:
        if self._ticket is None or time.monotonic() - self._obtained > TICKET_RENEW_AFTER_S:
            await self._refresh(client, seen=self._ticket, renew=True)
        assert self._ticket is not None and self._csrf is not None
        headers = {"Cookie": f"PVEAuthCookie={self._ticket}"}
        if method != "GET":
            headers["CSRFPreventionToken"] = self._csrf
        return headers

    async def renew_after_401(self, client: httpx.AsyncClient) -> bool:
        # the server refused this ticket: renewing with it would fail, use the password
        await self._refresh(client, seen=self._ticket, renew=False)
        return True

    async def _refresh(self, client: httpx.AsyncClient, *, seen: str | None, renew: bool) -> None:
        async with self._lock:
            if self._ticket != seen:
                return  # another request got a new ticket while we waited for the lock
            if renew and seen is not None and await self._login(client, seen, quiet=True):
                return
            await self._login(client, self._password.get_secret_value(), quiet=False)

    async def _login(self, client: httpx.AsyncClient, password: str, *, quiet: bool) -> bool:
        response = await client.post(
            "/access/ticket", data={"username": self.principal, "password": password}
        )
        self.logins += 1
        if response.status_code == 401:
            if quiet:
                return False  # renewal refused: fall back to the password
            raise self.refused(response.reason_phrase or "authentication failure")
        if response.status_code >= 400:
            raise ServerError(
                f"login as {self.principal} failed: {response.reason_phrase}.",
                status=response.status_code,
            )
        data = response.json().get("data") or {}
        if not data.get("ticket") or not data.get("CSRFPreventionToken"):
            raise AuthError(
                f"login as {self.principal} needs a second factor (TFA).",
                hint="Use an API token for labdeck instead (see README).",
            )
        self._ticket = str(data["ticket"])
        self._csrf = str(data["CSRFPreventionToken"])
        self._obtained = time.monotonic()
        return True

    def refused(self, reason: str) -> AuthError:
        return AuthError(
            f"Proxmox VE refused the login of {self.principal} ({reason}).",
            hint="Check user (with its realm, e.g. 'labdeck@pve') and password.",
        )
