/**
 * silentauth.js: seamless token refresh in the browser. One ES module, no dependencies.
 *
 *   import { createAuthClient } from "/static/silentauth.js";
 *   const auth = createAuthClient({ onSessionExpired: () => location.assign("/") });
 *   await auth.login("alice", "secret");
 *   const res = await auth.fetch("/api/me");
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
 */

const LOCK_NAME = "silentauth-refresh";
const CHANNEL_NAME = "silentauth";
// Exactly one name is read, never a fallback: an unprefixed cookie can be tossed in by a
// sibling host. A page that is not a secure context cannot hold Secure cookies at all, so
// its server must run COOKIE_SECURE=false (development), which uses the unprefixed name.
const CSRF_COOKIE = "__Host-silentauth-csrf";
const DEV_CSRF_COOKIE = "silentauth-csrf";
const MAX_DELAY = 2 ** 31 - 1;

/** The session cannot be renewed (refresh token dead, logged out): log in again. */
export class SessionExpiredError extends Error {
  constructor(message = "The session has expired; log in again.", options) {
    super(message, options);
    this.name = "SessionExpiredError";
  }
}

/** A refresh failed for a passing reason (network, 429, 5xx); the session may still live. */
export class RefreshFailedError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "RefreshFailedError";
  }
}

/** The route wants a more recent login (RFC 9470); `maxAge` is in seconds. */
export class StepUpRequiredError extends Error {
  constructor(maxAge, response) {
    super(`This action needs a login within the last ${maxAge ?? "?"} s.`);
    this.name = "StepUpRequiredError";
    this.maxAge = maxAge;
    this.response = response;
  }
}

/** Login refused (bad credentials, rate limited); `status` and `code` come from the server. */
export class LoginError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = "LoginError";
    this.status = status;
    this.code = code;
  }
}

/** `{error, maxAge}` from a `WWW-Authenticate: Bearer ...` header value. */
export function parseBearerChallenge(header) {
  const text = header ?? "";
  const error = /error="([^"]*)"/.exec(text)?.[1] ?? null;
  const age = /max_age="?(\d+)/.exec(text)?.[1];
  return { error, maxAge: age === undefined ? null : Number(age) };
}

/** The payload of a JWT, unverified: for display and bookkeeping, never for trust. */
export function decodeClaims(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0))));
  } catch {
    return {};
  }
}

/** Create a client; see the module comment. Every option has a browser default. */
export function createAuthClient(options = {}) {
  return new AuthClient(options);
}

class AuthClient {
  #o;
  #io;
  #channel = null;
  #token = null;
  #expiresAt = 0; // local clock, ms
  #lifetime = 0; // ms
  #csrf = null;
  #state = "unknown"; // "unknown" until the first restore settles, then "authenticated" | "anonymous"
  #epoch = 0; // bumped by login, logout and expiry: older refresh results are dropped
  #refreshing = null;
  #timer = null;
  #failures = 0;
  #notified = false;
  #dead = new Set(); // session ids known to be over: late broadcasts for them are ignored
  #listeners = new Set();
  #peerWaiters = new Set();
  #unlisten = [];

  constructor(options) {
    const g = globalThis;
    this.#o = {
      baseUrl: "",
      refreshMargin: 30, // s before expiry for the proactive refresh (capped at 1/4 lifetime)
      jitter: 0.1, // fraction of the lifetime added at random, so tabs and users spread out
      peerTimeout: 150, // ms a reloaded tab waits for another tab's token
      handoffDelay: 50, // ms the lock is kept after broadcasting, so waiters see the token first
      lockTimeout: 10000,
      requestTimeout: 15000,
      restore: true,
      csrfCookie: g.isSecureContext === false ? DEV_CSRF_COOKIE : CSRF_COOKIE,
      ...options,
    };
    this.#io = {
      fetch: options.fetch ?? ((...a) => g.fetch(...a)),
      now: options.now ?? (() => Date.now()),
      setTimeout: options.setTimeout ?? ((fn, ms) => g.setTimeout(fn, ms)),
      clearTimeout: options.clearTimeout ?? ((id) => g.clearTimeout(id)),
      random: options.random ?? Math.random,
      locks: "locks" in options ? options.locks : (g.navigator?.locks ?? null),
      document: "document" in options ? options.document : (g.document ?? null),
      window: "window" in options ? options.window : (g.window ?? null),
    };
    const Channel = "BroadcastChannel" in options ? options.BroadcastChannel : g.BroadcastChannel;
    if (Channel) {
      this.#channel = new Channel(CHANNEL_NAME);
      this.#channel.onmessage = (event) => this.#onMessage(event.data);
    }
    this.#listen(this.#io.document, "visibilitychange", () => this.#wake("visible"));
    this.#listen(this.#io.window, "online", () => this.#wake("online"));
    this.#listen(this.#io.window, "pageshow", () => this.#wake("pageshow"));
    if (options.onEvent) this.#listeners.add(options.onEvent);
    /** Resolves to whether a session is active once the start-up restore has run. */
    this.ready = this.#o.restore ? this.restore() : Promise.resolve(this.#settle(false));
  }

  // -- public API ---------------------------------------------------------------------

  get state() { return this.#state; }
  get isAuthenticated() { return this.#state === "authenticated"; }
  /** Expiry of the current access token, epoch ms on this machine's clock (0 if none). */
  get expiresAt() { return this.#expiresAt; }
  /** The current token's claims, decoded but not verified: for display only. */
  get claims() { return this.#token ? decodeClaims(this.#token) : null; }
  get sessionId() { return this.claims?.sid ?? null; }

  /** Listen to events ({type: "token" | "refresh-skipped" | "expired" | ...}); returns an unsubscribe. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Like window.fetch, with the bearer token attached and refreshed as needed. */
  async fetch(input, init) {
    const original = new Request(input, init);
    let token = await this.getAccessToken(init?.signal);
    for (let attempt = 0; ; attempt++) {
      // A clone per attempt keeps the body replayable for the retry after a 401.
      const request = original.clone();
      request.headers.set("Authorization", `Bearer ${token}`);
      const response = await this.#io.fetch(request);
      if (response.status !== 401) {
        this.adoptPushedToken(response.headers.get("New-Access-Token"), token);
        return response;
      }
      const challenge = parseBearerChallenge(response.headers.get("WWW-Authenticate"));
      if (challenge.error === "insufficient_user_authentication") {
        throw new StepUpRequiredError(challenge.maxAge, response);
      }
      if (attempt > 0) return response; // one refresh and one retry, never a loop
      token = await this.refreshAfterRejection(token);
    }
  }

  /** A usable access token, refreshing first if it is about to expire. */
  async getAccessToken(signal) {
    if (this.#state === "unknown") await this.ready;
    if (this.#state !== "authenticated") throw new SessionExpiredError();
    if (this.#usable()) return this.#token;
    const pending = this.#refresh("expired", this.#token);
    if (!signal) return pending;
    signal.throwIfAborted();
    return Promise.race([pending, new Promise((_, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    })]);
  }

  /** `token` got a 401: refresh, unless a newer token has replaced it meanwhile. */
  async refreshAfterRejection(token) {
    if (this.#state !== "authenticated") throw new SessionExpiredError();
    if (this.#token !== token && this.#usable()) return this.#token;
    return this.#refresh("reactive", token);
  }

  /** Adopt a server-pushed `New-Access-Token` seen on a response made with `usedToken`. */
  adoptPushedToken(jwt, usedToken) {
    if (!jwt || jwt === this.#token || this.#state !== "authenticated") return;
    const claims = decodeClaims(jwt);
    if (!claims.exp || this.#dead.has(claims.sid)) return;
    const lifetime = Math.max(0, claims.exp - (claims.iat ?? claims.exp)) * 1000;
    const expiresAt = this.#io.now() + lifetime;
    if (usedToken !== this.#token && expiresAt <= this.#expiresAt) return;
    this.#adopt(jwt, expiresAt, lifetime, { source: "pushed" });
    this.#broadcast(jwt);
  }

  /** Password login; the refresh token arrives as an HttpOnly cookie. */
  async login(username, password) {
    const previous = this.claims;
    const res = await this.#post("/auth/login", { "Content-Type": "application/json" },
      JSON.stringify({ username, password }));
    const body = await res.json().catch(() => ({}));
    if (!res.ok || !body.access_token) {
      throw new LoginError(body.error_description ?? `Login failed (${res.status}).`, res.status, body.error);
    }
    this.#epoch++;
    this.#notified = false;
    this.#csrf = body.csrf_token ?? this.#csrfCookie();
    this.#adopt(body.access_token, this.#io.now() + body.expires_in * 1000, body.expires_in * 1000,
      { source: "login" });
    this.#broadcast(body.access_token);
    const now = this.claims;
    if (previous?.sid && previous.sid !== now.sid && previous.sub === now.sub) {
      // The old session's cookie was just overwritten: nothing can use it any more.
      this.#io.fetch(this.#url(`/auth/sessions/${encodeURIComponent(previous.sid)}`), {
        method: "DELETE", headers: { Authorization: `Bearer ${body.access_token}` },
      }).catch(() => {});
    }
    return now;
  }

  /** End this session here and in every tab; resolves once the server was told (best effort). */
  async logout() {
    const token = this.#token;
    const csrf = this.#csrf ?? this.#csrfCookie();
    this.#expire("logout", { notify: false, broadcast: true });
    try {
      let res = csrf ? await this.#post("/auth/logout", { "X-CSRF-Token": csrf }) : null;
      if ((!res || !res.ok) && token) {
        res = await this.#post("/auth/logout", { Authorization: `Bearer ${token}` });
      }
    } catch {
      // Offline: the session still ends by its idle limit; locally it is over already.
    }
  }

  /** Try to resume a session from the refresh cookie (page load); resolves to success. */
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

  /** Stop timers and listeners (tests, single-page teardown). */
  destroy() {
    this.#clearTimer();
    this.#channel?.close();
    for (const off of this.#unlisten) off();
  }

  // -- refresh, single-flight in the tab and under a lock across tabs -----------------

  #refresh(reason, stale) {
    if (this.#refreshing) return this.#refreshing.promise;
    const epoch = this.#epoch;
    const flight = { done: false };
    flight.promise = new Promise((resolve, reject) => {
      flight.resolve = (token) => { flight.done = true; resolve(token); };
      flight.reject = (error) => { flight.done = true; reject(error); };
    });
    const clear = () => { if (this.#refreshing === flight) this.#refreshing = null; };
    flight.promise.then(clear, clear);
    this.#refreshing = flight;
    this.#withLock(async (locked) => {
      // Settled already: another tab's broadcast arrived while we queued for the lock.
      if (flight.done) return;
      // Re-check: while we waited, another tab may have handed us a fresh token.
      if (this.#state === "authenticated" && this.#token !== stale && this.#usable()) {
        this.#emit({ type: "refresh-skipped", reason });
        flight.resolve(this.#token);
        return;
      }
      if (this.#state === "anonymous" && reason !== "restore") throw this.#expiredError();
      if (reason === "restore" && await this.#askPeers()) {
        flight.resolve(this.#token);
        return;
      }
      flight.resolve(await this.#callRefresh(reason, epoch));
      // Keep the lock a moment so the broadcast reaches waiting tabs before they re-check
      // (not in hidden tabs: their timers are throttled to a second or more).
      if (locked && !this.#hidden()) await this.#sleep(this.#o.handoffDelay);
    }).catch((error) => flight.reject(error));
    return flight.promise;
  }

  async #callRefresh(reason, epoch) {
    let csrf = this.#csrf ?? this.#csrfCookie();
    for (let attempt = 0; attempt < 2; attempt++) {
      if (!csrf) throw this.#expire(reason, { notify: reason !== "restore", broadcast: false });
      let res;
      try {
        res = await this.#post("/auth/refresh", { "X-CSRF-Token": csrf });
      } catch (cause) {
        throw this.#transient(reason, new RefreshFailedError("The refresh call failed.", { cause }));
      }
      if (res.ok) {
        const body = await res.json();
        if (epoch !== this.#epoch) {
          // Logged in or out meanwhile: this answer belongs to a session we left.
          if (this.#state === "authenticated") return this.#token;
          throw this.#expiredError();
        }
        this.#failures = 0;
        this.#csrf = body.csrf_token ?? csrf;
        this.#adopt(body.access_token, this.#io.now() + body.expires_in * 1000,
          body.expires_in * 1000, { source: "refresh", reason });
        this.#broadcast(body.access_token);
        return this.#token;
      }
      const fresh = this.#csrfCookie();
      if (res.status === 403 && attempt === 0 && fresh && fresh !== csrf) {
        csrf = fresh; // another tab logged in anew: the cookie holds the current proof
        continue;
      }
      if (res.status === 400 || res.status === 401 || res.status === 403) {
        throw this.#expire(reason, { notify: reason !== "restore", broadcast: reason !== "restore" });
      }
      throw this.#transient(reason, new RefreshFailedError(`The refresh call answered ${res.status}.`));
    }
    throw this.#expire(reason, { notify: true, broadcast: true });
  }

  async #withLock(fn) {
    const locks = this.#io.locks;
    if (!locks) return fn(false);
    const abort = new AbortController();
    let started = false;
    const timer = this.#io.setTimeout(() => abort.abort(), this.#o.lockTimeout);
    try {
      return await locks.request(LOCK_NAME, { signal: abort.signal }, () => {
        started = true;
        this.#io.clearTimeout(timer);
        return fn(true);
      });
    } catch (error) {
      // A tab that holds the lock too long (frozen, debugger) must not stall us: the
      // server's grace window makes an unlocked refresh safe.
      if (!started && error?.name === "AbortError") return fn(false);
      throw error;
    }
  }

  #askPeers() {
    if (!this.#channel) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (ok) => {
        this.#peerWaiters.delete(done);
        this.#io.clearTimeout(timer);
        resolve(ok);
      };
      const timer = this.#io.setTimeout(() => done(false), this.#o.peerTimeout);
      this.#peerWaiters.add(done);
      this.#channel.postMessage({ type: "want-token" });
    });
  }

  // -- state ----------------------------------------------------------------------------

  #adopt(token, expiresAt, lifetime, event) {
    this.#token = token;
    this.#expiresAt = expiresAt;
    this.#lifetime = lifetime;
    this.#state = "authenticated";
    this.#schedule();
    this.#emit({ type: "token", expiresAt, ...event });
  }

  #expire(reason, { notify, broadcast }) {
    const sid = this.sessionId;
    const wasActive = this.#state !== "anonymous";
    if (sid) this.#dead.add(sid);
    this.#epoch++;
    this.#state = "anonymous";
    this.#token = null;
    this.#csrf = null;
    this.#expiresAt = 0;
    this.#clearTimer();
    if (broadcast) this.#channel?.postMessage({ type: "logout", sid });
    const error = this.#expiredError();
    this.#emit({ type: reason === "logout" ? "logout" : "expired", reason });
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

  #transient(reason, error) {
    this.#failures++;
    this.#emit({ type: "refresh-error", reason, error });
    if (this.#state === "authenticated") {
      const delay = Math.min(30000, 1000 * 2 ** this.#failures);
      this.#setTimer(delay, () => this.#check("retry"));
    }
    return error;
  }

  #onMessage(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "token" && typeof msg.access_token === "string") {
      const claims = decodeClaims(msg.access_token);
      if (!claims.exp || this.#dead.has(claims.sid) || msg.access_token === this.#token) return;
      const expiresAt = Number(msg.expires_at);
      if (this.#state === "authenticated" && expiresAt <= this.#expiresAt) return;
      if (this.#state !== "authenticated") this.#notified = false; // logged in from another tab
      const lifetime = Math.max(0, claims.exp - (claims.iat ?? claims.exp)) * 1000;
      this.#adopt(msg.access_token, expiresAt, lifetime, { source: "other-tab" });
      for (const done of [...this.#peerWaiters]) done(true);
      // A refresh of ours still queued for the lock has its answer: no need to wait.
      if (this.#refreshing && this.#usable()) this.#refreshing.resolve(this.#token);
    } else if (msg.type === "logout") {
      const sid = this.sessionId;
      if (msg.sid && sid && msg.sid !== sid) return; // a session this tab has already left
      if (this.#state === "authenticated") this.#expire("other-tab", { notify: true, broadcast: false });
    } else if (msg.type === "want-token" && this.#usable() && this.#remaining() > this.#margin()) {
      this.#broadcast(this.#token);
    }
  }

  #broadcast(token) {
    this.#channel?.postMessage({ type: "token", access_token: token, expires_at: this.#expiresAt });
  }

  // -- timers ---------------------------------------------------------------------------

  #schedule() {
    this.#clearTimer();
    if (this.#state !== "authenticated" || this.#hidden()) return;
    const jitter = this.#io.random() * this.#o.jitter * this.#lifetime;
    const token = this.#token;
    this.#setTimer(this.#remaining() - this.#margin() - jitter, () => {
      if (this.#token === token) this.#refresh("proactive", token).catch(() => {});
    });
  }

  #wake(why) {
    if (this.#hidden()) return this.#clearTimer(); // hidden tabs leave it to visible ones
    if (this.#state !== "authenticated") return;
    this.#check(why);
  }

  #check(reason) {
    if (this.#state !== "authenticated") return;
    if (this.#remaining() > this.#margin()) return this.#schedule();
    this.#refresh(reason, this.#token).catch(() => {});
  }

  #setTimer(delay, fn) {
    this.#clearTimer();
    const ms = Math.min(MAX_DELAY, Math.max(0, delay));
    this.#timer = this.#io.setTimeout(() => { this.#timer = null; fn(); }, ms);
  }

  #clearTimer() {
    if (this.#timer !== null) this.#io.clearTimeout(this.#timer);
    this.#timer = null;
  }

  #sleep(ms) {
    return new Promise((resolve) => this.#io.setTimeout(resolve, ms));
  }

  // -- helpers --------------------------------------------------------------------------

  #remaining() { return this.#expiresAt - this.#io.now(); }
  #margin() { return Math.min(this.#o.refreshMargin * 1000, this.#lifetime / 4); }
  /** Good enough to send: a request must not arrive after expiry. */
  #usable() {
    return this.#state === "authenticated" && this.#token !== null
      && this.#remaining() > Math.min(5000, this.#lifetime / 10);
  }
  #hidden() { return this.#io.document?.visibilityState === "hidden"; }
  #expiredError() { return new SessionExpiredError(); }

  #settle(ok) {
    if (this.#state === "unknown") this.#state = ok ? "authenticated" : "anonymous";
    return ok && this.#state === "authenticated";
  }

  #emit(event) {
    for (const listener of this.#listeners) {
      try { listener(event); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }

  #listen(target, type, handler) {
    if (!target?.addEventListener) return;
    target.addEventListener(type, handler);
    this.#unlisten.push(() => target.removeEventListener(type, handler));
  }

  #csrfCookie() {
    const jar = this.#io.document?.cookie ?? "";
    const name = this.#o.csrfCookie;
    const hit = jar.split(/;\s*/).find((c) => c.startsWith(`${name}=`));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  }

  #url(path) { return `${this.#o.baseUrl.replace(/\/$/, "")}${path}`; }

  #credentials() {
    const base = this.#o.baseUrl;
    const here = globalThis.location?.origin;
    if (!base) return "same-origin";
    return here && new URL(base, here).origin === here ? "same-origin" : "include";
  }

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
