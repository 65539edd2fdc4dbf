"""A throwaway nginx that terminates TLS in front of token-service instances.

Started like the PostgreSQL and Redis of ``tests.stores.servers``: its own
prefix directory, configuration, certificate, pid file, error log and temp
paths under one temporary directory, a free loopback port, stopped at the end.
The configuration is the one the README recommends for production: TLS here,
plain HTTP upstream, ``Host`` kept, the peer appended to ``X-Forwarded-For``
and the scheme in ``X-Forwarded-Proto``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.stores.servers import free_port

CONFIG = """\
daemon off;
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    upstream silentauth {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {root}/cert.pem;
        ssl_certificate_key {root}/key.pem;
        location / {{
            proxy_pass http://silentauth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def self_signed(cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    """A one-day ECDSA certificate for ``host`` (an IP address SAN, as browsers require)."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)


@dataclass
class Nginx:
    """``nginx -p ROOT -c ROOT/nginx.conf`` in the foreground, proxying to ``upstreams``."""

    binary: str
    root: Path
    upstreams: list[int] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self_signed(self.root / "cert.pem", self.root / "key.pem")
        conf = self.root / "nginx.conf"
        conf.write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                servers="\n".join(f"        server 127.0.0.1:{p};" for p in self.upstreams),
                # Workers of a root master drop to `nobody` and could not read the key.
                user="user root;" if os.geteuid() == 0 else "",
            )
        )
        # -e: the error log from the first line on (else /var/log/nginx, not ours).
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited {self.proc.returncode}: {self.error_log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not listen within {timeout} s: {self.error_log()}") from None
                time.sleep(0.05)

    def error_log(self) -> str:
        path = self.root / "error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
