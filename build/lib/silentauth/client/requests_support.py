"""requests support: ``session.auth = TokenAuth(...)``.

requests calls ``auth(prepared_request)`` before sending and lets a response
hook replace the response, which is how its own ``HTTPDigestAuth`` retries a
401. We do the same: one replay with the same (rewound) body, then stop.
The hook also runs for every hop of a redirect, so each response is judged
by its own URL: only an allowed origin's answer is acted on.
requests is imported lazily: the client installs without it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from silentauth.client.origins import OriginPolicy
from silentauth.client.token_set import TokenSet
from silentauth.errors import BodyNotReplayable

if TYPE_CHECKING:
    import requests


class RequestsAuthMixin:
    """The ``requests`` half of :class:`TokenAuth` (``AuthBase`` protocol)."""

    if TYPE_CHECKING:  # provided by TokenAuth, which mixes this class in
        origins: OriginPolicy

        def _check_fork(self) -> None: ...
        def _obtain(self, seen: TokenSet | None, force: bool) -> TokenSet: ...
        def _inspect(self, status: int, headers: Any, sent: TokenSet | None, url: str) -> bool: ...

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        self._check_fork()
        if not self.origins.allows(r.url or ""):
            # Sent as the user built it; its answers are only checked for renewals to ignore.
            r.register_hook("response", self._requests_foreign_response)  # type: ignore[no-untyped-call]
            return r
        tokens = self._obtain(None, force=False)
        r.headers["Authorization"] = f"Bearer {tokens.access_token}"
        r.register_hook("response", functools.partial(self._requests_response, tokens))  # type: ignore[no-untyped-call]
        return r

    def _requests_foreign_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        self._inspect(response.status_code, response.headers, None, response.url)
        return response

    def _requests_response(
        self, sent: TokenSet, response: requests.Response, **kwargs: Any
    ) -> requests.Response:
        if not self._inspect(response.status_code, response.headers, sent, response.url):
            return response
        from requests.cookies import extract_cookies_to_jar
        from requests.utils import rewind_body

        prep = response.request.copy()
        body = prep.body
        if body is not None and not isinstance(body, bytes | str):
            if getattr(prep, "_body_position", None) is None:
                raise BodyNotReplayable(
                    "the request body was a one-shot stream; it cannot be sent again after a 401"
                )
            rewind_body(prep)
        tokens = self._obtain(sent, force=True)
        # Release the connection of the rejected response before reusing the pool.
        response.content  # noqa: B018
        response.close()
        if prep._cookies is not None:  # type: ignore[attr-defined]
            extract_cookies_to_jar(prep._cookies, response.request, response.raw)  # type: ignore[attr-defined,no-untyped-call]
            prep.prepare_cookies(prep._cookies)  # type: ignore[attr-defined]
        prep.headers["Authorization"] = f"Bearer {tokens.access_token}"
        # The retry skips the session's hooks (adapter.send), so it cannot loop.
        retried: requests.Response = response.connection.send(prep, **kwargs)
        retried.history.append(response)
        retried.request = prep
        self._inspect(retried.status_code, retried.headers, tokens, retried.url)
        return retried
