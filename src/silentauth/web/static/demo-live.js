// The live panel: one auth.websocket("/api/ws") that keeps streaming numbered ticks while
// access tokens come and go. The server numbers its messages per connection from 0, so a
// lost or repeated message shows at once as a gap; each new token goes to the server
// in-band (a "reauth" message), never in the URL, and the panel writes a line for it.

const MAX_LINES = 8; // the panel's own log: a few lines, newest first

// The client's own word when it learns from another tab that the session is over; the
// server's reason ("session revoked") then reached only that tab's socket.
const CLIENT_GUESS = "session expired";

/** Live ticks from `/api/ws`, opened after login, stopped for good when the session ends. */
export class LivePanel {
  /**
   * @param {import("/static/silentauth.js").AuthClient} auth
   * @param {(id: string) => HTMLElement} $ finds an element of the page by id
   */
  constructor(auth, $) {
    this.auth = auth;
    /** @type {{ sid: string, reason: string } | null} the server's reason, heard by another tab */
    this.heard = null;
    // Tabs tell each other why the server ended a session's sockets: whichever tab heard it
    // first, every panel then shows the server's reason rather than the client's guess.
    this.tabs = new BroadcastChannel("silentauth-demo-live");
    this.tabs.onmessage = ({ data }) => this.#onHeard(data);
    this.$ = $;
    this.socket = null;
    this.stats = { ticks: 0, gaps: 0, reauths: 0, reconnects: 0, lastSeq: -1, stopped: null };
    this.next = 0; // the sequence number the current connection should send next
    this.lastSent = null; // the token the server last got from the socket
    auth.subscribe((e) => this.#onAuth(e));
  }

  /** Open the socket if signed in and none is open: after login, or on a page load. */
  start() {
    if (!this.auth.isAuthenticated || this.auth.proactivePaused || (this.socket && !this.socket.closed)) return;
    this.stats = { ticks: 0, gaps: 0, reauths: 0, reconnects: 0, lastSeq: -1, stopped: null };
    this.next = 0;
    this.$("live-lines").replaceChildren();
    this.$("live").hidden = false; // and it stays, stopped, after the session ends
    const sid = this.auth.sessionId;
    const ws = this.auth.websocket("/api/ws", undefined, { maxDelay: 5000 });
    this.socket = ws;
    this.sid = sid;
    ws.onopen = () => {
      // A reconnection is a new connection: the server numbers it from 0 again.
      this.next = 0;
      this.stats.reconnects = ws.reconnects;
      this.lastSent = ws.sentToken;
      this.line(ws.reconnects ? "reconnected, token sent in-band again" : "connected, token sent as the first message");
    };
    ws.onmessage = (event) => this.#onMessage(JSON.parse(event.data));
    ws.addEventListener("reconnecting", (e) => this.line(`connection dropped (${e.code} ${e.reason}), reconnecting`, "bad"));
    ws.onclose = (event) => {
      const heard = this.heard?.sid === sid ? this.heard.reason : null;
      const reason = event.reason === CLIENT_GUESS && heard ? heard : event.reason;
      this.stats.stopped = reason || `code ${event.code}`;
      this.stats.stoppedAt = Date.now();
      this.line(`stopped: ${this.stats.stopped} (${event.code} ${event.reason})`, "ended");
      this.show();
      if (event.code === 4401 && event.reason !== CLIENT_GUESS) this.tabs.postMessage({ type: "stopped", sid, reason: event.reason });
    };
    this.show();
  }

  /** @param {{ type: string, seq: number }} message */
  #onMessage(message) {
    if (message.seq !== this.next) this.stats.gaps++;
    this.next = message.seq + 1;
    this.stats.lastSeq = message.seq;
    if (message.type === "tick") this.stats.ticks++;
    this.#noticeReauth();
    this.show();
  }

  /**
   * Close while proactive refresh is paused, open again when it resumes: an open socket
   * renews its token before the server's deadline, so the token would never run out.
   * @param {boolean} paused
   */
  pause(paused) {
    if (!paused) this.start();
    else if (this.socket && !this.socket.closed) this.socket.close(1000, "paused with proactive refresh");
  }

  /** @param {{ type: string, sid: string, reason: string }} data */
  #onHeard(data) {
    if (data?.type !== "stopped") return;
    this.heard = { sid: data.sid, reason: data.reason };
    if (this.stats.stopped !== CLIENT_GUESS || this.sid !== data.sid) return;
    this.stats.stopped = data.reason;
    this.stats.stoppedAt = Date.now();
    this.line(`another tab heard the server's reason: ${data.reason}`, "ended");
    this.show();
  }

  /** @param {{ type: string }} event */
  #onAuth(event) {
    if (event.type === "token" && (!this.socket || this.socket.closed)) this.start(); // a (new) login
  }

  // The socket hands every new token to the server itself (a "reauth" message; a refusal
  // would close it 4401 and show as a reconnection): the panel notices the token change.
  #noticeReauth() {
    const ws = this.socket;
    if (!ws || ws.readyState !== 1 || ws.sentToken === this.lastSent) return;
    this.lastSent = ws.sentToken;
    this.stats.reauths++;
    this.line(`re-authenticated in-band with the new token …${String(ws.sentToken).slice(-6)}`, "refresh");
  }

  /**
   * One line in the panel's log, newest first.
   * @param {string} text
   * @param {string} [kind]
   */
  line(text, kind = "") {
    const li = document.createElement("li");
    li.className = kind;
    li.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    const list = this.$("live-lines");
    list.prepend(li);
    while (list.children.length > MAX_LINES) list.lastElementChild?.remove();
  }

  show() {
    const s = this.stats;
    this.$("live-seq").textContent = s.lastSeq < 0 ? "–" : String(s.lastSeq);
    this.$("live-ticks").textContent = String(s.ticks);
    this.$("live-gaps").textContent = String(s.gaps);
    this.$("live-reauths").textContent = String(s.reauths);
    this.$("live-reconnects").textContent = String(s.reconnects);
    const state = this.$("live-state");
    state.textContent = s.stopped ? `stopped: ${s.stopped}` : this.socket?.readyState === 1 ? "streaming" : "connecting…";
    state.className = s.stopped ? "live-state stopped" : "live-state";
    this.$("live-gaps").parentElement?.classList.toggle("alarm", s.gaps > 0);
  }
}
