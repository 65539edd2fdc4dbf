// Why a session ended, in words, with what to do next. The client knows only how it
// found out (a refused refresh, another tab, a page load); in demo mode the server says
// what it recorded about the session in this browser's refresh cookie.

const HOW = {
  "other-tab": "another tab of this browser ended the session.",
  restore: "the page was loaded with a session that had already ended.",
};

/** What the client alone can say, by the way it found out. */
export function sessionEndFallback(reason) {
  return `Your session is over: ${endedHow(reason)} Please log in again.`;
}

/** How the client found out, in a few words. */
export function endedHow(reason) {
  return HOW[reason] ?? "the server refused to renew it.";
}

const REVOKED = {
  reuse: {
    theft: true,
    text: "Ended as a suspected theft: a refresh token that had already been replaced was used "
      + "again, so the server revoked the whole session, in every tab and on every device. "
      + "Log in again; in real life, also change your password.",
  },
  logout: { text: "You logged out (in this or another tab or window). Log in again to continue." },
  logout_all: { text: "You logged out on all your devices. Log in again to continue." },
  device: { text: "This session was logged out from another device, in its list of your devices. Log in again to continue." },
  admin: { text: "An administrator ended this session. Log in again to continue." },
};

/**
 * The server's account of the session in the cookie, as `{ text, theft }`, or null when
 * there is none to give (not demo mode, no answer).
 * @param {string} reason how the client found out
 * @param {boolean} demoMode whether /auth/demo said the helpers are on
 */
export async function explainEnd(reason, demoMode) {
  if (!demoMode) return null;
  let end;
  try {
    const res = await fetch("/auth/demo/session-end", { cache: "no-store" });
    if (!res.ok) return null;
    end = await res.json();
  } catch {
    return null;
  }
  if (end.state === "revoked") {
    return REVOKED[end.reason] ?? { text: `The session was revoked (${end.reason}). Log in again to continue.` };
  }
  if (end.state === "expired") {
    return { text: "Your session expired: unused for too long, or past its maximum age. Log in again to continue." };
  }
  if (end.state === "none" && reason === "other-tab") {
    return { text: "You logged out in another tab. Log in again to continue." };
  }
  if (end.state === "live") {
    return { text: "This tab's session ended, and another tab has logged in since: reload to join it." };
  }
  return null;
}
