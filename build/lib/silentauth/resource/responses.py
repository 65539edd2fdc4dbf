"""Errors as Starlette responses, carrying exactly the bytes of the one renderer.

:func:`silentauth.errors.render_error` decides status, header fields and body;
this module only wraps them in a :class:`~starlette.responses.Response` so
exception handlers (the token service's, FastAPI's, ``AuthenticationMiddleware``'s
``on_error``) can return them. The token endpoint's bare ASGI path sends the
same bytes without a ``Response`` object.
"""

from __future__ import annotations

from starlette.responses import Response

from silentauth.errors import OAuthError, Rendered, render_error


def rendered_response(rendered: Rendered) -> Response:
    """A response that sends ``rendered`` byte for byte."""
    response = Response(rendered.body, status_code=rendered.status)
    # Replaced, not merged: the renderer already set Content-Length and Content-Type.
    response.raw_headers = list(rendered.headers)
    return response


def error_response(error: OAuthError) -> Response:
    """The response for ``error``: RFC 6749 §5.2 JSON, RFC 6750 challenge for a BearerError."""
    return rendered_response(render_error(error))
