"""The client's address and scheme behind trusted reverse proxies.

A proxy that terminates TLS connects to the service itself, so without help
every request would come from the proxy's address over plain HTTP: rate limits
would count every client as one, session records would name the proxy, and
``https://`` pages would fail the origin check. Proxies pass the truth on in
``X-Forwarded-For`` / ``X-Forwarded-Proto`` or in RFC 7239 ``Forwarded``.

Those headers are believed only from a peer inside ``TRUSTED_PROXIES``; from
anyone else they are ignored, since any client can send them. Within the chain
the client address is the right-most hop that is not a trusted proxy, walking
from the peer leftwards as nginx's ``real_ip_recursive`` does: each trusted
proxy appended the address it saw, while everything further left was written
by the client and proves nothing. Only one header family is read (setting
``PROXY_HEADERS``), because a proxy that sets one usually passes the other
through from the client untouched.

Garbage never fails a request: a hop that is not an address ends the walk at
the last address that was one (a trusted proxy's), and an unknown scheme
leaves the scheme alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SCHEMES = {"http", "https"}
_CACHE_SIZE = 4096
_WS = {"http": "ws", "https": "wss"}


def parse_address(text: str) -> IPAddress | None:
    """An IP address from a header hop: ``1.2.3.4``, ``::1``, ``[::1]:80``, ``1.2.3.4:80``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port; bare IPv6 has several colons
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _port_of(text: str) -> int:
    """The port of ``[::1]:4711`` or ``1.2.3.4:4711`` (RFC 7239 ``for=``), else 0."""
    text = text.strip().strip('"')
    tail = text.rpartition("]")[2] if text.startswith("[") else text if text.count(":") == 1 else ""
    port = tail.rpartition(":")[2] if ":" in tail else ""
    return int(port) if port.isascii() and port.isdigit() and 0 < int(port) < 65536 else 0


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded`` as its elements, left to right: ``[{"for": …, "proto": …}, …]``.

    Parameter names are case-insensitive (§4); values may be tokens or quoted
    strings. A malformed pair is dropped rather than failing the request: it
    costs the sender only the information it spoiled.
    """
    elements: list[dict[str, str]] = []
    for element in _split_outside_quotes(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split_outside_quotes(element, ";"):
            name, sep, val = pair.partition("=")
            name, val = name.strip().lower(), val.strip()
            if not sep or not name:
                continue
            if len(val) >= 2 and val[0] == val[-1] == '"':
                val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            pairs.setdefault(name, val)
        elements.append(pairs)
    return elements


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


class TrustedProxies:
    """The rule that turns a peer and its forwarding headers into the client's address and scheme."""

    def __init__(self, networks: Iterable[str], headers: str = "x-forwarded") -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.headers = headers
        # Hop text -> (address, trusted?). ipaddress parsing is most of the cost
        # and the same peers and clients recur; bounded, since clients choose the text.
        self._seen: dict[str, tuple[str, bool] | None] = {}

    def trusts(self, addr: IPAddress | None) -> bool:
        """Whether ``addr`` is one of the proxies whose headers are believed."""
        return addr is not None and any(addr in net for net in self.networks)

    def _classify(self, text: str) -> tuple[str, bool] | None:
        """``(address, trusted?)`` of a hop or peer, or ``None`` if it is not an address."""
        try:
            return self._seen[text]
        except KeyError:
            pass
        addr = parse_address(text)
        result = None if addr is None else (str(addr), self.trusts(addr))
        if len(self._seen) >= _CACHE_SIZE:
            self._seen.clear()
        self._seen[text] = result
        return result

    def resolve(
        self, peer: tuple[str, int], headers: Sequence[tuple[bytes, bytes]]
    ) -> tuple[str, int, str | None] | None:
        """``(client host, client port, scheme or None)``, or ``None`` to leave the request alone."""
        known = self._classify(peer[0])
        if known is None or not known[1]:
            return None
        if self.headers == "forwarded":
            value = _joined(headers, b"forwarded")
            if value is None:
                return None
            chain = [(h.get("for", ""), h.get("proto")) for h in parse_forwarded(value)]
            return self._walk(chain)
        fors, protos = _joined(headers, b"x-forwarded-for"), _joined(headers, b"x-forwarded-proto")
        proto_list = [p.strip() for p in protos.split(",")] if protos is not None else []
        if fors is None:
            # Only the scheme is forwarded: the peer is the client.
            return (peer[0], peer[1], _scheme(proto_list[-1])) if proto_list else None
        hops = fors.split(",")
        # Proxies that each append their hop give one proto per address; otherwise
        # the last value (nginx's `proxy_set_header X-Forwarded-Proto $scheme`
        # overwrites) is the scheme of the connection that proxy received.
        if len(proto_list) == len(hops):
            return self._walk(list(zip(hops, proto_list, strict=True)))
        return self._walk([(h, proto_list[-1] if proto_list else None) for h in hops])

    def _walk(self, chain: list[tuple[str, str | None]]) -> tuple[str, int, str | None] | None:
        found: tuple[str, int, str | None] | None = None
        for hop, proto in reversed(chain):
            known = self._classify(hop)
            if known is None:
                break  # not an address: nothing left of it can be trusted either
            found = (known[0], _port_of(hop), _scheme(proto))
            if not known[1]:
                break
        return found


def _scheme(proto: str | None) -> str | None:
    scheme = proto.strip().lower() if proto else None
    return scheme if scheme in _SCHEMES else None


def _joined(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Every line of a header joined with commas (RFC 9110 §5.3), or ``None`` when absent."""
    lines = [v.decode("latin-1") for k, v in headers if k == name]
    return ",".join(lines) if lines else None


class ProxyHeadersMiddleware:
    """Pure ASGI: rewrite ``scope["client"]`` and ``scope["scheme"]`` for requests from trusted proxies."""

    def __init__(self, app: ASGIApp, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.proxies.networks:
            client = scope.get("client")
            found = self.proxies.resolve((client[0], client[1]), scope["headers"]) if client else None
            if found is not None:
                host, port, scheme = found
                # In place, as uvicorn's own proxy middleware does: the server's
                # access log reads this same scope and then names the client too.
                scope["client"] = (host, port)
                if scheme is not None:
                    scope["scheme"] = scheme if scope["type"] == "http" else _WS[scheme]
        await self.app(scope, receive, send)
