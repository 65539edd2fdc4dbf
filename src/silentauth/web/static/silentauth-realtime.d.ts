// Generated from the JSDoc of the .js file beside it by tests/web/types.mjs: do not edit.
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
export const CloseCodes: Readonly<{
    BAD_MESSAGE: 4400;
    UNAUTHENTICATED: 4401;
    FORBIDDEN: 4403;
    POLICY: 1008;
    TOO_BIG: 1009;
}>;
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
    constructor(code: number, reason: string, wasClean: boolean);
    code: number;
    reason: string;
    wasClean: boolean;
}
/**
 * Announces a reconnection attempt in `delay` ms, after a drop with `code` and `reason`;
 * `delay` is Infinity when the connection waits for the client's next token (paused);
 * when that token comes, a second event (`delay` 0, reason "new token") announces the reconnection.
 */
export class RealtimeReconnectEvent extends Event {
    /** @param {number} delay @param {number} code @param {string} [reason] */
    constructor(delay: number, code: number, reason?: string);
    delay: number;
    code: number;
    reason: string;
}
/**
 * A WebSocket that authenticates in-band and stays authenticated: made by
 * `auth.websocket(url, protocols?, options?)`.
 */
export class AuthWebSocket extends Renewing {
    static CONNECTING: number;
    static OPEN: number;
    static CLOSED: number;
    /**
     * @param {RealtimeHooks} hooks
     * @param {string | URL} url ws:, wss:, or http(s): / relative (turned into ws(s):)
     * @param {string | string[]} [protocols]
     * @param {RealtimeOptions} [options]
     */
    constructor(hooks: RealtimeHooks, url: string | URL, protocols?: string | string[], options?: RealtimeOptions);
    /** The ws: or wss: URL connected to. */
    url: string;
    /** The subprotocol the server chose ("" if none). */
    get protocol(): string;
    /**
     * Send `data` now if open; while (re)connecting it waits for the connection.
     * @param {string} data
     */
    send(data: string): void;
    connect(): Promise<void>;
    #private;
}
/**
 * A server-sent event stream over fetch, opened with the bearer token and renewed by a
 * POST: made by `auth.eventSource(url, options?)`. Events keep their names ("message"
 * when unnamed); `data` is the text as sent.
 */
export class AuthEventSource extends Renewing {
    static CONNECTING: number;
    static OPEN: number;
    static CLOSED: number;
    /**
     * @param {RealtimeHooks} hooks
     * @param {string | URL} url
     * @param {RealtimeOptions} [options]
     */
    constructor(hooks: RealtimeHooks, url: string | URL, options?: RealtimeOptions);
    url: string;
    /** Where renewals are posted. */
    renewUrl: string;
    connect(): Promise<void>;
    #private;
}
/**
 * What a connection takes from the client that made it (see AuthClient#websocket).
 */
export type RealtimeHooks = {
    /**
     * A usable access token, refreshed if need be.
     */
    token: () => Promise<string>;
    /**
     * The client's token right now, without refreshing.
     */
    current: () => string | null;
    /**
     * The current token's expiry, epoch ms on this machine's clock.
     */
    expiresAt: () => number;
    /**
     * `stale` was refused: a newer token.
     */
    refreshAfterRejection: (stale: string) => Promise<string>;
    /**
     * The deadline of `token` is near:
     * refresh through the client's own path, unless paused, already replaced, or due anyway.
     */
    renewBeforeDeadline: (token: string) => Promise<void>;
    /**
     * Whether proactive refresh is paused in this tab.
     */
    paused: () => boolean;
    /**
     * The server closed with 4401 and
     * `reason`: if the refresh that follows finds the session over, the "expired" event says so.
     */
    refused: (code: number, reason: string) => void;
    subscribe: (listener: (event: {
        type: string;
    }) => void) => () => void;
    sendsTokenTo: (url: string) => boolean;
    io: RealtimeEnvironment;
};
export type RealtimeEnvironment = {
    fetch: (input: Request | string, init?: RequestInit) => Promise<Response>;
    /**
     * Epoch milliseconds.
     */
    now: () => number;
    setTimeout: (fn: () => void, ms: number) => unknown;
    clearTimeout: (id: unknown) => void;
    /**
     * Uniform in [0, 1).
     */
    random: () => number;
    WebSocket: WebSocketConstructor | null;
};
/**
 * The part of the browser's WebSocket used here.
 */
export type WebSocketLike = {
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((event: Event) => void) | null;
    onmessage: ((event: MessageEvent) => void) | null;
    onclose: ((event: CloseEvent) => void) | null;
    onerror: ((event: Event) => void) | null;
    protocol?: string;
};
/**
 * The part of the browser's WebSocket used here.
 */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;
export type RealtimeOptions = {
    /**
     * ms before the second reconnection attempt, doubled per failure
     * (default 500; the first attempt is immediate).
     */
    minDelay?: number | undefined;
    /**
     * Longest wait between two attempts, ms (default 30000).
     */
    maxDelay?: number | undefined;
    /**
     * Messages kept while (re)connecting (default 1000).
     */
    maxQueued?: number | undefined;
    /**
     * ms to wait for the server's own close (and its reason)
     * once the client knows the session is over (default 1000).
     */
    endTimeout?: number | undefined;
    /**
     * Event streams: the companion endpoint (default `url` + "/renew").
     */
    renewUrl?: string | undefined;
};
/**
 * What the two connections share: the client's tokens, back-off, the guard that renews
 * before the deadline, and the single final "close".
 */
declare class Renewing extends EventTarget {
    /**
     * @param {RealtimeHooks} hooks
     * @param {RealtimeOptions} options
     */
    constructor(hooks: RealtimeHooks, options: RealtimeOptions);
    /** @type {((event: Event) => void) | null} */ onopen: ((event: Event) => void) | null;
    /** @type {((event: MessageEvent) => void) | null} */ onmessage: ((event: MessageEvent) => void) | null;
    /** @type {((event: RealtimeCloseEvent) => void) | null} */ onclose: ((event: RealtimeCloseEvent) => void) | null;
    /** @type {((event: Event) => void) | null} */ onerror: ((event: Event) => void) | null;
    /** @type {((event: RealtimeReconnectEvent) => void) | null} */ onreconnecting: ((event: RealtimeReconnectEvent) => void) | null;
    /** 0 connecting (also while reconnecting), 1 open, 2 ending (waiting for the server's reason), 3 closed for good. */
    readyState: number;
    /** How many times the connection was re-established after the first. */
    reconnects: number;
    /** @type {RealtimeHooks} */ hooks: RealtimeHooks;
    /** @type {Required<Omit<RealtimeOptions, "renewUrl">> & RealtimeOptions} */ options: Required<Omit<RealtimeOptions, "renewUrl">> & RealtimeOptions;
    /** Whether the connection waits for the client's next token (a 4401 at the deadline while paused). */
    waiting: boolean;
    /** @type {string | null} the token the server holds now */
    sentToken: string | null;
    /**
     * @type {string | null} the newest token the server has acknowledged on this transport.
     * A 4401 refuses this one, or the token a fresh connection opened with: a newer token
     * sent meanwhile may have crossed the close and was never judged.
     */
    heldToken: string | null;
    /** @type {{ code: number, reason: string } | null} the server's last 4401, reported if the session is over */
    lastRefusal: {
        code: number;
        reason: string;
    } | null;
    get closed(): boolean;
    /**
     * Dispatch `event`, calling the matching `on<type>` property first, as a WebSocket does.
     * @param {Event} event
     */
    fire(event: Event): void;
    /**
     * The server accepted `token`: open (again), and renew before this token's deadline.
     * @param {string | null} token
     */
    accepted(token: string | null): void;
    /**
     * The transport ended with `code`: reconnect, refresh and reconnect, or end for good.
     * @param {number} code
     * @param {string} reason
     */
    dropped(code: number, reason: string): void;
    /**
     * No token to connect with: over for good if the session is, else try again later.
     * @param {unknown} error
     */
    tokenFailed(error: unknown): void;
    /**
     * Connect again: at once the first time, then after a growing, jittered delay.
     * @param {number} code why (for the "reconnecting" event)
     * @param {string} [reason]
     */
    retry(code: number, reason?: string): void;
    /**
     * Close for good and say so once.
     * @param {number} code
     * @param {string} reason
     * @param {boolean} wasClean
     */
    end(code: number, reason: string, wasClean: boolean): void;
    /**
     * Close for good from the application's side.
     * @param {number} [code]
     * @param {string} [reason]
     */
    close(code?: number, reason?: string): void;
    /** Open the transport with a fresh token. @returns {void} */
    connect(): void;
    /** Hand `token` to the open transport. @param {string} token @returns {void} */
    renew(token: string): void;
    /** Send what waited for the connection. @returns {void} */
    flush(): void;
    /** Tear the transport down, without events. @returns {void} */
    shutdown(): void;
    #private;
}
export {};
