"""An existing FastAPI application that hands its sessions to embedded silentauth.

The application keeps its users (SQLAlchemy, SQLite, its own password
hashing), its own login page and a one-time-code login. silentauth runs in
the same process, mounted at ``/sa``: it checks passwords for native clients
through the application's table (the identity protocol), starts a session
after the application's own logins (:meth:`SilentAuth.start_session`, with
how the user logged in as a session claim), puts the application's roles in
every access token (the claims hook) and refreshes them silently. The application's API is protected by the resource kit against
the in-process key ring.

Run (plain HTTP, development only)::

    SILENTAUTH_SECRET_KEY=$(python -c 'import secrets;print(secrets.token_urlsafe(32))') \\
    SILENTAUTH_COOKIE_SECURE=false uvicorn --factory examples.adopt.app:from_environment --port 8000
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from examples.adopt.users import UserTable
from silentauth.clock import Clock, system_clock
from silentauth.core.passwords import Passwords
from silentauth.resource.fastapi import CurrentPrincipal, require_claim
from silentauth.resource.verify import Principal
from silentauth.server.embed import SilentAuth
from silentauth.settings import Settings

PREFIX = "/sa"
CODE_TTL = 300.0
Admin = Annotated[Principal, Depends(require_claim("roles", "admin"))]


class PasswordLogin(BaseModel):
    """The login page's form."""

    email: str
    password: str
    remember: bool = False


class CodeRequest(BaseModel):
    """Ask for a one-time code by e-mail."""

    email: str


class CodeLogin(BaseModel):
    """Log in with the code that was mailed."""

    email: str
    code: str


class PasswordChange(BaseModel):
    """A signed-in user's new password."""

    old_password: str
    new_password: str


class RoleChange(BaseModel):
    """An administrator sets a user's roles."""

    email: str
    roles: list[str]


class Outbox:
    """Where the application "sends" e-mail: one-time codes, newest last."""

    def __init__(self) -> None:
        self.codes: dict[str, tuple[str, float]] = {}

    def send_code(self, email: str, now: float) -> None:
        """Make and "mail" a code for ``email``."""
        self.codes[email.lower()] = (f"{secrets.randbelow(10**6):06d}", now + CODE_TTL)

    def take(self, email: str, code: str, now: float) -> bool:
        """Whether ``code`` is the live code for ``email`` (it is used up either way)."""
        expected = self.codes.pop(email.lower(), None)
        return expected is not None and expected[1] > now and secrets.compare_digest(expected[0], code)


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example app</title></head>
<body>
<h1>Example app</h1>
<form id="password"><input name="email" placeholder="e-mail"><input name="password" type="password">
<label><input name="remember" type="checkbox"> remember me</label><button>Log in</button></form>
<form id="code"><input name="email" placeholder="e-mail"><button name="send">Mail me a code</button>
<input name="code" placeholder="code"><button name="login">Log in with code</button></form>
<pre id="out"></pre>
<script type="module">
import { createAuthClient } from "%(prefix)s/static/silentauth.js";
const auth = createAuthClient({ baseUrl: location.origin + "%(prefix)s" });
window.auth = auth;
const out = document.getElementById("out");
async function post(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                 body: JSON.stringify(body) });
  if (!res.ok) throw new Error((await res.json()).detail || res.status);
  return res.json();
}
// After the application's own login the cookies are set: the client takes the session over.
window.appLogin = async (email, password, remember) => {
  await post("/login", { email, password, remember });
  return auth.restore();
};
window.codeLogin = async (email, code) => { await post("/login/code", { email, code }); return auth.restore(); };
window.profile = async () => (await auth.fetch("/api/profile")).json();
document.getElementById("password").onsubmit = async (e) => {
  e.preventDefault(); const f = e.target;
  await window.appLogin(f.email.value, f.password.value, f.remember.checked);
  out.textContent = JSON.stringify(await window.profile());
};
auth.restore().then(async (ok) => { if (ok) out.textContent = JSON.stringify(await window.profile()); });
</script></body></html>
"""


def create_app(
    settings: Settings,
    database_url: str,
    *,
    clock: Clock = system_clock,
    scrypt_n: int = 2**14,
    passwords: Passwords | None = None,
    background: bool = True,
) -> FastAPI:
    """The application, with silentauth embedded at ``/sa``."""
    users = UserTable(database_url, scrypt_n=scrypt_n)
    outbox = Outbox()
    auth = SilentAuth(
        settings,
        prefix=PREFIX,
        clock=clock,
        passwords=passwords,
        identity=users,
        claims=users.claims,
        background=background,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with auth.lifespan(app):
            yield
        users.close()

    app = FastAPI(lifespan=lifespan)
    auth.install(app)
    app.state.users, app.state.outbox, app.state.auth = users, outbox, auth

    def device(request: Request) -> str:
        return request.headers.get("user-agent", "")[:200]

    @app.get("/", response_class=HTMLResponse)
    async def login_page() -> str:
        return LOGIN_PAGE % {"prefix": PREFIX}

    @app.post("/login")
    async def login(body: PasswordLogin, request: Request, response: Response) -> dict[str, Any]:
        user = await users.verify(body.email, body.password)
        if user is None:
            raise HTTPException(401, "wrong e-mail or password")
        # How the user proved who they are (RFC 8176 ``amr``) is known only at
        # login: a session claim, carried by every refresh of this session.
        started = await auth.start_session(
            user.id, username=user.email, device=device(request), remember=body.remember, claims={"amr": ["pwd"]}
        )
        started.apply(response)
        return {"access_token": started.access_token, "expires_in": started.expires_in}

    @app.post("/login/code/request", status_code=202)
    async def request_code(body: CodeRequest) -> dict[str, str]:
        if await users.find(body.email) is not None:
            outbox.send_code(body.email, clock())
        return {"status": "sent if the address is known"}

    @app.post("/login/code")
    async def code_login(body: CodeLogin, request: Request, response: Response) -> dict[str, Any]:
        user = await users.find(body.email)
        if user is None or not outbox.take(body.email, body.code, clock()):
            raise HTTPException(401, "wrong or expired code")
        started = await auth.start_session(
            user.id, username=user.email, device=device(request), claims={"amr": ["otp"]}
        )
        started.apply(response)
        return {"access_token": started.access_token, "refresh_token": started.refresh_token}

    @app.get("/api/profile")
    async def profile(p: CurrentPrincipal) -> dict[str, Any]:
        return {"id": p.subject, "email": p.username, "roles": p.claim("roles", []), "amr": p.claim("amr", [])}

    @app.post("/api/password", status_code=204)
    async def change_password(body: PasswordChange, p: CurrentPrincipal) -> None:
        user = await users.verify(p.username, body.old_password)
        if user is None or user.id != p.subject:
            raise HTTPException(403, "wrong password")
        await users.set_password(user.id, body.new_password)
        # Every other device logs in again; this one keeps its session.
        await auth.password_changed(user.id, keep_session=p.session_id)

    @app.post("/api/admin/roles", status_code=204)
    async def set_roles(body: RoleChange, p: Admin) -> None:
        user = await users.find(body.email)
        if user is None:
            raise HTTPException(404, "no such user")
        await users.set_roles(user.id, body.roles)

    @app.get("/api/admin/report")
    async def report(p: Admin) -> dict[str, str]:
        return {"report": "for administrators", "by": p.subject}

    return app


def from_environment() -> FastAPI:
    """``uvicorn --factory examples.adopt.app:from_environment``: settings from ``SILENTAUTH_*``."""
    import os

    return create_app(Settings.load(), os.environ.get("APP_DATABASE_URL", "sqlite:///example-app.db"))
