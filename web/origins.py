"""Which web pages may open a WebSocket here: the `Origin` check against cross-site WebSocket hijacking.

A browser sends `Origin` with every WebSocket handshake and lets any page
connect anywhere, cookies included; so a socket opened from a page the
platform does not own is refused before any frame. Clients that are not
browsers send no `Origin` and are not at risk, so they are let through:
they still need a token.
"""

from __future__ import annotations

ANY = "*"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")  # never a name that merely resolves to loopback


def allowed_origins(configured: str, demo: bool, ws_port: int) -> frozenset[str]:
    """The origins of `[server] allowed_origins` (space-separated), normalised; in demo mode also the
    demo page's own (`http://localhost:PORT` and the loopback addresses, never a name that merely
    resolves to them, which DNS rebinding could use)."""
    origins = {normalise(origin) for origin in configured.split()}
    if demo:
        origins |= {f"http://{host}" for host in loopback_hosts(ws_port)}
    return frozenset(origins)


def loopback_hosts(port: int) -> frozenset[str]:
    """`host:port` for each loopback name (and the bare names for port 80, which browsers leave out): what a
    page on this machine sees as its host, and what a DNS-rebinding page, whose host is another name, is not."""
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:
        hosts |= set(LOOPBACK_NAMES)
    return frozenset(hosts)


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """True if a handshake with this `Origin` header (None: absent) may proceed."""
    if origin is None:
        return True
    return ANY in allowed or normalise(origin) in allowed


def cors_allow_origin(origin: str | None, allowed: frozenset[str]) -> str | None:
    """The `Access-Control-Allow-Origin` for a request with this `Origin` (None: absent): `*` when any origin is
    allowed, the origin itself when it is allowed, else None (no header: the browser keeps the answer from the
    page). Unless it is `*`, the answer depends on the Origin: send `Vary: Origin`."""
    if ANY in allowed:
        return ANY
    return origin if origin is not None and normalise(origin) in allowed else None


def normalise(origin: str) -> str:
    """Origins compare as scheme://host[:port], case-insensitively, without a trailing slash."""
    return origin.strip().rstrip("/").lower()
