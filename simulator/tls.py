"""Throwaway TLS material: a private CA and a loopback server certificate."""

from __future__ import annotations

import ipaddress
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def sha256_fingerprint(pem: bytes) -> str:
    """SHA-256 of a PEM certificate as PVE shows it: ``AB:CD:...`` upper-case hex."""
    cert = x509.load_pem_x509_certificate(pem)
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def _extra_name(host: str) -> str | None:
    """The listen host, if it is a name a client could use and not yet covered."""
    if host in LOOPBACK_NAMES or not host:
        return None
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return None
    except ValueError:
        pass
    return host


@dataclass
class TlsMaterial:
    """The server's SSL context plus what a client needs to trust it."""

    ssl_context: ssl.SSLContext
    ca_path: str
    ca_fingerprint: str
    cert_fingerprint: str
    _tmpdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    names: tuple[str, ...] = LOOPBACK_NAMES
    rotations: int = 0

    def rotate(self) -> None:
        """Serve a new certificate, signed by a new CA, on every connection from now on.

        Fault injection (``cert-change``): clients that trust the old CA or pin the old
        certificate must refuse. The old CA file stays where it was; ``ca_path`` and the
        fingerprints describe the new material.
        """
        assert self._tmpdir is not None, "the TLS material was cleaned up"
        self.rotations += 1
        ca, server_cert = _mint(self.names)
        server_cert.configure_cert(self.ssl_context)  # new handshakes use the new key pair
        ca_path = Path(self._tmpdir.name) / f"ca-{self.rotations}.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_path = str(ca_path)
        self.ca_fingerprint = sha256_fingerprint(ca.cert_pem.bytes())
        self.cert_fingerprint = sha256_fingerprint(server_cert.cert_chain_pems[0].bytes())

    def cleanup(self) -> None:
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def make_tls(host: str = "127.0.0.1") -> TlsMaterial:
    """Mint a CA and a server certificate for the loopback names (and ``host``).

    The CA certificate is written to a private temporary directory; clients trust
    that file explicitly instead of turning verification off.
    """
    names = list(LOOPBACK_NAMES)
    extra = _extra_name(host)
    if extra is not None:
        names.append(extra)
    ca, server_cert = _mint(names)
    tmpdir = tempfile.TemporaryDirectory(prefix="labdeck-sim-")
    ca_path = Path(tmpdir.name) / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    server_cert.configure_cert(context)
    return TlsMaterial(
        ssl_context=context,
        ca_path=str(ca_path),
        ca_fingerprint=sha256_fingerprint(ca.cert_pem.bytes()),
        cert_fingerprint=sha256_fingerprint(server_cert.cert_chain_pems[0].bytes()),
        _tmpdir=tmpdir,
        names=tuple(names),
    )


def _mint(names: Sequence[str]) -> tuple[trustme.CA, trustme.LeafCert]:
    """A fresh CA and a server certificate it signed for ``names``."""
    # ECDSA keys: minting RSA keys would add about a second to every start.
    ca = trustme.CA(organization_name="labdeck simulator", key_type=trustme.KeyType.ECDSA)
    # pveproxy's self-signed node certificates last two years; so do ours, so that expiry
    # checks (labdeck doctor) see realistic dates rather than trustme's year-3000 default.
    now = datetime.now(UTC)
    server_cert = ca.issue_cert(
        *names, not_before=now - timedelta(days=1), not_after=now + timedelta(days=730)
    )
    return ca, server_cert
