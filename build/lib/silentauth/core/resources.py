"""RFC 8707 resource indicators: which APIs an access token is for (its ``aud``).

A login or refresh may name one or more ``resource`` URIs. Each must be in the
configured list (``RESOURCES``), else the answer is ``invalid_target``
(RFC 8707 §2). The session keeps what its login was granted; a refresh may ask
for a subset (down-scoping), never for more. The token's ``aud`` is exactly the
resources of the request — or of the session when the request names none — and
the service's default audience when there are none at all. An API then accepts
only tokens meant for it: a token for ``https://billing.example`` is refused by
an API whose audience is ``https://files.example``.
"""

from __future__ import annotations

from silentauth.errors import InvalidTarget

MAX_RESOURCES = 10


def _requested(requested: str | None) -> list[str] | None:
    if requested is None or not requested.strip():
        return None
    wanted = list(dict.fromkeys(requested.split()))
    if len(wanted) > MAX_RESOURCES:
        raise InvalidTarget(f"At most {MAX_RESOURCES} resources per request.")
    return wanted


def grant(requested: str | None, allowed: tuple[str, ...]) -> str:
    """The resources a login is granted, space-separated ("" for the default audience)."""
    wanted = _requested(requested)
    if wanted is None:
        return ""
    unknown = [r for r in wanted if r not in allowed]
    if unknown:
        raise InvalidTarget(f"Unknown resource {unknown[0][:200]!r}.")
    return " ".join(wanted)


def narrow(requested: str | None, granted: str) -> str:
    """The resources of a refresh: a subset of the session's ``granted`` ones."""
    wanted = _requested(requested)
    if wanted is None:
        return granted
    if not set(wanted) <= set(granted.split()):
        raise InvalidTarget("A refresh may narrow the resources, never widen them.")
    return " ".join(wanted)


def audience(resources: str, default: str) -> str | list[str]:
    """The ``aud`` claim for ``resources``: one string, a list of several, or ``default``."""
    names = resources.split()
    if not names:
        return default
    return names[0] if len(names) == 1 else names


def of_audience(aud: object, default: str) -> str:
    """The resources a token's ``aud`` claim names (inverse of :func:`audience`)."""
    if isinstance(aud, list):
        return " ".join(str(a) for a in aud)
    return "" if aud == default else str(aud)
