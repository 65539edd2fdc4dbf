// The demo page's server panel: counters from /metrics (Prometheus text, parsed here)
// and this user's sessions from /auth/sessions, read every second while the tab is seen.

const $ = (id) => document.getElementById(id);

/**
 * Samples of the Prometheus text format (version 0.0.4): name, labels and value per line.
 * @param {string} text
 * @returns {{ name: string, labels: Record<string, string>, value: number }[]}
 */
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const [, key, value] of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function total(samples, name, labels = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The figures the panel shows, from parsed samples. */
export function figures(samples) {
  const refresh = (outcome) => total(samples, "silentauth_refresh_total", { outcome });
  const batches = total(samples, "silentauth_refresh_batch_size_count");
  const buckets = samples
    .filter((s) => s.name === "silentauth_refresh_batch_size_bucket" && s.labels.le !== "+Inf")
    .map((s) => ({ le: Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
  const all = buckets.find((b) => b.count >= batches);
  const revokedBy = {};
  for (const s of samples.filter((x) => x.name === "silentauth_sessions_revoked_total" && x.value > 0)) {
    revokedBy[s.labels.reason] = s.value;
  }
  return {
    rotated: refresh("rotated"),
    grace: refresh("grace"),
    reuse: refresh("reuse_detected"),
    refused: refresh("expired") + refresh("invalid"),
    renewals: total(samples, "silentauth_renewal_total"),
    revoked: total(samples, "silentauth_sessions_revoked_total"),
    revokedBy,
    batches,
    batch: batches ? (total(samples, "silentauth_refresh_batch_size_sum") / batches).toFixed(1) : "–",
    largest: batches ? `largest ≤ ${all ? all.le : "128+"}` : "",
  };
}

/** Read /metrics now: the figures, or null if the service did not answer. */
export async function readMetrics() {
  try {
    const res = await fetch("/metrics", { cache: "no-store" });
    return res.ok ? figures(parseMetrics(await res.text())) : null;
  } catch {
    return null;
  }
}

export class ServerPanel {
  /**
   * @param {import("./silentauth.js").AuthClient} auth
   * @param {{ canAsk: () => boolean, guarded: (label: string, fn: () => Promise<string>) => void,
   *   onFigures?: (now: object, before: object | null) => void }} hooks
   *   canAsk: whether the token is fresh enough to list sessions without causing a refresh
   */
  constructor(auth, hooks) {
    this.auth = auth;
    this.hooks = hooks;
    this.last = null;
    this.listedFor = null;
    this.busy = false;
    $("reload-sessions").addEventListener("click", () => this.loadSessions());
  }

  start(ms = 1000) {
    this.update();
    setInterval(() => this.update(), ms);
  }

  async update() {
    if (this.busy || document.visibilityState === "hidden") return;
    this.busy = true;
    try {
      await Promise.all([this.showMetrics(), this.hooks.canAsk() ? this.loadSessions() : this.noteStale()]);
    } finally {
      this.busy = false;
    }
  }

  async showMetrics() {
    const now = await readMetrics();
    if (!now) return;
    for (const tile of document.querySelectorAll("#counters .tile")) {
      const key = tile.dataset.metric;
      const value = now[key];
      const b = tile.querySelector("b");
      tile.classList.toggle("hot", tile.classList.contains("alarm") && value > 0);
      if (key === "batch") tile.querySelector("small").textContent = now.largest;
      if (b.textContent !== String(value)) {
        b.textContent = String(value);
        if (this.last) {
          // Restart the highlight: a change is what the visitor should look at.
          tile.classList.remove("bumped");
          void tile.offsetWidth;
          tile.classList.add("bumped");
        }
      }
    }
    const reasons = Object.entries(now.revokedBy).map(([reason, n]) => `${reason} ${n}`).join(", ");
    $("revoked-detail").textContent = reasons ? `Sessions revoked by reason: ${reasons}.` : "";
    this.hooks.onFigures?.(now, this.last);
    this.last = now;
  }

  noteStale() {
    if (this.auth.isAuthenticated) {
      $("sessions-note").textContent = "The token has run out: the list waits for the next call, so that "
        + "reading it is not what refreshes the token.";
    }
  }

  async loadSessions() {
    if (!this.auth.isAuthenticated) return;
    const res = await this.auth.fetch("/auth/sessions").catch(() => null);
    if (!res?.ok) return;
    const rows = await res.json();
    this.listedFor = this.auth.sessionId;
    $("sessions-note").textContent = "";
    $("sessions").replaceChildren(...rows.map((s) => this.row(s)));
  }

  row(s) {
    const tr = document.createElement("tr");
    tr.className = s.current ? "current" : "";
    const cells = [s.id.slice(0, 8), time(s.created), time(s.last_used), browser(s.user_agent), s.ip];
    for (const text of cells) tr.append(Object.assign(document.createElement("td"), { textContent: text }));
    const button = Object.assign(document.createElement("button"), { textContent: "log out this device" });
    button.addEventListener("click", () => this.hooks.guarded("Device log-out", async () => {
      await this.auth.fetch(`/auth/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
      if (s.current) await this.auth.fetch("/api/me"); // meets the revoked session: every tab ends
      await this.loadSessions();
      return `Session ${s.id.slice(0, 8)} logged out`;
    }));
    const td = document.createElement("td");
    td.append(button);
    tr.append(td);
    return tr;
  }
}

const time = (t) => new Date(t * 1000).toLocaleString();
const browser = (ua) => /(Firefox|Edg|Chrome|Chromium|Safari)\/[\d.]+/.exec(ua ?? "")?.[0] ?? (ua || "?");
