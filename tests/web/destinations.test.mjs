// Where the token goes (fetch and axios): only to the issuer's origin and the origins
// listed in apiOrigins; renewals pushed from anywhere else are ignored and counted. A
// foreign host must neither learn the user's token nor swap the session for its own.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import axios from "axios";

import { attachSilentAuth } from "../../src/silentauth/web/static/silentauth-axios.js";
import { API, FOREIGN, origin, settle } from "./fakes.mjs";

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

async function setup(tabOptions = {}) {
  env = origin({ ttl: 60 });
  const tab = env.tab(tabOptions);
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  const api = axios.create({ baseURL: "http://app.test", adapter: "fetch", env: { fetch: env.server.fetch } });
  attachSilentAuth(api, tab.auth);
  return { tabs: [tab], apis: [api] };
}

// -- fetch --------------------------------------------------------------------------------

test("a request to another origin goes out without the token, and a 401 there refreshes nothing", async () => {
  const [tab] = await loggedIn();
  const res = await tab.auth.fetch(`${FOREIGN}/collect`, { headers: { "X-Kept": "1" } });
  assert.equal(res.status, 200);
  const [call] = env.server.apiCalls.filter((c) => c.origin === FOREIGN);
  assert.equal(call.token, "", "the foreign host saw no bearer token");
  env.server.rejectAll = true;
  assert.equal((await tab.auth.fetch(`${FOREIGN}/collect`)).status, 401);
  assert.equal(env.server.refreshCalls, 0, "a foreign 401 says nothing about our token");
  assert.equal(env.server.apiCalls.filter((c) => c.origin === FOREIGN).length, 2, "and is not retried");
});

test("a request to another origin works without a session and does not wait for one", async () => {
  env = origin();
  const tab = env.tab();
  await tab.auth.ready;
  assert.equal((await tab.auth.fetch(`${FOREIGN}/public`)).status, 200);
});

test("origins listed in apiOrigins get the token as well, no others", async () => {
  env = origin();
  const tab = env.tab({ apiOrigins: ["http://api.test/"] });
  await tab.auth.ready;
  await tab.auth.login("alice", "secret");
  for (const url of [API, "http://api.test/api/me", "https://api.test/api/me", `${FOREIGN}/api/me`]) {
    await tab.auth.fetch(url);
  }
  const seen = env.server.apiCalls.map((c) => [new URL(c.origin).href, c.token !== ""]);
  assert.deepEqual(seen, [
    ["http://app.test/", true], ["http://api.test/", true], ["https://api.test/", false], [`${FOREIGN}/`, false],
  ]);
});

test("with an empty baseUrl the page's own origin is the issuer's", async () => {
  env = origin();
  const issuer = env.tab();
  const page = env.tab({ baseUrl: "" }); // its window.location.origin is http://app.test
  await Promise.all([issuer.auth.ready, page.auth.ready]);
  await issuer.auth.login("alice", "secret");
  await settle(); // the page's tab adopts the broadcast token
  await page.auth.fetch(API);
  await page.auth.fetch(`${FOREIGN}/api/me`);
  assert.equal(env.server.apiCalls.length, 2);
  assert.notEqual(env.server.apiCalls[0].token, "");
  assert.equal(env.server.apiCalls[1].token, "");
});

test("apiOrigins must be absolute http(s) origins, checked when the client is made", () => {
  env = origin();
  for (const bad of ["api.test", "/api", "*", "file:///etc", "data:text/plain,x"]) {
    assert.throws(() => env.tab({ apiOrigins: [bad] }), TypeError, bad);
  }
});

test("a New-Access-Token from another origin is ignored, counted and warned about", async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const [a, b] = await loggedIn({}, 2);
  const ours = a.auth.claims;
  env.server.sid = "attacker";
  env.server.renewWith = env.server.mint(3600); // the attacker's own session
  await a.auth.fetch(`${FOREIGN}/pixel`);
  await a.auth.fetch(`${FOREIGN}/pixel`);
  await settle();
  assert.deepEqual(a.auth.claims, ours, "the session kept its identity");
  assert.deepEqual(b.auth.claims, ours, "and no tab was handed the attacker's token");
  assert.equal(a.auth.ignoredRenewals, 2);
  assert.equal(warn.mock.callCount(), 2);
  assert.match(warn.mock.calls[0].arguments[0], /evil\.test/);
  assert.equal(a.events.filter((e) => e.type === "renewal-ignored" && e.origin === FOREIGN).length, 2);
});

test("a response redirected to another origin is neither adopted from nor retried", async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const [tab] = await loggedIn();
  const ours = tab.auth.claims;
  env.server.redirectTo = FOREIGN;
  env.server.sid = "attacker";
  env.server.renewWith = env.server.mint(3600);
  await tab.auth.fetch(API);
  assert.deepEqual(tab.auth.claims, ours);
  assert.equal(tab.auth.ignoredRenewals, 1);
  assert.equal(warn.mock.callCount(), 1);
  env.server.renewWith = null;
  env.server.rejectAll = true;
  assert.equal((await tab.auth.fetch(API)).status, 401);
  assert.equal(env.server.refreshCalls, 0);
});

// -- axios ---------------------------------------------------------------------------------

test("axios: the token goes to the issuer and apiOrigins, never to another host", async () => {
  const { apis } = await setup({ apiOrigins: ["http://api.test"] });
  await apis[0].get("/api/me");
  await apis[0].get("http://api.test/api/me");
  await apis[0].get(`${FOREIGN}/collect`);
  await apis[0].get("/collect", { baseURL: FOREIGN });
  const seen = env.server.apiCalls.map((c) => [c.origin, c.token !== ""]);
  assert.deepEqual(seen, [["http://app.test", true], ["http://api.test", true], [FOREIGN, false], [FOREIGN, false]]);
});

test("axios: a 401 from another host is thrown without a refresh or a retry", async () => {
  const { apis } = await setup();
  env.server.rejectAll = true;
  const err = await apis[0].get(`${FOREIGN}/collect`).catch((e) => e);
  assert.equal(err.response?.status, 401);
  assert.equal(env.server.refreshCalls, 0);
  assert.equal(env.server.apiCalls.length, 1);
});

test("axios: a New-Access-Token from another host is ignored and counted", async (t) => {
  const warn = t.mock.method(console, "warn", () => {});
  const { apis, tabs } = await setup();
  const ours = await tabs[0].auth.getAccessToken();
  env.server.sid = "attacker";
  env.server.renewWith = env.server.mint(3600);
  await apis[0].get(`${FOREIGN}/pixel`);
  assert.equal(await tabs[0].auth.getAccessToken(), ours);
  assert.equal(tabs[0].auth.ignoredRenewals, 1);
  assert.equal(warn.mock.callCount(), 1);
});
