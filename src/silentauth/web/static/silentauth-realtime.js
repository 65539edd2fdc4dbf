/**
 * silentauth-realtime.js: a WebSocket and an event stream that stay authenticated while
 * access tokens come and go. Made by the client, not imported by applications:
 *
 *   const ws = auth.websocket("/api/ws");
 *   ws.onmessage = (event) => show(JSON.parse(event.data));
 *   ws.onclose = (event) => console.log(event.code, event.reason); // once, for good
 *   const events = auth.eventSource("/api/events");
 *   events.addEventListener("tick", (event) => show(JSON.parse(event.data)));
 *
 * The token never goes in the URL (proxies log URLs): a WebSocket sends it as its first
 * message, {type:"auth", token}, and every newer token as {type:"reauth", token}; an event
 * stream is opened by fetch with an Authorization header and renewed by a POST of
 * {stream} to `renewUrl` with the newer token. The server closes a connection whose
 * token expires unrenewed or whose session is revoked. Close codes (as the server's
 * silentauth.resource.lease documents them):
 *
 *   4401  token expired, invalid or session revoked: refresh, then reconnect; if the
 *         refresh says the session is over, close for good (onSessionExpired is called
 *         once, by the client). While proactive refresh is paused (auth.pauseProactive),
 *         a 4401 at the token's deadline does not refresh: the connection waits, in
 *         CONNECTING, for the client's next token (the reactive refresh of a request,
 *         another tab, a resume) and reconnects with it
 *   4400, 4403, 1008, 1009, 1000  final: a protocol error, another user's token, a flood,
 *         a message too big, or the server's normal end
 *   anything else (1006 dropped, 1001/1012 server going away or restarting)
 *         reconnect with exponential back-off and a fresh token
 *
 * A reconnection dispatches "open" again; "close" is dispatched exactly once, when the
 * connection ends for good. Messages sent while (re)connecting wait (up to `maxQueued`)
 * and go out once the server has accepted the token.
 *
 * Renewal: a connection never refreshes on its own schedule. Every new token the client
 * obtains (proactive, reactive, pushed, from another tab) is sent in-band. Only if the
 * deadline comes near with no new token (a hidden tab has no proactive timer) does the
 * connection ask the client to refresh, through the client's one path (single flight,
 * Web Locks across tabs), at a jittered moment so that background tabs do not ask at once.
 *
 * The end: the "close" event carries the server's code and reason when the server gave
 * one. A tab often learns that the session is over before its connections hear it from
 * the server (a request's refresh was refused, another tab logged out): the connection
 * then stops delivering messages (readyState 2, CLOSING) and waits up to `endTimeout` ms
 * for the server's close, so that the application can tell "session revoked" from
 * "token expired"; without one it closes with 4401 and the client's word.
 */

/** The close codes a server of silentauth.resource uses. */
export const CloseCodes = Object.freeze({
  BAD_MESSAGE: 4400,
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  POLICY: 1008,
  TOO_BIG: 1009,
});

// Codes after which reconnecting cannot help: the same thing would happen again.
const FINAL = new Set([1000, CloseCodes.BAD_MESSAGE, CloseCodes.FORBIDDEN, CloseCodes.POLICY, CloseCodes.TOO_BIG]);
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
// The client's word when it learned first that the session is over and the server said nothing.
const SESSION_EXPIRED = "session expired";

/**
 * What a connection takes from the client that made it (see AuthClient#websocket).
 * @typedef {object} RealtimeHooks
 * @property {() => Promise<string>} token A usable access token, refreshed if need be.
 * @property {() => string | null} current The client's token right now, without refreshing.
 * @property {() => number} expiresAt The current token's expiry, epoch ms on this machine's clock.
 * @property {(stale: string) => Promise<string>} refreshAfterRejection `stale` was refused: a newer token.
 * @property {(token: string) => Promise<void>} renewBeforeDeadline The deadline of `token` is near:
 *   refresh through the client's own path, unless paused, already replaced, or due anyway.
 * @property {() => boolean} paused Whether proactive refresh is paused in this tab.
 * @property {(code: number, reason: string) => void} refused The server closed with 4401 and
 *   `reason`: if the refresh that follows finds the session over, the "expired" event says so.
 * @property {(listener: (event: { type: string }) => void) => () => void} subscribe
 * @property {(url: string) => boolean} sendsTokenTo
 * @property {RealtimeEnvironment} io
 */

/**
 * @typedef {object} RealtimeEnvironment
 * @property {(input: Request | string, init?: RequestInit) => Promise<Response>} fetch
 * @property {() => number} now Epoch milliseconds.
 * @property {(fn: () => void, ms: number) => unknown} setTimeout
 * @property {(id: unknown) => void} clearTimeout
 * @property {() => number} random Uniform in [0, 1).
 * @property {WebSocketConstructor | null} WebSocket
 */

/**
 * The part of the browser's WebSocket used here.
 * @typedef {{ send(data: string): void, close(code?: number, reason?: string): void,
 *   onopen: ((event: Event) => void) | null, onmessage: ((event: MessageEvent) => void) | null,
 *   onclose: ((event: CloseEvent) => void) | null,
 *   onerror: ((event: Event) => void) | null, protocol?: string }} WebSocketLike
 * @typedef {new (url: string, protocols?: string | string[]) => WebSocketLike} WebSocketConstructor
 */

/**
 * @typedef {object} RealtimeOptions
 * @property {number} [minDelay] ms before the second reconnection attempt, doubled per failure
 *   (default 500; the first attempt is immediate).
 * @property {number} [maxDelay] Longest wait between two attempts, ms (default 30000).
 * @property {number} [maxQueued] Messages kept while (re)connecting (default 1000).
 * @property {number} [endTimeout] ms to wait for the server's own close (and its reason)
 *   once the client knows the session is over (default 1000).
 * @property {string} [renewUrl] Event streams: the companion endpoint (default `url` + "/renew").
 */

/** The one "close" event of a connection: its code and reason, as a WebSocket's CloseEvent. */
export class RealtimeCloseEvent extends Event {
  /** @param {number} code @param {string} reason @param {boolean} wasClean */
  constructor(code, reason, wasClean) {
    super("close");
    this.code = code;
    this.reason = reason;
    this.wasClean = wasClean;
  }
}

/**
 * Announces a reconnection attempt in `delay` ms, after a drop with `code` and `reason`;
 * `delay` is Infinity when the connection waits for the client's next token (paused);
 * when that token comes, a second event (`delay` 0, reason "new token") announces the reconnection.
 */
export class RealtimeReconnectEvent extends Event {
  /** @param {number} delay @param {number} code @param {string} [reason] */
  constructor(delay, code, reason = "") {
    super("reconnecting");
    this.delay = delay;
    this.code = code;
    this.reason = reason;
  }
}

/**
 * What the two connections share: the client's tokens, back-off, the guard that renews
 * before the deadline, and the single final "close".
 */
class Renewing extends EventTarget {
  /** @type {((event: Event) => void) | null} */ onopen = null;
  /** @type {((event: MessageEvent) => void) | null} */ onmessage = null;
  /** @type {((event: RealtimeCloseEvent) => void) | null} */ onclose = null;
  /** @type {((event: Event) => void) | null} */ onerror = null;
  /** @type {((event: RealtimeReconnectEvent) => void) | null} */ onreconnecting = null;
  /** 0 connecting (also while reconnecting), 1 open, 2 ending (waiting for the server's reason), 3 closed for good. */
  readyState = CONNECTING;
  /** How many times the connection was re-established after the first. */
  reconnects = 0;
  /** @type {RealtimeHooks} */ hooks;
  /** @type {Required<Omit<RealtimeOptions, "renewUrl">> & RealtimeOptions} */ options;
  /** Whether the connection waits for the client's next token (a 4401 at the deadline while paused). */
  waiting = false;
  /** @type {string | null} the token the server holds now */
  sentToken = null;
  /**
   * @type {string | null} the newest token the server has acknowledged on this transport.
   * A 4401 refuses this one, or the token a fresh connection opened with: a newer token
   * sent meanwhile may have crossed the close and was never judged.
   */
  heldToken = null;
  /** @type {{ code: number, reason: string } | null} the server's last 4401, reported if the session is over */
  lastRefusal = null;
  #failures = 0;
  #opened = false;
  #final = false;
  /** @type {unknown} */ #retryTimer = null;
  /** @type {unknown} */ #endTimer = null;
  /** @type {unknown} */ #guardTimer = null;
  /** @type {() => void} */ #unsubscribe;

  /**
   * @param {RealtimeHooks} hooks
   * @param {RealtimeOptions} options
   */
  constructor(hooks, options) {
    super();
    this.hooks = hooks;
    this.options = { minDelay: 500, maxDelay: 30000, maxQueued: 1000, endTimeout: 1000, ...options };
    this.#unsubscribe = hooks.subscribe((event) => this.#onAuthEvent(event));
  }

  get closed() { return this.#final; }

  /**
   * Dispatch `event`, calling the matching `on<type>` property first, as a WebSocket does.
   * @param {Event} event
   */
  fire(event) {
    const handler = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this))[`on${event.type}`];
    try {
      if (typeof handler === "function") handler.call(this, event);
    } catch (e) {
      queueMicrotask(() => { throw e; }); // an application bug must not break the connection
    }
    this.dispatchEvent(event);
  }

  /**
   * The server accepted `token`: open (again), and renew before this token's deadline.
   * @param {string | null} token
   */
  accepted(token) {
    if (this.readyState === CLOSING) return; // the session is over: only the end is awaited
    if (token) this.heldToken = token;
    this.#failures = 0;
    this.lastRefusal = null;
    this.#armGuard();
    if (this.readyState === OPEN) return;
    this.readyState = OPEN;
    if (this.#opened) this.reconnects++;
    this.#opened = true;
    this.flush();
    this.fire(new Event("open"));
  }

  /**
   * The transport ended with `code`: reconnect, refresh and reconnect, or end for good.
   * @param {number} code
   * @param {string} reason
   */
  dropped(code, reason) {
    this.#clearGuard();
    if (this.#final) return;
    if (this.readyState === CLOSING) {
      // The awaited end: the server's word if it gave one, else the client's.
      const told = code === CloseCodes.UNAUTHENTICATED || FINAL.has(code);
      return told ? this.end(code, reason, true) : this.end(CloseCodes.UNAUTHENTICATED, SESSION_EXPIRED, false);
    }
    this.readyState = CONNECTING;
    if (FINAL.has(code)) return this.end(code, reason, true);
    if (code === CloseCodes.UNAUTHENTICATED) {
      this.lastRefusal = { code, reason };
      this.hooks.refused(code, reason);
      if (this.hooks.paused() && this.#expiredHere()) {
        // Paused: the token was meant to run out, and refreshing here would renew it ahead
        // of the requests that are to meet the expiry. Reconnect with the next token.
        this.waiting = true;
        this.fire(new RealtimeReconnectEvent(Infinity, code, reason));
        return;
      }
      // Refresh only if the refused token is still the client's: a 4401 for the deadline of
      // an older token that crossed our reauth with a newer one needs no new refresh.
      const refused = this.heldToken ?? this.sentToken ?? "";
      this.heldToken = null;
      this.hooks.refreshAfterRejection(refused).then(
        () => this.retry(code, reason),
        (error) => this.tokenFailed(error),
      );
      return;
    }
    this.retry(code, reason);
  }

  /**
   * No token to connect with: over for good if the session is, else try again later.
   * @param {unknown} error
   */
  tokenFailed(error) {
    if (error instanceof Error && error.name === "SessionExpiredError") {
      const last = this.lastRefusal ?? { code: CloseCodes.UNAUTHENTICATED, reason: SESSION_EXPIRED };
      this.end(last.code, last.reason, false);
    } else {
      this.retry(0);
    }
  }

  /**
   * Connect again: at once the first time, then after a growing, jittered delay.
   * @param {number} code why (for the "reconnecting" event)
   * @param {string} [reason]
   */
  retry(code, reason = "") {
    if (this.#final) return;
    const { minDelay, maxDelay } = this.options;
    const base = this.#failures === 0 ? 0 : Math.min(maxDelay, minDelay * 2 ** (this.#failures - 1));
    // Half to full delay: a server restart must not meet every client at the same instant.
    const delay = base * (0.5 + this.hooks.io.random() / 2);
    this.#failures++;
    this.fire(new RealtimeReconnectEvent(delay, code, reason));
    this.#clearRetry();
    this.#retryTimer = this.hooks.io.setTimeout(() => { this.#retryTimer = null; this.connect(); }, delay);
  }

  /**
   * Close for good and say so once.
   * @param {number} code
   * @param {string} reason
   * @param {boolean} wasClean
   */
  end(code, reason, wasClean) {
    if (this.#final) return;
    this.#final = true;
    this.readyState = CLOSED;
    this.waiting = false;
    this.#clearGuard();
    this.#clearRetry();
    if (this.#endTimer !== null) this.hooks.io.clearTimeout(this.#endTimer);
    this.#endTimer = null;
    this.#unsubscribe();
    this.shutdown();
    this.fire(new RealtimeCloseEvent(code, reason, wasClean));
  }

  /**
   * Close for good from the application's side.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    this.end(code, reason, true);
  }

  /** @param {{ type: string }} event */
  #onAuthEvent(event) {
    if (event.type === "token") {
      const token = this.hooks.current();
      if (this.waiting) {
        this.waiting = false;
        this.retry(CloseCodes.UNAUTHENTICATED, "new token");
      } else if (token && token !== this.sentToken && this.readyState === OPEN) {
        this.renew(token);
      }
    } else if (event.type === "logout") {
      this.end(CloseCodes.UNAUTHENTICATED, "logged out", false);
    } else if (event.type === "expired") {
      if (this.lastRefusal || this.readyState !== OPEN) {
        const last = this.lastRefusal ?? { code: CloseCodes.UNAUTHENTICATED, reason: SESSION_EXPIRED };
        this.end(last.code, last.reason, false);
        return;
      }
      // The server closes this connection too, and says why (revoked, expired): wait for it.
      this.readyState = CLOSING;
      this.#clearGuard();
      this.#endTimer = this.hooks.io.setTimeout(() => {
        this.#endTimer = null;
        this.end(CloseCodes.UNAUTHENTICATED, SESSION_EXPIRED, false);
      }, this.options.endTimeout);
    }
  }

  /** Whether the client's token has run out (or nearly: the server's clock may be ahead). */
  #expiredHere() {
    return this.hooks.expiresAt() - this.hooks.io.now() < 5000;
  }

  // Ask for a renewal a little before the deadline in case the client did not refresh by
  // itself (a hidden tab has no proactive timer): about a quarter of what is left, at most
  // ~10 s before, jittered by ±25% so that background tabs holding the same token do not
  // ask at one instant (without Web Locks, the first one's broadcast then reaches the others).
  #armGuard() {
    this.#clearGuard();
    const left = this.hooks.expiresAt() - this.hooks.io.now();
    if (left <= 0) return;
    const early = Math.min(10000, left / 4) * (0.75 + this.hooks.io.random() / 2);
    const token = this.sentToken;
    this.#guardTimer = this.hooks.io.setTimeout(() => {
      this.#guardTimer = null;
      if (this.#final || this.readyState !== OPEN || !token) return;
      const current = this.hooks.current();
      if (current && current !== token) {
        this.renew(current);
        return;
      }
      this.hooks.renewBeforeDeadline(token).catch(() => {});
    }, left - early);
  }

  #clearGuard() {
    if (this.#guardTimer !== null) this.hooks.io.clearTimeout(this.#guardTimer);
    this.#guardTimer = null;
  }

  #clearRetry() {
    if (this.#retryTimer !== null) this.hooks.io.clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
  }

  // Overridden by the transports.
  /** Open the transport with a fresh token. @returns {void} */
  connect() {}
  /** Hand `token` to the open transport. @param {string} token @returns {void} */
  renew(token) { void token; }
  /** Send what waited for the connection. @returns {void} */
  flush() {}
  /** Tear the transport down, without events. @returns {void} */
  shutdown() {}
}

/**
 * A WebSocket that authenticates in-band and stays authenticated: made by
 * `auth.websocket(url, protocols?, options?)`.
 */
export class AuthWebSocket extends Renewing {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;
  /** @type {WebSocketLike | null} */
  #socket = null;
  /** @type {string[]} */
  #queue = [];
  /** @type {string | string[] | undefined} */
  #protocols;
  /** @type {string[]} tokens sent (auth, reauth) and not yet acknowledged: the server answers in order */
  #unacknowledged = [];

  /**
   * @param {RealtimeHooks} hooks
   * @param {string | URL} url ws:, wss:, or http(s): / relative (turned into ws(s):)
   * @param {string | string[]} [protocols]
   * @param {RealtimeOptions} [options]
   */
  constructor(hooks, url, protocols, options = {}) {
    super(hooks, options);
    const target = new URL(url, globalThis.location?.href);
    if (target.protocol === "http:" || target.protocol === "https:") {
      target.protocol = target.protocol === "http:" ? "ws:" : "wss:";
    }
    const asHttp = target.href.replace(/^ws/, "http");
    if (!hooks.sendsTokenTo(asHttp)) {
      throw new TypeError(`${target.origin} is not the issuer's origin nor in apiOrigins: it must not get the token.`);
    }
    if (!hooks.io.WebSocket) throw new TypeError("No WebSocket in this environment.");
    /** The ws: or wss: URL connected to. */
    this.url = target.href;
    this.#protocols = protocols;
    this.connect();
  }

  /** The subprotocol the server chose ("" if none). */
  get protocol() { return this.#socket?.protocol ?? ""; }

  /**
   * Send `data` now if open; while (re)connecting it waits for the connection.
   * @param {string} data
   */
  send(data) {
    if (this.closed) return; // as a WebSocket: sending on a closed one is a silent no-op
    if (this.readyState === OPEN && this.#socket) {
      this.#socket.send(data);
      return;
    }
    if (this.#queue.length >= this.options.maxQueued) {
      throw new DOMException("Too many messages waiting for the connection.", "InvalidStateError");
    }
    this.#queue.push(data);
  }

  async connect() {
    let token;
    try {
      token = await this.hooks.token();
    } catch (error) {
      this.tokenFailed(error);
      return;
    }
    if (this.closed) return;
    const Socket = /** @type {WebSocketConstructor} */ (this.hooks.io.WebSocket);
    const socket = new Socket(this.url, this.#protocols);
    this.#socket = socket;
    socket.onopen = () => {
      this.sentToken = token;
      this.heldToken = null;
      this.#unacknowledged = [token];
      socket.send(JSON.stringify({ type: "auth", token }));
    };
    socket.onmessage = (event) => {
      if (socket !== this.#socket) return;
      if (isAuthOk(event.data)) this.accepted(this.#unacknowledged.shift() ?? null);
      else if (this.readyState === OPEN) this.fire(new MessageEvent("message", { data: event.data }));
    };
    socket.onerror = () => {}; // a close event follows; it decides what happens
    socket.onclose = (event) => {
      if (socket !== this.#socket) return;
      this.#socket = null;
      this.dropped(event.code, event.reason);
    };
  }

  /** @param {string} token */
  renew(token) {
    if (!this.#socket) return;
    this.sentToken = token;
    this.#unacknowledged.push(token);
    this.#socket.send(JSON.stringify({ type: "reauth", token }));
  }

  flush() {
    const waiting = this.#queue.splice(0);
    for (const data of waiting) this.#socket?.send(data);
  }

  shutdown() {
    const socket = this.#socket;
    this.#socket = null;
    this.#queue = [];
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      try { socket.close(1000); } catch { /* not open yet: it closes itself */ }
    }
  }
}

/**
 * A server-sent event stream over fetch, opened with the bearer token and renewed by a
 * POST: made by `auth.eventSource(url, options?)`. Events keep their names ("message"
 * when unnamed); `data` is the text as sent.
 */
export class AuthEventSource extends Renewing {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;
  /** @type {AbortController | null} */
  #abort = null;
  /** @type {string | null} */
  #stream = null;

  /**
   * @param {RealtimeHooks} hooks
   * @param {string | URL} url
   * @param {RealtimeOptions} [options]
   */
  constructor(hooks, url, options = {}) {
    super(hooks, options);
    const target = new URL(url, globalThis.location?.href);
    if (!hooks.sendsTokenTo(target.href)) {
      throw new TypeError(`${target.origin} is not the issuer's origin nor in apiOrigins: it must not get the token.`);
    }
    this.url = target.href;
    /** Where renewals are posted. */
    this.renewUrl = new URL(options.renewUrl ?? `${target.pathname.replace(/\/$/, "")}/renew`, target).href;
    this.connect();
  }

  async connect() {
    let token;
    try {
      token = await this.hooks.token();
    } catch (error) {
      this.tokenFailed(error);
      return;
    }
    if (this.closed) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.sentToken = token;
    this.heldToken = null;
    /** @type {{ code: number, reason: string } | null} */
    let ending = null;
    try {
      const response = await this.hooks.io.fetch(this.url, {
        headers: { Authorization: `Bearer ${token}`, Accept: "text/event-stream" },
        cache: "no-store",
        signal: abort.signal,
      });
      if (response.status === 401) {
        ending = { code: CloseCodes.UNAUTHENTICATED, reason: "token refused" };
      } else if (!response.ok || !response.body) {
        ending = { code: response.status === 403 ? CloseCodes.FORBIDDEN : 1011, reason: `HTTP ${response.status}` };
        this.fire(new Event("error"));
        if (response.status < 500) return this.end(ending.code, ending.reason, false);
      } else {
        ending = await this.#read(response.body);
      }
    } catch {
      if (abort.signal.aborted) return; // closed by us
    }
    if (this.#abort !== abort || this.closed) return;
    this.#abort = null;
    this.#stream = null;
    this.dropped(ending?.code ?? 1006, ending?.reason ?? "stream interrupted");
  }

  /**
   * Parse the stream (WHATWG HTML §9.2.6) until it ends; its silentauth-end, if any.
   * @param {ReadableStream<Uint8Array>} body
   * @returns {Promise<{ code: number, reason: string } | null>}
   */
  async #read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let event = "message";
    /** @type {string[]} */
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") {
          if (data.length) {
            const ended = this.#dispatch(event, data.join("\n"));
            if (ended) {
              reader.cancel().catch(() => {});
              return ended;
            }
          }
          event = "message";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
    }
  }

  /**
   * @param {string} event
   * @param {string} data
   * @returns {{ code: number, reason: string } | null} the end of the stream, if this was it
   */
  #dispatch(event, data) {
    if (event === "silentauth" || event === "silentauth-end") {
      let body;
      try { body = JSON.parse(data); } catch { return null; }
      if (event === "silentauth-end") return { code: Number(body.code), reason: String(body.reason ?? "") };
      this.#stream = String(body.stream);
      this.accepted(this.sentToken);
      return null;
    }
    if (this.readyState === OPEN) this.fire(new MessageEvent(event, { data }));
    return null;
  }

  /** @param {string} token */
  renew(token) {
    const stream = this.#stream;
    if (!stream) return;
    this.sentToken = token;
    this.hooks.io.fetch(this.renewUrl, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ stream }),
      cache: "no-store",
    }).then((response) => { if (response.ok) this.accepted(token); }, () => {});
  }

  shutdown() {
    const abort = this.#abort;
    this.#abort = null;
    abort?.abort();
  }
}

/**
 * Whether a frame is the server's {type:"auth-ok"}: cheap for application frames.
 * @param {unknown} data
 */
function isAuthOk(data) {
  if (typeof data !== "string" || !data.includes("auth-ok")) return false;
  try {
    const message = JSON.parse(data);
    return message !== null && typeof message === "object" && message.type === "auth-ok";
  } catch {
    return false;
  }
}
