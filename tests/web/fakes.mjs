// Stand-ins for what a browser provides (timers, Web Locks, BroadcastChannel, document)
// and for the token service, so the module's logic runs under node --test in virtual
// time. The real server and real Chromium are exercised by tests/e2e/test_browser.py.

import { createAuthClient } from "../../src/silentauth/web/static/silentauth.js";

/** Let promise chains and setImmediate-delivered messages settle. */
export async function settle(rounds = 30) {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Virtual time: timers fire only when advance() passes them. */
export class FakeTime {
  now = 1_800_000_000_000;
  #timers = new Map();
  #next = 1;
  clock = () => this.now;
  setTimeout = (fn, ms) => {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + Math.max(0, ms), fn });
    return id;
  };
  clearTimeout = (id) => { this.#timers.delete(id); };
  get pending() { return [...this.#timers.values()].map((t) => t.at - this.now).sort((a, b) => a - b); }

  /** Advance in small steps until `promise` settles (at most `limit` ms), then return it. */
  async until(promise, limit = 60_000, step = 25) {
    let settled = false;
    promise.then(() => { settled = true; }, () => { settled = true; });
    for (let spent = 0; !settled && spent < limit; spent += step) await this.advance(step);
    return promise;
  }

  async advance(ms) {
    const end = this.now + ms;
    for (let guard = 0; guard < 10000; guard++) {
      await settle();
      const due = [...this.#timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.#timers.delete(due[0]);
      this.now = Math.max(this.now, due[1].at);
      due[1].fn();
    }
    this.now = end;
    await settle();
  }
}

/** An exclusive, FIFO LockManager shared by the "tabs" of one origin. */
export class FakeLocks {
  #queue = [];
  #held = false;
  grants = 0;
  request(name, options, fn) {
    if (typeof options === "function") [fn, options] = [options, {}];
    return new Promise((resolve, reject) => {
      const entry = { fn, resolve, reject };
      options.signal?.addEventListener("abort", () => {
        const i = this.#queue.indexOf(entry);
        if (i >= 0) {
          this.#queue.splice(i, 1);
          reject(new DOMException("The lock request was aborted.", "AbortError"));
        }
      });
      this.#queue.push(entry);
      this.#pump();
    });
  }
  #pump() {
    if (this.#held || this.#queue.length === 0) return;
    const entry = this.#queue.shift();
    this.#held = true;
    this.grants++;
    Promise.resolve().then(() => entry.fn()).then(entry.resolve, entry.reject)
      .finally(() => { this.#held = false; this.#pump(); });
  }
}

/** BroadcastChannel semantics: other members of the same name, async, structured clone. */
export function channelHub() {
  const members = new Set();
  const sent = [];
  class Channel {
    constructor(name) { this.name = name; this.onmessage = null; members.add(this); }
    postMessage(data) {
      sent.push(data);
      for (const m of members) {
        if (m === this || m.name !== this.name) continue;
        const copy = structuredClone(data);
        setImmediate(() => m.onmessage?.({ data: copy }));
      }
    }
    close() { members.delete(this); }
  }
  return { Channel, sent };
}

const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");

/** The token service, as far as the browser client can tell. */
export class FakeServer {
  refreshCalls = 0;
  apiCalls = [];
  loginBodies = []; // the JSON of every /auth/login, as sent
  alive = false; // no session until someone logs in
  hasCookie = false; // the browser's jar: set on login, cleared as the real server does
  rejectAll = false; // answer every API call with 401 invalid_token
  sid = "s1";
  csrf = "csrf-s1";
  refreshStatus = null; // force an answer (e.g. 500) for /auth/refresh
  renewWith = null; // a token to push as New-Access-Token
  stepUp = false;
  redirectTo = null; // an origin the API "redirects" to: responses carry its URL
  #valid = new Map(); // token -> exp (s)
  #n = 0;

  constructor(time, ttl = 60) { this.time = time; this.ttl = ttl; }

  mint(ttl = this.ttl) {
    const iat = Math.floor(this.time.now / 1000);
    const token = `${b64({ alg: "ES256", typ: "at+jwt" })}.${b64({
      sub: "u1", sid: this.sid, iat, exp: iat + ttl, jti: String(++this.#n), preferred_username: "alice",
    })}.sig${this.#n}`;
    this.#valid.set(token, iat + ttl);
    return token;
  }

  /** Make the server reject a token although the client still believes in it. */
  reject(token) { this.#valid.delete(token); }

  get cookie() { return this.hasCookie ? `other=1; __Host-silentauth-csrf=${this.csrf}` : "other=1"; }

  #grant() {
    return Response.json({ access_token: this.mint(), token_type: "Bearer", expires_in: this.ttl, csrf_token: this.csrf });
  }

  fetch = async (input, init) => {
    const req = input instanceof Request ? input : new Request(input, init);
    const path = new URL(req.url).pathname;
    await settle(2); // a network round trip, so concurrent callers really overlap
    if (path === "/auth/login") {
      const body = await req.json();
      this.loginBodies.push(body);
      if (body.password !== "secret") return Response.json({ error: "invalid_grant" }, { status: 400 });
      this.alive = true;
      this.hasCookie = true;
      return this.#grant();
    }
    if (path === "/auth/refresh") {
      this.refreshCalls++;
      if (this.refreshStatus) return new Response("{}", { status: this.refreshStatus });
      if (req.headers.get("X-CSRF-Token") !== this.csrf) return Response.json({ error: "access_denied" }, { status: 403 });
      if (!this.alive) {
        this.hasCookie = false;
        return Response.json({ error: "invalid_grant" }, { status: 400 });
      }
      return this.#grant();
    }
    if (path === "/auth/logout") {
      this.alive = false;
      this.hasCookie = false;
      return new Response(null, { status: 204 });
    }
    const token = (req.headers.get("Authorization") ?? "").replace(/^Bearer /, "");
    const exp = this.#valid.get(token);
    const body = req.method === "GET" ? null : await req.text();
    const from = new URL(req.url).origin;
    this.apiCalls.push({ path, token, body, origin: from });
    if (from === FOREIGN) {
      // The attacker's host: it answers everything, and pushes its own token if it can.
      const headers = this.renewWith ? { "New-Access-Token": this.renewWith } : {};
      return Response.json({ path, token }, { headers, status: this.rejectAll ? 401 : 200 });
    }
    if (this.rejectAll || !this.alive || exp === undefined || exp * 1000 <= this.time.now) {
      return this.#via(path, new Response("{}", { status: 401, headers: { "WWW-Authenticate": 'Bearer error="invalid_token"' } }));
    }
    if (this.stepUp) {
      return new Response("{}", {
        status: 401, headers: { "WWW-Authenticate": 'Bearer error="insufficient_user_authentication", max_age=300' },
      });
    }
    const headers = this.renewWith ? { "New-Access-Token": this.renewWith } : {};
    return this.#via(path, Response.json({ path, body, token }, { headers }));
  };

  /** What fetch reports after following a redirect to `redirectTo`: the final URL. */
  #via(path, response) {
    if (this.redirectTo) Object.defineProperty(response, "url", { value: `${this.redirectTo}${path}` });
    return response;
  }
}

/** A document whose cookie jar is the server's and whose visibility can be flipped. */
export class FakeDocument extends EventTarget {
  visibilityState = "visible";
  constructor(server) { super(); this.server = server; }
  get cookie() { return this.server.cookie; }
  setVisible(visible) {
    this.visibilityState = visible ? "visible" : "hidden";
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

/** One origin: a server, virtual time, and the locks and channel its tabs share. */
export function origin({ ttl = 60, locks = true } = {}) {
  const time = new FakeTime();
  const server = new FakeServer(time, ttl);
  const hub = channelHub();
  const env = { time, server, hub, locks: locks ? new FakeLocks() : null, tabs: [] };
  /** A tab: `extra` options over the defaults, `hooks` over the fake environment. */
  env.tab = (extra = {}, hooks = {}) => {
    const events = [];
    const expired = [];
    const document = new FakeDocument(server);
    const window = new EventTarget();
    window.location = { origin: "http://app.test" };
    const auth = createAuthClient({
      baseUrl: "http://app.test",
      onEvent: (e) => events.push(e),
      onSessionExpired: (e) => expired.push(e),
      ...extra,
    }, {
      fetch: server.fetch,
      now: time.clock,
      setTimeout: time.setTimeout,
      clearTimeout: time.clearTimeout,
      locks: env.locks,
      BroadcastChannel: hub.Channel,
      document,
      window,
      random: () => 0.5,
      ...hooks,
    });
    const tab = { auth, events, expired, document };
    env.tabs.push(tab);
    return tab;
  };
  env.close = () => { for (const t of env.tabs) t.auth.destroy(); };
  return env;
}

export const API = "http://app.test/api/me";
/** A host that must never see the token (an attacker's, or merely a third party's). */
export const FOREIGN = "http://evil.test";
