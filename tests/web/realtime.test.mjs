// Unit tests of silentauth-realtime.js (auth.websocket, auth.eventSource) in virtual time.
// The socket and the stream are stand-ins that answer as silentauth.resource does; the real
// server and Chromium are exercised by tests/e2e/test_realtime_browser.py.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { bindingHooks, decodeClaims } from "../../src/silentauth/web/static/silentauth.js";
import { API, origin, settle } from "./fakes.mjs";

const WS_URL = "ws://app.test/api/ws";

let env;
afterEach(() => env?.close());

/** WebSockets whose far end behaves as the server's authenticator: auth-ok for live tokens. */
function socketHub(env) {
  const hub = { sockets: [], down: false };
  const valid = (token) => env.server.alive && decodeClaims(token).exp * 1000 > env.time.now;
  hub.Socket = class FakeSocket {
    constructor(url, protocols) {
      Object.assign(this, { url, protocols, sent: [], closedBy: null, onopen: null, onmessage: null, onclose: null });
      hub.sockets.push(this);
      setImmediate(() => (hub.down ? this.onclose?.({ code: 1006, reason: "" }) : this.onopen?.(new Event("open"))));
    }
    send(data) {
      this.sent.push(data);
      let message = {};
      try { message = JSON.parse(data); } catch { return; } // an application's text
      if (message.type !== "auth" && message.type !== "reauth") return;
      if (hub.deaf && message.type === "reauth") return; // still on its way when the server closes
      const ok = valid(message.token);
      setImmediate(() => (ok
        ? this.onmessage?.({ data: JSON.stringify({ type: "auth-ok", exp: decodeClaims(message.token).exp }) })
        : this.onclose?.({ code: 4401, reason: "token expired" })));
    }
    close(code = 1000, reason = "") { this.closedBy = { code, reason }; }
    /** The server closes. */
    drop(code, reason = "") { this.onclose?.({ code, reason }); }
    push(data) { this.onmessage?.({ data: JSON.stringify(data) }); }
    get tokens() { return this.sent.filter((s) => s.startsWith("{")).map((s) => JSON.parse(s).token).filter(Boolean); }
  };
  return hub;
}

async function connected(options = {}) {
  env = origin({ ttl: 60, ...options });
  const hub = socketHub(env);
  const tab = env.tab({}, { WebSocket: hub.Socket });
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  const ws = tab.auth.websocket(WS_URL);
  const seen = { open: 0, messages: [], closes: [], reconnecting: [] };
  ws.onopen = () => seen.open++;
  ws.addEventListener("message", (e) => seen.messages.push(JSON.parse(e.data)));
  ws.addEventListener("close", (e) => seen.closes.push({ code: e.code, reason: e.reason }));
  ws.addEventListener("reconnecting", (e) => seen.reconnecting.push(e.delay));
  ws.addEventListener("reconnecting", (e) => seen.why?.push([e.code, e.reason]));
  await settle();
  return { tab, hub, ws, seen };
}

test("the token goes in the first message; open fires after auth-ok, which the app never sees", async () => {
  const { tab, hub, ws, seen } = await connected();
  const [socket] = hub.sockets;
  assert.equal(socket.url, WS_URL);
  assert.ok(!socket.url.includes(tab.auth.claims.jti), "no token in the URL");
  assert.deepEqual(JSON.parse(socket.sent[0]), { type: "auth", token: await tab.auth.getAccessToken() });
  assert.equal(ws.readyState, 1);
  assert.equal(seen.open, 1);
  socket.push({ type: "tick", seq: 0 });
  assert.deepEqual(seen.messages, [{ type: "tick", seq: 0 }]);
});

test("every new token is sent as reauth: proactive, pushed, from another tab", async () => {
  const { tab, hub } = await connected();
  const [socket] = hub.sockets;
  const first = await tab.auth.getAccessToken();
  await env.time.advance(31_000); // the proactive refresh at half the lifetime
  const proactive = await tab.auth.getAccessToken();
  assert.notEqual(proactive, first);
  env.server.renewWith = env.server.mint();
  await tab.auth.fetch(API);
  env.server.renewWith = null;
  const pushed = await tab.auth.getAccessToken();
  await env.time.advance(1_000); // a token from another tab is adopted only if it lives longer
  const other = env.tab({}, { WebSocket: hub.Socket });
  await other.auth.ready;
  await bindingHooks(other.auth).refreshAfterRejection(await other.auth.getAccessToken());
  await settle();
  const fromOtherTab = await tab.auth.getAccessToken();
  assert.equal(new Set([first, proactive, pushed, fromOtherTab]).size, 4);
  assert.deepEqual(socket.tokens, [first, proactive, pushed, fromOtherTab]);
  assert.deepEqual(socket.sent.slice(1).map((s) => JSON.parse(s).type), ["reauth", "reauth", "reauth"]);
  assert.equal(hub.sockets.length, 1, "no reconnection");
});

test("a hidden tab still renews before the deadline: the guard asks the client to refresh", async () => {
  const { tab, hub } = await connected();
  tab.document.setVisible(false); // the client's own proactive timer stops
  const first = await tab.auth.getAccessToken();
  await env.time.advance(59_000);
  const [socket] = hub.sockets;
  assert.equal(socket.tokens.length, 2);
  assert.notEqual(socket.tokens[1], first);
  assert.equal(hub.sockets.length, 1);
});

test("a drop reconnects at once with a fresh token, then backs off while the server is down", async () => {
  const { hub, ws, seen } = await connected();
  hub.sockets[0].drop(1006);
  await env.time.advance(1);
  assert.equal(hub.sockets.length, 2);
  assert.equal(seen.open, 2);
  assert.equal(ws.reconnects, 1);
  hub.down = true;
  hub.sockets[1].drop(1012, "service restart");
  await env.time.advance(2_700);
  // random() is 0.5 in the fakes: each delay is 3/4 of 0, 500, 1000, 2000, 4000 ms (the
  // last one announced when the 1500 ms attempt failed, 2625 ms in).
  assert.deepEqual(seen.reconnecting, [0, 0, 375, 750, 1500, 3000]);
  hub.down = false;
  await env.time.advance(5_000);
  assert.equal(ws.readyState, 1);
  assert.equal(seen.open, 3);
  assert.deepEqual(seen.closes, []);
});

test("messages sent while reconnecting go out after the new auth, in order", async () => {
  const { hub, ws } = await connected();
  hub.sockets[0].drop(1006);
  ws.send("a");
  ws.send("b");
  await env.time.advance(1);
  const socket = hub.sockets[1];
  assert.deepEqual(socket.sent.slice(1), ["a", "b"]);
  assert.equal(JSON.parse(socket.sent[0]).type, "auth");
});

test("4401 with a live session refreshes and reconnects", async () => {
  const { tab, hub, seen } = await connected();
  seen.why = [];
  const before = await tab.auth.getAccessToken();
  hub.sockets[0].drop(4401, "token expired");
  await env.time.advance(1);
  assert.equal(hub.sockets.length, 2);
  assert.notEqual(hub.sockets[1].tokens[0], before, "reconnected with a refreshed token");
  assert.equal(seen.open, 2);
  assert.deepEqual(seen.closes, []);
  assert.deepEqual(seen.why, [[4401, "token expired"]]);
});

test("4401 session revoked: the refresh fails, one final close with the server's code, onSessionExpired once", async () => {
  const { tab, hub, ws, seen } = await connected();
  env.server.alive = false; // logged out everywhere from another device
  hub.sockets[0].drop(4401, "session revoked");
  await env.time.advance(60_000);
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "session revoked" }]);
  assert.equal(tab.expired.length, 1);
  assert.equal(ws.readyState, 3);
  assert.equal(hub.sockets.length, 1, "never reconnected");
});

for (const code of [4400, 4403, 1008, 1009, 1000]) {
  test(`close code ${code} is final`, async () => {
    const { hub, ws, seen } = await connected();
    hub.sockets[0].drop(code, "why");
    await env.time.advance(60_000);
    assert.deepEqual(seen.closes, [{ code, reason: "why" }]);
    assert.equal(ws.readyState, 3);
    assert.equal(hub.sockets.length, 1);
  });
}

test("logout closes the socket for good, once; a later token does not reopen it", async () => {
  const { tab, hub, ws, seen } = await connected();
  await tab.auth.logout();
  await settle();
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "logged out" }]);
  assert.deepEqual(hub.sockets[0].closedBy, { code: 1000, reason: "" });
  await tab.auth.login("alice", "secret");
  await settle();
  assert.equal(hub.sockets.length, 1);
  assert.equal(ws.readyState, 3);
  assert.equal(tab.expired.length, 0, "a logout is not an unexpected end");
});

test("close() by the application ends it once, and send() after it is a no-op", async () => {
  const { hub, ws, seen } = await connected();
  ws.close(4000, "bye");
  ws.send("late");
  hub.sockets[0].drop(1006);
  await env.time.advance(10_000);
  assert.deepEqual(seen.closes, [{ code: 4000, reason: "bye" }]);
  assert.equal(hub.sockets.length, 1);
  assert.deepEqual(hub.sockets[0].sent.slice(1), []);
});

test("a socket to an origin that does not get the token is refused, not opened", async () => {
  const { tab, hub } = await connected();
  assert.throws(() => tab.auth.websocket("ws://evil.test/ws"), TypeError);
  assert.equal(hub.sockets.length, 1);
  const relative = tab.auth.websocket("http://app.test/api/ws");
  assert.equal(relative.url, WS_URL);
  relative.close();
});

// -- renewal through the client's one refresh path, and the server's word at the end ---

test("paused: no renewal ahead of expiry; a 4401 at the deadline waits for the next token", async () => {
  const { tab, hub, ws, seen } = await connected();
  seen.why = [];
  tab.auth.pauseProactive();
  const calls = env.server.refreshCalls;
  await env.time.advance(59_000); // past the connection's guard: it must not refresh either
  assert.equal(env.server.refreshCalls, calls, "nothing renewed the token while paused");
  await env.time.advance(1_000);
  hub.sockets[0].drop(4401, "token expired"); // the server's deadline
  await env.time.advance(5_000);
  assert.equal(env.server.refreshCalls, calls, "the connection did not refresh by itself");
  assert.equal(hub.sockets.length, 1, "and did not reconnect with the dead token");
  assert.equal(ws.readyState, 0);
  assert.equal(ws.waiting, true);
  assert.deepEqual(seen.why, [[4401, "token expired"]]);
  assert.deepEqual(seen.reconnecting.slice(-1), [Infinity]);
  const response = await tab.auth.fetch(API); // the normal, reactive refresh
  assert.equal(response.status, 200);
  await env.time.advance(1);
  assert.equal(env.server.refreshCalls, calls + 1);
  assert.equal(hub.sockets.length, 2);
  assert.equal(hub.sockets[1].tokens[0], await tab.auth.getAccessToken());
  assert.equal(ws.readyState, 1);
  assert.deepEqual(seen.closes, []);
});

test("paused, but the token is refused before its deadline (revoked): refresh, then close", async () => {
  const { tab, hub, seen } = await connected();
  tab.auth.pauseProactive();
  env.server.alive = false;
  hub.sockets[0].drop(4401, "session revoked");
  await env.time.advance(1_000);
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "session revoked" }]);
  assert.equal(tab.expired.length, 1);
});

test("a 4401 for the old token's deadline that crossed the reauth with the new one: no second refresh", async () => {
  const { tab, hub, seen } = await connected();
  hub.deaf = true;
  await env.time.advance(31_000); // the proactive refresh; its reauth has not reached the server
  const fresh = await tab.auth.getAccessToken();
  assert.equal(hub.sockets[0].tokens.at(-1), fresh);
  const calls = env.server.refreshCalls;
  hub.sockets[0].drop(4401, "token expired"); // the server's sweep, for the first token
  await env.time.advance(1);
  assert.equal(env.server.refreshCalls, calls, "the refused token was not the client's any more");
  assert.equal(hub.sockets.length, 2);
  assert.equal(hub.sockets[1].tokens[0], fresh);
  assert.equal(seen.open, 2);
  assert.deepEqual(seen.closes, []);
});

test("the client's expired event carries the server's word, in this tab and the others", async () => {
  const { tab, hub } = await connected();
  const other = env.tab({}, { WebSocket: hub.Socket });
  await other.auth.ready;
  env.server.alive = false;
  hub.sockets[0].drop(4401, "session revoked");
  await env.time.advance(1_000);
  const server = { code: 4401, reason: "session revoked" };
  assert.deepEqual(tab.events.filter((e) => e.type === "expired").map((e) => e.server), [server]);
  assert.deepEqual(other.events.filter((e) => e.type === "expired").map((e) => [e.reason, e.server]), [["other-tab", server]]);
});

test("a 4401 whose refresh succeeded is forgotten: a later end carries no stale word", async () => {
  const { tab, hub } = await connected();
  hub.sockets[0].drop(4401, "token expired");
  await env.time.advance(100); // refreshed, reconnected
  assert.equal(hub.sockets.length, 2);
  env.server.alive = false; // then revoked, and a request finds out
  await env.time.until(tab.auth.fetch(API).catch(() => {}));
  const expired = tab.events.filter((e) => e.type === "expired");
  assert.equal(expired.length, 1);
  assert.equal(expired[0].server, undefined);
});

/** Tabs of one origin without Web Locks, each with its own randomness and an open socket. */
async function backgroundTabs(count) {
  env = origin({ ttl: 60, locks: false });
  const hub = socketHub(env);
  // A refresh takes 50 ms of virtual time: tabs that ask at one instant really race.
  const slow = async (input, init) => {
    await new Promise((resolve) => env.time.setTimeout(resolve, 50));
    return env.server.fetch(input, init);
  };
  const tabs = [];
  for (let i = 0; i < count; i++) {
    const tab = env.tab({}, { WebSocket: hub.Socket, fetch: slow, random: () => (i + 0.5) / count });
    await env.time.until(tab.auth.ready);
    tabs.push(tab);
  }
  await env.time.until(tabs[0].auth.login("alice", "secret"));
  await env.time.advance(100); // the other tabs adopt the broadcast token
  const sockets = tabs.map((tab) => tab.auth.websocket(WS_URL));
  await env.time.advance(100);
  return { tabs, hub, sockets };
}

test("three hidden tabs without Web Locks, each with a socket: one refresh per token lifetime", async () => {
  const { tabs, hub, sockets } = await backgroundTabs(3);
  for (const tab of tabs) tab.document.setVisible(false); // no proactive timer in any of them
  const calls = env.server.refreshCalls;
  const before = hub.sockets[0].tokens.length;
  await env.time.advance(5 * 60_000);
  const refreshes = env.server.refreshCalls - calls;
  // The earliest guard (48 s into each 60 s token) asks; the others get its token.
  assert.equal(refreshes, 6, "one refresh per token, not one per tab");
  assert.equal(hub.sockets[0].tokens.length - before, refreshes);
  assert.ok(sockets.every((ws) => ws.readyState === 1));
  assert.equal(hub.sockets.length, 3, "no socket was dropped at its deadline");
  const live = await tabs[0].auth.getAccessToken();
  assert.ok(hub.sockets.every((socket) => socket.tokens.at(-1) === live));
});

test("the client learns first that the session is over: the close event has the server's reason", async () => {
  const { tab, hub, ws, seen } = await connected();
  env.server.alive = false; // revoked elsewhere; this tab's next request finds out
  const refused = await tab.auth.fetch(API).catch((error) => error);
  assert.equal(refused.name, "SessionExpiredError");
  assert.equal(tab.expired.length, 1);
  assert.equal(ws.readyState, 2, "ending: waiting for the server's word");
  hub.sockets[0].push({ type: "tick", seq: 9 }); // in flight: not delivered any more
  await env.time.advance(300);
  hub.sockets[0].drop(4401, "session revoked");
  await settle();
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "session revoked" }]);
  assert.deepEqual(seen.messages, []);
  assert.equal(ws.readyState, 3);
  assert.equal(hub.sockets.length, 1, "never reconnected");
});

test("another tab logs out everywhere: the socket closes with the server's reason, within endTimeout", async () => {
  const { tab, hub, seen } = await connected();
  const other = env.tab({}, { WebSocket: hub.Socket });
  await other.auth.ready;
  await other.auth.logout();
  await settle();
  assert.equal(tab.auth.isAuthenticated, false);
  hub.sockets[0].drop(4401, "session revoked");
  await settle();
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "session revoked" }]);
});

test("no word from the server within endTimeout: 4401 with the client's word, transport closed", async () => {
  const { tab, hub, ws, seen } = await connected();
  env.server.alive = false;
  await tab.auth.fetch(API).catch(() => {});
  await env.time.advance(999);
  assert.deepEqual(seen.closes, []);
  await env.time.advance(1);
  assert.deepEqual(seen.closes, [{ code: 4401, reason: "session expired" }]);
  assert.deepEqual(hub.sockets[0].closedBy, { code: 1000, reason: "" });
  assert.equal(ws.readyState, 3);
});

// -- event streams ----------------------------------------------------------------------

/** /api/events answered by a stream the test writes; everything else by the fake server. */
function streamingFetch(env) {
  const streams = [];
  const renewals = [];
  const fetch = async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const path = new URL(req.url).pathname;
    if (path === "/api/events") {
      let controller;
      const body = new ReadableStream({ start(c) { controller = c; } });
      const encoder = new TextEncoder();
      const stream = {
        token: req.headers.get("Authorization").slice(7),
        write: (text) => controller.enqueue(encoder.encode(text)),
        end: () => controller.close(),
      };
      streams.push(stream);
      return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
    }
    if (path === "/api/events/renew") {
      renewals.push({ token: req.headers.get("Authorization").slice(7), body: await req.json() });
      return Response.json({ stream: "st1", exp: 0 });
    }
    return env.server.fetch(req);
  };
  return { fetch, streams, renewals };
}

test("eventSource: bearer in the header, named events, renewal by POST, final end event", async () => {
  env = origin({ ttl: 60 });
  const http = streamingFetch(env);
  const tab = env.tab({}, { fetch: http.fetch });
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  const source = tab.auth.eventSource("/api/events".replace(/^/, "http://app.test"));
  const ticks = [];
  const closes = [];
  source.addEventListener("tick", (e) => ticks.push(JSON.parse(e.data).seq));
  source.onclose = (e) => closes.push([e.code, e.reason]);
  await settle();
  const [stream] = http.streams;
  assert.equal(stream.token, await tab.auth.getAccessToken());
  stream.write('event: silentauth\ndata: {"stream": "st1", "exp": 1}\n\n');
  stream.write("event: tick\ndata: {\"seq\": 0}\n\n: keep-alive\n\nevent: tick\nda");
  stream.write("ta: {\"seq\": 1}\n\n");
  await settle();
  assert.equal(source.readyState, 1);
  assert.deepEqual(ticks, [0, 1]);
  await env.time.advance(31_000);
  assert.deepEqual(http.renewals, [{ token: await tab.auth.getAccessToken(), body: { stream: "st1" } }]);
  env.server.alive = false;
  stream.write('event: silentauth-end\ndata: {"code": 4401, "reason": "session revoked"}\n\n');
  await env.time.advance(1_000);
  assert.deepEqual(closes, [[4401, "session revoked"]]);
  assert.equal(http.streams.length, 1);
  assert.equal(tab.expired.length, 1);
});

test("eventSource: a stream cut without an end event reconnects with a token", async () => {
  env = origin({ ttl: 60 });
  const http = streamingFetch(env);
  const tab = env.tab({}, { fetch: http.fetch });
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  const source = tab.auth.eventSource("http://app.test/api/events");
  let opens = 0;
  source.onopen = () => opens++;
  await settle();
  http.streams[0].write('event: silentauth\ndata: {"stream": "st1", "exp": 1}\n\n');
  await settle();
  http.streams[0].end();
  await env.time.advance(1);
  assert.equal(http.streams.length, 2);
  http.streams[1].write('event: silentauth\ndata: {"stream": "st2", "exp": 1}\n\n');
  await settle();
  assert.equal(opens, 2);
  assert.equal(source.reconnects, 1);
  source.close();
});
