"""Two HTTPS hosts of one site on loopback, and a Chromium that trusts them.

``app.example.test`` (our real service) and ``evil.example.test`` (an attacker's
server) are sibling hosts of ``example.test``: cookies set by one with
``Domain=example.test`` reach the other. Both are served over TLS with one leaf
certificate made here, signed by a throwaway CA made here; Chromium resolves
``*.example.test`` to 127.0.0.1 (``--host-resolver-rules``) and accepts the leaf by
its key (``--ignore-certificate-errors-spki-list``), so nothing of the machine's own
trust store or DNS is touched. Every host keeps its own port; cookies ignore ports.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port

SITE = "example.test"
APP_HOST = f"app.{SITE}"
EVIL_HOST = f"evil.{SITE}"


@dataclass(frozen=True)
class Certificate:
    """A leaf for every ``*.example.test`` host: files for uvicorn, a pin for Chromium."""

    certfile: Path
    keyfile: Path
    cafile: Path
    spki_sha256: str  # base64 of SHA-256 over the leaf's SubjectPublicKeyInfo


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_certificate(directory: Path) -> Certificate:
    """A throwaway CA and a one-day leaf for ``*.example.test`` (and 127.0.0.1)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("silentauth test CA"))
        .issuer_name(_name("silentauth test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(APP_HOST))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(APP_HOST),
                    x509.DNSName(EVIL_HOST),
                    x509.DNSName(f"*.{SITE}"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = Certificate(directory / "leaf.pem", directory / "leaf.key", directory / "ca.pem", "")
    paths.certfile.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    paths.keyfile.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths.cafile.write_bytes(ca.public_bytes(pem))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Certificate(
        paths.certfile, paths.keyfile, paths.cafile, base64.b64encode(hashlib.sha256(spki).digest()).decode()
    )


def chromium_args(cert: Certificate) -> list[str]:
    """Flags that map the test site to loopback and accept exactly this leaf."""
    return [
        f"--host-resolver-rules=MAP *.{SITE} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={cert.spki_sha256}",
    ]


def serve_tls(app: Any, cert: Certificate) -> Iterator[int]:
    """Run ``app`` with uvicorn over TLS on a loopback port; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ssl_certfile=str(cert.certfile),
        ssl_keyfile=str(cert.keyfile),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn (TLS) did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
