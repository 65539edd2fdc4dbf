// The demo page: every button goes through auth.fetch, and the log shows why each token
// arrived. Open the console: `demo.auth` is the client, try `await demo.auth.fetch("/api/me")`.
import { LoginError, SessionExpiredError, StepUpRequiredError, createAuthClient } from "/static/silentauth.js";
import { ServerPanel, readMetrics } from "/static/demo-server.js";
import { endedHow, explainEnd, sessionEndFallback } from "/static/demo-ending.js";
import { LivePanel } from "/static/demo-live.js";

const $ = (id) => document.getElementById(id);
// "Sleeping" the tab moves the client's clock forward, as a suspended laptop would.
let skew = 0;
const now = () => Date.now() + skew;

const auth = createAuthClient({ onSessionExpired: () => { demo.expiredCallbacks++; } }, { now });
const demo = { auth, expiredCallbacks: 0, refreshes: 0 };
window.demo = demo;
const panel = new ServerPanel(auth, { canAsk: tokenFresh, guarded, onFigures: serverEvents });
// Whether the service runs in demo mode (it answers {"demo": false} otherwise).
const mode = fetch("/auth/demo", { cache: "no-store" })
  .then((res) => (res.ok ? res.json() : {}))
  .catch(() => ({}));
const live = new LivePanel(auth, $);
demo.live = live;

const REASONS = {
  proactive: "refresh (proactive, before expiry)",
  expired: "refresh (token had expired when a request needed it)",
  reactive: "refresh (reactive, after a 401)",
  visible: "refresh (tab became visible)",
  online: "refresh (back online)",
  pageshow: "refresh (page shown again)",
  restore: "refresh (page load: session restored from the cookie)",
  retry: "refresh (retry after a failure)",
  realtime: "refresh (a live connection's deadline was near and no proactive refresh came)",
};

function log(text, kind = "") {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $("log").prepend(li);
}

auth.subscribe((e) => {
  if (e.type === "token" && e.source === "refresh") {
    demo.refreshes++;
    log(REASONS[e.reason] ?? `refresh (${e.reason})`, "refresh");
  } else if (e.type === "token" && e.source === "pushed") log("new token pushed by the server (New-Access-Token)", "pushed");
  else if (e.type === "token" && e.source === "other-tab") log("adopted the token from another tab (no refresh here)", "tab");
  else if (e.type === "token" && e.source === "login") log("logged in");
  else if (e.type === "refresh-skipped") log(`refresh skipped: another tab had just refreshed (${e.reason})`, "tab");
  else if (e.type === "refresh-error") log(`refresh failed, will retry: ${e.error.message}`, "bad");
  else if (e.type === "expired") ended(e.reason);
  else if (e.type === "logout") log("logged out (all tabs)");
  if (e.type === "token") {
    showApp();
    if (panel.listedFor !== auth.sessionId) panel.loadSessions(); // a new session: mark it at once
  }
});

/** The session is over: say what happened and what to do, from the server's own record. */
async function ended(reason) {
  demo.endedAt = Date.now();
  showLogin();
  setNotice(sessionEndFallback(reason));
  log(`session ended: ${endedHow(reason)}`, "ended");
  const explained = await explainEnd(reason, (await mode).demo === true);
  if (!explained || auth.isAuthenticated) return;
  setNotice(explained.text);
  log(explained.text, explained.theft ? "theft" : "ended");
}

function setNotice(text) {
  $("login-notice").hidden = !text;
  $("login-notice").textContent = text ?? "";
}

function showLogin() {
  $("app-view").hidden = true;
  $("devices").hidden = true;
  $("login-view").hidden = false;
  $("step-up-form").hidden = true;
}

function showApp() {
  if (!$("app-view").hidden) return;
  $("login-view").hidden = true;
  setNotice("");
  $("app-view").hidden = false;
  $("devices").hidden = false;
  $("result").textContent = "";
}

/** Fresh enough to send without the client refreshing first (its own rule, plus a second). */
function tokenFresh() {
  const claims = auth.claims;
  if (!auth.isAuthenticated || !claims) return false;
  const lifetime = (claims.exp - claims.iat) * 1000;
  return auth.expiresAt - now() > Math.min(5000, lifetime / 10) + 1000;
}

function tick() {
  if (!auth.isAuthenticated) return;
  const claims = auth.claims ?? {};
  const left = Math.max(0, auth.expiresAt - now());
  const lifetime = Math.max(1, (claims.exp - claims.iat) * 1000);
  $("who").textContent = claims.preferred_username ?? claims.sub;
  $("sid").textContent = claims.sid;
  $("countdown").textContent = (left / 1000).toFixed(1);
  $("token-state").textContent = left === 0 ? "expired: the next call refreshes it"
    : auth.proactivePaused ? "(proactive refresh paused)" : "";
  $("bar-fill").style.width = `${Math.min(100, (100 * left) / lifetime)}%`;
  $("bar-fill").classList.toggle("low", left < lifetime / 4);
  $("readable-cookies").textContent = document.cookie.split(/;\s*/).map((c) => c.split("=")[0]).join(", ") || "none";
  $("storage-keys").textContent = Object.keys(localStorage).join(", ") || "none";
}
setInterval(tick, 200);

async function guarded(label, fn) {
  $("result").textContent = `${label}…`;
  try {
    const outcome = await fn();
    $("result").textContent = outcome;
    log(outcome);
  } catch (err) {
    if (err instanceof SessionExpiredError) return; // the login form says why
    $("result").textContent = `${label} failed: ${err.message}`;
    log(`${label} failed: ${err.message}`, "bad");
  }
}

function serverEvents(figures, before) {
  if (before && figures.reuse > before.reuse) {
    log(`server panel: "reuse detected" rose to ${figures.reuse}: a session was revoked as stolen`, "theft");
  }
}

// -- pausing proactive refresh, in every tab of the demo ----------------------------------

const tabs = new BroadcastChannel("silentauth-demo");
function setPaused(paused, tell) {
  if (auth.proactivePaused === paused) return;
  auth.pauseProactive(paused);
  live.pause(paused);
  $("pause").checked = paused;
  log(paused
    ? "proactive refresh paused: the token will run out; then fire the 50 calls"
    : "proactive refresh resumed", "tab");
  if (tell) tabs.postMessage({ type: "pause", paused });
}
tabs.onmessage = ({ data }) => {
  if (data?.type === "pause") setPaused(Boolean(data.paused), false);
  else if (data?.type === "hello" && auth.proactivePaused) tabs.postMessage({ type: "pause", paused: true });
};
tabs.postMessage({ type: "hello" }); // a new tab takes the others' setting
$("pause").addEventListener("change", (event) => setPaused(event.target.checked, true));

// -- the actions ------------------------------------------------------------------------

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  $("login-error").textContent = "";
  try {
    await auth.login(form.get("username"), form.get("password"));
  } catch (err) {
    $("login-error").textContent = err instanceof LoginError ? err.message : `Login failed: ${err.message}`;
  }
});

$("logout").addEventListener("click", async () => {
  await auth.logout();
  showLogin();
  setNotice("You logged out, in every tab. Log in again to continue.");
});

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "es"}`;

$("burst").addEventListener("click", () => guarded("50 parallel calls", async () => {
  const before = demo.refreshes;
  const wasExpired = auth.expiresAt <= now();
  const server = await readMetrics();
  const started = performance.now();
  const outcomes = await Promise.allSettled(Array.from({ length: 50 }, () => auth.fetch("/api/me")));
  const ms = Math.round(performance.now() - started);
  const ok = outcomes.filter((o) => o.status === "fulfilled" && o.value.ok).length;
  const after = await readMetrics();
  const here = demo.refreshes - before;
  const all = server && after ? after.rotated + after.grace - server.rotated - server.grace : "?";
  let text = `${ok}/50 OK, ${50 - ok} failed, in ${ms} ms: ${plural(here, "refresh")} in this tab, `
    + `${plural(all, "refresh")} on the server for every tab (from /metrics)`;
  if (!wasExpired && here === 0) {
    text += ". The token was still valid: pause proactive refresh, let it run out, and fire again.";
  }
  return text;
}));

$("long-form").addEventListener("click", () => guarded("Long form", async () => {
  skew += Math.max(0, auth.expiresAt - now()) + 1000;
  log("tab slept past the token's expiry (client clock moved forward)");
  const form = {
    title: "A long form typed for an hour",
    text: "All work and no play makes Jack a dull boy. ".repeat(5000),
    fields: Array.from({ length: 200 }, (_, i) => ({ name: `field${i}`, value: `ü€ ${i}` })),
  };
  const sent = JSON.stringify(form);
  const res = await auth.fetch("/api/echo", { method: "POST", headers: { "Content-Type": "application/json" }, body: sent });
  const back = JSON.stringify(await res.json());
  const intact = res.ok && back === sent;
  return intact ? `Long form (${Math.round(sent.length / 1024)} KB) arrived intact` : `Long form damaged (HTTP ${res.status})`;
}));

async function pay() {
  const res = await auth.fetch("/api/payments", { method: "POST" });
  const body = await res.json();
  return `Payment ${body.status} (login at ${new Date(body.auth_time * 1000).toLocaleTimeString()})`;
}

$("payments").addEventListener("click", () => guarded("Payment", async () => {
  try {
    return await pay();
  } catch (err) {
    if (!(err instanceof StepUpRequiredError)) throw err;
    $("step-up-form").hidden = false;
    return `Step-up required: log in again within ${err.maxAge} s to pay.`;
  }
}));

$("step-up-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const password = new FormData(event.target).get("password");
  guarded("Step-up", async () => {
    log("step-up: password entered again, a fresh login replaces this session");
    await auth.login(auth.claims.preferred_username, password);
    $("step-up-form").hidden = true;
    return pay();
  });
});

$("revoke-self").addEventListener("click", () => guarded("Revoke", async () => {
  // Any device of the same user may end this session; here we play that device.
  await auth.fetch(`/auth/sessions/${encodeURIComponent(auth.sessionId)}`, { method: "DELETE" });
  log("this session was revoked from another device");
  await auth.fetch("/api/me"); // 401 -> refresh refused -> the login form says why
  return "Still signed in?";
}));

$("replay").addEventListener("click", () => guarded("Replay", async () => {
  const res = await auth.fetch("/auth/demo/old-refresh-token");
  const stolen = await res.json();
  if (!res.ok) return stolen.error_description ?? `No old token (HTTP ${res.status})`;
  if (!stolen.refresh_token) return stolen.detail;
  log(`a thief copied this session's previous refresh token …${stolen.refresh_token.slice(-6)}, `
    + `replaced at the last refresh (${new Date(stolen.replaced_at * 1000).toLocaleTimeString()})`, "theft");
  if (stolen.wait > 0) {
    log(`the thief waits ${stolen.wait.toFixed(1)} s for the ${stolen.reuse_grace} s grace window to close: `
      + "inside it a replay looks like a racing tab and gets the same new token", "theft");
    await new Promise((resolve) => setTimeout(resolve, stolen.wait * 1000 + 100));
  }
  // As the thief would: the token in a form to the token endpoint, no cookies.
  const answer = await fetch("/auth/token", {
    method: "POST",
    credentials: "omit",
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: stolen.refresh_token }),
  });
  const body = await answer.json().catch(() => ({}));
  demo.replayAnsweredAt = Date.now();
  if (answer.ok) return "The replay was accepted: it came inside the grace window.";
  log(`the server to the thief: ${answer.status} ${body.error}: ${body.error_description}`, "theft");
  await auth.fetch("/api/me"); // this tab now meets the revoked session, and tells the others
  return "Still signed in?";
}));

// -- start ------------------------------------------------------------------------------

mode.then(({ demo: on }) => {
  if (on) return;
  $("replay").disabled = true;
  $("replay").title = "Only in demo mode (silentauth serve --demo): no other mode keeps old refresh tokens.";
});
auth.ready.then((signedIn) => {
  if (signedIn) showApp();
  else showLogin();
  live.start();
});
panel.start();
