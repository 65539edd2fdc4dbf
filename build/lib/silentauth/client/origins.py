"""Where the access token may go, and whose renewals count.

A bearer token is a key to the user's session: whoever receives it can use
it until it expires (RFC 6750 §5.2 asks clients not to hand it to untrusted
parties), and whoever can make the client adopt a ``New-Access-Token``
decides which identity the client acts as from then on. So the client sends
its token to, and accepts renewals from, a closed set of origins: the
issuer's (the origin of ``token_url``) plus those the user lists. An origin
is the (scheme, host, port) triple of RFC 6454, default ports filled in, so
``https://api.example`` and ``https://api.example:443`` are one origin while
``http://api.example`` and ``https://api.example:8443`` are two others.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import httpx

Origin = tuple[str, str, int]

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL | str) -> Origin | None:
    """The RFC 6454 origin of an http(s) URL, or ``None`` for anything else."""
    if isinstance(url, httpx.URL):
        return _origin(url)
    return _origin_of_text(url)


@functools.lru_cache(maxsize=1024)
def _origin_of_text(url: str) -> Origin | None:
    # requests hands over strings; parsing one costs ~10 us, and apps call few URLs.
    try:
        return _origin(httpx.URL(url))
    except (httpx.InvalidURL, TypeError, ValueError):
        return None


def _origin(parsed: httpx.URL) -> Origin | None:
    scheme = parsed.scheme.lower()
    default = DEFAULT_PORTS.get(scheme)
    if default is None or not parsed.raw_host:
        return None
    return scheme, parsed.raw_host.decode("ascii").lower(), parsed.port or default


def parse_origin(text: str) -> Origin:
    """An origin the user typed, such as ``https://api.example:8443``; else ValueError.

    Only a bare origin is accepted: a path, query or user name would suggest a
    finer scope than the origin the check really applies.
    """
    hint = f"{text!r} is not an origin such as 'https://api.example.com' or 'http://127.0.0.1:8080'"
    if not isinstance(text, str):
        raise ValueError(hint)
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(hint) from exc
    origin = origin_of(parsed)
    if origin is None or parsed.path not in ("", "/") or parsed.query or parsed.fragment or parsed.userinfo:
        raise ValueError(hint)
    return origin


def format_origin(origin: Origin | None) -> str:
    """``scheme://host:port`` for log lines."""
    if origin is None:
        return "a non-http(s) URL"
    scheme, host, port = origin
    return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"


class OriginPolicy:
    """The origins that get the token: the issuer's plus ``allowed_origins``."""

    def __init__(self, token_url: str, allowed_origins: Iterable[str] = ()) -> None:
        if isinstance(allowed_origins, str):
            # A lone string would be iterated character by character.
            raise ValueError("allowed_origins takes a list of origins, not a single string")
        issuer = origin_of(token_url)
        if issuer is None:
            raise ValueError(f"token_url {token_url!r} is not an absolute http(s) URL")
        self.issuer = issuer
        self.origins = frozenset({issuer, *(parse_origin(o) for o in allowed_origins)})

    def allows(self, url: httpx.URL | str) -> bool:
        """True if a request to ``url`` may carry the token (and renew it)."""
        return origin_of(url) in self.origins
