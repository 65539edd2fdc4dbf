"""One exception hierarchy for the whole project.

Server-side errors carry their OAuth ``error`` code and HTTP status on the
class (joserfc style), so RFC 6749 §5.2 / RFC 6750 responses are rendered from
the exception alone, by one function: :func:`render_error` gives the status,
header fields and body bytes that every path sends (the token endpoint's bare
ASGI path, Starlette routes, the resource kit's adapters). Client-side errors
are what application code sees.

::

    SilentAuthError
    ├── ConfigError                     bad setting (CLI exits 2)
    ├── StoreError
    │   ├── StoreUnavailable            store unreachable -> 503 + Retry-After
    │   └── AlreadyExists
    ├── HeadTooLarge                    request head over the bound: uvicorn answers 400
    ├── OAuthError                      rendered as {"error", "error_description"}
    │   ├── InvalidRequest              400 invalid_request
    │   │   └── PayloadTooLarge         413 invalid_request
    │   ├── MethodNotAllowed            405 method_not_allowed + Allow: POST
    │   ├── InvalidClient               401 invalid_client
    │   ├── InvalidGrant                400 invalid_grant
    │   ├── UnsupportedGrantType        400 unsupported_grant_type
    │   ├── InvalidScope                400 invalid_scope
    │   ├── InvalidTarget               400 invalid_target (RFC 8707)
    │   ├── CSRFError                   403 access_denied
    │   ├── RateLimited                 429 + Retry-After
    │   ├── TemporarilyUnavailable      503 + Retry-After
    │   │   ├── IdentityUnavailable     the identity plug-in failed or hung
    │   │   └── ClaimsUnavailable       a claims/lifetime hook failed or broke the rules
    │   └── BearerError                 RFC 6750, WWW-Authenticate
    │       ├── MissingToken            401, no error code
    │       ├── MalformedBearerRequest  400 invalid_request (Bearer, no token)
    │       ├── InvalidToken            401 invalid_token
    │       │   └── UnknownKeyId        a kid not (yet) known: learn once, retry
    │       ├── InsufficientScope       403 insufficient_scope
    │       │   └── InsufficientClaim   403: a claim is missing or has another value
    │       ├── InsufficientUserAuthentication  401 (RFC 9470)
    │       └── WrongSession            403: a renewal from another user or session
    └── ClientError                     raised by silentauth.client
        ├── SessionExpired              the refresh token is dead: log in again
        ├── StepUpRequired              the route wants a fresher login
        ├── RefreshFailed               transient failure (network, 5xx): retry later
        ├── LoginFailed                 the password grant was refused
        ├── BodyNotReplayable           a streaming body cannot be retried
        └── ConnectionEnded             a real-time connection closed for good
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple


class SilentAuthError(Exception):
    """Root of every error raised by silentauth."""


class ConfigError(SilentAuthError):
    """A setting is missing or malformed; ``name`` is the setting."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"invalid setting SILENTAUTH_{name}: {message}")
        self.name = name


class StoreError(SilentAuthError):
    """The persistence layer failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the caller may retry."""


class AlreadyExists(StoreError):
    """A unique record (a user name) exists already."""


class HeadTooLarge(SilentAuthError):
    """A request head over the server's bound.

    Raised inside an HTTP parser callback; the parser turns it into its own
    error and the server answers 400 and closes the connection.
    """


class OAuthError(SilentAuthError):
    """An error with an OAuth code, rendered as RFC 6749 §5.2 JSON."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400
    description: ClassVar[str] = ""

    def __init__(self, description: str | None = None) -> None:
        self.error_description = description or self.description or self.error
        super().__init__(self.error_description)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body (RFC 6749 §5.2)."""
        return {"error": self.error, "error_description": self.error_description}

    def headers(self) -> dict[str, str]:
        """Header fields beside the body; RFC 6749 §5.1 forbids caching the answer."""
        return {"Cache-Control": "no-store", "Pragma": "no-cache"}


class InvalidRequest(OAuthError):
    error = "invalid_request"
    description = "The request is malformed."


class PayloadTooLarge(InvalidRequest):
    """The body exceeds ``limit`` bytes, declared or streamed."""

    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body exceeds {limit} bytes.")
        self.limit = limit


class UnsupportedMediaType(InvalidRequest):
    """A body sent as anything but JSON where JSON is required."""

    status_code = 415
    description = "Send the body as application/json."


class MethodNotAllowed(OAuthError):
    """The token endpoint answers only ``POST`` (RFC 6749 §3.2)."""

    error = "method_not_allowed"
    status_code = 405
    description = "Use POST."

    def headers(self) -> dict[str, str]:
        return {"Allow": "POST"}


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 §5.2).

    ``challenge`` names the scheme the client tried; RFC 6749 §5.2 wants it back in
    ``WWW-Authenticate``.
    """

    error = "invalid_client"
    status_code = 401
    description = "Client authentication failed."
    challenge: str | None = None

    def headers(self) -> dict[str, str]:
        base = super().headers()
        return {**base, "WWW-Authenticate": self.challenge} if self.challenge else base


class BasicAuthFailed(InvalidClient):
    """``invalid_client`` after a Basic attempt."""

    challenge = 'Basic realm="silentauth"'


class ServiceCredentialRequired(InvalidClient):
    """The service credential (``Authorization: Service …``) is missing or wrong."""

    description = "These endpoints need 'Authorization: Service <credential>'."
    challenge = 'Service realm="silentauth"'


class NotFound(OAuthError):
    """No such route (a feature that is off) or no such resource."""

    error = "not_found"
    status_code = 404
    description = "Not found."


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    description = "The grant is invalid, expired or revoked."


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    description = "Supported grant types: password, refresh_token."


class InvalidScope(OAuthError):
    error = "invalid_scope"
    description = "The requested scope exceeds the granted scope."


class InvalidTarget(OAuthError):
    """RFC 8707 §2: a ``resource`` the service does not serve, or a widening one."""

    error = "invalid_target"
    description = "The requested resource is unknown or not granted."


class CSRFError(OAuthError):
    error = "access_denied"
    status_code = 403
    description = "Missing or wrong CSRF proof (X-CSRF-Token header)."


class _RetryAfter(OAuthError):
    def __init__(self, description: str | None = None, retry_after: int = 1) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}


class RateLimited(_RetryAfter):
    error = "rate_limited"
    status_code = 429
    description = "Too many attempts; retry later."


class TemporarilyUnavailable(_RetryAfter):
    error = "temporarily_unavailable"
    status_code = 503
    description = "The token service cannot reach its store; retry shortly."


class IdentityUnavailable(TemporarilyUnavailable):
    """The identity provider raised, hung or answered nonsense: no verdict, no session."""

    description = "The identity provider is unavailable; retry shortly."


class ClaimsUnavailable(TemporarilyUnavailable):
    """The claims or lifetime hook failed or returned what cannot go into a token.

    The details go to the server log; the client learns only that no token was
    issued, and keeps its refresh token (nothing was rotated).
    """

    description = "The service could not compute this session's claims; retry later."


class BearerError(OAuthError):
    """An RFC 6750 error on a protected resource."""

    status_code = 401

    def challenge(self) -> str:
        return f'Bearer error="{self.error}", error_description="{self.error_description}"'

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge(), "Cache-Control": "no-store"}


class MissingToken(BearerError):
    error = "invalid_request"
    description = "An access token is required."

    def challenge(self) -> str:
        # RFC 6750 §3.1: no error code when the request simply lacks credentials.
        return "Bearer"

    def as_dict(self) -> dict[str, Any]:
        return {"error": "unauthorized", "error_description": self.error_description}


class MalformedBearerRequest(BearerError):
    """RFC 6750 §3.1 ``invalid_request``: e.g. ``Authorization: Bearer`` with no token."""

    error = "invalid_request"
    status_code = 400
    description = "The Authorization header names the Bearer scheme but carries no token."


class InvalidToken(BearerError):
    error = "invalid_token"
    description = "The access token is invalid, expired or revoked."


class UnknownKeyId(InvalidToken):
    """The token names a ``kid`` the verifier does not hold (yet).

    It is an :class:`InvalidToken`, so a caller that cannot learn keys answers
    401 as for any other bad token; one that can (a JWKS source, a key ring
    shared through a store) fetches once, rate limited, and retries.
    """

    def __init__(self, kid: str) -> None:
        super().__init__("The access token is signed by an unknown key.")
        self.kid = kid


class InsufficientScope(BearerError):
    error = "insufficient_scope"
    status_code = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"This resource needs the scope {scope!r}.")
        self.scope = scope

    def challenge(self) -> str:
        return f'Bearer error="insufficient_scope", scope="{self.scope}"'


class InsufficientClaim(InsufficientScope):
    """The token lacks a claim the route demands, or carries another value.

    RFC 6750 has one code for "the token does not grant enough":
    ``insufficient_scope``; the description names the claim.
    """

    def __init__(self, claim: str) -> None:
        BearerError.__init__(self, f"This resource needs the claim {claim!r} with another value.")
        self.scope = ""
        self.claim = claim

    def challenge(self) -> str:
        return f'Bearer error="insufficient_scope", error_description="{self.error_description}"'


class InsufficientUserAuthentication(BearerError):
    """RFC 9470 step-up: the login behind the token is older than ``max_age``."""

    error = "insufficient_user_authentication"

    def __init__(self, max_age: int) -> None:
        super().__init__(f"This resource needs a login within the last {max_age} s.")
        self.max_age = max_age

    def challenge(self) -> str:
        return (
            f'Bearer error="insufficient_user_authentication", '
            f'error_description="{self.error_description}", max_age={self.max_age}'
        )

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "max_age": self.max_age}


class WrongSession(BearerError):
    """A long-lived connection was offered a token of another user or session.

    A WebSocket or event stream runs as one subject and session; a renewal
    carrying anyone else's token is refused, not adopted (the connection would
    otherwise change hands mid-stream).
    """

    error = "access_denied"
    status_code = 403
    description = "The token belongs to another user or session."


class Rendered(NamedTuple):
    """An error as sent: status, header fields (lower-case, latin-1) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# Starlette's JSONResponse encoding: UTF-8, compact, no NaN.
_encode_json = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode


def render_json(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> Rendered:
    """The wire form of a JSON error body with ``headers`` beside it."""
    body = _encode_json(payload).encode("utf-8")
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode("ascii")))
    raw.append((b"content-type", b"application/json"))
    return Rendered(status, raw, body)


def render_error(exc: OAuthError) -> Rendered:
    """The one wire form of an :class:`OAuthError`, on every path that answers one.

    The body is RFC 6749 §5.2 JSON; a :class:`BearerError` adds its RFC 6750
    §3 ``WWW-Authenticate`` challenge through :meth:`OAuthError.headers`.
    """
    return render_json(exc.status_code, exc.as_dict(), exc.headers())


class ClientError(SilentAuthError):
    """Raised by :mod:`silentauth.client` to application code."""


class SessionExpired(ClientError):
    """The session cannot be renewed any more; the user must log in again."""


class StepUpRequired(ClientError):
    """The resource demands a login no older than ``max_age`` seconds (RFC 9470)."""

    def __init__(self, max_age: int | None, message: str = "") -> None:
        super().__init__(message or f"re-authentication required (max_age={max_age})")
        self.max_age = max_age


class RefreshFailed(ClientError):
    """A refresh failed for a transient reason (network, 5xx); tokens are kept."""


class LoginFailed(ClientError):
    """The token endpoint refused a password grant (bad credentials, rate limit…)."""

    def __init__(self, status_code: int, error: str | None, description: str) -> None:
        super().__init__(f"login failed: {status_code} {error or ''} {description}".strip())
        self.status_code = status_code
        self.error = error
        self.description = description


class BodyNotReplayable(ClientError):
    """The request body was a one-shot stream and cannot be sent again."""


class ConnectionEnded(ClientError):
    """A real-time connection was closed for good with ``code`` and ``reason``.

    Raised by :mod:`silentauth.client.realtime` for the close codes after which
    reconnecting cannot help (a protocol error, another user's token, a flood,
    the server's normal end); a session that is over raises
    :class:`SessionExpired` instead.
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"connection closed: {code} {reason}".strip())
        self.code = code
        self.reason = reason
