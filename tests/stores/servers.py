"""Throwaway PostgreSQL and Redis servers, and token-service processes, on loopback.

Plain helpers (no pytest) so that ``bench/stores.py`` can start the same
servers. Each database server lives in its own temporary directory; it can
be killed like a crash and restarted on the same port and data, which is what
the multi-instance tests do to the store under load.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar, TypeVar

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str) -> str | None:
    """``name`` on PATH, else in the newest ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    for cand in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        if os.access(cand, os.X_OK):
            return cand
    return None


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


@dataclass
class PostgresServer:
    """``initdb`` + ``postgres`` in a temporary directory (run as user postgres under root)."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="silentauth-pg-")))
    proc: subprocess.Popen[bytes] | None = None

    def _user(self) -> str | None:
        return "postgres" if os.geteuid() == 0 else None

    def init(self) -> None:
        initdb = find_binary("initdb")
        if initdb is None:
            raise RuntimeError("initdb not found")
        user = self._user()
        if user:
            # postgres refuses to run as root; the data directory must be its own.
            pw = pwd.getpwnam(user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [initdb, "-D", str(self.root / "data"), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions"],
            user=user, check=True, capture_output=True, timeout=120,
        )

    # Throwaway data: no fsync, but every commit still reaches the OS, so a
    # killed (not crashed-machine) server loses nothing acknowledged.
    durability: ClassVar[tuple[str, ...]] = ("fsync=off", "full_page_writes=off", "max_connections=200")
    own_process_group = False  # True lets a crash test SIGKILL every backend at once

    def start(self) -> None:
        postgres = find_binary("postgres")
        if postgres is None:
            raise RuntimeError("postgres not found")
        args = [
            postgres, "-D", str(self.root / "data"), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
            "-c", "shared_buffers=32MB", "-c", "logging_collector=off",
        ]  # fmt: skip
        for setting in self.durability:
            args += ["-c", setting]
        with open(self.root / "postgres.log", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen(
                args,
                user=self._user(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=self.own_process_group,
            )
        _wait_port(self.port, self.proc, "postgres")
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                # "the database system is starting up" after a crash restart
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def kill(self) -> None:
        """Immediate shutdown (SIGQUIT): no checkpoint, crash recovery on restart."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class PostgresStandby(PostgresServer):
    """A streaming hot standby of a running :class:`PostgresServer`.

    ``init`` copies the primary with ``pg_basebackup -R`` (which writes
    ``primary_conninfo`` and ``standby.signal``) through a physical replication
    slot, so the primary keeps every WAL segment the standby has not received
    yet. ``make_synchronous`` then makes the primary wait for the standby on
    every commit (see the method). ``promote`` ends recovery: the standby
    becomes a read-write primary.
    """

    primary_port: int = 0
    name: str = "standby1"

    def init(self) -> None:
        basebackup = find_binary("pg_basebackup")
        if basebackup is None:
            raise RuntimeError("pg_basebackup not found")
        user = self._user()
        if user:
            pw = pwd.getpwnam(user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        subprocess.run(
            [basebackup, "-D", str(self.root / "data"), "-h", "127.0.0.1", "-p", str(self.primary_port),
             "-U", "postgres", "-R", "-C", "-S", self.name, "-X", "stream", "--checkpoint=fast", "--no-sync"],
            user=user, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        # The walreceiver names itself after cluster_name when primary_conninfo
        # has no application_name: that is the name synchronous_standby_names lists.
        with open(self.root / "data" / "postgresql.auto.conf", "a") as conf:
            conf.write(f"cluster_name = '{self.name}'\n")

    def make_synchronous(self, timeout: float = 30.0) -> None:
        """Make the primary's commits wait until this standby has the WAL on disk.

        ``synchronous_commit = on`` with this standby as the one synchronous
        standby: a commit is acknowledged only once the standby has flushed its
        WAL. Promotion replays all WAL the standby holds before it accepts
        writes, so every acknowledged commit survives the loss of the primary.
        ``remote_apply`` would also make the commit visible to queries on the
        standby before the acknowledgement, which only matters when reads go
        to standbys; the token service reads and writes the primary only.
        """
        import psycopg

        url = f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '\"{self.name}\"'")
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + timeout
            while True:
                row = conn.execute(
                    "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s", (self.name,)
                ).fetchone()
                if row is not None and row[0] == "sync":
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"standby {self.name} not synchronous within {timeout} s: {row}")
                time.sleep(0.05)

    def promote(self, timeout: float = 30.0) -> None:
        """``pg_ctl promote -w``: return once the standby accepts writes."""
        pg_ctl = find_binary("pg_ctl")
        if pg_ctl is None:
            raise RuntimeError("pg_ctl not found")
        subprocess.run(
            [pg_ctl, "promote", "-D", str(self.root / "data"), "-w", "-t", str(int(timeout))],
            user=self._user(), check=True, capture_output=True, timeout=timeout + 10,
        )


@dataclass
class RedisServer:
    """``redis-server`` on loopback; append-only file so a kill loses no reply."""

    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="silentauth-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = find_binary("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "yes", "--appendfsync", "no",
             "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, self.proc, "redis-server")
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.RedisError:  # BusyLoadingError while reading the AOF
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(1000):
        port = free_port()
        if port + 10000 > 65535:
            # The kernel hands out high ports; try a low one of our own.
            port = 20000 + port % 30000
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisClusterServers:
    """A Redis Cluster on loopback: 3 masters and 3 replicas, each in its own directory.

    Every node runs with ``appendfsync always``, so a node killed with SIGKILL
    has on disk every write it acknowledged. ``node_timeout`` (ms) is how long
    the others wait before they call a silent master dead and promote its
    replica.
    """

    masters: int = 3
    replicas: int = 1  # per master
    node_timeout: int = 1000
    # "always" for the failover tests (nothing acknowledged is lost); a benchmark
    # comparing shard counts may pick the single RedisServer's "no".
    appendfsync: str = "always"
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self) -> None:
        binary, cli_binary = find_binary("redis-server"), find_binary("redis-cli")
        if binary is None or cli_binary is None:
            raise RuntimeError("redis-server or redis-cli not found")
        if self.nodes:  # a restart after kill(): same ports, same data and nodes.conf
            for node in self.nodes:
                if node not in self.live():
                    self._spawn(binary, node)
            self.wait_healthy()
            return
        self.nodes = [RedisServer(port=free_cluster_port()) for _ in range(self.masters * (1 + self.replicas))]
        for node in self.nodes:
            self._spawn(binary, node)
        for node in self.nodes:
            _wait_port(node.port, node.proc, "redis-server")  # type: ignore[arg-type]
        if self.masters == 1 and self.replicas == 0:
            # `redis-cli --cluster create` wants 3 masters; a 1-shard cluster (the
            # baseline of a shard-count benchmark) is one node holding every slot.
            subprocess.run(
                [cli_binary, "-p", str(self.nodes[0].port), "CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        else:
            subprocess.run(
                [cli_binary, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                 "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
        self.wait_healthy()

    def _spawn(self, binary: str, node: RedisServer) -> None:
        node.proc = subprocess.Popen(
            [binary, "--port", str(node.port), "--bind", "127.0.0.1", "--dir", str(node.root),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(self.node_timeout),
             "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
             "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def wait_healthy(self, timeout: float = 60.0, synced: bool = True) -> None:
        """Until every live node reports ``cluster_state:ok`` and every slot is served,
        and (``synced``) every live replica has finished its first sync: before
        that, a ``WAIT`` on its master counts no acknowledgement from it."""
        import redis

        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.live():
                try:
                    with redis.Redis(port=node.port, socket_timeout=2, decode_responses=True) as c:
                        info = c.execute_command("CLUSTER", "INFO")
                        if isinstance(info, dict):  # redis-py may parse it
                            states.append(info.get("cluster_state") == "ok" and
                                          str(info.get("cluster_slots_ok")) == "16384")
                        else:
                            states.append("cluster_state:ok" in info and "cluster_slots_ok:16384" in info)
                        repl = c.info("replication")
                        if synced and repl.get("role") == "slave":
                            states.append(repl.get("master_link_status") == "up"
                                          and int(repl.get("master_sync_in_progress", 1)) == 0)
                        elif synced:
                            links = [v for k, v in repl.items() if k.startswith("slave") and isinstance(v, dict)]
                            states.append(all(link.get("state") == "online" for link in links))
                except redis.exceptions.RedisError:
                    states.append(False)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok within {timeout} s")
            time.sleep(0.1)

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def master_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot now."""
        import redis

        with redis.RedisCluster(host="127.0.0.1", port=self.live()[0].port, socket_timeout=2) as c:
            node = c.get_node_from_key(key)
            return next(n for n in self.nodes if n.port == int(node.port))

    @property
    def url(self) -> str:
        """Every node named: whichever is down, a new client finds the cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def flush(self) -> None:
        import redis

        for node in self.live():
            with redis.Redis(port=node.port, socket_timeout=5) as c:
                try:
                    c.flushall()
                except redis.exceptions.ReadOnlyError:
                    pass  # a replica: its master's flush reaches it

    def kill(self) -> None:
        """SIGKILL every node (a whole-cluster crash); :meth:`start` brings it back."""
        for node in self.nodes:
            node.kill()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


SECRET_KEY = "multi-instance-test-secret-key-32-bytes!!"
# Instances behind one balancer share one issuer (required with a shared store):
# the default would name each instance's own port and they would refuse each
# other's tokens.
ISSUER = "http://silentauth.test"


def service_env(database_url: str, **settings: str) -> dict[str, str]:
    """Environment for ``python -m silentauth`` against a shared store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILENTAUTH_")}
    env.update(
        SILENTAUTH_DATABASE_URL=database_url,
        SILENTAUTH_SECRET_KEY=SECRET_KEY,
        SILENTAUTH_ISSUER=ISSUER,
        SILENTAUTH_COOKIE_SECURE="false",
        SILENTAUTH_RATE_LIMIT_LOGIN="off",
        SILENTAUTH_RATE_LIMIT_REFRESH="off",
        SILENTAUTH_TTL_JITTER="0",
        SILENTAUTH_LOG_LEVEL="warning",
    )
    env.update({f"SILENTAUTH_{k.upper()}": v for k, v in settings.items()})
    return env


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run ``python -m silentauth ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "silentauth", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=60,
    )


@dataclass
class ServiceProcess:
    """One ``silentauth serve`` process on a loopback port."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    # A file, not a pipe: a store outage logs a line per request, and a full
    # pipe would stall the server.
    log: IO[bytes] = field(default_factory=lambda: tempfile.TemporaryFile())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "silentauth", "serve", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self.log,
        )

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"silentauth serve exited {self.proc.returncode}: {self.stderr()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"silentauth serve on {self.port} not ready within {timeout} s")

    def stop(self) -> str:
        """Stop the process; return what it wrote to stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        err = self.stderr()
        self.log.close()
        return err


P = TypeVar("P", bound="PostgresServer")
S = TypeVar("S", bound="PostgresStandby")


@contextlib.contextmanager
def standby_pair(primary_cls: type[P], standby_cls: type[S]) -> Iterator[tuple[P, S]]:
    """A running primary and its synchronous streaming standby, stopped afterwards."""
    from tests.conftest import need_binary

    for name in ("initdb", "postgres", "pg_basebackup", "pg_ctl"):
        need_binary(name, find_binary(name) or name)
    primary, standby = primary_cls(), None
    try:
        primary.init()
        primary.start()
        standby = standby_cls(primary_port=primary.port)
        standby.init()
        standby.start()
        standby.make_synchronous()
        yield primary, standby
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()
