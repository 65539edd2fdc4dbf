// Unit tests of silentauth.js in virtual time: see fakes.mjs for the stand-ins.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  RefreshFailedError,
  SessionExpiredError,
  StepUpRequiredError,
  decodeClaims,
  parseBearerChallenge,
} from "../../src/silentauth/web/static/silentauth.js";
import { API, origin, settle } from "./fakes.mjs";

let env;
afterEach(() => env?.close());

async function loggedIn(options = {}, tabs = 1) {
  env = origin(options);
  const all = Array.from({ length: tabs }, () => env.tab());
  await Promise.all(all.map((t) => t.auth.ready));
  await all[0].auth.login("alice", "secret");
  await settle();
  return all;
}

const statuses = (responses) => responses.map((r) => r.status);
const burst = (auth, n, url = API) => Promise.all(Array.from({ length: n }, () => auth.fetch(url)));

test("fetch attaches the bearer token and keeps the token out of the cookie jar", async () => {
  const [tab] = await loggedIn();
  const res = await tab.auth.fetch(API);
  assert.equal(res.status, 200);
  const { token } = await res.json();
  assert.equal(decodeClaims(token).sid, "s1");
  assert.ok(!env.server.cookie.includes(token));
  assert.equal(env.server.refreshCalls, 0);
});

test("fifty concurrent requests after expiry cause one refresh", async () => {
  const [tab] = await loggedIn({ ttl: 60 });
  env.time.now += 61_000; // the laptop slept: no timer ran
  const responses = await burst(tab.auth, 50);
  assert.deepEqual(new Set(statuses(responses)), new Set([200]));
  assert.equal(env.server.refreshCalls, 1);
});

test("three tabs with fifty requests each after expiry cause one refresh in all", async () => {
  const tabs = await loggedIn({ ttl: 60 }, 3);
  assert.ok(tabs.every((t) => t.auth.isAuthenticated), "the other tabs adopted the login");
  env.time.now += 61_000;
  const responses = (await Promise.all(tabs.map((t) => burst(t.auth, 50)))).flat();
  assert.equal(responses.length, 150);
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(env.server.refreshCalls, 1);
  const adopted = tabs.flatMap((t) => t.events).filter((e) => e.type === "token" && e.source === "other-tab");
  assert.ok(adopted.length >= 2, "the waiting tabs took the broadcast token");
});

test("without Web Locks every tab still succeeds, refreshing at most once each", async () => {
  const tabs = await loggedIn({ ttl: 60, locks: false }, 3);
  env.time.now += 61_000;
  const responses = (await Promise.all(tabs.map((t) => burst(t.auth, 20)))).flat();
  assert.ok(responses.every((r) => r.status === 200));
  assert.ok(env.server.refreshCalls >= 1 && env.server.refreshCalls <= 3, String(env.server.refreshCalls));
});

test("a 401 invalid_token refreshes once and replays the body", async () => {
  const [tab] = await loggedIn();
  const first = (await (await tab.auth.fetch(API)).json()).token;
  env.server.reject(first); // revoked server-side while the client still trusts it
  const form = JSON.stringify({ essay: "x".repeat(100_000), n: 42 });
  const res = await tab.auth.fetch("http://app.test/api/echo", { method: "POST", body: form });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).body, form);
  assert.equal(env.server.refreshCalls, 1);
  const bodies = env.server.apiCalls.filter((c) => c.path === "/api/echo").map((c) => c.body);
  assert.deepEqual(bodies, [form, form]);
});

test("a late 401 for an already replaced token retries without a second refresh", async () => {
  const [tab] = await loggedIn();
  const old = (await (await tab.auth.fetch(API)).json()).token;
  env.server.reject(old);
  const responses = await burst(tab.auth, 10); // all fly with the old token, all get 401
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(env.server.refreshCalls, 1);
});

test("a second 401 after the retry is returned, not looped on", async () => {
  const [tab] = await loggedIn();
  env.server.rejectAll = true;
  const res = await tab.auth.fetch(API);
  assert.equal(res.status, 401);
  assert.equal(env.server.refreshCalls, 1);
});

test("a dead refresh token rejects every queued request and calls back once per tab", async () => {
  const [a, b] = await loggedIn({ ttl: 60 }, 2);
  env.server.alive = false; // e.g. revoked from another device; the cookie is still there
  env.time.now += 61_000;
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => a.auth.fetch(API)));
  assert.ok(results.every((r) => r.status === "rejected" && r.reason instanceof SessionExpiredError));
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(a.expired.length, 1);
  await settle();
  assert.equal(b.expired.length, 1, "the logout broadcast reached the other tab");
  await assert.rejects(b.auth.fetch(API), SessionExpiredError);
  await assert.rejects(a.auth.fetch(API), SessionExpiredError);
  assert.equal(a.expired.length, 1);
  assert.equal(env.server.refreshCalls, 1, "no further refresh attempts: no loop");
});

test("logout in one tab logs out the others, which reject without network", async () => {
  const [a, b] = await loggedIn({}, 2);
  await a.auth.logout();
  await settle();
  assert.equal(a.expired.length, 0, "the tab that logged out is not surprised");
  assert.equal(b.expired.length, 1);
  const calls = env.server.apiCalls.length;
  await assert.rejects(b.auth.fetch(API), SessionExpiredError);
  assert.equal(env.server.apiCalls.length, calls);
  assert.equal(env.server.alive, false, "the server was told");
});

test("the proactive timer refreshes before expiry, within margin plus jitter", async () => {
  const [a, b] = await loggedIn({ ttl: 600 }, 2);
  // As the Python client: margin = 60 s * (1 + 0.5 * jitter 0.1) = 63 s -> due at 537 s.
  await env.time.advance(536_900);
  assert.equal(env.server.refreshCalls, 0);
  await env.time.advance(200);
  assert.equal(env.server.refreshCalls, 1);
  const refreshed = a.events.find((e) => e.type === "token" && e.source === "refresh");
  assert.equal(refreshed.reason, "proactive");
  assert.ok(b.events.some((e) => e.source === "other-tab"));
  await env.time.advance(5_000);
  assert.equal(env.server.refreshCalls, 1, "the other tab adopted instead of refreshing");
});

test("the refresh margin is never more than half the token's lifetime", async () => {
  await loggedIn({ ttl: 60 }); // min(63 s, 30 s): due at 30 s
  await env.time.advance(29_900);
  assert.equal(env.server.refreshCalls, 0);
  await env.time.advance(200);
  assert.equal(env.server.refreshCalls, 1);
});

test("refreshMargin and jitter are checked as in the Python client; test hooks are not options", () => {
  env = origin();
  for (const bad of [{ refreshMargin: -1 }, { jitter: 1.5 }, { jitter: -0.1 }, { refreshMargin: Number.NaN }]) {
    assert.throws(() => env.tab(bad), RangeError, JSON.stringify(bad));
  }
  assert.throws(() => env.tab({ fetch: () => {} }), /second argument/);
  assert.throws(() => env.tab({ now: () => 0 }), /second argument/);
});

test("hidden tabs pause the timer and check at once when visible again", async () => {
  const [tab] = await loggedIn({ ttl: 60 });
  tab.document.setVisible(false);
  await env.time.advance(120_000);
  assert.equal(env.server.refreshCalls, 0);
  tab.document.setVisible(true);
  await settle();
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(tab.events.at(-1).reason, "visible");
  assert.ok(tab.auth.isAuthenticated);
});

test("a page load restores the session once for many tabs, and later tabs borrow", async () => {
  env = origin({ ttl: 60 });
  const first = env.tab();
  await first.auth.ready;
  await first.auth.login("alice", "secret");
  first.auth.destroy(); // "reload" every tab: memory is gone, cookies stay
  env.tabs = [];
  const reloaded = [env.tab(), env.tab(), env.tab()];
  const ready = await env.time.until(Promise.all(reloaded.map((t) => t.auth.ready)));
  assert.deepEqual(ready, [true, true, true]);
  assert.equal(env.server.refreshCalls, 1);
  const later = env.tab();
  assert.equal(await env.time.until(later.auth.ready), true);
  assert.equal(env.server.refreshCalls, 1, "a new tab borrowed a live token");
});

test("a page load without a session cookie makes no request", async () => {
  env = origin();
  const tab = env.tab();
  assert.equal(await tab.auth.ready, false);
  assert.equal(env.server.refreshCalls, 0);
  await assert.rejects(tab.auth.fetch(API), SessionExpiredError);
});

test("a page load with a dead session cookie shows the login quietly, without telling other tabs", async () => {
  const [a] = await loggedIn();
  a.auth.destroy(); // the only tab reloads: its memory is gone
  env.server.alive = false; // revoked elsewhere; this browser still holds the cookie
  const other = env.tab({ restore: false }); // a tab that never had a session
  const reloaded = env.tab();
  assert.equal(await env.time.until(reloaded.auth.ready), false);
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(reloaded.expired.length, 0);
  assert.ok(!env.hub.sent.some((m) => m.type === "logout"), "nothing known to log out");
  assert.equal(other.expired.length, 0);
});

test("a pushed New-Access-Token is adopted and shared without a refresh", async () => {
  const [a, b] = await loggedIn({ ttl: 60 }, 2);
  env.time.now += 50_000;
  env.server.renewWith = env.server.mint();
  await burst(a.auth, 5);
  env.server.renewWith = null;
  await settle();
  assert.equal(a.auth.claims.jti, decodeClaims((await (await a.auth.fetch(API)).json()).token).jti);
  assert.equal(a.events.filter((e) => e.source === "pushed").length, 1);
  assert.ok(b.events.some((e) => e.source === "other-tab"));
  assert.ok(b.auth.expiresAt > env.time.now + 55_000);
  assert.equal(env.server.refreshCalls, 0);
});

test("a step-up challenge rejects with StepUpRequiredError and its max age", async () => {
  const [tab] = await loggedIn();
  env.server.stepUp = true;
  const err = await tab.auth.fetch("http://app.test/api/payments", { method: "POST" }).catch((e) => e);
  assert.ok(err instanceof StepUpRequiredError);
  assert.equal(err.maxAge, 300);
  assert.equal(env.server.refreshCalls, 0);
});

test("a 401 from the refresh call itself ends the session instead of deadlocking", async () => {
  const [tab] = await loggedIn({ ttl: 60 });
  env.server.refreshStatus = 401;
  env.time.now += 61_000;
  await assert.rejects(burst(tab.auth, 5), SessionExpiredError);
  assert.equal(env.server.refreshCalls, 1);
});

test("a transient refresh failure keeps the session and retries later", async () => {
  const [tab] = await loggedIn({ ttl: 60 });
  env.server.refreshStatus = 503;
  env.time.now += 61_000;
  await assert.rejects(tab.auth.fetch(API), RefreshFailedError);
  assert.ok(tab.auth.isAuthenticated);
  assert.equal(tab.expired.length, 0);
  env.server.refreshStatus = null;
  await env.time.advance(2_500); // the retry timer
  assert.equal(env.server.refreshCalls, 2);
  assert.equal((await tab.auth.fetch(API)).status, 200);
});

test("a wrong CSRF proof in memory falls back to the cookie once", async () => {
  const [a, b] = await loggedIn({ ttl: 60 }, 2);
  env.server.csrf = "csrf-new"; // another tab logged in anew: new session, new cookie
  env.time.now += 61_000;
  assert.equal((await a.auth.fetch(API)).status, 200); // a kept the old proof in memory
  assert.equal(env.server.refreshCalls, 2); // 403, then the cookie's proof
  assert.ok(b.auth.isAuthenticated);
});

test("a lock held too long by a frozen tab does not stall the refresh", async () => {
  const [tab] = await loggedIn({ ttl: 60 });
  let release;
  env.locks.request("silentauth-refresh", () => new Promise((r) => { release = r; }));
  env.time.now += 61_000;
  const pending = tab.auth.fetch(API);
  await env.time.advance(10_000);
  assert.equal((await pending).status, 200);
  release();
});

test("bearer challenges and token claims parse", () => {
  assert.deepEqual(parseBearerChallenge('Bearer error="insufficient_user_authentication", max_age=300'),
    { error: "insufficient_user_authentication", maxAge: 300 });
  assert.deepEqual(parseBearerChallenge(null), { error: null, maxAge: null });
  assert.deepEqual(decodeClaims("not a jwt"), {});
});

test("bearer challenges parse as in the Python client: token or quoted values", () => {
  const cases = [
    // A token (unquoted) error value is as valid as a quoted one (RFC 9110 §11.2).
    ["Bearer error=insufficient_user_authentication, max_age=60", "insufficient_user_authentication", 60],
    ['bearer realm="api", error="invalid_token", error_description="a, b"', "invalid_token", null],
    ['Bearer error_description="error=\\"x\\"", error=invalid_token', "invalid_token", null],
    ['Bearer error="first", error="second", max_age="120"', "first", 120],
    ["Bearer max_age=12s", null, null],
    ['Basic realm="x", error="invalid_token"', null, null],
    ["Bearer", null, null],
  ];
  for (const [header, error, maxAge] of cases) {
    assert.deepEqual(parseBearerChallenge(header), { error, maxAge }, header);
  }
});

test("the bindings' hooks are not on the client object", async () => {
  const [tab] = await loggedIn();
  for (const name of ["refreshAfterRejection", "adoptPushedToken", "sendsTokenTo", "ignoreRenewal"]) {
    assert.equal(name in tab.auth, false, name);
  }
});

// A sibling host can set unprefixed and __Secure- cookies for the whole site, never
// __Host- ones: a proof found under any other name must not start a refresh.
test("a CSRF cookie tossed in by a sibling host under another name is never read", async () => {
  env = origin();
  const tossed = { cookie: "silentauth-csrf=attacker; __Secure-silentauth-csrf=attacker" };
  const tab = env.tab({}, { document: tossed });
  assert.equal(await env.time.until(tab.auth.ready), false);
  assert.equal(env.server.refreshCalls, 0);
});

test("the development cookie name is read only when asked for", async () => {
  env = origin();
  const dev = env.tab({ csrfCookie: "silentauth-csrf" }, { document: { cookie: `silentauth-csrf=${env.server.csrf}` } });
  await env.time.until(dev.auth.ready);
  assert.equal(env.server.refreshCalls, 1);
});

test("login sends remember only when the caller chose, as a boolean", async () => {
  env = origin();
  const tab = env.tab();
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  await tab.auth.login("alice", "secret", { remember: false });
  await tab.auth.login("alice", "secret", { remember: true });
  assert.deepEqual(env.server.loginBodies.map((b) => b.remember), [undefined, false, true]);
  assert.ok(!("remember" in env.server.loginBodies[0]));
});
