"""Which web pages may open a WebSocket here: the `Origin` check against cross-site WebSocket hijacking.

A browser sends `Origin` with every WebSocket handshake and lets any page
connect anywhere, cookies included; so a socket opened from a page the
platform does not own is refused before any frame. Clients that are not
browsers send no `Origin` and are not at risk, so they are let through:
they still need a token.
"""

from __future__ import annotations

ANY = "*"


def allowed_origins(configured: str, demo: bool, ws_port: int) -> frozenset[str]:
    """The origins of `[server] allowed_origins` (space-separated), normalised; in demo mode also the
    demo page's own (`http://localhost:PORT` and the loopback addresses, never a name that merely
    resolves to them, which DNS rebinding could use)."""
    origins = {normalise(origin) for origin in configured.split()}
    if demo:
        origins |= {f"http://{host}:{ws_port}" for host in ("localhost", "127.0.0.1", "[::1]")}
    return frozenset(origins)


def origin_allowed(origin: str | None, allowed: frozenset[str]) -> bool:
    """True if a handshake with this `Origin` header (None: absent) may proceed."""
    if origin is None:
        return True
    return ANY in allowed or normalise(origin) in allowed


def normalise(origin: str) -> str:
    """Origins compare as scheme://host[:port], case-insensitively, without a trailing slash."""
    return origin.strip().rstrip("/").lower()
