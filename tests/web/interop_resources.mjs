// The browser client's RFC 8707 resources against a live silentauth (run by
// tests/web/test_resources_live.py with ISSUER, BILLING and FILES set). Node's fetch keeps
// no cookies, so a small jar plays the browser's: it stores Set-Cookie and sends the
// cookies back, sends the page's Origin, and serves document.cookie (the CSRF cookie is not HttpOnly).
// Prints one JSON line of findings for the Python side to check.
import { createAuthClient } from "../../src/silentauth/web/static/silentauth.js";

const { ISSUER, BILLING, FILES } = process.env;
const jar = new Map();
const cookieHeader = () => [...jar].map(([name, value]) => `${name}=${value}`).join("; ");

/** @type {(input: Request | string, init?: RequestInit) => Promise<Response>} */
async function browserFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  if (jar.size) headers.set("cookie", cookieHeader());
  headers.set("origin", new URL(ISSUER).origin); // a browser sends it on every POST
  const res = await fetch(input, { ...init, headers });
  for (const line of res.headers.getSetCookie()) {
    const [pair] = line.split(";");
    const at = pair.indexOf("=");
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1);
    if (value === "" || /max-age=0/i.test(line)) jar.delete(name);
    else jar.set(name, value);
  }
  return res;
}

const env = {
  fetch: browserFetch, locks: null, window: null, BroadcastChannel: null, WebSocket: null,
  document: { get cookie() { return cookieHeader(); }, addEventListener() {} },
};
const client = (resources) => createAuthClient(
  { baseUrl: ISSUER, resources, restore: false, csrfCookie: "silentauth-csrf" }, env);
const aud = (jwt) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString()).aud;
const findings = {};

// Login names both APIs; a second page (a reload) naming only BILLING refreshes from the
// cookie, and its token must be for BILLING alone: the refresh carried `resource`.
const wide = client([BILLING, FILES]);
await wide.login("alice", "secret");
findings.login_aud = aud(await wide.getAccessToken());
const narrow = client([BILLING]);
findings.restored = await narrow.restore();
findings.refresh_aud = aud(await narrow.getAccessToken());

const one = client([BILLING]);
await one.login("alice", "secret");
findings.single_aud = aud(await one.getAccessToken());

try {
  await client(["https://unknown.example"]).login("alice", "secret");
  findings.unknown = "accepted";
} catch (error) {
  findings.unknown = { name: error.name, status: error.status, code: error.code, message: error.message };
}
try {
  client(["https://a.example https://b.example"]);
  findings.spaces = "accepted";
} catch (error) {
  findings.spaces = error.name;
}
for (const c of [wide, narrow, one]) c.destroy();
console.log(JSON.stringify(findings));
