"""Security headers on every response: no framing, no sniffing, no foreign script.

The demo page and its static files are the only HTML the service serves; they load
script and style from this origin only (``/static/*``), with no inline script or
style, so one strict policy fits every response. ``frame-ancestors 'none'`` (CSP
Level 2) and ``X-Frame-Options: DENY`` (RFC 7034, for older browsers) keep a sibling
or foreign page from framing the Log out / Revoke / Payment buttons (clickjacking).
JSON answers get the same policy: it costs nothing and an API answer opened as a
document then runs nothing either.

Pure ASGI rather than ``BaseHTTPMiddleware``: it only appends precomputed headers to
``http.response.start``, so the token endpoint's hot path pays a few list appends.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Paths and query strings never leave for another origin. Not "no-referrer": under
    # it a same-origin form post would carry "Origin: null" (Fetch standard, "append a
    # request Origin header"), which the CSRF checks must refuse.
    (b"referrer-policy", b"same-origin"),
)


_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeadersMiddleware:
    """Add :data:`SECURITY_HEADERS` to every HTTP response the wrapped app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {low for name, _ in headers if (low := name.lower()) in _NAMES}
                # A route that chose its own value (none does today) keeps it.
                extra = [h for h in SECURITY_HEADERS if h[0] not in present] if present else SECURITY_HEADERS
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
