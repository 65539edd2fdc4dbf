"""The refresh decisions of :class:`Coordinator`, one rule at a time, on a fake clock.

No HTTP server: the token endpoint's answers are real :class:`httpx.Response`
values handed to ``accept``, and the stores are the real memory and file
stores. Disk failures are real too: a directory where the token file should
be makes every read, write and delete fail with an ``OSError``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import replace
from pathlib import Path

import anyio
import httpx
import pytest

from silentauth.client import FileTokenStore, MemoryTokenStore, TokenSet
from silentauth.client.coordination import (
    COOLDOWN_BASE,
    COOLDOWN_MAX,
    FATAL_ERRORS,
    Coordinator,
)
from silentauth.clock import FakeClock
from silentauth.errors import RefreshFailed, SessionExpired

START = 1_800_000_000.0
MARGIN = 60.0
LIFETIME = 900.0



def refreshing(plan: tuple[TokenSet, bool]) -> TokenSet:
    """The grant a plan refreshes, without the Idempotency-Key it was given for the call."""
    tokens, refresh = plan
    assert refresh and tokens.pending_key
    return replace(tokens, pending_key=None)

def grant(access: str = "a1", refresh: str | None = "r1", issued: float = START, lifetime: float = LIFETIME) -> TokenSet:
    """A grant issued at ``issued`` that lives ``lifetime`` seconds."""
    return TokenSet(access, refresh, issued, issued + lifetime)


def coordinator(
    tokens: TokenSet | None = None,
    *,
    clock: FakeClock | None = None,
    jitter: float = 0.0,
    lock_timeout: float = 0.05,
    calls: list[str] | None = None,
) -> Coordinator:
    """A coordinator on a memory store; ``calls`` records ``on_session_expired``."""
    callback = None if calls is None else (lambda: calls.append("expired"))
    return Coordinator(
        MemoryTokenStore(tokens), clock or FakeClock(START), MARGIN, jitter, lock_timeout, callback
    )


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A token endpoint answer as httpx delivers it."""
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


def broken_file_store(tmp_path: Path) -> FileTokenStore:
    """A file store whose token path is a directory: load, save and clear raise OSError."""
    store = FileTokenStore(tmp_path / "tokens.json")
    store.path.mkdir()
    return store


# -- the margin ---------------------------------------------------------------


def test_without_jitter_the_margin_is_the_configured_one() -> None:
    coord = coordinator(grant())
    assert coord.margin == MARGIN


def test_each_new_grant_draws_a_margin_between_the_base_and_base_plus_jitter() -> None:
    coord = coordinator(jitter=0.5)
    margins = set()
    for i in range(40):
        coord.install(grant(access=f"a{i}", refresh=f"r{i}"))
        assert MARGIN <= coord.margin <= MARGIN * 1.5
        margins.add(coord.margin)
    assert len(margins) > 30  # drawn anew per grant, not once


def test_reloading_the_same_grant_keeps_its_margin(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(grant())
    coord = Coordinator(store, FakeClock(START), MARGIN, 0.5, 0.05, None)
    first, tokens = coord.margin, coord.tokens
    for _ in range(20):
        coord.plan(tokens, force=False)  # each load reads an equal grant from the file
        assert coord.margin == first
        assert coord.tokens is tokens


# -- the lock-free fast path ---------------------------------------------------


def test_fresh_returns_the_tokens_until_the_margin_and_none_after() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - MARGIN - 0.001)
    assert coord.fresh() is tokens
    clock.set(START + LIFETIME - MARGIN)
    assert coord.fresh() is None


def test_fresh_without_tokens_is_none() -> None:
    assert coordinator().fresh() is None


# -- New-Access-Token ------------------------------------------------------------


def test_a_pushed_access_token_replaces_ours_and_restarts_its_lifetime() -> None:
    clock = FakeClock(START)
    coord = coordinator(grant(), clock=clock)
    clock.advance(600)
    coord.adopt("a1", "a2")
    tokens = coord.tokens
    assert tokens is not None
    assert (tokens.access_token, tokens.refresh_token) == ("a2", "r1")
    assert (tokens.issued_at, tokens.expires_at) == (START + 600, START + 600 + LIFETIME)


def test_a_pushed_token_for_an_older_access_token_is_ignored() -> None:
    coord = coordinator(grant(access="a2"))
    before = coord.tokens
    coord.adopt("a1", "a3")
    assert coord.tokens is before


def test_a_pushed_token_equal_to_the_one_sent_changes_nothing() -> None:
    clock = FakeClock(START)
    coord = coordinator(grant(), clock=clock)
    before = coord.tokens
    clock.advance(600)
    coord.adopt("a1", "a1")
    assert coord.tokens is before


def test_a_pushed_token_without_a_session_is_ignored() -> None:
    coord = coordinator()
    coord.adopt("a1", "a2")
    assert coord.tokens is None


# -- login and logout -------------------------------------------------------------


def test_install_saves_the_grant_and_ends_a_cooldown() -> None:
    clock = FakeClock(START)
    coord = coordinator(grant(lifetime=30), clock=clock)
    clock.advance(31)
    with pytest.raises(RefreshFailed):
        coord.failed(RefreshFailed("down"), grant(lifetime=30), force=False)
    fresh = grant(access="a2", refresh="r2", issued=clock(), lifetime=30)
    coord.install(fresh)
    assert coord.store.load() is fresh
    assert coord.tokens is fresh
    clock.advance(29)  # due, and the old cooldown (>= 0.8 s) would still run
    assert refreshing(coord.plan(fresh, force=False)) == fresh


def test_install_that_cannot_be_saved_keeps_the_grant_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    coord = Coordinator(store, FakeClock(START), MARGIN, 0.0, 0.05, None)
    store.path.mkdir()
    with caplog.at_level(logging.ERROR, "silentauth.client"):
        coord.install(grant())
    assert coord.tokens == grant()
    assert caplog.messages == ["could not persist the new tokens; keeping them in memory"]


def test_forget_clears_the_store_and_the_memory() -> None:
    coord = coordinator(grant())
    coord.forget()
    assert coord.tokens is None
    assert coord.store.load() is None


def test_forget_drops_local_tokens_even_when_the_file_cannot_be_removed(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    coord = Coordinator(store, FakeClock(START), MARGIN, 0.0, 0.05, None)
    coord.install(grant())
    store.path.unlink()
    store.path.mkdir()
    coord.forget()
    assert coord.tokens is None


# -- locks ---------------------------------------------------------------------------


def test_locked_times_out_with_refresh_failed_while_another_holder_has_the_lock() -> None:
    coord = coordinator(grant(), lock_timeout=0.05)
    assert coord.store.acquire(0)
    with pytest.raises(RefreshFailed, match=r"^timed out after 0\.05 s waiting for the token lock$"):
        with coord.locked():
            pass
    coord.store.release()


def test_locked_releases_the_store_lock_even_when_the_body_raises() -> None:
    coord = coordinator(grant())
    with pytest.raises(KeyError):
        with coord.locked():
            assert not coord.store.acquire(0)  # held by us
            raise KeyError("boom")
    assert coord.store.acquire(0)
    coord.store.release()


def test_alocked_times_out_with_refresh_failed_while_a_thread_holds_the_lock() -> None:
    coord = coordinator(grant(), lock_timeout=0.05)
    assert coord.store.acquire(0)

    async def enter() -> None:
        async with coord.alocked():
            pass

    with pytest.raises(RefreshFailed, match=r"^timed out after 0\.05 s waiting for the token lock$"):
        asyncio.run(enter())
    coord.store.release()


def test_alocked_waits_for_a_thread_to_release_and_then_releases_itself() -> None:
    coord = coordinator(grant(), lock_timeout=5.0)
    assert coord.store.acquire(0)
    timer = threading.Timer(0.05, coord.store.release)
    timer.start()

    async def enter() -> bool:
        async with coord.alocked():
            return coord.store.acquire(0)  # held by us: must fail

    assert asyncio.run(enter()) is False
    timer.join()
    assert coord.store.acquire(0)
    coord.store.release()


def test_tasks_of_one_loop_share_one_gate_and_each_loop_gets_its_own() -> None:
    coord = coordinator(grant())

    async def gates() -> tuple[object, object]:
        return coord._gate(), coord._gate()

    first, again = asyncio.run(gates())
    assert first is again
    other, _ = asyncio.run(gates())
    assert other is not first


def test_outside_asyncio_one_gate_is_kept() -> None:
    coord = coordinator(grant())
    gate = coord._gate()
    assert isinstance(gate, anyio.Lock) and coord._gate() is gate


def test_after_fork_replaces_a_held_state_lock() -> None:
    coord = coordinator(grant())
    coord._state.acquire()  # as if another thread held it when the process forked
    coord.after_fork()
    coord.adopt("a1", "a2")  # would block forever on the old lock
    assert coord.tokens is not None and coord.tokens.access_token == "a2"


def test_after_fork_replaces_the_gates_too() -> None:
    coord = coordinator(grant())
    before = coord._gate()

    async def in_loop() -> object:
        return coord._gate()

    asyncio.run(in_loop())
    coord.after_fork()
    after = coord._gate()
    assert isinstance(after, anyio.Lock) and after is not before
    assert isinstance(asyncio.run(in_loop()), anyio.Lock)


# -- plan: refresh or not -----------------------------------------------------------


def test_plan_before_any_login_says_not_logged_in() -> None:
    with pytest.raises(SessionExpired, match=r"^not logged in: call login\(\) first$"):
        coordinator().plan(None, force=False)


def test_plan_after_the_session_ended_says_log_in_again() -> None:
    coord = coordinator(grant())
    coord.forget()
    with pytest.raises(SessionExpired, match="^the session has ended; log in again$"):
        coord.plan(None, force=False)


def test_ours_is_not_refreshed_when_another_holder_already_did() -> None:
    coord = coordinator(grant())
    newer = grant(access="a2", refresh="r2", issued=START + 1)
    coord.store.save(newer)
    assert coord.plan(grant(), force=True) == (newer, False)
    assert coord.tokens is newer


def test_a_caller_that_saw_no_token_uses_the_current_one() -> None:
    tokens = grant()
    assert coordinator(tokens).plan(None, force=True) == (tokens, False)


def test_a_newer_but_expired_token_is_refreshed_anyway() -> None:
    clock = FakeClock(START)
    coord = coordinator(grant(), clock=clock)
    newer = grant(access="a2", refresh="r2", issued=START + 1, lifetime=10)
    coord.store.save(newer)
    clock.set(START + 11)
    assert refreshing(coord.plan(grant(), force=False)) == newer


def test_a_token_not_yet_due_is_not_refreshed_unless_rejected() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - MARGIN - 1)
    assert coord.plan(tokens, force=False) == (tokens, False)
    assert refreshing(coord.plan(tokens, force=True)) == tokens


def test_a_due_token_is_refreshed() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - MARGIN)
    assert refreshing(coord.plan(tokens, force=False)) == tokens


def test_during_a_cooldown_a_valid_token_is_used_without_refreshing() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - 10)
    assert coord.failed(RefreshFailed("down"), tokens, force=False) is tokens
    assert coord.plan(tokens, force=False) == (tokens, False)


def test_during_a_cooldown_an_expired_or_rejected_token_fails_with_the_cause() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - 0.5)
    cause = RefreshFailed("token endpoint answered 503")
    coord.failed(cause, tokens, force=False)
    remaining = coord._cooldown_until - clock()
    with pytest.raises(RefreshFailed) as rejected:
        coord.plan(tokens, force=True)
    assert str(rejected.value) == (
        f"token refresh is cooling down for {remaining:.1f} s after: {cause!r}"
    )
    assert rejected.value.__cause__ is cause
    clock.set(START + LIFETIME)
    with pytest.raises(RefreshFailed, match="cooling down"):
        coord.plan(tokens, force=False)


def test_the_refresh_is_allowed_again_the_instant_the_cooldown_ends() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - 10)
    coord.failed(RefreshFailed("down"), tokens, force=False)
    clock.set(coord._cooldown_until)
    assert refreshing(coord.plan(tokens, force=False)) == tokens


def test_without_a_refresh_token_a_valid_token_is_kept() -> None:
    clock = FakeClock(START)
    tokens = grant(refresh=None)
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME - 1)
    assert coord.plan(tokens, force=False) == (tokens, False)


def test_without_a_refresh_token_an_expired_or_rejected_token_ends_the_session() -> None:
    calls: list[str] = []
    tokens = grant(refresh=None)
    coord = coordinator(tokens, calls=calls)
    with pytest.raises(SessionExpired, match="^the access token expired and there is no refresh token$"):
        coord.plan(tokens, force=True)
    assert coord.tokens is None and coord.store.load() is None
    coord.run_pending_callback()
    assert calls == ["expired"]


# -- reconciling with the store ---------------------------------------------------------


def test_a_store_cleared_by_another_holder_ends_our_session_once() -> None:
    calls: list[str] = []
    coord = coordinator(grant(), calls=calls)
    coord.store.clear()
    with pytest.raises(SessionExpired, match="^the session was ended by another client sharing the store$"):
        coord.plan(grant(), force=False)
    assert coord.tokens is None
    coord.run_pending_callback()
    coord.run_pending_callback()
    assert calls == ["expired"]


def test_an_unreadable_store_is_a_refresh_failure_not_a_logout(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    coord = Coordinator(store, FakeClock(START), MARGIN, 0.0, 0.05, None)
    coord.install(grant())
    store.path.unlink()
    store.path.mkdir()
    with pytest.raises(RefreshFailed, match="^cannot read the token store: ") as failed:
        coord.plan(grant(), force=False)
    assert isinstance(failed.value.__cause__, OSError)
    assert coord.tokens == grant()


def test_a_stored_grant_with_another_refresh_token_replaces_ours() -> None:
    coord = coordinator(grant())
    other = grant(access="a2", refresh="r2", issued=START - 5)
    coord.store.save(other)
    assert coord.plan(None, force=False) == (other, False)
    assert coord.tokens is other


def test_a_stored_grant_issued_later_replaces_ours() -> None:
    coord = coordinator(grant())
    later = grant(access="a2", issued=START + 1)
    coord.store.save(later)
    assert coord.plan(None, force=False) == (later, False)


def test_an_equal_stored_grant_keeps_ours_including_a_pushed_access_token() -> None:
    coord = coordinator(grant())
    coord.adopt("a1", "a2")  # in memory only; the store still holds a1
    ours = coord.tokens
    coord.store.save(grant(issued=START - 1))
    assert coord.plan(None, force=False) == (ours, False)
    assert coord.tokens is ours


# -- accept: the endpoint's answer --------------------------------------------------------


def test_a_successful_refresh_is_saved_and_resets_the_backoff() -> None:
    clock = FakeClock(START)
    old = grant()
    coord = coordinator(old, clock=clock)
    clock.set(START + LIFETIME - 10)
    coord.failed(RefreshFailed("down"), old, force=False)
    coord.failed(RefreshFailed("down"), old, force=False)
    new = coord.accept(answer(200, {"access_token": "a2", "expires_in": 300}), old, force=False)
    assert (new.access_token, new.refresh_token, new.issued_at) == ("a2", "r1", clock())
    assert new.expires_at == clock() + 300
    assert coord.tokens is new and coord.store.load() is new
    # The backoff starts over: the next failure cools down about one base unit.
    clock.advance(100)
    coord.failed(RefreshFailed("down"), new, force=False)
    assert coord._cooldown_until - clock() <= COOLDOWN_BASE * 1.2


@pytest.mark.parametrize("status", [200, 201, 299])
def test_every_2xx_answer_is_a_grant(status: int) -> None:
    coord = coordinator(grant())
    new = coord.accept(answer(status, {"access_token": "a2"}), grant(), force=True)
    assert new.access_token == "a2"


@pytest.mark.parametrize("status", [199, 300])
def test_answers_outside_2xx_are_failures(status: int) -> None:
    coord = coordinator(grant())
    with pytest.raises(RefreshFailed, match=f"^token endpoint answered {status}$"):
        coord.accept(answer(status, {"access_token": "a2"}), grant(), force=True)
    assert coord.tokens == grant()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"token_type": "Bearer"}'])
def test_a_malformed_grant_is_a_transient_failure(body: bytes) -> None:
    coord = coordinator(grant())
    with pytest.raises(RefreshFailed, match="^malformed token response: "):
        coord.accept(httpx.Response(200, content=body), grant(), force=True)
    assert coord.tokens == grant()
    assert coord._cooldown_until > START


def test_a_malformed_grant_keeps_a_still_valid_token() -> None:
    tokens = grant()
    coord = coordinator(tokens)
    assert coord.accept(httpx.Response(200, content=b"{"), tokens, force=False) is tokens


@pytest.mark.parametrize("status", [400, 401])
@pytest.mark.parametrize("error", sorted(FATAL_ERRORS))
def test_a_fatal_oauth_error_ends_the_session(status: int, error: str) -> None:
    calls: list[str] = []
    coord = coordinator(grant(), calls=calls)
    with pytest.raises(SessionExpired, match=f"^the token endpoint refused the refresh token \\({error}\\)$"):
        coord.accept(answer(status, {"error": error}), grant(), force=False)
    assert coord.tokens is None and coord.store.load() is None
    coord.run_pending_callback()
    assert calls == ["expired"]


def test_the_fatal_errors_are_the_rfc_6749_ones() -> None:
    assert FATAL_ERRORS == {
        "invalid_grant",
        "invalid_client",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }


@pytest.mark.parametrize(("status", "error"), [(403, "invalid_grant"), (400, "temporarily_unavailable"), (500, None)])
def test_other_errors_keep_the_session_and_cool_down(status: int, error: str | None) -> None:
    tokens = grant()
    coord = coordinator(tokens)
    body = {"error": error} if error else None
    with pytest.raises(RefreshFailed) as failed:
        coord.accept(answer(status, body), tokens, force=True)
    assert str(failed.value) == f"token endpoint answered {status}" + (f" {error}" if error else "")
    assert coord.tokens is tokens
    assert coord._cooldown_until > START


def test_retry_after_in_seconds_lengthens_the_cooldown() -> None:
    tokens = grant()
    coord = coordinator(tokens)
    with pytest.raises(RefreshFailed):
        coord.accept(answer(503, headers={"Retry-After": "30"}), tokens, force=True)
    assert coord._cooldown_until == START + 30


@pytest.mark.parametrize("value", ["", "soon", "Wed, 21 Oct 2026 07:28:00 GMT", "-5"])
def test_a_retry_after_that_is_not_whole_seconds_leaves_the_backoff(value: str) -> None:
    tokens = grant()
    coord = coordinator(tokens)
    with pytest.raises(RefreshFailed):
        coord.accept(answer(503, headers={"Retry-After": value}), tokens, force=True)
    assert START + 0.8 <= coord._cooldown_until <= START + 1.2


# -- failed: the backoff ---------------------------------------------------------------------


def test_the_backoff_doubles_from_one_second_up_to_a_minute_with_jitter() -> None:
    clock = FakeClock(START)
    tokens = grant(lifetime=10_000)
    coord = coordinator(tokens, clock=clock)
    for failures in range(1, 10):
        coord.failed(RefreshFailed("down"), tokens, force=False)
        expected = min(COOLDOWN_MAX, COOLDOWN_BASE * 2 ** (failures - 1))
        assert expected * 0.8 <= coord._cooldown_until - clock() <= expected * 1.2
    assert (COOLDOWN_BASE, COOLDOWN_MAX) == (1.0, 60.0)


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    tokens = grant()
    coord = coordinator(tokens)
    coord.failed(RefreshFailed("down"), tokens, force=False, retry_after=0.1)
    assert coord._cooldown_until >= START + 0.8


def test_a_failure_is_logged_with_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    tokens = grant()
    coord = coordinator(tokens)
    with caplog.at_level(logging.WARNING, "silentauth.client"):
        coord.failed(RefreshFailed("down"), tokens, force=False, retry_after=7)
    assert caplog.messages == ["token refresh failed (RefreshFailed('down')); next attempt in 7.0 s"]


def test_a_failure_with_an_expired_token_raises_it() -> None:
    clock = FakeClock(START)
    tokens = grant()
    coord = coordinator(tokens, clock=clock)
    clock.set(START + LIFETIME)
    error = RefreshFailed("token endpoint answered 502")
    with pytest.raises(RefreshFailed) as raised:
        coord.failed(error, tokens, force=False)
    assert raised.value is error


def test_a_network_error_is_wrapped_in_refresh_failed() -> None:
    tokens = grant()
    coord = coordinator(tokens)
    error = httpx.ConnectError("connection refused")
    with pytest.raises(RefreshFailed) as raised:
        coord.failed(error, tokens, force=True)
    assert str(raised.value) == f"token endpoint unreachable: {error!r}"
    assert raised.value.__cause__ is error


# -- the session-expired callback ----------------------------------------------------------------


def test_the_callback_runs_once_per_session_and_again_for_the_next_one() -> None:
    calls: list[str] = []
    coord = coordinator(grant(), calls=calls)
    for _ in range(2):  # two waiters of one refresh both learn the session died
        with pytest.raises(SessionExpired):
            coord.accept(answer(400, {"error": "invalid_grant"}), grant(), force=False)
        coord.run_pending_callback()
    assert calls == ["expired"]
    coord.install(grant(access="a2", refresh="r2"))
    with pytest.raises(SessionExpired):
        coord.accept(answer(400, {"error": "invalid_grant"}), grant(), force=False)
    coord.run_pending_callback()
    assert calls == ["expired", "expired"]


def test_a_failing_callback_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> None:
        raise ValueError("callback bug")

    coord = Coordinator(MemoryTokenStore(grant()), FakeClock(START), MARGIN, 0.0, 0.05, explode)
    with pytest.raises(SessionExpired):
        coord.accept(answer(401, {"error": "invalid_client"}), grant(), force=False)
    with caplog.at_level(logging.ERROR, "silentauth.client"):
        coord.run_pending_callback()
    assert caplog.messages == ["on_session_expired callback failed"]


def test_no_callback_runs_without_an_expiry() -> None:
    calls: list[str] = []
    coord = coordinator(grant(), calls=calls)
    coord.run_pending_callback()
    assert calls == []


def test_a_failure_clears_the_session_even_when_the_file_cannot_be_removed(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    coord = Coordinator(store, FakeClock(START), MARGIN, 0.0, 0.05, None)
    coord.install(grant())
    store.path.unlink()
    store.path.mkdir()
    with pytest.raises(SessionExpired):
        coord.accept(answer(400, {"error": "invalid_grant"}), grant(), force=False)
    assert coord.tokens is None


def test_a_first_failure_without_retry_after_may_cool_down_less_than_a_second() -> None:
    # The jitter spreads a fleet on both sides of the base: 20 draws all >= 1 s
    # would happen once in a million runs.
    through_accept, direct = [], []
    for _ in range(20):
        coord = coordinator(grant())
        with pytest.raises(RefreshFailed):
            coord.accept(answer(503, headers={"Retry-After": "soon"}), grant(), force=True)
        through_accept.append(coord._cooldown_until - START)
        coord = coordinator(grant())
        coord.failed(RefreshFailed("down"), grant(), force=False)
        direct.append(coord._cooldown_until - START)
    assert min(through_accept) < COOLDOWN_BASE and min(direct) < COOLDOWN_BASE


def test_after_install_nothing_cools_down_even_on_a_clock_that_starts_at_zero() -> None:
    clock = FakeClock(0.0)
    coord = coordinator(grant(issued=0.0, lifetime=2.0), clock=clock)
    clock.set(2.0)
    with pytest.raises(RefreshFailed):
        coord.failed(RefreshFailed("down"), grant(issued=0.0, lifetime=2.0), force=False)
    coord.install(grant(access="a2", refresh="r2", issued=0.0, lifetime=1.0))
    clock.set(0.5)  # due (half the lifetime), and a cooldown until 1.0 would refuse
    assert coord.plan(coord.tokens, force=False)[1] is True


def test_after_a_success_nothing_cools_down_even_on_a_clock_that_starts_at_zero() -> None:
    clock = FakeClock(0.0)
    old = grant(issued=0.0, lifetime=0.2)
    coord = coordinator(old, clock=clock)
    new = coord.accept(answer(200, {"access_token": "a2", "expires_in": 1}), old, force=False)
    clock.set(0.5)
    assert refreshing(coord.plan(new, force=False)) == new


def test_install_starts_the_backoff_over() -> None:
    clock = FakeClock(START)
    tokens = grant(lifetime=10_000)
    coord = coordinator(tokens, clock=clock)
    for _ in range(5):
        coord.failed(RefreshFailed("down"), tokens, force=False)
    coord.install(grant(access="a2", refresh="r2", lifetime=10_000))
    coord.failed(RefreshFailed("down"), tokens, force=False)
    assert coord._cooldown_until - clock() <= COOLDOWN_BASE * 1.2


def test_a_new_coordinator_does_not_start_cooling_down_even_on_a_clock_at_zero() -> None:
    clock = FakeClock(0.0)
    tokens = grant(issued=0.0, lifetime=1.0)
    coord = coordinator(tokens, clock=clock)
    clock.set(0.5)
    assert refreshing(coord.plan(tokens, force=False)) == tokens


def test_the_margin_is_the_configured_one_before_any_grant() -> None:
    assert coordinator().margin == MARGIN


def test_a_failed_refresh_of_a_still_valid_token_carries_on_with_it() -> None:
    tokens = grant()
    coord = coordinator(tokens)
    assert coord.accept(answer(503), tokens, force=False) is tokens


def test_the_first_cooldown_stays_within_twenty_percent_of_a_second() -> None:
    # 200 draws: a jitter that reached past 1.2 s would show with near certainty.
    waits = []
    for _ in range(200):
        coord = coordinator(grant())
        coord.failed(RefreshFailed("down"), grant(), force=False)
        waits.append(coord._cooldown_until - START)
    assert 0.8 <= min(waits) and max(waits) <= 1.2
    assert max(waits) > 1.1 and min(waits) < 0.9  # and it does spread


# -- the Idempotency-Key of a refresh in flight, shared through the store ----------


def test_a_refresh_another_holder_started_is_retried_with_its_key() -> None:
    coord = coordinator(grant())
    coord.store.save(replace(grant(), pending_key="k" * 32))  # the other holder's call, answer unknown
    tokens, refresh = coord.plan(grant(), force=True)  # the server rejected a1
    assert refresh and tokens.pending_key == "k" * 32


def test_our_key_is_kept_when_the_store_holds_the_same_grant_without_one() -> None:
    # The key could not be written (or another holder rewrote the grant without it):
    # the retry must still carry the key of the refresh we sent.
    coord = coordinator(replace(grant(), pending_key="k" * 32))
    coord.store.save(grant())
    tokens, refresh = coord.plan(grant(), force=True)  # the server rejected a1
    assert refresh and tokens.pending_key == "k" * 32


def test_the_key_of_a_refresh_is_stored_before_the_call_goes_out() -> None:
    # A process killed mid-call, or another holder of the store, retries with this key.
    coord = coordinator(grant())
    tokens, refresh = coord.plan(grant(), force=True)
    assert refresh and tokens.pending_key
    stored = coord.store.load()
    assert stored is not None and stored.pending_key == tokens.pending_key
    assert coord.tokens is tokens
