"""bench/resource.py measures what it says: a route that really verifies tokens.

The numbers themselves are ``make bench``'s job; here the bench's protected
route must refuse what a protected route refuses, and a short run must report
rates that are the medians of its own samples, every protected request having
been accepted (the load generator raises on anything but a 200).
"""

from __future__ import annotations

import json
import statistics
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from bench import resource
from silentauth.core.keys import SigningKey
from silentauth.core.tokens import mint
from silentauth.errors import InvalidToken, MissingToken


def claims(now: float, sid: str) -> dict[str, object]:
    """Access-token claims as the bench's own tokens carry them, for session ``sid``."""
    return {
        "iss": resource.ISSUER,
        "sub": "someone",
        "aud": resource.AUDIENCE,
        "exp": int(now + 3600),
        "iat": int(now),
        "jti": sid + "-jti",
        "sid": sid,
        "scope": "openid api",
        "auth_time": int(now),
        "client_id": "bench",
    }


@pytest.mark.anyio
async def test_the_bench_protected_route_refuses_missing_forged_and_revoked_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = time.time()
    private = ec.generate_private_key(ec.SECP256R1())
    key = SigningKey("bench-key", private.public_key(), private, now, now + 86400)
    other = ec.generate_private_key(ec.SECP256R1())
    forger = SigningKey("bench-key", other.public_key(), other, now, now + 86400)
    monkeypatch.setenv("SILENTAUTH_BENCH_JWK", json.dumps(key.jwk()))
    # The bench app installs no BearerError handler (its load sends only valid
    # tokens), so a refusal surfaces here as the error the route raised.
    transport = httpx.ASGITransport(app=resource.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

        async def get(token: str | None, path: str = "/protected/") -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return (await client.get(path, headers=headers)).status_code

        assert await get(None, "/open/") == 200
        assert await get(resource._token(key, now)) == 200
        assert await get(mint(key, claims(now, "a-live-session"))) == 200
        with pytest.raises(MissingToken):
            await get(None)
        with pytest.raises(InvalidToken):
            await get(resource._token(forger, now))
        # The bench app's revocation set holds one session id: its tokens must fail.
        with pytest.raises(InvalidToken, match="revoked"):
            await get(mint(key, claims(now, "some-revoked-session")))


def test_a_short_run_reports_the_medians_of_its_samples() -> None:
    result = resource.run(seconds=0.3, rounds=3, connections=4, warmup=0.1)
    samples = result["samples"]
    assert len(samples["unprotected"]) == len(samples["protected"]) == 3
    assert all(rate > 0 for rate in samples["unprotected"] + samples["protected"])
    assert result["unprotected_rps"] == round(statistics.median(samples["unprotected"]), 1)
    assert result["protected_rps"] == round(statistics.median(samples["protected"]), 1)
    ratio = statistics.median(samples["protected"]) / statistics.median(samples["unprotected"])
    assert result["ratio"] == round(ratio, 3)
    assert result["ok"] is (ratio >= result["target"])
