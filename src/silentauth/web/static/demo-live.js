// The live panel: one auth.websocket("/api/ws") that keeps streaming numbered ticks while
// access tokens come and go. The server numbers its messages per connection from 0, so a
// lost or repeated message shows at once as a gap; each new token goes to the server
// in-band (a "reauth" message), never in the URL, and the panel writes a line for it.

const MAX_LINES = 8; // the panel's own log: a few lines, newest first

// Why a connection stopped, in words, by the server's close reason (the socket's close
// event carries the server's code and reason; "session expired" is the client's own word
// when the server said nothing within a second).
const WORDS = {
  "session revoked": "the session was revoked (logged out everywhere, from another device, or by an administrator)",
  "token expired": "the access token expired and no newer one came",
  "session expired": "the token service refused to renew the session",
  "logged out": "you logged out",
};

/**
 * @param {number} code
 * @param {string} reason
 */
export function stopWords(code, reason) {
  if (WORDS[reason]) return WORDS[reason];
  if (code === 4403) return `the server refused the token: ${reason || "another user or session"}`;
  if (code === 1000) return reason || "closed";
  return `closed by the server (${code}${reason ? ` ${reason}` : ""})`;
}

/** Live ticks from `/api/ws`, opened after login, stopped for good when the session ends. */
export class LivePanel {
  /**
   * @param {import("/static/silentauth.js").AuthClient} auth
   * @param {(id: string) => HTMLElement} $ finds an element of the page by id
   */
  constructor(auth, $) {
    this.auth = auth;
    this.$ = $;
    this.socket = null;
    this.stats = LivePanel.#fresh();
    this.next = 0; // the sequence number the current connection should send next
    this.lastSent = null; // the token the server last got from the socket
    auth.subscribe((e) => this.#onAuth(e));
  }

  static #fresh() {
    return { ticks: 0, gaps: 0, reauths: 0, reconnects: 0, lastSeq: -1, stopped: null, code: 0, words: "", stoppedAt: 0 };
  }

  /** Open the socket if signed in and none is open: after login, or on a page load. */
  start() {
    if (!this.auth.isAuthenticated || (this.socket && !this.socket.closed)) return;
    this.stats = LivePanel.#fresh();
    this.next = 0;
    this.$("live-lines").replaceChildren();
    this.$("live").hidden = false; // and it stays, stopped, after the session ends
    const ws = this.auth.websocket("/api/ws", undefined, { maxDelay: 5000 });
    this.socket = ws;
    ws.onopen = () => {
      // A reconnection is a new connection: the server numbers it from 0 again.
      this.next = 0;
      this.stats.reconnects = ws.reconnects;
      this.lastSent = ws.sentToken;
      this.line(ws.reconnects ? "reconnected, token sent in-band again" : "connected, token sent as the first message");
      this.show();
    };
    ws.onmessage = (event) => this.#onMessage(JSON.parse(event.data));
    ws.addEventListener("reconnecting", (e) => {
      if (e.delay === Infinity) {
        // Proactive refresh is paused: the socket lets its token run out and waits.
        this.line(`the server closed at the token's deadline (${e.code} ${e.reason}); paused, so the socket `
          + "waits for the next token, which the next request's refresh brings");
      } else if (e.reason !== "new token") {
        this.line(`connection dropped (${e.code} ${e.reason}), reconnecting`, "bad");
      }
      this.show();
    });
    ws.onclose = (event) => {
      this.stats.stopped = event.reason || `code ${event.code}`;
      this.stats.code = event.code;
      this.stats.words = stopWords(event.code, event.reason);
      this.stats.stoppedAt = Date.now();
      this.line(`stopped: ${this.stats.words} (the server said ${event.code} ${event.reason})`, "ended");
      this.show();
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
   * Proactive refresh paused or resumed: the socket stays open and follows the client
   * (paused, it lets its token run out and reconnects with the next one).
   * @param {boolean} paused
   */
  pause(paused) {
    if (!this.socket || this.socket.closed) return;
    this.line(paused ? "paused: the socket will not renew its token ahead of expiry either"
      : "resumed: the next token goes to the socket in-band");
  }

  /**
   * A new session (a login here, or one adopted from another tab after this one ended)
   * opens the panel again; a socket closed on purpose (code 1000) stays closed.
   * @param {{ type: string, source?: string }} event
   */
  #onAuth(event) {
    if (event.type !== "token" || (this.socket && !this.socket.closed)) return;
    const ended = this.stats.stopped !== null && this.stats.code !== 1000;
    if (!this.socket || event.source === "login" || (event.source === "other-tab" && ended)) this.start();
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
    const ws = this.socket;
    state.textContent = s.stopped ? `stopped: ${s.words}`
      : ws?.readyState === 1 ? "streaming" : ws?.waiting ? "waiting for a new token" : "connecting…";
    state.className = s.stopped ? "live-state stopped" : "live-state";
    this.$("live-gaps").parentElement?.classList.toggle("alarm", s.gaps > 0);
  }
}
