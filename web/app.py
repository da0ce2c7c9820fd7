"""Flask applications: the WebSocket port and the HTTP API port.

`create_apps(settings, node)` builds both around an already started `Node`,
so tests and the service assemble them the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request, send_from_directory

from actors import Node
from protocol.frames import id_from_text
from protocol.tokens import mint_token
from settings import Settings
from web.http_api import create_http_app, is_loopback
from web.origins import ANY, allowed_origins, cors_allow_origin, loopback_hosts
from web.session import ClientSession, SessionPolicy
from web.ws.handshake import REFUSAL_PROBE

log = logging.getLogger(__name__)
DEMO_TOKEN_TTL_SECONDS = 12 * 3600
STATIC_DIR = Path(__file__).resolve().parent / "static"  # the demo page's files
CLIENT_DIR = Path(__file__).resolve().parent.parent / "clients" / "js"  # the browser client's package
CLIENT_VERSION = json.loads((CLIENT_DIR / "package.json").read_text())["version"]
CLIENT_BUILDS = ("realtime.mjs", "realtime.js")
CLASSIC_BUILD = "realtime.js"  # also at /static/realtime.js, where the demo page and older pages load it
DEMO_PAGE = "demo.html"


def create_apps(settings: Settings, node: Node) -> tuple[Flask, Flask]:
    """(WebSocket app for `ws_port`, HTTP API app for `http_port`)."""
    return _create_ws_app(settings, node), create_http_app(settings, node)


def _create_ws_app(settings: Settings, node: Node) -> Flask:
    app = Flask("realtime.ws", static_folder=STATIC_DIR, static_url_path="/static")
    policy = SessionPolicy(
        auth_secret=settings.auth.secret,
        auth_timeout=settings.auth.timeout,
        limits=node.limits,
        send_queue_frames=settings.limits.send_queue_frames,
        send_queue_bytes=settings.limits.send_queue_bytes,
        socket_frames_per_second=settings.limits.socket_frames_per_second,
        socket_frame_burst=settings.limits.socket_frame_burst,
        sockets_per_user=settings.limits.sockets_per_user,
    )

    def socket_endpoint() -> Response:
        ClientSession(request.environ["wsgi.websocket"], request.args.get("token"), node, policy)
        return Response()

    def plain_get() -> Response:
        if "probe" in request.args:
            return _handshake_probe()
        if settings.server.demo and request.path == "/":
            return send_from_directory(STATIC_DIR, DEMO_PAGE)
        return Response(
            "This is the real-time messaging WebSocket endpoint; connect with a WebSocket client.\n",
            status=426,
            headers={"Upgrade": "websocket", "Content-Type": "text/plain; charset=utf-8"},
        )

    for path in ("/", "/ws"):
        app.add_url_rule(path, f"socket{path}", socket_endpoint, websocket=True)
        app.add_url_rule(path, f"plain{path}", plain_get)

    server = settings.server
    _add_client_routes(app, allowed_origins(server.allowed_origins, server.demo, server.ws_port))
    headers = page_security_headers(settings.server.ws_port, settings.server.http_port)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.update(headers)
        return response

    if settings.server.demo:
        _add_demo_routes(app, settings, node)
    return app


def _handshake_probe() -> Response:
    """What a WebSocket handshake from this page and address would get now: 204, or the 403/429 and its reason.
    Browsers hide a refused handshake's status; the client asks here (`?probe=1` on the socket's URL) to show it.
    Any page may read the answer: it tells that page only about itself."""
    refusal = request.environ[REFUSAL_PROBE]()
    if refusal is None:
        response = Response(status=204)
    else:
        response = Response(refusal.body, status=refusal.status, content_type="text/plain; charset=utf-8")
    response.headers["Access-Control-Allow-Origin"] = ANY
    response.headers["Cache-Control"] = "no-store"
    return response


def _add_client_routes(app: Flask, origins: frozenset[str]) -> None:
    """The browser client's builds at `/client/v<version>/realtime.mjs` and `.js`, which pages of the origins
    allowed to open a socket may import across origins (CORS); the classic build also at /static/realtime.js."""

    def serve(build: str) -> Response:
        response = send_from_directory(CLIENT_DIR / "dist", build, mimetype="text/javascript")
        allow = cors_allow_origin(request.headers.get("Origin"), origins)
        if ANY not in origins:
            response.vary.add("Origin")
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
        return response

    for build in CLIENT_BUILDS:
        app.add_url_rule(f"/client/v{CLIENT_VERSION}/{build}", f"client/{build}", lambda build=build: serve(build))
    app.add_url_rule(f"/static/{CLASSIC_BUILD}", "client/static", lambda: serve(CLASSIC_BUILD))


def _add_demo_routes(app: Flask, settings: Settings, node: Node) -> None:
    """Demo mode only: local pages list the demo users, obtain tokens for them and find the notify API."""
    local_hosts = loopback_hosts(settings.server.ws_port)

    @app.before_request
    def loopback_only() -> None:
        if not request.path.startswith("/demo/"):
            return
        if not is_loopback(request.remote_addr):
            abort(403, "demo endpoints answer local callers only")
        # a page whose host name was rebound to 127.0.0.1 is a local caller, but its Host is still its own name
        if request.host.lower() not in local_hosts:
            abort(403, "demo endpoints answer requests for localhost, 127.0.0.1 or [::1] only")

    @app.get("/demo/users")
    def demo_users() -> Response:
        users = node.storage.list_users()
        return jsonify({"users": [{"id": user_id, "username": name} for user_id, name in users]})

    @app.get("/demo/config")
    def demo_config() -> Response:
        """What the demo page cannot know from its own address: where the notify API listens."""
        return jsonify({"httpPort": settings.server.http_port})

    @app.get("/demo/token")
    def demo_token() -> Response:
        user_id = id_from_text(request.args.get("userId", ""))
        if user_id is None:
            return jsonify({"error": "userId must be a positive integer"}), 400
        response = jsonify(
            {"userId": user_id, "token": mint_token(settings.auth.secret, user_id, DEMO_TOKEN_TTL_SECONDS)}
        )
        response.headers["Cache-Control"] = "no-store"
        return response


def page_security_headers(ws_port: int, http_port: int) -> dict[str, str]:
    """Headers of every plain HTTP answer of the WebSocket port. The demo page loads only its own files, and
    connects only to its WebSocket and the notify API (its buttons call it), on a loopback name; no other
    page may frame it, and browsers neither guess content types nor send its address on."""
    # CSP has no syntax for an IPv6 address: a page at [::1] reaches its own WebSocket through 'self' only
    connect = [
        f"{scheme}://{host}"
        for scheme, port in (("ws", ws_port), ("http", http_port))
        for host in loopback_hosts(port)
        if not host.startswith("[")
    ]
    policy = [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",  # the empty favicon
        "connect-src 'self' " + " ".join(sorted(connect)),
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    return {
        "Content-Security-Policy": "; ".join(policy),
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
