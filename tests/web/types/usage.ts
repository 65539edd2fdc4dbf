// Compiled (never run) by tsc against the shipped .d.ts files and real axios types: what
// a TypeScript application writes must type-check, and what it must not write must not.
import axios from "axios";

import {
  type AuthEvent,
  type Claims,
  SessionExpiredError,
  StepUpRequiredError,
  createAuthClient,
  parseBearerChallenge,
} from "../../../src/silentauth/web/static/silentauth.js";
import { attachSilentAuth } from "../../../src/silentauth/web/static/silentauth-axios.js";
import { AuthWebSocket, CloseCodes } from "../../../src/silentauth/web/static/silentauth-realtime.js";

const auth = createAuthClient(
  { baseUrl: "", apiOrigins: ["https://api.example.com"], refreshMargin: 60, jitter: 0.1,
    onSessionExpired: (error: SessionExpiredError) => void error },
  { now: () => Date.now(), fetch: globalThis.fetch, locks: navigator.locks, document, window,
    BroadcastChannel },
);
const detach: () => void = attachSilentAuth(axios.create(), auth);
detach();

export async function use(): Promise<string | undefined> {
  const response: Response = await auth.fetch("/api/me", { method: "GET" });
  const token: string = await auth.getAccessToken(new AbortController().signal);
  const claims: Claims = await auth.login("alice", "secret");
  const off = auth.subscribe((event: AuthEvent) => {
    if (event.type === "renewal-ignored") console.log(event.origin.toUpperCase());
    if (event.type === "token") console.log(event.source, event.expiresAt.toFixed());
  });
  off();
  const ignored: number = auth.ignoredRenewals;
  const { error, maxAge } = parseBearerChallenge(response.headers.get("WWW-Authenticate"));
  if (error === "insufficient_user_authentication") throw new StepUpRequiredError(maxAge, response);
  return `${token}${claims.sid ?? ""}${ignored}`;
}

// @ts-expect-error the bindings' hooks are not on the client
void auth.refreshAfterRejection;
// @ts-expect-error nor this one
void auth.adoptPushedToken;
// @ts-expect-error test hooks are not options: they go in the second argument
createAuthClient({ fetch: globalThis.fetch });
// @ts-expect-error apiOrigins is a list of origins
createAuthClient({ apiOrigins: "https://api.example.com" });

// Real-time connections: WebSocket-like and EventSource-like, with one final close event.
export function realtime(): void {
  const ws = createAuthClient({}, { WebSocket }).websocket("/api/ws", ["chat"], { maxDelay: 10_000 });
  ws.onmessage = (event: MessageEvent) => console.log(String(event.data));
  ws.onclose = (event) => console.log(event.code.toFixed(), event.reason, event.wasClean);
  ws.addEventListener("reconnecting", () => console.log(ws.reconnects));
  ws.send(JSON.stringify({ type: "echo" }));
  if (ws.readyState === AuthWebSocket.OPEN) ws.close(1000, "done");
  const events = auth.eventSource("/api/events", { renewUrl: "/api/events/renew" });
  events.addEventListener("tick", (event) => console.log(event.type));
  events.close();
  const code: number = CloseCodes.UNAUTHENTICATED;
  void code;
  // @ts-expect-error a WebSocket carries text here, not a Blob
  ws.send(new Blob());
}
