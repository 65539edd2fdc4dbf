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
