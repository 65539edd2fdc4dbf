"""``auth.websocket()`` in real Chromium against the real server, on real time.

Access tokens live 4 s here, so the client refreshes every ~2 s and the
server's deadline (the token's ``exp``) is never more than 4 s away: a
connection that missed one re-authentication would be closed 4401 and show up
as a reconnection or a gap in the sequence numbers. (``exp`` is a whole second
and ``expires_in`` counts from the whole second too, so the client may believe
in up to 1 s more than the server grants; 3 s tokens left too thin a margin on
a loaded machine.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import need_binary
from tests.reliability.serve import ServeProcess as Server

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ACCESS_TTL = 4
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = need_binary("chromium", "/usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``silentauth serve --demo`` in its own process, so a restart is a real one."""
    s = Server(
        tmp_path / "silentauth.db", tmp_path / "serve.log",
        demo="true", access_ttl=ACCESS_TTL, renew_within=0, cookie_secure="true",
        # As every other test server: no random shortening of lifetimes (the first
        # token of a session may otherwise live 10 % of ACCESS_TTL, under a second).
        ttl_jitter=0, first_token_spread=0,
    )
    s.start()
    yield s
    s.stop()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context()
    yield ctx
    ctx.close()


# Opens the socket, records every message and event, and echoes a counter every 100 ms.
OPEN = """() => {
    const log = { messages: [], closes: [], opens: 0, echoes: 0, closedAt: null };
    // Back-off capped at 1 s: the restart test waits for the server, not for the back-off.
    const ws = demo.auth.websocket("/api/ws", undefined, { maxDelay: 1000 });
    ws.onopen = () => log.opens++;
    ws.onmessage = (e) => log.messages.push(JSON.parse(e.data));
    ws.onclose = (e) => { log.closes.push([e.code, e.reason]); log.closedAt = Date.now(); };
    log.events = [];
    ws.addEventListener("reconnecting", (e) => log.events.push(["reconnecting", e.code, e.reason, Math.round(e.delay)]));
    demo.auth.subscribe((e) => log.events.push([e.type, e.reason ?? e.source ?? ""]));
    log.timer = setInterval(() => {
        if (ws.readyState === 1) ws.send(JSON.stringify({ type: "echo", data: log.echoes++ }));
    }, 100);
    const sse = { ticks: [], closes: [], opens: 0, closedAt: null };
    const source = demo.auth.eventSource("/api/events", { maxDelay: 1000 });
    source.onopen = () => sse.opens++;
    source.addEventListener("tick", (e) => sse.ticks.push(JSON.parse(e.data).seq));
    source.onclose = (e) => { sse.closes.push([e.code, e.reason]); sse.closedAt = Date.now(); };
    window.rt = { ws, log, source, sse };
}"""
SSE = """() => ({ opens: rt.sse.opens, closes: rt.sse.closes, reconnects: rt.source.reconnects,
    ticks: rt.sse.ticks, closedAt: rt.sse.closedAt })"""
STATE = """() => ({ opens: rt.log.opens, closes: rt.log.closes, reconnects: rt.ws.reconnects,
    readyState: rt.ws.readyState, refreshes: demo.refreshes, closedAt: rt.log.closedAt,
    messages: rt.log.messages, echoes: rt.log.echoes })"""


def logged_in_tab(context: Any, server: Server) -> Any:
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_function("() => window.demo && window.demo.auth.state !== 'unknown'", timeout=10_000)
    if not page.evaluate("demo.auth.isAuthenticated"):
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#app-view:not([hidden])", timeout=10_000)
    return page


def wait_for(page: Any, predicate: str, timeout: float) -> dict[str, Any]:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {{ const s = ({STATE})(); return {predicate}; }}", timeout=timeout * 1000)
    except PlaywrightTimeout:
        state = page.evaluate(STATE)
        state["messages"] = len(state["messages"])
        state["log"] = page.evaluate("rt.log.events")
        state["auth"] = page.evaluate("[demo.auth.state, demo.auth.expiresAt - Date.now()]")
        raise AssertionError(f"not {predicate} within {timeout} s: {state}") from None
    state: dict[str, Any] = page.evaluate(STATE)
    return state


def assert_no_gap(messages: list[dict[str, Any]]) -> None:
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(len(seqs))), "a message went missing or arrived twice"
    echoed = [m["data"] for m in messages if m["type"] == "echo"]
    assert echoed == list(range(len(echoed)))


def test_socket_and_stream_live_through_refreshes_then_end_4401_within_a_second_of_logout_all(
    context: Any, server: Server
) -> None:
    page = logged_in_tab(context, server)
    page.evaluate(OPEN)
    start = wait_for(page, "s.opens === 1", 5)
    state = wait_for(page, f"s.refreshes >= {start['refreshes'] + 5}", 30)

    assert state["reconnects"] == 0 and state["closes"] == [] and state["readyState"] == 1
    assert_no_gap(state["messages"])
    # Ticks every 0.2 s and an echo every 0.1 s, over 5 refreshes (>= 5 s): all of them.
    assert sum(m["type"] == "tick" for m in state["messages"]) > 20
    assert sum(m["type"] == "echo" for m in state["messages"]) > 20

    other = context.new_page()
    other.goto(server.url + "/")
    other.wait_for_function("() => window.demo && window.demo.auth.isAuthenticated", timeout=10_000)
    sent_at = other.evaluate(
        "async () => { const t = Date.now(); await demo.auth.fetch('/auth/logout-all', {method: 'POST'}); return t; }"
    )
    state = wait_for(page, "s.closes.length > 0", 3)
    # The first connection to hear "session revoked" from the server makes the client
    # refresh, which fails: the other one learns from the client first, and waits for its
    # own close from the server to report the server's reason.
    assert state["closes"] == [[4401, "session revoked"]]
    assert state["closedAt"] - sent_at < 1000
    page.wait_for_function("() => rt.sse.closes.length > 0", timeout=3000)
    sse = page.evaluate(SSE)
    assert sse["closes"] == [[4401, "session revoked"]]
    assert sse["closedAt"] - sent_at < 1000
    # The event stream lived through the same refreshes, renewed by POST each time.
    assert sse["opens"] == 1 and sse["reconnects"] == 0
    assert sse["ticks"] == list(range(len(sse["ticks"]))) and len(sse["ticks"]) > 20
    assert state["readyState"] == 3
    assert_no_gap(state["messages"])
    page.wait_for_timeout(1000)
    assert page.evaluate(STATE)["closes"] == state["closes"], "closed once, for good"
    assert page.evaluate("demo.expiredCallbacks") == 1


def test_socket_and_stream_reconnect_after_the_server_restarts(context: Any, server: Server) -> None:
    page = logged_in_tab(context, server)
    page.evaluate(OPEN)
    wait_for(page, "s.messages.length >= 5", 5)
    server.stop()
    down = wait_for(page, "s.readyState === 0", 5)
    server.start(same_port=True)
    state = wait_for(page, "s.opens === 2 && s.readyState === 1", 15)
    assert state["reconnects"] == 1 and state["closes"] == []
    page.wait_for_function("() => rt.source.reconnects === 1 && rt.source.readyState === 1", timeout=15_000)
    before = len(down["messages"])
    state = wait_for(page, f"s.messages.length >= {before + 10}", 5)
    after = state["messages"][before:]
    # A new connection numbers from 0 again: the old run was whole, and so is the new one.
    assert_no_gap(state["messages"][: before])
    restart = next(i for i, m in enumerate(after) if m["seq"] == 0)
    assert [m["seq"] for m in after[restart:]] == list(range(len(after) - restart))
