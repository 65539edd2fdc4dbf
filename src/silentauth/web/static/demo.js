// The demo page: every button goes through auth.fetch, and the log shows why each token
// arrived. Open the console: `demo.auth` is the client, try `await demo.auth.fetch("/api/me")`.
import { LoginError, SessionExpiredError, StepUpRequiredError, createAuthClient } from "/static/silentauth.js";

const $ = (id) => document.getElementById(id);
// "Sleeping" the tab moves the client's clock forward, as a suspended laptop would.
let skew = 0;
const now = () => Date.now() + skew;

const auth = createAuthClient({ onSessionExpired: () => showLogin("Your session ended. Please log in again.") }, { now });
const demo = { auth, expiredCallbacks: 0, refreshes: 0 };
window.demo = demo;

const REASONS = {
  proactive: "refresh (proactive, before expiry)",
  expired: "refresh (token had expired when a request needed it)",
  reactive: "refresh (reactive, after a 401)",
  visible: "refresh (tab became visible)",
  online: "refresh (back online)",
  pageshow: "refresh (page shown again)",
  restore: "refresh (page load: session restored from the cookie)",
  retry: "refresh (retry after a failure)",
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
  else if (e.type === "token" && e.source === "other-tab") log("new token from another tab (no refresh here)", "tab");
  else if (e.type === "token" && e.source === "login") log("logged in");
  else if (e.type === "refresh-skipped") log(`refresh skipped: another tab had just refreshed (${e.reason})`, "tab");
  else if (e.type === "refresh-error") log(`refresh failed, will retry: ${e.error.message}`, "bad");
  else if (e.type === "expired") log(`session over (${e.reason})`, "bad");
  else if (e.type === "logout") log("logged out");
  if (e.type === "token") showApp();
});

function showLogin(notice) {
  if (notice) demo.expiredCallbacks++;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-notice").hidden = !notice;
  $("login-notice").textContent = notice ?? "";
  $("step-up-form").hidden = true;
}

function showApp() {
  if (!$("app-view").hidden) return;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("result").textContent = "";
  loadSessions();
}

function tick() {
  if (auth.isAuthenticated) {
    const claims = auth.claims ?? {};
    const left = Math.max(0, auth.expiresAt - now());
    const lifetime = Math.max(1, (claims.exp - claims.iat) * 1000);
    $("who").textContent = claims.preferred_username ?? claims.sub;
    $("sid").textContent = claims.sid;
    $("countdown").textContent = (left / 1000).toFixed(1);
    $("bar-fill").style.width = `${Math.min(100, (100 * left) / lifetime)}%`;
    $("bar-fill").classList.toggle("low", left < lifetime / 4);
    $("readable-cookies").textContent = document.cookie.split(/;\s*/).map((c) => c.split("=")[0]).join(", ") || "none";
    $("storage-keys").textContent = Object.keys(localStorage).join(", ") || "none";
  }
}
setInterval(tick, 200);

async function guarded(label, fn) {
  $("result").textContent = `${label}…`;
  try {
    const outcome = await fn();
    $("result").textContent = outcome;
    log(outcome);
  } catch (err) {
    if (err instanceof SessionExpiredError) return; // onSessionExpired shows the login form
    $("result").textContent = `${label} failed: ${err.message}`;
  }
}

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
});

$("burst").addEventListener("click", () => guarded("50 parallel calls", async () => {
  const before = demo.refreshes;
  const started = performance.now();
  const responses = await Promise.all(Array.from({ length: 50 }, () => auth.fetch("/api/me")));
  const ok = responses.filter((r) => r.ok).length;
  const ms = Math.round(performance.now() - started);
  return `${ok}/50 OK in ${ms} ms, ${demo.refreshes - before} refresh(es) in this tab`;
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
  await auth.fetch("/api/me"); // 401 -> refresh -> invalid_grant -> login form
  return "Still signed in?";
}));

async function loadSessions() {
  const res = await auth.fetch("/auth/sessions").catch(() => null);
  if (!res?.ok) return;
  const rows = await res.json();
  const tbody = $("sessions");
  tbody.replaceChildren(...rows.map((s) => {
    const tr = document.createElement("tr");
    tr.className = s.current ? "current" : "";
    const cells = [s.id.slice(0, 8), time(s.created), time(s.last_used), browser(s.user_agent), s.ip];
    for (const text of cells) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
    const button = Object.assign(document.createElement("button"), { textContent: "log out this device" });
    button.addEventListener("click", () => guarded("Device log-out", async () => {
      await auth.fetch(`/auth/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      if (s.current) await auth.fetch("/api/me");
      await loadSessions();
      return `Session ${s.id.slice(0, 8)} logged out`;
    }));
    const td = document.createElement("td");
    td.append(button);
    tr.append(td);
    return tr;
  }));
}
const time = (t) => new Date(t * 1000).toLocaleString();
const browser = (ua) => /(Firefox|Edg|Chrome|Chromium|Safari)\/[\d.]+/.exec(ua ?? "")?.[0] ?? (ua || "?");
$("reload-sessions").addEventListener("click", loadSessions);

auth.ready.then((signedIn) => (signedIn ? showApp() : showLogin()));
