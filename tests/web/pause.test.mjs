// pauseProactive(): the token really expires, and then one refresh serves every waiting
// call; pushed renewals and wake-ups renew nothing while paused; resuming renews again.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { API, origin, settle } from "./fakes.mjs";

let env;
afterEach(() => env?.close());

async function loggedIn(tabs = 1) {
  env = origin({ ttl: 60 });
  const all = Array.from({ length: tabs }, () => env.tab());
  await Promise.all(all.map((t) => t.auth.ready));
  await all[0].auth.login("alice", "secret");
  await settle();
  return all;
}

const burst = (auth, n) => Promise.all(Array.from({ length: n }, () => auth.fetch(API)));

test("paused tabs let the token expire; then fifty calls make one refresh and the other tab adopts it", async () => {
  const [a, b] = await loggedIn(2);
  a.auth.pauseProactive();
  b.auth.pauseProactive(true);
  assert.equal(a.auth.proactivePaused, true);
  await env.time.advance(61_000); // past expiry: no timer fired in either tab
  assert.equal(env.server.refreshCalls, 0);
  assert.ok(a.auth.expiresAt < env.time.now);

  const responses = await burst(a.auth, 50);
  assert.deepEqual(responses.map((r) => r.status), Array(50).fill(200));
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(a.events.filter((e) => e.source === "refresh").at(-1).reason, "expired");
  await settle();
  assert.ok(b.events.some((e) => e.source === "other-tab"), "the other tab adopted the token");
  assert.equal(await b.auth.getAccessToken(), await a.auth.getAccessToken());
  assert.equal(env.server.refreshCalls, 1);
});

test("a paused tab ignores pushed renewals and does not refresh when it becomes visible", async () => {
  const [tab] = await loggedIn();
  tab.auth.pauseProactive();
  env.time.now += 50_000;
  env.server.renewWith = env.server.mint();
  await burst(tab.auth, 3);
  env.server.renewWith = null;
  assert.equal(tab.events.filter((e) => e.source === "pushed").length, 0);
  tab.document.setVisible(false);
  env.time.now += 9_000;
  tab.document.setVisible(true);
  await settle();
  assert.equal(env.server.refreshCalls, 0);
});

test("resuming refreshes at once when the token is due, and the timer runs again", async () => {
  const [tab] = await loggedIn();
  tab.auth.pauseProactive();
  await env.time.advance(45_000); // due at 30 s (half the lifetime), not yet expired
  assert.equal(env.server.refreshCalls, 0);
  tab.auth.pauseProactive(false);
  await env.time.advance(10);
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(tab.events.at(-1).reason, "proactive");
  await env.time.advance(31_000);
  assert.equal(env.server.refreshCalls, 2);
});
