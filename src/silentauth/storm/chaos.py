"""The fault-injection simulator: false logouts and caught thefts, per rotation rule.

Every refresh goes through the real :class:`~silentauth.core.sessions.SessionService`
(in-memory SQLite store, real keys, real policy) on a :class:`FakeClock`; the
network, the devices and the thieves are simulated around it as timed events
processed in order, so a run is seeded and deterministic. A request reaches
the server after an uplink delay and its answer comes back after a downlink
delay, so lock-free racers really do present stale tokens.

Clients (shares in :class:`ChaosConfig`):

- browsers with 1-5 tabs, sharing a lock or not, on laptops that sleep for hours;
- mobile apps suspended for minutes to days, sometimes killed mid-refresh
  (the server rotated, the app never heard and resumes with the old token);
- stock OAuth clients like Authlib's ``OAuth2Session``: 20 threads, no lock,
  refresh whenever less than a 60 s leeway is left, on 30 s tokens;
- for everyone: a share of refresh answers lost on the network (retry after a
  30 s timeout with the same token) and clock skew up to +-10 min.

Our clients (browsers, mobile apps) send an ``Idempotency-Key`` with each refresh
when ``keys`` is on (:mod:`silentauth.core.idempotency`): the key is stored with
the token before the request leaves, survives kills and sleeps, is shared by
the tabs through storage and is dropped when an answer arrives. Stock clients
(Authlib-like) send none.

Thieves copy a victim's refresh token at a random moment (and its pending key,
if they copy the storage while a refresh is unanswered) and replay it later,
then keep the session alive for as long as it lets them.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from silentauth.clock import FakeClock
from silentauth.core.assembly import TokenCore
from silentauth.core.passwords import Passwords
from silentauth.core.rotation_rules import RULES
from silentauth.core.sessions import SessionService
from silentauth.errors import InvalidGrant, OAuthError
from silentauth.settings import Settings
from silentauth.stores.sqlite import SQLiteStore
from silentauth.storm.simulate import SIM_SECRET, START, USER, OutcomeCounts

TIMEOUT = 30.0  # an HTTP client's read timeout: how long a lost answer goes unnoticed
FAST_SCOPE = "fast"  # the scope whose access tokens live FAST_TTL (TOKEN_POLICY)
FAST_TTL = 30


@dataclass(frozen=True)
class ChaosConfig:
    """Population, faults and horizon; durations in seconds unless named otherwise."""

    clients: int = 10_000
    thieves: int = 100
    hours: float = 24.0
    seed: int = 1
    drop: float = 0.02  # share of refresh answers lost after the server committed
    kill: float = 0.1  # share of app suspensions that kill the app mid-refresh
    skew: float = 600.0
    browsers: float = 0.5
    authlib: float = 0.001
    authlib_threads: int = 20
    authlib_leeway: float = 60.0
    keys: bool = True  # our clients send an Idempotency-Key with each refresh

    def __post_init__(self) -> None:
        if self.clients < 1 or self.thieves < 0 or self.thieves > self.clients:
            raise ValueError("need clients >= 1 and 0 <= thieves <= clients")
        if self.hours < 2:
            raise ValueError("hours must be at least 2")
        if not (0 <= self.drop < 1 and 0 <= self.kill <= 1 and 0 <= self.browsers + self.authlib <= 1):
            raise ValueError("drop, kill and the shares must be fractions")


@dataclass
class Client:
    """One legitimate device (or a thief, ``thief=True``) holding one session."""

    id: int
    kind: str  # browser | mobile | authlib | thief
    session: str = ""
    token: str = ""
    counter: int = -1
    expires_at: float = 0.0  # access-token expiry, server time
    skew: float = 0.0
    tabs: int = 1
    lock: bool = True
    awake: bool = False
    out: str = ""  # why it was logged out, "" while logged in
    gen: int = 0  # timer generation: a timer of an older generation is stale
    busy: bool = False  # a locked refresh is in flight
    key: str | None = None  # the pending Idempotency-Key, persisted with the token


@dataclass
class Theft:
    """A copied refresh token, its replay and what came of it."""

    victim: int
    copied_at: float
    replay_at: float
    token: str = ""
    key: str | None = None  # copied too when a refresh of the victim was unanswered
    first_use: float | None = None  # first successful replay
    refused_at: float | None = None  # the thief's first refusal
    detected_at: float | None = None  # the session revoked as reuse
    live: bool = True  # the session was within its lifetimes at the replay
    # The victim used the session after the thief: only then can any rule tell them apart.
    victim_back: bool = False
    thief_after: bool = False  # ... and the thief used it again after that


@dataclass
class RuleResult:
    """The figures of one rotation rule."""

    rule: str
    keys: bool
    clients: int
    thieves: int
    refreshes: int
    false_logouts: int
    false_by_kind: dict[str, int]
    expired_logouts: int
    thefts_live: int
    detectable: int
    detected: int
    detect_seconds: list[float]
    thief_seconds: list[float]
    wall_seconds: float
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The rule and whether our clients sent Idempotency-Keys: ``burst+keys``."""
        return f"{self.rule}+keys" if self.keys else self.rule

    @property
    def detected_pct(self) -> float:
        """Caught among the thefts that any rule could catch (the victim came back)."""
        return 100.0 * self.detected / self.detectable if self.detectable else 100.0


def quantiles(values: list[float]) -> dict[str, float | None]:
    """Median, p99 and max of ``values`` (``None`` when empty)."""
    if not values:
        return {"median": None, "p99": None, "max": None}
    v = sorted(values)
    return {"median": v[len(v) // 2], "p99": v[min(len(v) - 1, math.ceil(0.99 * len(v)) - 1)], "max": v[-1]}


class Chaos:
    """One run of one rule: the event queue, the clients, the service."""

    def __init__(self, config: ChaosConfig, rule: str) -> None:
        self.config = config
        self.rule = rule
        self.rng = random.Random(config.seed)  # noqa: S311 - simulation, not secrecy
        self.clock = FakeClock(START)
        self.end = START + config.hours * 3600
        self.queue: list[tuple[float, int, Callable[[], Any]]] = []
        self.seq = 0
        self.clients: list[Client] = []
        self.thefts: dict[str, Theft] = {}  # session id -> theft
        self.refreshes = 0
        self.events = OutcomeCounts()
        self.core: TokenCore | None = None

    @property
    def service(self) -> SessionService:
        if self.core is None:
            raise RuntimeError("the simulation has not started")
        return self.core.service

    # -- plumbing ---------------------------------------------------------------

    def at(self, when: float, action: Callable[[], Any]) -> None:
        """Run ``action`` (sync or async) at virtual time ``when``, if before the end."""
        if when < self.end:
            self.seq += 1
            heapq.heappush(self.queue, (when, self.seq, action))

    def latency(self) -> float:
        return self.rng.uniform(0.02, 0.3)

    async def start(self) -> TokenCore:
        settings = Settings(
            database_url="sqlite:///:memory:",
            secret_key=SIM_SECRET,
            rotation_rule=self.rule,
            scope=f"openid profile api {FAST_SCOPE}",
            token_policy={FAST_SCOPE: FAST_TTL},
            # Per-instance flood guards, not rotation judgement: Authlib's storms would trip them.
            rate_limit_refresh=None,
            rate_limit_login=None,
        )

        core = TokenCore(
            settings=settings,
            store=SQLiteStore(settings.database_url),
            clock=self.clock,
            passwords=Passwords(time_cost=1, memory_cost=8, parallelism=1),
            rng=random.Random(self.config.seed),  # noqa: S311
            events=self.events,
        )
        await core.store.open()
        await core.start()
        await core.users.ensure(USER, USER)
        self.core = core
        return core

    # -- the server side ---------------------------------------------------------

    async def serve(self, token: str, key: str | None = None) -> tuple[str, int, int] | str:
        """Refresh at the current virtual time: (token, counter, expires_in) or why not."""
        service = self.service
        self.refreshes += 1
        sid = service.session_of(token)
        try:
            grant = await service.refresh(token, idempotency_key=key)
        except InvalidGrant:
            s = await service.store.get_session(sid)
            now = self.clock()
            theft = self.thefts.get(sid)
            if (
                s is not None
                and s.revoked_reason == "reuse"
                and theft is not None
                and theft.detected_at is None
                and (s.revoked_at or 0) >= theft.copied_at
            ):
                theft.detected_at = s.revoked_at
            if s is None or s.revoked_at is None:
                return "expired" if s is not None and s.is_expired(now) else "invalid"
            return "revoked"
        except OAuthError:
            return "error"
        counter = service.refresh_tokens.parse(grant.refresh_token)[1]
        return grant.refresh_token, counter, grant.expires_in

    # -- legitimate clients -------------------------------------------------------

    async def login(self, c: Client) -> None:
        scope = f"api {FAST_SCOPE}" if c.kind == "authlib" else "api"
        grant = await self.service.login(USER, USER, scope=scope, client_id=c.kind, ip=f"10.{c.id % 250}.0.1")
        c.session, c.token, c.counter = grant.session.id, grant.refresh_token, 0
        c.expires_at = self.clock() + grant.expires_in
        c.awake = True
        self.wake_cycle(c)

    def wake_cycle(self, c: Client) -> None:
        """Plan the end of this active period and the timers within it."""
        now, r = self.clock(), self.rng
        if c.kind == "authlib":
            active, idle = r.uniform(60, 90), r.uniform(6, 18) * 3600
            for _ in range(self.config.authlib_threads):
                self.at(now + r.uniform(0, 2), partial(self.authlib_call, c, now + active))
        elif c.kind == "browser":
            active, idle = r.uniform(600, 5400), r.uniform(2, 16) * 3600
            self.plan_refresh(c)
        else:
            active, idle = r.uniform(60, 1200), math.exp(r.uniform(math.log(300), math.log(3 * 86400)))
            self.plan_refresh(c)
        self.at(now + active, lambda: self.sleep(c, idle))

    def plan_refresh(self, c: Client) -> None:
        # The client reads `exp` on its own (skewed) clock and refreshes 60 s before it.
        c.gen += 1
        gen = c.gen
        when = max(c.expires_at - 60 - c.skew, self.clock() + 1)
        self.at(when, lambda: self.timer(c, gen))

    def timer(self, c: Client, gen: int) -> None:
        if gen == c.gen and c.awake and not c.out:
            self.refresh(c)

    def refresh(self, c: Client) -> None:
        """Start a refresh: one request under a lock, or one per tab without one."""
        now = self.clock()
        if c.lock or c.tabs == 1:
            if not c.busy:
                c.busy = True
                self.send(c, c.token, now)
            return
        for _ in range(c.tabs):
            # Each tab's timer fires on its own; it reads the shared storage then.
            self.at(now + self.rng.uniform(0, 1.5), lambda: self.tab_fires(c))

    def tab_fires(self, c: Client) -> None:
        if c.awake and not c.out and c.expires_at - self.clock() <= 60 + c.skew + 1:
            self.send(c, c.token, self.clock())

    def pending_key(self, c: Client) -> str | None:
        """The key this refresh carries: the pending one, or a new one stored first."""
        if not self.config.keys or c.kind == "authlib":
            return None
        if c.key is None:
            # 192 bits as hex: base64url characters, drawn from the seeded generator.
            c.key = f"{self.rng.getrandbits(192):048x}"
        return c.key

    def send(self, c: Client, token: str, now: float, *, lose: bool = False) -> None:
        lost = lose or self.rng.random() < self.config.drop
        key = self.pending_key(c)
        self.at(now + self.latency(), lambda: self.arrive(c, token, lost, key))

    async def arrive(self, c: Client, token: str, lost: bool, key: str | None = None) -> None:
        theft = self.thefts.get(c.session)
        if theft is not None and theft.first_use is not None:
            theft.victim_back = True
        answer = await self.serve(token, key)
        if lost:
            # The server committed; the client hears nothing and retries after its timeout.
            if c.kind != "mobile" or c.awake:
                self.at(self.clock() + TIMEOUT, lambda: self.retry(c, token))
            return
        self.at(self.clock() + self.latency(), lambda: self.hear(c, answer))

    def retry(self, c: Client, token: str) -> None:
        if not c.out and c.awake:
            self.send(c, c.token, self.clock())

    def hear(self, c: Client, answer: tuple[str, int, int] | str) -> None:
        c.busy = False
        if c.out:
            return
        if isinstance(answer, str):
            if answer == "error":
                self.at(self.clock() + 5, lambda: self.retry(c, c.token))
            else:
                c.out = answer
            return
        token, counter, expires_in = answer
        # Authlib stores whatever answer came last, even an older one (no lock).
        if counter > c.counter or c.kind == "authlib":
            # A new token set is stored: no refresh of the old one is pending any more.
            c.token, c.counter, c.expires_at, c.key = token, counter, self.clock() + expires_in, None
        if c.awake and c.kind != "authlib":
            self.plan_refresh(c)

    def sleep(self, c: Client, idle: float) -> None:
        c.awake = False
        c.gen += 1
        if c.kind == "mobile" and not c.out and self.rng.random() < self.config.kill:
            # Killed mid-refresh: the request got through, the answer died with the app.
            self.send(c, c.token, self.clock(), lose=True)
        self.at(self.clock() + idle, lambda: self.wake(c))

    def wake(self, c: Client) -> None:
        if c.out:
            return
        c.awake, c.busy = True, False
        if c.expires_at - 60 - c.skew <= self.clock():
            self.refresh(c)
        self.wake_cycle(c)

    def authlib_call(self, c: Client, stop: float) -> None:
        """One API call of one thread: refresh first if less than the leeway is left."""
        now = self.clock()
        if c.out or now >= stop:
            return
        if c.expires_at - self.config.authlib_leeway - c.skew <= now:
            self.send(c, c.token, now)
        self.at(now + self.rng.uniform(0.5, 3), lambda: self.authlib_call(c, stop))

    # -- thieves ------------------------------------------------------------------

    def steal(self, victim: Client, theft: Theft) -> None:
        if victim.out or not victim.token:
            return
        theft.token = victim.token
        # Storage copied while a refresh was unanswered carries its pending key.
        theft.key = victim.key
        self.thefts[victim.session] = theft
        self.at(theft.replay_at, lambda: self.replay(victim, theft))

    async def replay(self, victim: Client, theft: Theft) -> None:
        thief = Client(id=-1, kind="thief", session=victim.session, token=theft.token)
        answer = await self.serve(theft.token, theft.key)
        self.thief_heard(thief, theft, answer)

    def thief_heard(self, thief: Client, theft: Theft, answer: tuple[str, int, int] | str) -> None:
        now = self.clock()
        if isinstance(answer, str):
            if theft.first_use is None and theft.detected_at is None:
                theft.live = False  # the session had ended before the thief came: nothing to catch
            theft.refused_at = theft.refused_at or now
            return
        thief.token, _, expires_in = answer
        theft.first_use = theft.first_use or now
        # A thief keeps the session alive, refreshing before every expiry.
        self.at(now + max(1.0, expires_in - 60), lambda: self.thief_again(thief, theft))

    async def thief_again(self, thief: Client, theft: Theft) -> None:
        theft.thief_after = theft.thief_after or theft.victim_back
        self.thief_heard(thief, theft, await self.serve(thief.token))

    # -- the run ----------------------------------------------------------------

    async def run(self) -> RuleResult:
        began = time.perf_counter()
        cfg, r = self.config, self.rng
        core = await self.start()
        try:
            n_auth = round(cfg.clients * cfg.authlib)
            n_browser = round(cfg.clients * cfg.browsers)
            for i in range(cfg.clients):
                kind = "authlib" if i < n_auth else "browser" if i < n_auth + n_browser else "mobile"
                # Authlib computes expiry from expires_in on its own clock: skew plays no part.
                skew = 0.0 if kind == "authlib" else r.uniform(-cfg.skew, cfg.skew)
                c = Client(id=i, kind=kind, skew=skew)
                if kind == "browser":
                    c.tabs, c.lock = r.randint(1, 5), r.random() < 0.5
                self.clients.append(c)
                self.at(START + r.uniform(0, 3600), partial(self.login, c))
            victims = r.sample(range(n_auth, cfg.clients), cfg.thieves)
            for v in victims:
                copied = START + r.uniform(3600, self.end - START - 3600)
                delay = math.exp(r.uniform(math.log(60), math.log(86400)))
                theft = Theft(v, copied, min(copied + delay, self.end - 1))
                self.at(copied, partial(self.steal, self.clients[v], theft))
            while self.queue:
                when, _, action = heapq.heappop(self.queue)
                self.clock.set(when)
                result = action()
                if asyncio.iscoroutine(result):
                    await result
        finally:
            await core.store.close()
        return self.result(time.perf_counter() - began)

    def result(self, wall: float) -> RuleResult:
        robbed = {t.victim for t in self.thefts.values()}
        false = [c for c in self.clients if c.out and c.out != "expired" and c.id not in robbed]
        by_kind: dict[str, int] = {}
        for c in false:
            by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
        live = [t for t in self.thefts.values() if t.live and (t.first_use or t.refused_at)]
        detected = [t for t in live if t.detected_at is not None]
        detectable = [t for t in live if t.detected_at is not None or (t.victim_back and t.thief_after)]
        detect = [max(0.0, (t.detected_at or 0) - t.replay_at) for t in detected]
        held = [
            ((t.detected_at if t.detected_at is not None else self.end) - t.first_use) if t.first_use else 0.0
            for t in live
        ]
        return RuleResult(
            rule=self.rule,
            keys=self.config.keys,
            clients=self.config.clients,
            thieves=len(self.thefts),
            refreshes=self.refreshes,
            false_logouts=len(false),
            false_by_kind=by_kind,
            expired_logouts=sum(1 for c in self.clients if c.out == "expired"),
            thefts_live=len(live),
            detectable=len(detectable),
            detected=len(detected),
            detect_seconds=detect,
            thief_seconds=held,
            wall_seconds=wall,
            outcomes=dict(sorted(self.events.counts.items())),
        )


def run_rule(config: ChaosConfig, rule: str) -> RuleResult:
    """One rule on its own fresh service, clock and seeded draws."""
    return asyncio.run(Chaos(config, rule).run())


def chaos(
    config: ChaosConfig, rules: tuple[str, ...] = RULES, processes: int = 1, keys: tuple[bool, ...] | None = None
) -> list[RuleResult]:
    """Run every rule with the same seed (in ``processes`` processes if > 1).

    ``keys``: the variants to run per rule (with and/or without Idempotency-Keys);
    default: only ``config.keys``.
    """
    from dataclasses import replace

    variants = (config.keys,) if keys is None else keys
    configs = [replace(config, keys=k) for rule in rules for k in variants]
    names = [rule for rule in rules for _ in variants]
    if processes <= 1:
        return [run_rule(c, rule) for c, rule in zip(configs, names, strict=True)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    with ProcessPoolExecutor(max_workers=processes, mp_context=ctx) as pool:
        return list(pool.map(run_rule, configs, names))
