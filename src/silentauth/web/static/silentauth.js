/**
 * silentauth.js: seamless token refresh in the browser. One ES module, no dependencies.
 *
 *   import { createAuthClient } from "/static/silentauth.js";
 *   const auth = createAuthClient({ onSessionExpired: () => location.assign("/") });
 *   await auth.login("alice", "secret");
 *   const res = await auth.fetch("/api/me");
 *
 * Typed with JSDoc (checked by `tsc --checkJs`); `silentauth.d.ts` beside this file
 * declares the same for TypeScript. The first argument holds the options, the optional
 * second one what the client takes from the browser (fetch, clock, timers, Web Locks,
 * document, window, BroadcastChannel), for tests and other hosts.
 *
 * Where things live: the access token in memory only; the refresh token only in the
 * HttpOnly __Host- cookie the server sets; the CSRF proof in memory, read back from
 * its cookie after a reload. The refresh and login calls use the raw fetch, never the
 * interceptor, so a failing refresh cannot queue behind itself.
 *
 * Across tabs: a refresh runs under the Web Lock "silentauth-refresh" and re-checks after
 * acquiring it; the new token travels on BroadcastChannel("silentauth") as
 * {type:"token", access_token, expires_at}; {type:"logout", sid} ends every tab;
 * {type:"want-token"} lets a freshly loaded tab borrow a live token instead of refreshing.
 * Without Web Locks each tab refreshes alone and the server's grace window keeps the
 * racers on one session.
 *
 * Where the token goes: only to the issuer's origin (that of `baseUrl`, or the page's
 * when `baseUrl` is "") and the origins listed in `apiOrigins`. A request elsewhere is
 * sent as plain fetch, and a `New-Access-Token` from elsewhere is ignored and counted:
 * a foreign host must neither learn the token nor swap the session for its own.
 */

import { AuthEventSource, AuthWebSocket } from "./silentauth-realtime.js";

const LOCK_NAME = "silentauth-refresh";
const CHANNEL_NAME = "silentauth";
// Exactly one name is read, never a fallback: an unprefixed cookie can be tossed in by a
// sibling host. A page that is not a secure context cannot hold Secure cookies at all, so
// its server must run COOKIE_SECURE=false (development), which uses the unprefixed name.
const CSRF_COOKIE = "__Host-silentauth-csrf";
const DEV_CSRF_COOKIE = "silentauth-csrf";
const MAX_DELAY = 2 ** 31 - 1;
// The environment's members, never options: a test hook passed as an option is a mistake.
const ENV_KEYS = ["fetch", "now", "setTimeout", "clearTimeout", "random", "locks", "document", "window",
  "BroadcastChannel", "WebSocket", "storage"];
// Where a refresh's Idempotency-Key waits for its answer, shared by the tabs of the origin.
const PENDING_KEY = "silentauth-refresh-key";

/**
 * @typedef {object} AuthClientOptions
 * @property {string} [baseUrl] Where the token service lives; "" (the default) is this page's origin.
 * @property {string[]} [apiOrigins] Origins besides the issuer's that get the access token,
 *   e.g. `["https://api.example.com"]`.
 * @property {string[]} [resources] The APIs the access tokens are for (RFC 8707 resource
 *   indicators, e.g. `["https://billing.example"]`), sent with the login and every refresh so
 *   the token's `aud` names exactly them; the server must list them in RESOURCES (an unknown
 *   one fails the login with a LoginError whose code is "invalid_target").
 * @property {number} [refreshMargin] Seconds before expiry for the proactive refresh (default 60),
 *   never more than half the token's lifetime; as `refresh_margin` in the Python client.
 * @property {number} [jitter] Up to this fraction of the margin is added at random per token
 *   (default 0.1, within [0, 1]), so tabs and users spread out; as in the Python client.
 * @property {number} [peerTimeout] ms a reloaded tab waits for another tab's token (default 150).
 * @property {number} [handoffDelay] ms the lock is kept after broadcasting, so waiters see the token first (default 50).
 * @property {number} [lockTimeout] ms to wait for the refresh lock before refreshing without it (default 10000).
 * @property {number} [requestTimeout] ms for each call to the token service (default 15000).
 * @property {boolean} [restore] Resume the session from its cookie at once (default true).
 * @property {string} [csrfCookie] The CSRF proof's cookie name: `__Host-silentauth-csrf`, or
 *   `silentauth-csrf` on a page that is not a secure context (a server with COOKIE_SECURE=false).
 * @property {(error: SessionExpiredError) => void} [onSessionExpired] Called once when the session ends unexpectedly.
 * @property {(event: AuthEvent) => void} [onEvent] Called with every event, as `subscribe`.
 */

/**
 * What the client takes from its host; each member defaults to the browser's own.
 * @typedef {object} AuthEnvironment
 * @property {(input: Request | string, init?: RequestInit) => Promise<Response>} [fetch]
 * @property {() => number} [now] Epoch milliseconds.
 * @property {(fn: () => void, ms: number) => unknown} [setTimeout]
 * @property {(id: unknown) => void} [clearTimeout]
 * @property {() => number} [random] Uniform in [0, 1).
 * @property {LockManagerLike | null} [locks] Web Locks (`navigator.locks`); null: none.
 * @property {DocumentLike | null} [document]
 * @property {WindowLike | null} [window]
 * @property {ChannelConstructor | null} [BroadcastChannel]
 * @property {import("./silentauth-realtime.js").WebSocketConstructor | null} [WebSocket] For `auth.websocket`.
 * @property {StorageLike | null} [storage] Keeps a refresh's Idempotency-Key until its answer
 *   arrives, across tabs and reloads (default `localStorage`); null: this tab's memory only.
 */

/**
 * @typedef {{ request: (name: string, options: { signal?: AbortSignal }, fn: () => Promise<unknown>) => Promise<unknown> }} LockManagerLike
 * @typedef {{ addEventListener?: (type: string, fn: () => void) => void,
 *   removeEventListener?: (type: string, fn: () => void) => void }} Listenable
 * @typedef {Listenable & { cookie?: string, visibilityState?: string }} DocumentLike
 * @typedef {Listenable & { location?: { origin: string } }} WindowLike
 * @typedef {{ getItem(key: string): string | null, setItem(key: string, value: string): void,
 *   removeItem(key: string): void }} StorageLike
 * @typedef {{ onmessage: ((event: MessageEvent) => void) | null, postMessage(data: unknown): void,
 *   close(): void }} ChannelLike
 * @typedef {new (name: string) => ChannelLike} ChannelConstructor
 */

/**
 * What the client reports to `subscribe` listeners and `onEvent`.
 * @typedef {{ type: "token", expiresAt: number, source: "login" | "refresh" | "pushed" | "other-tab", reason?: string }
 *   | { type: "refresh-skipped", reason: string }
 *   | { type: "refresh-error", reason: string, error: Error }
 *   | { type: "restore-failed", error: unknown }
 *   | { type: "expired" | "logout", reason: string, server?: ServerWord }
 *   | { type: "renewal-ignored", origin: string }} AuthEvent
 */

/**
 * What a server said when it closed a live connection (WebSocket close code and reason):
 * carried by the "expired" event when that close led to the end of the session, so that
 * an application can tell "session revoked" from an expiry.
 * @typedef {{ code: number, reason: string }} ServerWord
 */

/**
 * The decoded (never verified) claims of an access token.
 * @typedef {{ sub?: string, sid?: string, exp?: number, iat?: number, jti?: string,
 *   [claim: string]: unknown }} Claims
 */

/**
 * What the bindings shipped beside this module need from a client.
 * @typedef {object} BindingHooks
 * @property {(url: string) => boolean} sendsTokenTo Whether a request to `url` gets the token.
 * @property {(url: string) => void} ignoreRenewal Count and report a renewal from an origin that never gets the token.
 * @property {(token: string) => Promise<string>} refreshAfterRejection `token` got a 401: a usable token, refreshed if need be.
 * @property {(jwt: string | null, usedToken: string) => void} adoptPushedToken Adopt a `New-Access-Token`
 *   seen on a response (from an origin that gets the token) to a request made with `usedToken`.
 */

// What the bindings shipped beside this module (silentauth-axios.js) need from a client,
// kept off the client object so that applications do not build on it.
/** @type {WeakMap<AuthClient, BindingHooks>} */
const bindings = new WeakMap();

/**
 * The internal hooks of a client, for the bindings shipped with this module (axios):
 * not a stable API.
 * @param {AuthClient} auth
 * @returns {BindingHooks}
 */
export function bindingHooks(auth) {
  const hooks = bindings.get(auth);
  if (!hooks) throw new TypeError("Not a client made by createAuthClient().");
  return hooks;
}

/** The session cannot be renewed (refresh token dead, logged out): log in again. */
export class SessionExpiredError extends Error {
  /** @param {string} [message] @param {ErrorOptions} [options] */
  constructor(message = "The session has expired; log in again.", options) {
    super(message, options);
    this.name = "SessionExpiredError";
  }
}

/** A refresh failed for a passing reason (network, 429, 5xx); the session may still live. */
export class RefreshFailedError extends Error {
  /** @param {string} message @param {ErrorOptions} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = "RefreshFailedError";
  }
}

/** The route wants a more recent login (RFC 9470); `maxAge` is in seconds. */
export class StepUpRequiredError extends Error {
  /** @param {number | null} maxAge @param {unknown} response the 401 (a Response, or axios's) */
  constructor(maxAge, response) {
    super(`This action needs a login within the last ${maxAge ?? "?"} s.`);
    this.name = "StepUpRequiredError";
    this.maxAge = maxAge;
    this.response = response;
  }
}

/** Login refused (bad credentials, rate limited); `status` and `code` come from the server. */
export class LoginError extends Error {
  /** @param {string} message @param {number} status @param {string | undefined} code */
  constructor(message, status, code) {
    super(message);
    this.name = "LoginError";
    this.status = status;
    this.code = code;
  }
}

// An RFC 9110 §11.2 auth-param: a token, or a quoted string with backslash escapes.
const AUTH_PARAM = /([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)/g;

/**
 * `{error, maxAge}` from a `WWW-Authenticate: Bearer ...` header value (RFC 6750 §3,
 * RFC 9470), parsed as the Python client does: the Bearer scheme only, parameter values
 * quoted or bare, the first of a repeated parameter wins, `max_age` only if all digits.
 * @param {string | null | undefined} header
 * @returns {{ error: string | null, maxAge: number | null }}
 */
export function parseBearerChallenge(header) {
  const text = (header ?? "").trim();
  const space = text.indexOf(" ");
  const scheme = space < 0 ? text : text.slice(0, space);
  if (scheme.toLowerCase() !== "bearer") return { error: null, maxAge: null };
  /** @type {Map<string, string>} */
  const params = new Map();
  for (const [, name, raw] of text.slice(space + 1).matchAll(AUTH_PARAM)) {
    const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\"/g, '"') : raw;
    if (!params.has(name.toLowerCase())) params.set(name.toLowerCase(), value);
  }
  const age = params.get("max_age") ?? "";
  return { error: params.get("error") ?? null, maxAge: /^\d+$/.test(age) ? Number(age) : null };
}

/**
 * The payload of a JWT, unverified: for display and bookkeeping, never for trust.
 * @param {string} jwt
 * @returns {Claims} `{}` if it cannot be decoded
 */
export function decodeClaims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/**
 * Create a client; see the module comment. Every option has a default, and so has every
 * member of `env` (the browser's own fetch, clock, timers, locks and so on).
 * @param {AuthClientOptions} [options]
 * @param {AuthEnvironment} [env]
 * @returns {AuthClient}
 */
export function createAuthClient(options = {}, env = {}) {
  return new AuthClient(options, env);
}

/** A browser session with its access token; made by {@link createAuthClient}. */
export class AuthClient {
  /** @type {Required<Omit<AuthClientOptions, "onSessionExpired" | "onEvent">> & AuthClientOptions} */
  #o;
  /** @type {Required<AuthEnvironment>} */
  #io;
  /** @type {ChannelLike | null} */
  #channel = null;
  /** @type {string | null} */
  #token = null;
  #expiresAt = 0; // local clock, ms
  #lifetime = 0; // ms
  #margin = 0; // ms, drawn per token: refreshMargin plus up to jitter of it
  /** @type {string | null} */
  #csrf = null;
  /** @type {"unknown" | "authenticated" | "anonymous"} until the first restore settles: "unknown" */
  #state = "unknown";
  #epoch = 0; // bumped by login, logout and expiry: older refresh results are dropped
  /** @type {SingleFlight<string>} */
  #refreshing = new SingleFlight();
  /** @type {unknown} */
  #timer = null;
  #timerAt = 0; // local clock, ms: when #timer fires
  #failures = 0;
  #notified = false;
  /** @type {Set<string | undefined>} session ids known to be over: late broadcasts for them are ignored */
  #dead = new Set();
  /** @type {Set<(event: AuthEvent) => void>} */
  #listeners = new Set();
  /** @type {Set<(ok: boolean) => void>} */
  #peerWaiters = new Set();
  /** @type {(() => void)[]} */
  #unlisten = [];
  /** @type {string[]} */
  #apiOrigins;
  /** @type {Set<string> | null} the origins that get the token, computed on first use */
  #origins = null;
  #ignoredRenewals = 0;
  #paused = false; // pauseProactive(): no renewal ahead of expiry in this tab
  /** @type {string | null} the pending Idempotency-Key when there is no storage */
  #memoryKey = null;
  /** @type {(ServerWord & { at: number }) | null} a live connection's last 4401, for the "expired" event */
  #serverWord = null;

  /**
   * Use {@link createAuthClient}.
   * @param {AuthClientOptions} options
   * @param {AuthEnvironment} env
   */
  constructor(options, env) {
    for (const key of ENV_KEYS) {
      if (key in options) {
        throw new TypeError(`${key} is not an option: pass it in the second argument of createAuthClient.`);
      }
    }
    this.#o = {
      baseUrl: "",
      apiOrigins: [],
      resources: [],
      refreshMargin: 60,
      jitter: 0.1,
      peerTimeout: 150,
      handoffDelay: 50,
      lockTimeout: 10000,
      requestTimeout: 15000,
      restore: true,
      csrfCookie: globalThis.isSecureContext === false ? DEV_CSRF_COOKIE : CSRF_COOKIE,
      // An option given as undefined keeps its default (as if it were left out).
      ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
    };
    const { refreshMargin, jitter, resources } = this.#o;
    if (!(refreshMargin >= 0) || !(jitter >= 0 && jitter <= 1)) {
      throw new RangeError("refreshMargin must be >= 0 and jitter within [0, 1].");
    }
    if (!Array.isArray(resources) || !resources.every((r) => typeof r === "string" && /^\S+$/.test(r))) {
      throw new TypeError("resources must be an array of URIs (no spaces).");
    }
    const g = globalThis;
    this.#io = {
      fetch: env.fetch ?? ((input, init) => g.fetch(input, init)),
      now: env.now ?? (() => Date.now()),
      setTimeout: env.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms)),
      clearTimeout: env.clearTimeout ?? ((id) => g.clearTimeout(/** @type {number} */ (id))),
      random: env.random ?? Math.random,
      locks: "locks" in env ? env.locks ?? null : (g.navigator?.locks ?? null),
      document: "document" in env ? env.document ?? null : (g.document ?? null),
      window: "window" in env ? env.window ?? null : (g.window ?? null),
      BroadcastChannel: "BroadcastChannel" in env ? env.BroadcastChannel ?? null : (g.BroadcastChannel ?? null),
      WebSocket: "WebSocket" in env ? env.WebSocket ?? null : (g.WebSocket ?? null),
      storage: "storage" in env ? env.storage ?? null : defaultStorage(),
    };
    const Channel = this.#io.BroadcastChannel;
    if (Channel) {
      const channel = new Channel(CHANNEL_NAME);
      channel.onmessage = (event) => this.#onMessage(event.data);
      this.#channel = channel;
    }
    this.#listen(this.#io.document, "visibilitychange", () => this.#wake("visible"));
    this.#listen(this.#io.window, "online", () => this.#wake("online"));
    this.#listen(this.#io.window, "pageshow", () => this.#wake("pageshow"));
    if (options.onEvent) this.#listeners.add(options.onEvent);
    // Absolute origins only, checked now: a typo must fail here, not leak or drop tokens later.
    this.#apiOrigins = this.#o.apiOrigins.map((entry) => originOf(entry, "apiOrigins"));
    bindings.set(this, {
      sendsTokenTo: (url) => this.#sendsTokenTo(url),
      ignoreRenewal: (url) => this.#ignoreRenewal(url),
      refreshAfterRejection: (token) => this.#refreshAfterRejection(token),
      adoptPushedToken: (jwt, usedToken) => this.#adoptPushedToken(jwt, usedToken),
    });
    /** Resolves to whether a session is active once the start-up restore has run. */
    this.ready = this.#o.restore ? this.restore() : Promise.resolve(this.#settle(false));
  }

  // -- public API ---------------------------------------------------------------------

  /** "unknown" until the start-up restore settles, then "authenticated" or "anonymous". */
  get state() { return this.#state; }
  get isAuthenticated() { return this.#state === "authenticated"; }
  /** Expiry of the current access token, epoch ms on this machine's clock (0 if none). */
  get expiresAt() { return this.#expiresAt; }
  /**
   * The current token's claims, decoded but not verified: for display only.
   * @returns {Claims | null}
   */
  get claims() { return this.#token ? decodeClaims(this.#token) : null; }
  /** @returns {string | null} */
  get sessionId() { return this.claims?.sid ?? null; }
  /** How many `New-Access-Token` headers from origins that never get the token were ignored. */
  get ignoredRenewals() { return this.#ignoredRenewals; }
  /** Whether renewal ahead of expiry is paused in this tab (see {@link AuthClient.pauseProactive}). */
  get proactivePaused() { return this.#paused; }

  /**
   * Pause (or, with `false`, resume) renewal ahead of expiry in this tab: no proactive
   * timer, no refresh when the tab wakes up, and server-pushed `New-Access-Token`
   * headers are ignored. The token then really expires, and the next request that needs
   * it refreshes once for every call waiting with it. Tokens that other tabs broadcast
   * are still adopted. For demonstrations and tests of that path; applications leave
   * it alone.
   * @param {boolean} [paused]
   */
  pauseProactive(paused = true) {
    this.#paused = paused;
    this.#schedule();
  }

  /**
   * Listen to events (see {@link AuthEvent}); returns an unsubscribe function.
   * @param {(event: AuthEvent) => void} listener
   * @returns {() => void}
   */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  /**
   * Like window.fetch, with the bearer token attached and refreshed as needed; a request
   * to an origin that is neither the issuer's nor in `apiOrigins` goes out untouched.
   * @param {RequestInfo | URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init) {
    const original = new Request(input, init);
    if (!this.#sendsTokenTo(original.url)) {
      return this.#fromElsewhere(await this.#io.fetch(original), original.url);
    }
    let token = await this.getAccessToken(init?.signal ?? undefined);
    for (let attempt = 0; ; attempt++) {
      // A clone per attempt keeps the body replayable for the retry after a 401.
      const request = original.clone();
      request.headers.set("Authorization", `Bearer ${token}`);
      const response = await this.#io.fetch(request);
      // Redirected to another origin: its answers say nothing about our token.
      if (response.url && !this.#sendsTokenTo(response.url)) return this.#fromElsewhere(response, response.url);
      if (response.status !== 401) {
        this.#adoptPushedToken(response.headers.get("New-Access-Token"), token);
        return response;
      }
      const challenge = parseBearerChallenge(response.headers.get("WWW-Authenticate"));
      if (challenge.error === "insufficient_user_authentication") {
        throw new StepUpRequiredError(challenge.maxAge, response);
      }
      if (attempt > 0) return response; // one refresh and one retry, never a loop
      token = await this.#refreshAfterRejection(token);
    }
  }

  /**
   * A usable access token, refreshing first if it is about to expire.
   * @param {AbortSignal} [signal] stops waiting (the refresh itself goes on for the others)
   * @returns {Promise<string>}
   */
  async getAccessToken(signal) {
    if (this.#state === "unknown") await this.ready;
    if (this.#state !== "authenticated") throw new SessionExpiredError();
    if (this.#usable() && this.#token) return this.#token;
    const pending = this.#refresh("expired", this.#token);
    if (!signal) return pending;
    signal.throwIfAborted();
    return Promise.race([pending, new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    })]);
  }

  /**
   * Password login; the refresh token arrives as an HttpOnly cookie.
   * @param {string} username
   * @param {string} password
   * @param {{ remember?: boolean }} [options] `remember`: true for the long session
   *   lifetime, false for the short one; left out, the server's default (long)
   * @returns {Promise<Claims>} the new token's claims
   */
  async login(username, password, options = {}) {
    const previous = this.claims;
    /** @type {{ username: string, password: string, remember?: boolean, resource?: string[] }} */
    const credentials = { username, password };
    if (typeof options.remember === "boolean") credentials.remember = options.remember;
    if (this.#o.resources.length) credentials.resource = this.#o.resources;
    const res = await this.#post("/auth/login", { "Content-Type": "application/json" },
      JSON.stringify(credentials));
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.access_token) {
      throw new LoginError(body.error_description ?? `Login failed (${res.status}).`, res.status, body.error);
    }
    this.#epoch++;
    this.#notified = false;
    this.#clearPendingKey(); // a new session cookie: no refresh of the old one is pending
    this.#csrf = body.csrf_token ?? this.#csrfCookie();
    this.#adopt(body.access_token, this.#io.now() + body.expires_in * 1000, body.expires_in * 1000,
      { source: "login" });
    this.#broadcast(body.access_token);
    const now = decodeClaims(body.access_token);
    if (previous?.sid && previous.sid !== now.sid && previous.sub === now.sub) {
      // The old session's cookie was just overwritten: nothing can use it any more.
      this.#io.fetch(this.#url(`/auth/sessions/${encodeURIComponent(previous.sid)}`), {
        method: "DELETE", headers: { Authorization: `Bearer ${body.access_token}` },
      }).catch(() => {});
    }
    return now;
  }

  /**
   * End this session here and in every tab; resolves once the server was told (best effort).
   * @returns {Promise<void>}
   */
  async logout() {
    const token = this.#token;
    const csrf = this.#csrf ?? this.#csrfCookie();
    this.#expire("logout", { notify: false, broadcast: true });
    this.#clearPendingKey();
    try {
      let res = csrf ? await this.#post("/auth/logout", { "X-CSRF-Token": csrf }) : null;
      if ((!res || !res.ok) && token) {
        res = await this.#post("/auth/logout", { Authorization: `Bearer ${token}` });
      }
    } catch {
      // Offline: the session still ends by its idle limit; locally it is over already.
    }
  }

  /**
   * Try to resume a session from the refresh cookie (page load); resolves to success.
   * @returns {Promise<boolean>}
   */
  async restore() {
    if (this.#state === "authenticated" && this.#usable()) return true;
    if (!this.#csrf && !this.#csrfCookie()) return this.#settle(false);
    try {
      await this.#refresh("restore", this.#token);
      return this.#settle(true);
    } catch (error) {
      this.#emit({ type: "restore-failed", error });
      return this.#settle(false);
    }
  }

  /**
   * A WebSocket that sends the token as its first message, re-authenticates on every new
   * token and reconnects after a drop; see silentauth-realtime.js for the protocol and
   * close codes. Only to the issuer's origin or an `apiOrigins` one (else a TypeError).
   * @param {string | URL} url ws(s):, http(s): or relative
   * @param {string | string[]} [protocols]
   * @param {import("./silentauth-realtime.js").RealtimeOptions} [options]
   * @returns {AuthWebSocket}
   */
  websocket(url, protocols, options) {
    return new AuthWebSocket(this.#realtimeHooks(), url, protocols, options);
  }

  /**
   * A server-sent event stream over fetch, opened with the bearer token and renewed with
   * each new one; see silentauth-realtime.js.
   * @param {string | URL} url
   * @param {import("./silentauth-realtime.js").RealtimeOptions} [options]
   * @returns {AuthEventSource}
   */
  eventSource(url, options) {
    return new AuthEventSource(this.#realtimeHooks(), url, options);
  }

  /** Stop timers and listeners (tests, single-page teardown). */
  destroy() {
    this.#clearTimer();
    this.#channel?.close();
    for (const off of this.#unlisten) off();
  }

  // -- for the bindings (see bindingHooks) ------------------------------------------------

  /** @returns {import("./silentauth-realtime.js").RealtimeHooks} */
  #realtimeHooks() {
    return {
      token: () => this.getAccessToken(),
      current: () => (this.#state === "authenticated" ? this.#token : null),
      expiresAt: () => this.#expiresAt,
      refreshAfterRejection: (token) => this.#refreshAfterRejection(token),
      renewBeforeDeadline: (token) => this.#renewBeforeDeadline(token),
      refused: (code, reason) => { this.#serverWord = { code, reason, at: this.#io.now() }; },
      paused: () => this.#paused,
      subscribe: (listener) => this.subscribe(listener),
      sendsTokenTo: (url) => this.#sendsTokenTo(url),
      io: this.#io,
    };
  }

  /**
   * `token` got a 401: refresh, unless a newer token has replaced it meanwhile.
   * @param {string} token
   * @returns {Promise<string>}
   */
  async #refreshAfterRejection(token) {
    if (this.#state !== "authenticated") throw new SessionExpiredError();
    if (this.#token !== token && this.#usable() && this.#token) return this.#token;
    return this.#refresh("reactive", token);
  }

  /**
   * A live connection holds `token` and its deadline is near: refresh through the one
   * path every refresh takes (single flight in the tab, Web Locks across tabs), unless
   * that is not wanted or someone else is on it. Paused: the token is meant to run out.
   * Replaced: the connection gets the newer one by the "token" event. Visible with the
   * proactive timer due before the deadline: that timer refreshes, once for every
   * connection. What is left is a hidden tab (no proactive timer, throttled timers).
   * @param {string} token
   * @returns {Promise<void>}
   */
  async #renewBeforeDeadline(token) {
    if (this.#state !== "authenticated" || this.#paused || this.#token !== token) return;
    if (this.#timer !== null && !this.#hidden() && this.#timerAt < this.#expiresAt) return;
    await this.#refresh("realtime", token).catch(() => {});
  }

  /**
   * Adopt a server-pushed `New-Access-Token` seen on a response made with `usedToken`.
   * @param {string | null} jwt
   * @param {string} usedToken
   */
  #adoptPushedToken(jwt, usedToken) {
    if (!jwt || jwt === this.#token || this.#state !== "authenticated" || this.#paused) return;
    const claims = decodeClaims(jwt);
    if (!claims.exp || this.#dead.has(claims.sid)) return;
    const lifetime = lifetimeOf(claims);
    const expiresAt = this.#io.now() + lifetime;
    if (usedToken !== this.#token && expiresAt <= this.#expiresAt) return;
    this.#adopt(jwt, expiresAt, lifetime, { source: "pushed" });
    this.#broadcast(jwt);
  }

  // -- refresh, single-flight in the tab and under a lock across tabs -----------------

  /**
   * @param {string} reason
   * @param {string | null} stale the token that prompted the refresh
   * @returns {Promise<string>}
   */
  #refresh(reason, stale) {
    const epoch = this.#epoch;
    return this.#refreshing.run((flight) => this.#withLock(async (locked) => {
      // Settled already: another tab's broadcast arrived while we queued for the lock.
      if (flight.settled) return;
      // Re-check: while we waited, another tab may have handed us a fresh token.
      if (this.#state === "authenticated" && this.#token !== stale && this.#usable() && this.#token) {
        this.#emit({ type: "refresh-skipped", reason });
        flight.resolve(this.#token);
        return;
      }
      if (this.#state === "anonymous" && reason !== "restore") throw this.#expiredError();
      if (reason === "restore" && await this.#askPeers() && this.#token) {
        flight.resolve(this.#token);
        return;
      }
      flight.resolve(await this.#callRefresh(reason, epoch));
      // Keep the lock a moment so the broadcast reaches waiting tabs before they re-check
      // (not in hidden tabs: their timers are throttled to a second or more).
      if (locked && !this.#hidden()) await this.#sleep(this.#o.handoffDelay);
    }));
  }

  /**
   * @param {string} reason
   * @param {number} epoch
   * @returns {Promise<string>}
   */
  async #callRefresh(reason, epoch) {
    let csrf = this.#csrf ?? this.#csrfCookie();
    if (!csrf) throw this.#expire(reason, { notify: reason !== "restore", broadcast: false });
    let res = await this.#postRefresh(reason, csrf);
    const fresh = this.#csrfCookie();
    if (res.status === 403 && fresh && fresh !== csrf) {
      // Another tab logged in anew: the cookie holds the current proof. Once only.
      csrf = fresh;
      res = await this.#postRefresh(reason, csrf);
    }
    if (res.ok) {
      // The cookie has rotated: the pending refresh is answered.
      this.#clearPendingKey();
      const body = await res.json();
      if (epoch !== this.#epoch) {
        // Logged in or out meanwhile: this answer belongs to a session we left.
        if (this.#state === "authenticated" && this.#token) return this.#token;
        throw this.#expiredError();
      }
      this.#failures = 0;
      this.#serverWord = null; // the refusal it answered is settled
      this.#csrf = body.csrf_token ?? csrf;
      this.#adopt(body.access_token, this.#io.now() + body.expires_in * 1000,
        body.expires_in * 1000, { source: "refresh", reason });
      this.#broadcast(body.access_token);
      return body.access_token;
    }
    if (res.status === 400 || res.status === 401 || res.status === 403) {
      this.#clearPendingKey();
      throw this.#expire(reason, { notify: reason !== "restore", broadcast: reason !== "restore" });
    }
    throw this.#transient(reason, new RefreshFailedError(`The refresh call answered ${res.status}.`));
  }

  /**
   * @param {string} reason
   * @param {string} csrf
   * @returns {Promise<Response>}
   */
  async #postRefresh(reason, csrf) {
    try {
      const { resources } = this.#o;
      const headers = { "X-CSRF-Token": csrf, "Idempotency-Key": this.#pendingKey() };
      if (!resources.length) return await this.#post("/auth/refresh", headers);
      // Named again at each refresh (RFC 8707 §2), as the login named them.
      return await this.#post("/auth/refresh", { ...headers, "Content-Type": "application/json" },
        JSON.stringify({ resource: resources }));
    } catch (cause) {
      // The answer may be lost after the server rotated the cookie: the key stays
      // pending, so the next try (any tab, after a reload) gets the same successor.
      throw this.#transient(reason, new RefreshFailedError("The refresh call failed.", { cause }));
    }
  }

  /**
   * The Idempotency-Key of the refresh of the current cookie: the pending one, or a new
   * one stored before the request leaves. Not a credential: without the HttpOnly
   * refresh cookie it grants nothing.
   * @returns {string}
   */
  #pendingKey() {
    const storage = this.#io.storage;
    let key = this.#memoryKey;
    try {
      key = storage?.getItem(PENDING_KEY) ?? key;
    } catch {
      // Storage refused (privacy mode, quota): this tab's memory only.
    }
    if (key && /^[A-Za-z0-9_-]{22,128}$/.test(key)) return key;
    key = randomKey();
    this.#memoryKey = key;
    try {
      storage?.setItem(PENDING_KEY, key);
    } catch {
      // As above: the key still protects retries within this tab.
    }
    return key;
  }

  #clearPendingKey() {
    this.#memoryKey = null;
    try {
      this.#io.storage?.removeItem(PENDING_KEY);
    } catch {
      // Nothing to clear where nothing could be stored.
    }
  }

  /**
   * @template T
   * @param {(locked: boolean) => Promise<T>} fn
   * @returns {Promise<T>}
   */
  async #withLock(fn) {
    const locks = this.#io.locks;
    if (!locks) return fn(false);
    const abort = new AbortController();
    let started = false;
    const timer = this.#io.setTimeout(() => abort.abort(), this.#o.lockTimeout);
    try {
      return /** @type {T} */ (await locks.request(LOCK_NAME, { signal: abort.signal }, () => {
        started = true;
        this.#io.clearTimeout(timer);
        return fn(true);
      }));
    } catch (error) {
      // A tab that holds the lock too long (frozen, debugger) must not stall us: the
      // server's grace window makes an unlocked refresh safe.
      if (!started && error instanceof Error && error.name === "AbortError") return fn(false);
      throw error;
    }
  }

  /** @returns {Promise<boolean>} whether another tab handed over a live token */
  #askPeers() {
    const channel = this.#channel;
    if (!channel) return Promise.resolve(false);
    return new Promise((resolve) => {
      /** @param {boolean} ok */
      const done = (ok) => {
        this.#peerWaiters.delete(done);
        this.#io.clearTimeout(timer);
        resolve(ok);
      };
      const timer = this.#io.setTimeout(() => done(false), this.#o.peerTimeout);
      this.#peerWaiters.add(done);
      channel.postMessage({ type: "want-token" });
    });
  }

  // -- state ----------------------------------------------------------------------------

  /**
   * @param {string} token
   * @param {number} expiresAt
   * @param {number} lifetime
   * @param {{ source: "login" | "refresh" | "pushed" | "other-tab", reason?: string }} event
   */
  #adopt(token, expiresAt, lifetime, event) {
    this.#token = token;
    this.#expiresAt = expiresAt;
    this.#lifetime = lifetime;
    // As the Python client: a new random margin per token, so a fleet spreads out.
    this.#margin = this.#o.refreshMargin * 1000 * (1 + this.#io.random() * this.#o.jitter);
    this.#state = "authenticated";
    this.#schedule();
    this.#emit({ type: "token", expiresAt, ...event });
  }

  /**
   * @param {string} reason
   * @param {{ notify: boolean, broadcast: boolean }} how
   * @returns {SessionExpiredError} to throw
   */
  #expire(reason, { notify, broadcast }, heard = this.#recentServerWord()) {
    const sid = this.sessionId;
    const wasActive = this.#state !== "anonymous";
    if (sid) this.#dead.add(sid);
    this.#epoch++;
    this.#state = "anonymous";
    this.#token = null;
    this.#csrf = null;
    this.#expiresAt = 0;
    this.#clearTimer();
    this.#serverWord = null;
    const server = heard ? { code: heard.code, reason: heard.reason } : undefined;
    if (broadcast) this.#channel?.postMessage({ type: "logout", sid, ...(server && { server }) });
    const error = this.#expiredError();
    this.#emit({ type: reason === "logout" ? "logout" : "expired", reason, ...(server && { server }) });
    if (notify && wasActive && !this.#notified) {
      this.#notified = true;
      try {
        this.#o.onSessionExpired?.(error);
      } catch (e) {
        queueMicrotask(() => { throw e; }); // report it, but never break the rejection path
      }
    }
    return error;
  }

  /**
   * @param {string} reason
   * @param {RefreshFailedError} error
   * @returns {RefreshFailedError} to throw
   */
  #transient(reason, error) {
    this.#failures++;
    this.#emit({ type: "refresh-error", reason, error });
    if (this.#state === "authenticated") {
      const delay = Math.min(30000, 1000 * 2 ** this.#failures);
      this.#setTimer(delay, () => this.#check("retry"));
    }
    return error;
  }

  /** @param {unknown} data a message from another tab: untrusted shape */
  #onMessage(data) {
    if (!data || typeof data !== "object") return;
    const msg = /** @type {{ type?: unknown, access_token?: unknown, expires_at?: unknown, sid?: unknown,
      server?: unknown }} */ (data);
    if (msg.type === "token" && typeof msg.access_token === "string") {
      const claims = decodeClaims(msg.access_token);
      if (!claims.exp || this.#dead.has(claims.sid) || msg.access_token === this.#token) return;
      const expiresAt = Number(msg.expires_at);
      if (this.#state === "authenticated" && expiresAt <= this.#expiresAt) return;
      if (this.#state !== "authenticated") this.#notified = false; // logged in from another tab
      this.#adopt(msg.access_token, expiresAt, lifetimeOf(claims), { source: "other-tab" });
      for (const done of [...this.#peerWaiters]) done(true);
      // A refresh of ours still queued for the lock has its answer: no need to wait.
      if (this.#usable()) this.#refreshing.resolve(msg.access_token);
    } else if (msg.type === "logout") {
      const sid = this.sessionId;
      if (msg.sid && sid && msg.sid !== sid) return; // a session this tab has already left
      if (this.#state === "authenticated") {
        this.#expire("other-tab", { notify: true, broadcast: false }, serverWordOf(msg.server));
      }
    } else if (msg.type === "want-token" && this.#usable() && this.#token && this.#remaining() > this.#dueWithin()) {
      this.#broadcast(this.#token);
    }
  }

  /** @param {string} token */
  #broadcast(token) {
    this.#channel?.postMessage({ type: "token", access_token: token, expires_at: this.#expiresAt });
  }

  // -- timers ---------------------------------------------------------------------------

  #schedule() {
    this.#clearTimer();
    if (this.#state !== "authenticated" || this.#hidden() || this.#paused) return;
    const token = this.#token;
    this.#setTimer(this.#remaining() - this.#dueWithin(), () => {
      if (this.#token === token) this.#refresh("proactive", token).catch(() => {});
    });
  }

  /** @param {string} why */
  #wake(why) {
    if (this.#hidden()) return this.#clearTimer(); // hidden tabs leave it to visible ones
    if (this.#state !== "authenticated" || this.#paused) return;
    this.#check(why);
  }

  /** @param {string} reason */
  #check(reason) {
    if (this.#state !== "authenticated") return;
    if (this.#remaining() > this.#dueWithin()) return this.#schedule();
    this.#refresh(reason, this.#token).catch(() => {});
  }

  /**
   * @param {number} delay ms
   * @param {() => void} fn
   */
  #setTimer(delay, fn) {
    this.#clearTimer();
    const ms = Math.min(MAX_DELAY, Math.max(0, delay));
    this.#timerAt = this.#io.now() + ms;
    this.#timer = this.#io.setTimeout(() => { this.#timer = null; fn(); }, ms);
  }

  #clearTimer() {
    if (this.#timer !== null) this.#io.clearTimeout(this.#timer);
    this.#timer = null;
  }

  /**
   * @param {number} ms
   * @returns {Promise<void>}
   */
  #sleep(ms) {
    return new Promise((resolve) => this.#io.setTimeout(resolve, ms));
  }

  // -- token destinations ---------------------------------------------------------------

  /** @returns {string | null} */
  #pageOrigin() {
    return this.#io.window?.location?.origin ?? globalThis.location?.origin ?? null;
  }

  /**
   * @param {string} url
   * @returns {boolean}
   */
  #sendsTokenTo(url) {
    const page = this.#pageOrigin();
    if (!this.#origins) {
      let issuer = page;
      try {
        if (this.#o.baseUrl) issuer = new URL(this.#o.baseUrl, page ?? undefined).origin;
      } catch {
        issuer = null; // a relative baseUrl outside a page: nothing gets the token
      }
      this.#origins = new Set(this.#apiOrigins);
      // Opaque origins (file:, data:) are no one's to trust.
      if (issuer && issuer !== "null") this.#origins.add(issuer);
    }
    let target;
    try {
      target = new URL(url, page ?? undefined).origin;
    } catch {
      return false;
    }
    return this.#origins.has(target);
  }

  /**
   * A response from an origin that never gets the token: a renewal on it is an attack.
   * @param {Response} response
   * @param {string} url
   * @returns {Response}
   */
  #fromElsewhere(response, url) {
    if (response.headers.get("New-Access-Token")) this.#ignoreRenewal(url);
    return response;
  }

  /** @param {string} url */
  #ignoreRenewal(url) {
    this.#ignoredRenewals++;
    let from = "another origin";
    try { from = new URL(url).origin; } catch { /* keep the generic name */ }
    console.warn(`silentauth: ignored a New-Access-Token from ${from}, which is not the issuer's `
      + "origin nor listed in apiOrigins.");
    this.#emit({ type: "renewal-ignored", origin: from });
  }

  // -- helpers --------------------------------------------------------------------------

  #remaining() { return this.#expiresAt - this.#io.now(); }
  /** @returns {ServerWord | null} a live connection's 4401 of the last few seconds: why the refresh that follows fails */
  #recentServerWord() {
    const word = this.#serverWord;
    return word && this.#io.now() - word.at < 10000 ? word : null;
  }
  /** ms before expiry at which a refresh is due: the margin, never more than half the lifetime. */
  #dueWithin() { return Math.min(this.#margin, this.#lifetime / 2); }
  /** Good enough to send: a request must not arrive after expiry. */
  #usable() {
    return this.#state === "authenticated" && this.#token !== null
      && this.#remaining() > Math.min(5000, this.#lifetime / 10);
  }
  #hidden() { return this.#io.document?.visibilityState === "hidden"; }
  #expiredError() { return new SessionExpiredError(); }

  /**
   * @param {boolean} ok
   * @returns {boolean}
   */
  #settle(ok) {
    if (this.#state === "unknown") this.#state = ok ? "authenticated" : "anonymous";
    return ok && this.#state === "authenticated";
  }

  /** @param {AuthEvent} event */
  #emit(event) {
    for (const listener of this.#listeners) {
      try { listener(event); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  /**
   * @param {Listenable | null} target
   * @param {string} type
   * @param {() => void} handler
   */
  #listen(target, type, handler) {
    if (!target?.addEventListener) return;
    target.addEventListener(type, handler);
    this.#unlisten.push(() => target.removeEventListener?.(type, handler));
  }

  /** @returns {string | null} */
  #csrfCookie() {
    const jar = this.#io.document?.cookie ?? "";
    const name = this.#o.csrfCookie;
    const hit = jar.split(/;\s*/).find((c) => c.startsWith(`${name}=`));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

  /** @param {string} path */
  #url(path) { return `${this.#o.baseUrl.replace(/\/$/, "")}${path}`; }

  /** @returns {RequestCredentials} */
  #credentials() {
    const base = this.#o.baseUrl;
    const here = globalThis.location?.origin;
    if (!base) return "same-origin";
    return here && new URL(base, here).origin === here ? "same-origin" : "include";
  }

  /**
   * @param {string} path
   * @param {Record<string, string>} headers
   * @param {string} [body]
   * @returns {Promise<Response>}
   */
  async #post(path, headers, body) {
    const abort = new AbortController();
    const timer = this.#io.setTimeout(() => abort.abort(), this.#o.requestTimeout);
    try {
      return await this.#io.fetch(this.#url(path), {
        method: "POST", headers, body, credentials: this.#credentials(),
        cache: "no-store", signal: abort.signal,
      });
    } finally {
      this.#io.clearTimeout(timer);
    }
  }
}

/**
 * At most one run of an async task at a time: callers that arrive while it runs share
 * its promise. The task answers through `flight.resolve` (so it may go on a moment after
 * answering, e.g. to hold a lock), and anyone may answer early with `resolve`; a task
 * that returns or throws without answering settles the flight with `undefined` or its error.
 * @template T
 */
class SingleFlight {
  /** @type {{ promise: Promise<T>, settle: (ok: boolean, value: unknown) => void } | null} */
  #flight = null;

  /**
   * The current flight's promise, or a new flight running `task`.
   * @param {(flight: { readonly settled: boolean, resolve: (value: T) => void }) => Promise<void>} task
   * @returns {Promise<T>}
   */
  run(task) {
    if (this.#flight) return this.#flight.promise;
    /** @type {(ok: boolean, value: unknown) => void} */
    let settle = () => {};
    /** @type {Promise<T>} */
    const promise = new Promise((resolve, reject) => {
      settle = (ok, value) => (ok ? resolve(/** @type {T} */ (value)) : reject(value));
    });
    const flight = { promise, settle };
    this.#flight = flight;
    const handle = {
      get settled() { return flight.settle === SETTLED; },
      /** @param {T} value */
      resolve: (value) => this.#end(flight, true, value),
    };
    task(handle).then(
      () => this.#end(flight, false, new Error("The task ended without an answer.")),
      (error) => this.#end(flight, false, error),
    );
    return promise;
  }

  /**
   * Answer the current flight, if any, with `value`.
   * @param {T} value
   */
  resolve(value) {
    if (this.#flight) this.#end(this.#flight, true, value);
  }

  /**
   * @param {{ settle: (ok: boolean, value: unknown) => void }} flight
   * @param {boolean} ok
   * @param {unknown} value
   */
  #end(flight, ok, value) {
    const settle = flight.settle;
    if (settle === SETTLED) return; // answered already: later results are dropped
    flight.settle = SETTLED;
    if (this.#flight === flight) this.#flight = null;
    settle(ok, value);
  }
}

/** The sentinel of an answered flight. */
const SETTLED = () => {};

/** `localStorage` where the page may use it, else null (sandboxed frames throw on access). */
function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** 192 random bits, base64url: an Idempotency-Key (the server asks for 128 or more). */
function randomKey() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(24));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A server's word relayed by another tab: untrusted shape, kept only if well-formed.
 * @param {unknown} value
 * @returns {ServerWord | null}
 */
function serverWordOf(value) {
  if (!value || typeof value !== "object") return null;
  const { code, reason } = /** @type {{ code?: unknown, reason?: unknown }} */ (value);
  if (typeof code !== "number" || typeof reason !== "string") return null;
  return { code, reason: reason.slice(0, 123) };
}

/**
 * A token's lifetime in ms, from its claims (0 if they do not say).
 * @param {Claims} claims
 */
function lifetimeOf(claims) {
  const exp = Number(claims.exp);
  return Math.max(0, exp - Number(claims.iat ?? exp)) * 1000;
}

/**
 * The origin of an absolute URL; a clear TypeError for anything else.
 * @param {string} url
 * @param {string} option the option it came from, for the message
 * @returns {string}
 */
function originOf(url, option) {
  let origin = "null";
  try {
    origin = new URL(url).origin;
  } catch { /* reported below */ }
  if (origin === "null") throw new TypeError(`${option}: ${JSON.stringify(url)} is not an http(s) origin.`);
  return origin;
}
