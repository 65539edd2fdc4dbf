"""Talking to an RFC 6749 token endpoint: grants in, :class:`TokenSet` out.

Token requests go straight to a transport of our own, never through the
user's client: no auth flow can recurse into itself, user event hooks (say,
``raise_for_status``) cannot swallow a refresh, and refresh tokens never end
up in a user's ``response.history`` or logs.
"""

from __future__ import annotations

import base64
import ssl
import time
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from silentauth.client.challenges import oauth_error
from silentauth.client.token_set import TokenSet
from silentauth.errors import LoginFailed

USER_AGENT = "silentauth-client/0.1"
# A keyed refresh whose answer was lost is sent again after these pauses (seconds),
# then the coordinator's cooldown takes over: bounded, never a loop.
LOST_ANSWER_DELAYS = (0.25, 1.0)
# Errors raised before the request could reach the server: no answer was lost.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def answer_lost(exc: httpx.TransportError) -> bool:
    """Whether the server may have acted on a request that failed with ``exc``."""
    return not isinstance(exc, _NOT_SENT)


class TokenEndpointClient:
    """The client of an RFC 6749 token endpoint: builds and sends token requests.

    One instance per :class:`TokenAuth`. (The server's side of the same
    endpoint is :class:`silentauth.server.token_endpoint.TokenEndpoint`.)
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None,
        client_secret: str | None,
        resources: tuple[str, ...] = (),
        timeout: float,
        verify: ssl.SSLContext | str | bool,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.client_secret = client_secret
        self.resources = resources
        self.timeout = httpx.Timeout(timeout)
        self._verify = verify
        self._user_transport = transport
        self._own_transport: httpx.HTTPTransport | None = None
        self._async_transport = async_transport
        self._ssl: ssl.SSLContext | bool | None = None

    def after_fork(self) -> None:
        # The parent's pooled sockets must not be shared; drop, do not close.
        self._own_transport = None

    def close(self) -> None:
        if self._own_transport is not None:
            self._own_transport.close()
            self._own_transport = None

    def request(self, fields: dict[str, str]) -> httpx.Request:
        """A token request with client authentication per RFC 6749 §2.3.1 and the RFC 8707 resources."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        form: dict[str, str | list[str]] = dict(fields)
        if self.resources:
            # RFC 8707 §2: one resource per parameter, repeated.
            form["resource"] = list(self.resources)
        if self.client_id and self.client_secret is not None:
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self.client_id:
            form["client_id"] = self.client_id
        return httpx.Request(
            "POST", self.url, data=form, headers=headers, extensions={"timeout": self.timeout.as_dict()}
        )

    def refresh_request(self, tokens: TokenSet) -> httpx.Request:
        """The refresh of ``tokens``, with its Idempotency-Key if one is pending."""
        request = self.request({"grant_type": "refresh_token", "refresh_token": tokens.refresh_token or ""})
        if tokens.pending_key:
            # A Structured Field string, as the IETF httpapi draft spells the header.
            request.headers["Idempotency-Key"] = f'"{tokens.pending_key}"'
        return request

    def password_request(
        self, username: str, password: str, scope: str | None, device_token: str | None = None
    ) -> httpx.Request:
        form = {"grant_type": "password", "username": username, "password": password}
        if scope:
            form["scope"] = scope
        if device_token:
            form["device_token"] = device_token
        return self.request(form)

    @staticmethod
    def device_token_of(response: httpx.Response) -> str | None:
        """The known-device token a successful login handed out, if the server sends one."""
        try:
            body = response.json()
        except ValueError:
            return None
        token = body.get("device_token") if isinstance(body, dict) else None
        return token if isinstance(token, str) and token else None

    def send_refresh(self, tokens: TokenSet) -> httpx.Response:
        """Send the refresh of ``tokens``; retry it (same token, same key) if the answer is lost.

        Only a keyed refresh is retried: the server gives the same successor to
        the same key, whereas an unkeyed retry after its grace window is reuse.
        """
        for delay in (*LOST_ANSWER_DELAYS, None):
            try:
                return self.send(self.refresh_request(tokens))
            except httpx.TransportError as exc:
                if delay is None or not tokens.pending_key or not answer_lost(exc):
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def asend_refresh(self, tokens: TokenSet) -> httpx.Response:
        """:meth:`send_refresh` on the running event loop."""
        for delay in (*LOST_ANSWER_DELAYS, None):
            try:
                return await self.asend(self.refresh_request(tokens))
            except httpx.TransportError as exc:
                if delay is None or not tokens.pending_key or not answer_lost(exc):
                    raise
                await anyio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _ssl_context(self) -> ssl.SSLContext | bool:
        # Building a context loads the CA bundle (milliseconds): do it once.
        if self._ssl is None:
            v = self._verify
            self._ssl = v if isinstance(v, ssl.SSLContext | bool) else ssl.create_default_context(cafile=v)
        return self._ssl

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send from any thread; the response body is read and closed."""
        transport = self._user_transport or self._own_transport
        if transport is None:
            transport = self._own_transport = httpx.HTTPTransport(verify=self._ssl_context())
        response = transport.handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        response.request = request
        return response

    async def asend(self, request: httpx.Request) -> httpx.Response:
        """Send on the running event loop with a transport bound to it."""
        if self._async_transport is not None:
            return await self._asend(self._async_transport, request)
        # Async connection pools belong to one event loop; a short-lived
        # transport is cheap next to a refresh that happens once per token.
        async with httpx.AsyncHTTPTransport(verify=self._ssl_context()) as transport:
            return await self._asend(transport, request)

    @staticmethod
    async def _asend(transport: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
        response = await transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        response.request = request
        return response

    @staticmethod
    def login_result(response: httpx.Response, now: float) -> TokenSet:
        """The grant of a successful password-grant response, else :class:`LoginFailed`."""
        if response.status_code == 200:
            try:
                body: Any = response.json()
                return TokenSet.from_response(body, now)
            except (ValueError, AttributeError) as exc:
                raise LoginFailed(200, None, f"malformed token response: {exc}") from exc
        description = ""
        try:
            data = response.json()
            if isinstance(data, dict):
                description = str(data.get("error_description", ""))
        except ValueError:
            pass
        raise LoginFailed(response.status_code, oauth_error(response.content), description)
