"""TLS trust for our clients: system/CA-bundle verification or a SHA-256 certificate pin.

A pin is enforced by OpenSSL itself, not checked after the fact: we fetch the server's
certificate once, compare its SHA-256 with the pin, and then trust exactly that certificate
as the only anchor (``VERIFY_X509_PARTIAL_CHAIN``). Any other certificate fails the handshake,
so no request — and no token header — ever reaches a server that does not match the pin.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError, TLSError, Unreachable

if TYPE_CHECKING:
    from core.config import Profile

log = logging.getLogger("labdeck.tls")


def sha256_fingerprint(der: bytes) -> str:
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def verifying_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A context that verifies chain and host name against ``ca_bundle`` or the system store.

    Without an explicit bundle, ``SSL_CERT_FILE`` / ``REQUESTS_CA_BUNDLE`` are honoured, as
    people who already use them expect; an explicit ``ca_bundle`` wins over both.
    """
    ctx = ssl.create_default_context()
    bundle = ca_bundle
    if bundle is None:
        env_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
        bundle = Path(env_bundle) if env_bundle else None
    if bundle is not None:
        try:
            ctx.load_verify_locations(cafile=str(bundle.expanduser()))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load CA bundle {bundle}: {exc}.",
                hint="Point ca_bundle at a PEM file holding the cluster's CA certificate.",
            ) from None
    return ctx


def insecure_tls_warning(where: str) -> str:
    return (
        f"TLS verification is OFF for {where}: anyone on the network path can read the API "
        "token. Set ca_bundle or fingerprint instead of verify_ssl = false."
    )


def plain_http_warning(where: str) -> str:
    return (
        f"plain http to {where} (allow_insecure_transport = true): the API token crosses the "
        "network in clear. Use https:// with ca_bundle or fingerprint instead."
    )


def transport_warnings(profile: Profile) -> list[str]:
    """What is insecure about how ``profile`` connects, for faces that show it at start."""
    found = []
    pve, nas = profile.pve, profile.truenas
    if pve.configured and pve.scheme == "http":
        found.append(plain_http_warning(f"Proxmox VE {pve.host}"))
    elif pve.configured and not pve.verify_ssl and not pve.fingerprint:
        found.append(insecure_tls_warning(f"Proxmox VE {pve.host}"))
    if nas.configured and not nas.verify_ssl and not nas.fingerprint:
        found.append(insecure_tls_warning(f"TrueNAS {nas.url}"))
    return found


def insecure_context(where: str) -> ssl.SSLContext:
    """verify_ssl = false: allowed, but never quietly (logged each time a client starts)."""
    log.warning("%s", insecure_tls_warning(where))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def pinned_context(der: bytes) -> ssl.SSLContext:
    """Trust exactly one certificate (the pinned one) and nothing else."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the pin identifies the server; names on self-signed certs vary
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(der))
    return ctx


async def fetch_certificate(host: str, port: int, timeout_s: float) -> bytes:
    """The DER certificate a server presents, without trusting it."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=probe, server_hostname=host
            )
    except (OSError, TimeoutError) as exc:
        raise Unreachable(
            f"cannot reach {host}:{port} to check its certificate ({exc.__class__.__name__}).",
            hint="Check host, port and that the server is running.",
        ) from None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass  # the probe's close is best effort; the certificate is what we came for
    del reader
    if not der:
        raise TLSError(f"{host}:{port} presented no certificate.")
    return bytes(der)


async def pinned_context_for(host: str, port: int, pin: str, timeout_s: float) -> ssl.SSLContext:
    der = await fetch_certificate(host, port, timeout_s)
    seen = sha256_fingerprint(der)
    if seen != pin:
        raise TLSError(
            f"the certificate of {host}:{port} does not match the configured pin "
            f"(pin {pin[:11]}..., server {seen[:11]}...). Refusing to send credentials.",
            hint="If the certificate was renewed on purpose, update 'fingerprint' with the "
            "value `labdeck doctor` shows; otherwise treat this as an attack.",
        )
    return pinned_context(der)
