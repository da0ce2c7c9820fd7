"""`python -m web.echo [--host HOST] [--port PORT]`: a WebSocket echo endpoint on this service's own layer.

For conformance testing: `scripts/autobahn.sh` runs Autobahn|Testsuite against
it. The handshake, the codec, the connection and the transport (`web.ws`)
are the service's; there is no token, actor or database behind them, so what
the testsuite judges is the WebSocket layer alone. Every message goes back as it came: text as text, binary as
binary. It lives in `web/` so that a refactor of that layer that breaks it
breaks its imports and its lint too. Once listening, it prints its URL on
stdout (PORT 0 picks a free port).
"""

from gevent import monkey

monkey.patch_all()  # before anything else imports socket

import argparse  # noqa: E402
import sys  # noqa: E402

from web.logs import configure_logging  # noqa: E402
from web.server import RequestLimits  # noqa: E402
from web.ws.codec import admit_every_frame  # noqa: E402
from web.ws.connection import ConnectionRegistry, WebSocketConnection  # noqa: E402
from web.ws.handshake import HandshakePolicy, WebSocketServer  # noqa: E402

# The testsuite's limits, far above the service's own: its largest messages (cases 9.1.6 and 9.2.6) are 16 MiB,
# cases 9.3 and 9.4 cut 4 MiB into fragments of 64 bytes, and 9.7 and 9.8 send 1000 messages without waiting for
# their echoes, as fast as the client can (no frame rate limit)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_FRAGMENTS = 1 << 20
SEND_QUEUE_FRAMES = 2000
SEND_QUEUE_BYTES = 64 * 1024 * 1024
REQUEST_LIMITS = RequestLimits(
    request_timeout=10, keep_alive_timeout=5, max_body_bytes=0, pending_connections=1000, pending_per_address=0
)


class Echo:
    """The listener of one connection: writes back each message it receives."""

    __slots__ = ("transport",)

    def __init__(self, connection: WebSocketConnection):
        self.transport = connection.accept(self, SEND_QUEUE_FRAMES, SEND_QUEUE_BYTES, admit_every_frame)

    def on_message(self, message: str | bytes) -> None:
        self.transport.write(message)

    def on_closed(self) -> None:
        pass


def echo_app(environ: dict, start_response) -> list[bytes]:
    """A WSGI application: upgraded requests become an `Echo`, others get 426."""
    connection = environ.get("wsgi.websocket")
    if connection is None:
        start_response("426 Upgrade Required", [("Upgrade", "websocket"), ("Content-Type", "text/plain")])
        return [b"WebSocket echo endpoint: connect with a WebSocket client.\n"]
    Echo(connection)
    return []


def serve(host: str, port: int) -> None:
    policy = HandshakePolicy(
        max_message_bytes=MAX_MESSAGE_BYTES,
        allowed_origins=frozenset(),
        connections_per_address=0,
        max_fragments=MAX_FRAGMENTS,
    )
    server = WebSocketServer((host, port), echo_app, REQUEST_LIMITS, policy, ConnectionRegistry())
    server.start()
    print(f"ws://{host}:{server.server_port}/", flush=True)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.echo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    configure_logging(args.log_level, "plain")
    serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
