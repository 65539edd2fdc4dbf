// Generated from the JSDoc of the .js file beside it by tests/web/types.mjs: do not edit.
/**
 * The internal hooks of a client, for the bindings shipped with this module (axios):
 * not a stable API.
 * @param {AuthClient} auth
 * @returns {BindingHooks}
 */
export function bindingHooks(auth: AuthClient): BindingHooks;
/**
 * `{error, maxAge}` from a `WWW-Authenticate: Bearer ...` header value (RFC 6750 §3,
 * RFC 9470), parsed as the Python client does: the Bearer scheme only, parameter values
 * quoted or bare, the first of a repeated parameter wins, `max_age` only if all digits.
 * @param {string | null | undefined} header
 * @returns {{ error: string | null, maxAge: number | null }}
 */
export function parseBearerChallenge(header: string | null | undefined): {
    error: string | null;
    maxAge: number | null;
};
/**
 * The payload of a JWT, unverified: for display and bookkeeping, never for trust.
 * @param {string} jwt
 * @returns {Claims} `{}` if it cannot be decoded
 */
export function decodeClaims(jwt: string): Claims;
/**
 * Create a client; see the module comment. Every option has a default, and so has every
 * member of `env` (the browser's own fetch, clock, timers, locks and so on).
 * @param {AuthClientOptions} [options]
 * @param {AuthEnvironment} [env]
 * @returns {AuthClient}
 */
export function createAuthClient(options?: AuthClientOptions, env?: AuthEnvironment): AuthClient;
/** The session cannot be renewed (refresh token dead, logged out): log in again. */
export class SessionExpiredError extends Error {
    /** @param {string} [message] @param {ErrorOptions} [options] */
    constructor(message?: string, options?: ErrorOptions);
}
/** A refresh failed for a passing reason (network, 429, 5xx); the session may still live. */
export class RefreshFailedError extends Error {
    /** @param {string} message @param {ErrorOptions} [options] */
    constructor(message: string, options?: ErrorOptions);
}
/** The route wants a more recent login (RFC 9470); `maxAge` is in seconds. */
export class StepUpRequiredError extends Error {
    /** @param {number | null} maxAge @param {unknown} response the 401 (a Response, or axios's) */
    constructor(maxAge: number | null, response: unknown);
    maxAge: number | null;
    response: unknown;
}
/** Login refused (bad credentials, rate limited); `status` and `code` come from the server. */
export class LoginError extends Error {
    /** @param {string} message @param {number} status @param {string | undefined} code */
    constructor(message: string, status: number, code: string | undefined);
    status: number;
    code: string | undefined;
}
/** A browser session with its access token; made by {@link createAuthClient}. */
export class AuthClient {
    /**
     * Use {@link createAuthClient}.
     * @param {AuthClientOptions} options
     * @param {AuthEnvironment} env
     */
    constructor(options: AuthClientOptions, env: AuthEnvironment);
    /** Resolves to whether a session is active once the start-up restore has run. */
    ready: Promise<boolean>;
    /** "unknown" until the start-up restore settles, then "authenticated" or "anonymous". */
    get state(): "unknown" | "authenticated" | "anonymous";
    get isAuthenticated(): boolean;
    /** Expiry of the current access token, epoch ms on this machine's clock (0 if none). */
    get expiresAt(): number;
    /**
     * The current token's claims, decoded but not verified: for display only.
     * @returns {Claims | null}
     */
    get claims(): Claims | null;
    /** @returns {string | null} */
    get sessionId(): string | null;
    /** How many `New-Access-Token` headers from origins that never get the token were ignored. */
    get ignoredRenewals(): number;
    /** Whether renewal ahead of expiry is paused in this tab (see {@link AuthClient.pauseProactive}). */
    get proactivePaused(): boolean;
    /**
     * Pause (or, with `false`, resume) renewal ahead of expiry in this tab: no proactive
     * timer, no refresh when the tab wakes up, and server-pushed `New-Access-Token`
     * headers are ignored. The token then really expires, and the next request that needs
     * it refreshes once for every call waiting with it. Tokens that other tabs broadcast
     * are still adopted. For demonstrations and tests of that path; applications leave
     * it alone.
     * @param {boolean} [paused]
     */
    pauseProactive(paused?: boolean): void;
    /**
     * Listen to events (see {@link AuthEvent}); returns an unsubscribe function.
     * @param {(event: AuthEvent) => void} listener
     * @returns {() => void}
     */
    subscribe(listener: (event: AuthEvent) => void): () => void;
    /**
     * Like window.fetch, with the bearer token attached and refreshed as needed; a request
     * to an origin that is neither the issuer's nor in `apiOrigins` goes out untouched.
     * @param {RequestInfo | URL} input
     * @param {RequestInit} [init]
     * @returns {Promise<Response>}
     */
    fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
    /**
     * A usable access token, refreshing first if it is about to expire.
     * @param {AbortSignal} [signal] stops waiting (the refresh itself goes on for the others)
     * @returns {Promise<string>}
     */
    getAccessToken(signal?: AbortSignal): Promise<string>;
    /**
     * Password login; the refresh token arrives as an HttpOnly cookie.
     * @param {string} username
     * @param {string} password
     * @param {{ remember?: boolean }} [options] `remember`: true for the long session
     *   lifetime, false for the short one; left out, the server's default (long)
     * @returns {Promise<Claims>} the new token's claims
     */
    login(username: string, password: string, options?: {
        remember?: boolean;
    }): Promise<Claims>;
    /**
     * End this session here and in every tab; resolves once the server was told (best effort).
     * @returns {Promise<void>}
     */
    logout(): Promise<void>;
    /**
     * Try to resume a session from the refresh cookie (page load); resolves to success.
     * @returns {Promise<boolean>}
     */
    restore(): Promise<boolean>;
    /**
     * A WebSocket that sends the token as its first message, re-authenticates on every new
     * token and reconnects after a drop; see silentauth-realtime.js for the protocol and
     * close codes. Only to the issuer's origin or an `apiOrigins` one (else a TypeError).
     * @param {string | URL} url ws(s):, http(s): or relative
     * @param {string | string[]} [protocols]
     * @param {import("./silentauth-realtime.js").RealtimeOptions} [options]
     * @returns {AuthWebSocket}
     */
    websocket(url: string | URL, protocols?: string | string[], options?: import("./silentauth-realtime.js").RealtimeOptions): AuthWebSocket;
    /**
     * A server-sent event stream over fetch, opened with the bearer token and renewed with
     * each new one; see silentauth-realtime.js.
     * @param {string | URL} url
     * @param {import("./silentauth-realtime.js").RealtimeOptions} [options]
     * @returns {AuthEventSource}
     */
    eventSource(url: string | URL, options?: import("./silentauth-realtime.js").RealtimeOptions): AuthEventSource;
    /** Stop timers and listeners (tests, single-page teardown). */
    destroy(): void;
    #private;
}
export type AuthClientOptions = {
    /**
     * Where the token service lives; "" (the default) is this page's origin.
     */
    baseUrl?: string | undefined;
    /**
     * Origins besides the issuer's that get the access token,
     * e.g. `["https://api.example.com"]`.
     */
    apiOrigins?: string[] | undefined;
    /**
     * The APIs the access tokens are for (RFC 8707 resource
     * indicators, e.g. `["https://billing.example"]`), sent with the login and every refresh so
     * the token's `aud` names exactly them; the server must list them in RESOURCES (an unknown
     * one fails the login with a LoginError whose code is "invalid_target").
     */
    resources?: string[] | undefined;
    /**
     * Seconds before expiry for the proactive refresh (default 60),
     * never more than half the token's lifetime; as `refresh_margin` in the Python client.
     */
    refreshMargin?: number | undefined;
    /**
     * Up to this fraction of the margin is added at random per token
     * (default 0.1, within [0, 1]), so tabs and users spread out; as in the Python client.
     */
    jitter?: number | undefined;
    /**
     * ms a reloaded tab waits for another tab's token (default 150).
     */
    peerTimeout?: number | undefined;
    /**
     * ms the lock is kept after broadcasting, so waiters see the token first (default 50).
     */
    handoffDelay?: number | undefined;
    /**
     * ms to wait for the refresh lock before refreshing without it (default 10000).
     */
    lockTimeout?: number | undefined;
    /**
     * ms for each call to the token service (default 15000).
     */
    requestTimeout?: number | undefined;
    /**
     * Resume the session from its cookie at once (default true).
     */
    restore?: boolean | undefined;
    /**
     * The CSRF proof's cookie name: `__Host-silentauth-csrf`, or
     * `silentauth-csrf` on a page that is not a secure context (a server with COOKIE_SECURE=false).
     */
    csrfCookie?: string | undefined;
    /**
     * Called once when the session ends unexpectedly.
     */
    onSessionExpired?: ((error: SessionExpiredError) => void) | undefined;
    /**
     * Called with every event, as `subscribe`.
     */
    onEvent?: ((event: AuthEvent) => void) | undefined;
};
/**
 * What the client takes from its host; each member defaults to the browser's own.
 */
export type AuthEnvironment = {
    fetch?: ((input: Request | string, init?: RequestInit) => Promise<Response>) | undefined;
    /**
     * Epoch milliseconds.
     */
    now?: (() => number) | undefined;
    setTimeout?: ((fn: () => void, ms: number) => unknown) | undefined;
    clearTimeout?: ((id: unknown) => void) | undefined;
    /**
     * Uniform in [0, 1).
     */
    random?: (() => number) | undefined;
    /**
     * Web Locks (`navigator.locks`); null: none.
     */
    locks?: LockManagerLike | null | undefined;
    document?: DocumentLike | null | undefined;
    window?: WindowLike | null | undefined;
    BroadcastChannel?: ChannelConstructor | null | undefined;
    /**
     * For `auth.websocket`.
     */
    WebSocket?: import("./silentauth-realtime.js").WebSocketConstructor | null | undefined;
    /**
     * Keeps a refresh's Idempotency-Key until its answer
     * arrives, across tabs and reloads (default `localStorage`); null: this tab's memory only.
     */
    storage?: StorageLike | null | undefined;
};
export type LockManagerLike = {
    request: (name: string, options: {
        signal?: AbortSignal;
    }, fn: () => Promise<unknown>) => Promise<unknown>;
};
export type Listenable = {
    addEventListener?: (type: string, fn: () => void) => void;
    removeEventListener?: (type: string, fn: () => void) => void;
};
export type DocumentLike = Listenable & {
    cookie?: string;
    visibilityState?: string;
};
export type WindowLike = Listenable & {
    location?: {
        origin: string;
    };
};
export type StorageLike = {
    getItem(key: string): string | null;
    setItem(key: string, value: string): void;
    removeItem(key: string): void;
};
export type ChannelLike = {
    onmessage: ((event: MessageEvent) => void) | null;
    postMessage(data: unknown): void;
    close(): void;
};
export type ChannelConstructor = new (name: string) => ChannelLike;
/**
 * What the client reports to `subscribe` listeners and `onEvent`.
 */
export type AuthEvent = {
    type: "token";
    expiresAt: number;
    source: "login" | "refresh" | "pushed" | "other-tab";
    reason?: string;
} | {
    type: "refresh-skipped";
    reason: string;
} | {
    type: "refresh-error";
    reason: string;
    error: Error;
} | {
    type: "restore-failed";
    error: unknown;
} | {
    type: "expired" | "logout";
    reason: string;
    server?: ServerWord;
} | {
    type: "renewal-ignored";
    origin: string;
};
/**
 * What a server said when it closed a live connection (WebSocket close code and reason):
 * carried by the "expired" event when that close led to the end of the session, so that
 * an application can tell "session revoked" from an expiry.
 */
export type ServerWord = {
    code: number;
    reason: string;
};
/**
 * The decoded (never verified) claims of an access token.
 */
export type Claims = {
    sub?: string;
    sid?: string;
    exp?: number;
    iat?: number;
    jti?: string;
    [claim: string]: unknown;
};
/**
 * What the bindings shipped beside this module need from a client.
 */
export type BindingHooks = {
    /**
     * Whether a request to `url` gets the token.
     */
    sendsTokenTo: (url: string) => boolean;
    /**
     * Count and report a renewal from an origin that never gets the token.
     */
    ignoreRenewal: (url: string) => void;
    /**
     * `token` got a 401: a usable token, refreshed if need be.
     */
    refreshAfterRejection: (token: string) => Promise<string>;
    /**
     * Adopt a `New-Access-Token`
     * seen on a response (from an origin that gets the token) to a request made with `usedToken`.
     */
    adoptPushedToken: (jwt: string | null, usedToken: string) => void;
};
import { AuthWebSocket } from "./silentauth-realtime.js";
import { AuthEventSource } from "./silentauth-realtime.js";
