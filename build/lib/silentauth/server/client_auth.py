"""Client credentials from an HTTP request (RFC 6749 §2.3.1).

A confidential client sends ``client_id`` and ``client_secret`` either in an
``Authorization: Basic`` header (``client_secret_basic``: each part
form-urlencoded, then joined by ``:`` and base64-encoded) or in the form body
(``client_secret_post``). Using both at once is refused (RFC 6749 §2.3: one
method per request). Other ``Authorization`` schemes (a ``Bearer`` header on
``/auth/revoke``, say) are not client authentication and are ignored here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from urllib.parse import unquote_plus

from silentauth.core.clients import ClientCredentials, ClientRegistry
from silentauth.core.ports import ClientRecord
from silentauth.errors import BasicAuthFailed, InvalidClient, InvalidRequest

MAX_CREDENTIAL = 512


def _basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise BasicAuthFailed("Malformed Basic credentials.") from None
    user, sep, password = decoded.partition(":")
    if not sep or not user:
        raise BasicAuthFailed("Malformed Basic credentials.")
    return unquote_plus(user), unquote_plus(password)


def client_credentials(authorization: str | None, form: Mapping[str, str]) -> ClientCredentials:
    """What the request presents: Basic header, form fields, a bare ``client_id``, or nothing."""
    form_id, form_secret = form.get("client_id") or None, form.get("client_secret")
    scheme, _, rest = (authorization or "").strip().partition(" ")
    if scheme.lower() == "basic":
        if len(rest) > 4 * MAX_CREDENTIAL:
            raise BasicAuthFailed("Client credentials too long.")
        if form_secret is not None:
            raise InvalidRequest("Use one client authentication method, not both Basic and client_secret.")
        client_id, secret = _basic(rest)
        if form_id is not None and form_id != client_id:
            raise InvalidRequest("client_id in the body differs from the Basic credentials.")
        return ClientCredentials(client_id, secret, "client_secret_basic")
    if form_secret is not None:
        if form_id is None:
            raise InvalidClient("client_secret without client_id.")
        return ClientCredentials(form_id, form_secret, "client_secret_post")
    return ClientCredentials(form_id)


async def authenticate(
    registry: ClientRegistry, creds: ClientCredentials, default: str | None = None
) -> ClientRecord | None:
    """:meth:`ClientRegistry.authenticate`, answering a failed Basic attempt with its challenge."""
    try:
        return await registry.authenticate(creds, default)
    except InvalidClient as exc:
        if creds.method == "client_secret_basic" and not isinstance(exc, BasicAuthFailed):
            raise BasicAuthFailed(exc.error_description) from None
        raise
