// attachSilentAuth with real axios (from the npm registry, see package.json) over its
// fetch adapter, pointed at the fake token service of fakes.mjs.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import axios from "axios";

import { SessionExpiredError, StepUpRequiredError } from "../../src/silentauth/web/static/silentauth.js";
import { attachSilentAuth } from "../../src/silentauth/web/static/silentauth-axios.js";
import { origin, settle } from "./fakes.mjs";

let env;
afterEach(() => env?.close());

async function setup(tabs = 1) {
  env = origin({ ttl: 60 });
  const all = Array.from({ length: tabs }, () => env.tab());
  await Promise.all(all.map((t) => t.auth.ready));
  await all[0].auth.login("alice", "secret");
  await settle();
  const apis = all.map((t) => {
    const api = axios.create({ baseURL: "http://app.test", adapter: "fetch", env: { fetch: env.server.fetch } });
    attachSilentAuth(api, t.auth);
    return api;
  });
  return { tabs: all, apis };
}

test("axios requests carry the bearer token", async () => {
  const { apis, tabs } = await setup();
  const res = await apis[0].get("/api/me");
  assert.equal(res.status, 200);
  assert.equal(res.data.token, await tabs[0].auth.getAccessToken());
});

test("axios: many requests in two tabs after expiry cause one refresh", async () => {
  const { apis } = await setup(2);
  env.time.now += 61_000;
  const all = await Promise.all(apis.flatMap((api) => Array.from({ length: 25 }, () => api.get("/api/me"))));
  assert.equal(all.length, 50);
  assert.ok(all.every((r) => r.status === 200));
  assert.equal(env.server.refreshCalls, 1);
});

test("axios: a 401 refreshes once and replays the JSON body", async () => {
  const { apis, tabs } = await setup();
  env.server.reject(await tabs[0].auth.getAccessToken());
  const form = { essay: "long ".repeat(10_000), n: 7 };
  const res = await apis[0].post("/api/echo", form);
  assert.deepEqual(JSON.parse(res.data.body), form);
  assert.equal(env.server.refreshCalls, 1);
});

test("axios: a 401 that persists after the retry is thrown, not looped on", async () => {
  const { apis } = await setup();
  env.server.rejectAll = true;
  const err = await apis[0].get("/api/me").catch((e) => e);
  assert.equal(err.response?.status, 401);
  assert.equal(env.server.refreshCalls, 1);
  assert.equal(env.server.apiCalls.length, 2);
});

test("axios: a dead session rejects with SessionExpiredError", async () => {
  const { apis } = await setup();
  env.server.alive = false;
  env.time.now += 61_000;
  await assert.rejects(apis[0].get("/api/me"), SessionExpiredError);
  await assert.rejects(apis[0].get("/api/me"), SessionExpiredError);
  assert.equal(env.server.refreshCalls, 1);
});

test("axios: a pushed New-Access-Token is adopted", async () => {
  const { apis, tabs } = await setup();
  env.server.renewWith = env.server.mint();
  await apis[0].get("/api/me");
  assert.equal(await tabs[0].auth.getAccessToken(), env.server.renewWith);
});

test("axios: a step-up challenge rejects with StepUpRequiredError", async () => {
  const { apis } = await setup();
  env.server.stepUp = true;
  const err = await apis[0].post("/api/payments").catch((e) => e);
  assert.ok(err instanceof StepUpRequiredError);
  assert.equal(err.maxAge, 300);
});
