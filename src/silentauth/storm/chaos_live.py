"""``silentauth chaos --live URL``: lost answers, sleeps and thieves against a running server.

Real time cannot be compressed, so this is the simulator's core scenario at a
small size, over HTTP: ``N`` clients log in and refresh for a few rounds; a
share of the answers is thrown away after the server answered (the server
rotated, the client never heard), and the client then "sleeps" for ``--sleep``
seconds (longer than the server's ``REUSE_GRACE``) before retrying the same
refresh token. With ``--keys on`` (our clients) the retry carries the pending
``Idempotency-Key``; with ``off`` (a stock client) it does not. A thief copies
some victims' refresh token (never the key) and replays it after the victim
refreshed again. It reports false logouts (a client refused although no thief
touched its session) and thefts detected (the session revoked after the replay).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import time
from dataclasses import asdict, dataclass, field

import httpx

MAX_CLIENTS = 200


@dataclass
class LiveChaos:
    """What one live run found."""

    url: str
    clients: int
    thieves: int
    keys: bool
    rounds: int
    sleep: float
    refreshes: int = 0
    answers_lost: int = 0
    false_logouts: int = 0
    thefts: int = 0
    thefts_detected: int = 0
    seconds: float = 0.0
    detect_seconds: list[float] = field(default_factory=list)

    @property
    def detected_pct(self) -> float:
        """Share of the replayed thefts whose session was revoked."""
        return 100.0 * self.thefts_detected / self.thefts if self.thefts else 100.0


class _Victim:
    """A client's state as a thief sees it: the copy, and whether it was replayed."""

    def __init__(self) -> None:
        self.copied: str | None = None
        self.replayed_at: float | None = None
        # The token a replay was answered with: inside the grace window of the victim's
        # latest rotation the rule hands the thief the live token (a shared lineage).
        self.stolen: str | None = None
        self.caught = asyncio.Event()


async def _drive(run: LiveChaos, rng: random.Random, username: str, password: str, drop: float) -> None:
    from rich.progress import Progress

    token_url = run.url.rstrip("/") + "/auth/token"
    victims = set(rng.sample(range(run.clients), run.thieves))
    plans = [(rng.random(), rng.randrange(run.rounds)) for _ in range(run.clients)]
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=64)) as http:

        async def refresh(token: str, key: str | None) -> httpx.Response:
            run.refreshes += 1
            headers = {"Idempotency-Key": f'"{key}"'} if key else {}
            return await http.post(
                token_url, data={"grant_type": "refresh_token", "refresh_token": token}, headers=headers
            )

        async def thief(v: _Victim, copied: str) -> None:
            await asyncio.sleep(run.sleep)  # after the grace window: the copy is stale
            v.replayed_at = time.monotonic()
            r = await refresh(copied, None)
            if r.status_code != 200:
                v.caught.set()  # refused: the session was revoked as reuse
            else:
                v.stolen = str(r.json()["refresh_token"])

        async def client(i: int, progress: Progress, bar: object) -> None:
            r = await http.post(token_url, data={"grant_type": "password", "username": username, "password": password})
            r.raise_for_status()
            token, key = str(r.json()["refresh_token"]), None
            victim = _Victim() if i in victims else None
            steal_round = plans[i][1]
            tasks: list[asyncio.Task[None]] = []
            for n in range(run.rounds):
                if victim is not None and n == steal_round:
                    victim.copied = token  # the refresh token alone, never the key
                if run.keys:
                    key = key or secrets.token_urlsafe(24)
                answer = await refresh(token, key)
                if victim is not None and victim.copied is not None and not tasks:
                    tasks.append(asyncio.ensure_future(thief(victim, victim.copied)))
                if answer.status_code != 200:
                    if victim is not None and victim.replayed_at is not None:
                        victim.caught.set()
                    else:
                        run.false_logouts += 1
                    break
                if rng.random() < drop:
                    run.answers_lost += 1  # the server rotated; this client never heard
                    await asyncio.sleep(run.sleep)  # and slept past the grace window
                    continue
                token, key = str(answer.json()["refresh_token"]), None
                progress.advance(bar)  # type: ignore[arg-type]
            await asyncio.gather(*tasks)
            if victim is not None and victim.copied is not None:
                run.thefts += 1
                if not victim.caught.is_set():
                    # The thief got in while the victim finished: its next use is the proof.
                    if (await refresh(token, key)).status_code != 200:
                        victim.caught.set()
                if not victim.caught.is_set() and victim.stolen is not None:
                    # The thief shares the lineage; it uses its token again once the victim
                    # has moved on and the grace window has passed, as a thief would.
                    await asyncio.sleep(run.sleep)
                    if (await refresh(victim.stolen, None)).status_code != 200:
                        victim.caught.set()
                if victim.caught.is_set():
                    run.thefts_detected += 1
                    run.detect_seconds.append(time.monotonic() - (victim.replayed_at or began))

        with Progress(transient=True) as progress:
            bar = progress.add_task(f"{run.clients} clients, {run.thieves} thieves", total=run.clients * run.rounds)
            await asyncio.gather(*(client(i, progress, bar) for i in range(run.clients)))
    run.seconds = time.monotonic() - began


def main(args: object) -> int:
    """Run against ``--url`` and print the figures (``--json`` too); 1 if anyone was logged out falsely."""
    url = str(getattr(args, "url", "http://127.0.0.1:8000"))
    clients = max(1, min(int(getattr(args, "clients", 50)), MAX_CLIENTS))
    thieves = max(0, min(int(getattr(args, "thieves", 5)), clients // 5))
    keys_arg = str(getattr(args, "keys", "on"))
    drop = getattr(args, "drop", None)
    username = os.environ.get("SILENTAUTH_STORM_USERNAME", "demo")
    password = os.environ.get("SILENTAUTH_STORM_PASSWORD", "demo")
    runs = []
    for keys in {"on": (True,), "off": (False,), "both": (True, False)}[keys_arg]:
        run = LiveChaos(url, clients, thieves, keys, int(getattr(args, "rounds", 3)), float(getattr(args, "sleep", 12.0)))
        rng = random.Random(int(getattr(args, "seed", 1)))  # noqa: S311 - simulation, not secrecy
        try:
            asyncio.run(_drive(run, rng, username, password, 0.3 if drop is None else float(drop)))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            print(f"silentauth chaos: live run against {url} failed: {exc}")
            return 1
        runs.append(run)
    if getattr(args, "json", False):
        print(json.dumps({"live": [{**asdict(r), "detected_pct": round(r.detected_pct, 2)} for r in runs]}))
    else:
        for r in runs:
            print(
                f"live{' +keys' if r.keys else ''}: {r.clients} clients, {r.refreshes} refreshes, "
                f"{r.answers_lost} answers lost (then {r.sleep:g} s asleep): {r.false_logouts} false logouts; "
                f"thefts detected {r.thefts_detected}/{r.thefts} ({r.detected_pct:.1f}%), {r.seconds:.0f} s"
            )
    return 0 if all(r.false_logouts == 0 for r in runs if r.keys) else 1
