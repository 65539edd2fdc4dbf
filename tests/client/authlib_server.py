"""An independent OAuth 2 server built from Authlib's RFC 6749/6750 parts.

Plain WSGI (no Flask, no Starlette), served by wsgiref on loopback: a token
endpoint with the password and refresh-token grants (rotating refresh tokens,
confidential client with HTTP Basic auth), opaque access tokens, and an RFC
6750 protected resource. Used to show TokenAuth works with any RFC 6749 server.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    ResourceProtector,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import (
    RefreshTokenGrant,
    ResourceOwnerPasswordCredentialsGrant,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator

CLIENT_ID, CLIENT_SECRET = "app", "app-secret"
USERS = {"alice": "secret"}
EXPIRES_IN = 60


class Client(ClientMixin):  # type: ignore[misc]
    def get_client_id(self) -> str:
        return CLIENT_ID

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, CLIENT_SECRET)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("password", "refresh_token")


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    data: dict[str, Any]
    user: str
    issued_at: float
    clock: Callable[[], float]
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.get_client_id() == CLIENT_ID

    def get_scope(self) -> str:
        return str(self.data.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.data["expires_in"])

    def is_expired(self) -> bool:
        return self.clock() >= self.issued_at + self.get_expires_in()

    def is_revoked(self) -> bool:
        return self.revoked


class Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {k: [v] for k, v in self._form.items()}


class Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, environ: dict[str, Any]) -> None:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        headers["Content-Type"] = environ.get("CONTENT_TYPE", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.raw = environ["wsgi.input"].read(length) if length else b""
        uri = f"http://{environ['HTTP_HOST']}{environ['PATH_INFO']}"
        super().__init__(environ["REQUEST_METHOD"], uri, headers=headers)
        is_form = headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        self._form = dict(parse_qsl(self.raw.decode())) if is_form else {}
        self.payload = Payload(self._form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class State:
    """Everything the server knows; ``calls`` counts grants by type."""

    clock: Callable[[], float]
    by_access: dict[str, Token] = field(default_factory=dict)
    by_refresh: dict[str, Token] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build(state: State) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: ``POST /token``, ``GET /me``, ``POST /echo``."""

    class PasswordGrant(ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

        def authenticate_user(self, username: str, password: str) -> str | None:
            return username if USERS.get(username) == password else None

    class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]
        INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

        def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
            token = state.by_refresh.get(refresh_token)
            return token if token is not None and not token.revoked else None

        def authenticate_user(self, credential: Token) -> str:
            return credential.user

        def revoke_old_credential(self, credential: Token) -> None:
            credential.revoked = True

    class Server(AuthorizationServer):  # type: ignore[misc]
        def query_client(self, client_id: str) -> Client | None:
            return Client() if client_id == CLIENT_ID else None

        def save_token(self, token: dict[str, Any], request: Request) -> None:
            record = Token(dict(token), str(request.user), state.clock(), state.clock)
            with state.lock:
                state.by_access[token["access_token"]] = record
                if "refresh_token" in token:
                    state.by_refresh[token["refresh_token"]] = record

        def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
            return None

        def create_oauth2_request(self, request: Request) -> Request:
            return request

        def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
            return status, body, headers

    server = Server()
    server.register_token_generator(
        "default",
        BearerTokenGenerator(
            access_token_generator=lambda **kw: secrets.token_urlsafe(24),
            refresh_token_generator=lambda **kw: secrets.token_urlsafe(32),
            expires_generator=lambda client, grant_type: EXPIRES_IN,
        ),
    )
    server.register_grant(PasswordGrant)
    server.register_grant(RefreshGrant)

    class Validator(BearerTokenValidator):  # type: ignore[misc]
        def authenticate_token(self, token_string: str) -> Token | None:
            return state.by_access.get(token_string)

    protector = ResourceProtector()
    protector.register_token_validator(Validator())

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        request = Request(environ)
        path = environ["PATH_INFO"]
        if path == "/token":
            with state.lock:
                state.calls[request.form.get("grant_type", "")] += 1
            status, body, headers = server.create_token_response(request)
        else:
            try:
                token = protector.validate_request(None, request)
            except OAuth2Error as error:
                status, body, headers = error.status_code, dict(error.get_body()), error.get_headers()
            else:
                status, headers = 200, [("Content-Type", "application/json")]
                body = json.loads(request.raw) if path == "/echo" else {"user": token.user}
        data = json.dumps(body).encode()
        start_response(f"{status} X", [*headers, ("Content-Length", str(len(data)))])
        return iter([data])

    return app


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 256  # 50 callers connect at once; the default 5 drops SYNs


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(state: State) -> Iterator[str]:
    """Serve on a loopback port; yields the base URL, stops on close."""
    httpd = make_server("127.0.0.1", 0, build(state), server_class=_Threading, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
