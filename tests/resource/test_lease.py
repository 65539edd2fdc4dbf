"""Leases of long-lived connections: renewal rules and the one sweeper that ends them."""

from __future__ import annotations

import secrets
import time
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from silentauth.clock import FakeClock
from silentauth.core.keys import SigningKey
from silentauth.core.revoked import RevokedSessions
from silentauth.core.tokens import AccessTokenVerifier, mint
from silentauth.errors import InvalidToken, WrongSession
from silentauth.resource.lease import (
    SESSION_REVOKED,
    TOKEN_EXPIRED,
    Ending,
    Lease,
    Sweeper,
)
from silentauth.resource.verify import TokenAuthenticator

pytestmark = pytest.mark.anyio

ISSUER, AUDIENCE = "http://lease.test", "lease"


class Issuer:
    """A real signing key, verifier and authenticator on a fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock(time.time())
        now = self.clock()
        private = ec.generate_private_key(ec.SECP256R1())
        self.key = SigningKey("k1", private.public_key(), private, now - 10, now + 86400)
        verifier = AccessTokenVerifier(lambda kid, at: self.key if kid == "k1" else None, ISSUER, AUDIENCE)
        self.revoked = RevokedSessions()
        self.auth = TokenAuthenticator(verifier, self.revoked.__contains__, self.clock)

    def token(self, sub: str = "alice", sid: str = "s1", ttl: int = 60) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "sid": sid, "iat": now, "exp": now + ttl,
            "jti": secrets.token_urlsafe(8), "scope": "api", "auth_time": now, "client_id": "t",
        }
        return mint(self.key, claims)

    async def lease(self, sub: str = "alice", sid: str = "s1", ttl: int = 60) -> Lease:
        return Lease(self.auth, await self.auth.aauthenticate("Bearer " + self.token(sub, sid, ttl)))


async def test_renewal_by_the_same_session_moves_the_deadline_never_back() -> None:
    iss = Issuer()
    lease = await iss.lease(ttl=60)
    first = lease.deadline
    iss.clock.advance(30)
    await lease.renew(iss.token(ttl=60))
    assert lease.deadline == pytest.approx(first + 30, abs=1)
    await lease.renew(iss.token(ttl=5))  # valid, older deadline: accepted, not adopted
    assert lease.deadline == pytest.approx(first + 30, abs=1)
    assert lease.renewals == 2


@pytest.mark.parametrize(("sub", "sid"), [("bob", "s1"), ("alice", "s2"), ("bob", "s9")])
async def test_renewal_by_anyone_else_is_wrong_session(sub: str, sid: str) -> None:
    iss = Issuer()
    lease = await iss.lease()
    with pytest.raises(WrongSession):
        await lease.renew(iss.token(sub, sid))


@pytest.mark.parametrize("token", [None, 7, "", "a b", "x.y.z"])
async def test_renewal_with_no_token_or_garbage_is_invalid_token(token: object) -> None:
    iss = Issuer()
    lease = await iss.lease()
    with pytest.raises(InvalidToken):
        await lease.renew(token)


async def test_ending_says_revoked_before_expired() -> None:
    iss = Issuer()
    lease = await iss.lease(ttl=60)
    assert lease.ending() is None
    iss.clock.advance(61)
    assert lease.ending() == TOKEN_EXPIRED
    iss.revoked.add("s1")
    assert lease.ending() == SESSION_REVOKED


async def test_one_task_sweeps_for_all_and_another_takes_over_when_it_leaves() -> None:
    iss = Issuer()
    sweeper = Sweeper(interval=0.05)
    ended: dict[int, Ending] = {}
    scopes: dict[int, anyio.CancelScope] = {}

    async def connection(n: int) -> None:
        with anyio.CancelScope() as scope:
            scopes[n] = scope
            lease = await iss.lease(sid=f"s{n}")
            await sweeper.watch(n, lease, lambda ending: ended.setdefault(n, ending))

    async with anyio.create_task_group() as tg:
        for n in range(200):
            tg.start_soon(connection, n)
        with anyio.fail_after(2):
            while len(sweeper) < 200:
                await anyio.sleep(0.01)
        iss.revoked.add("s7")
        with anyio.fail_after(1):
            while 7 not in ended:
                await anyio.sleep(0.01)
        assert ended == {7: SESSION_REVOKED}
        for scope in list(scopes.values())[:100]:  # the leader is among the first to arrive
            scope.cancel()
        await anyio.sleep(0.1)
        assert len(sweeper) == 100  # connections 100-199
        iss.revoked.add("s150")
        with anyio.fail_after(1):
            while 150 not in ended:
                await anyio.sleep(0.01)
        iss.clock.advance(61)
        with anyio.fail_after(1):
            while len(ended) < 101:
                await anyio.sleep(0.01)
        assert {e for n, e in ended.items() if n not in (7, 150)} == {TOKEN_EXPIRED}
        tg.cancel_scope.cancel()
