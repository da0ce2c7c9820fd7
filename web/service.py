"""The service process: storage, actors and both servers, started and stopped in order."""

from __future__ import annotations

import dataclasses
import gc
import logging
import resource
import signal
import time

import gevent
from gevent.event import Event

from actors import Node
from cluster import open_cluster
from protocol.frames import CloseCode
from settings import Settings
from storage import Storage, open_storage
from web.app import create_apps
from web.demo import seed_demo_data
from web.origins import allowed_origins
from web.server import RequestLimits, ServiceHandler, ServiceServer
from web.ws.connection import CLOSE_FLUSH_TIMEOUT, ConnectionRegistry, keep_alive
from web.ws.handshake import HandshakePolicy, WebSocketServer

log = logging.getLogger(__name__)
GC_YOUNG_THRESHOLD = 20_000  # allocations between young-generation collections (Python's default: 700)


class StartupError(Exception):
    """The service cannot start; the message says why in one line."""


def request_limits(settings: Settings) -> RequestLimits:
    """Each port's deadlines and budgets. Pending connections may hold at most a quarter of the descriptors
    (each port), and one address, if capped, at most half of those, so neither can starve the ports of descriptors."""
    pending = settings.limits.pending_connections
    descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if descriptors != resource.RLIM_INFINITY:
        pending = max(1, min(pending, descriptors // 4))
    per_address = settings.limits.pending_per_address
    if per_address:
        per_address = max(1, min(per_address, pending // 2))
    return RequestLimits(
        request_timeout=settings.server.request_timeout,
        keep_alive_timeout=settings.server.keep_alive_timeout,
        max_body_bytes=settings.limits.max_body_bytes,
        pending_connections=pending,
        pending_per_address=per_address,
    )


def demo_page_url(host: str, ws_port: int) -> str:
    """Where a browser on this machine opens the demo page (a wildcard address is reached on the loopback)."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{ws_port}/"


class Service:
    """Owns everything one `python -m web` process runs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.storage: Storage = open_storage(settings.database)
        applied = self.storage.prepare()
        if applied:
            log.info("database schema migrated to version %s", applied[-1])
        if settings.server.demo:
            seed_demo_data(self.storage)
        self.node = Node(self.storage, settings, open_cluster(settings.cluster, settings.server.ws_port))
        ws_app, http_app = create_apps(settings, self.node)
        server, limits = settings.server, settings.limits
        http_limits = request_limits(settings)
        self.http_server = ServiceServer((server.host, server.http_port), http_app, http_limits, ServiceHandler)
        ws_limits = http_limits
        if limits.connections_per_address:  # more pending handshakes than that could only end in 429: refuse at once
            cap = limits.connections_per_address
            per_address = min(http_limits.pending_per_address or cap, cap)
            ws_limits = dataclasses.replace(http_limits, pending_per_address=per_address)
        handshake_policy = HandshakePolicy(
            max_message_bytes=limits.max_frame_bytes,
            allowed_origins=allowed_origins(server.allowed_origins, server.demo, server.ws_port),
            connections_per_address=limits.connections_per_address,
        )
        self.ws_server = WebSocketServer(
            (server.host, server.ws_port), ws_app, ws_limits, handshake_policy, ConnectionRegistry()
        )
        self._keep_alive: gevent.Greenlet | None = None
        self._stopped = Event()

    def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully.

        Raises `StartupError` if either port cannot be bound; nothing is left running then.
        """
        self._listen()
        # Everything allocated so far lives as long as the process: keep the collector from rescanning it,
        # and let it run less often, since every message allocates a few short-lived greenlets and frames.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        self.ws_server.start()
        self.http_server.start()
        if self.settings.server.ping_interval:
            self._keep_alive = gevent.spawn(keep_alive, self.ws_server.connections, self.settings.server.ping_interval)
        log.info(
            "serving WebSocket on %s:%s and HTTP on %s:%s (database: %s%s; pending connections: %d per port, "
            "%d per address, 0: no cap)",
            self.settings.server.host,
            self.ws_server.server_port,
            self.settings.server.host,
            self.http_server.server_port,
            self.settings.database.backend,
            ", demo mode" if self.settings.server.demo else "",
            self.http_server.limits.pending_connections,
            self.http_server.limits.pending_per_address,
        )
        if self.settings.server.demo:
            print(f"demo page: {demo_page_url(self.settings.server.host, self.ws_server.server_port)}", flush=True)
        for signum in (signal.SIGTERM, signal.SIGINT):
            gevent.signal_handler(signum, self._request_stop, signum)
        self._stopped.wait()
        self.stop()

    def _listen(self) -> None:
        """Bind both ports before serving either, so a busy port fails the start as a whole."""
        for key, server in (("ws_port", self.ws_server), ("http_port", self.http_server)):
            try:
                server.init_socket()
            except OSError as error:
                self.stop()
                host, port = server.address
                reason = error.strerror or error
                raise StartupError(f"[server] {key}: cannot listen on {host}:{port}: {reason}") from None

    def _request_stop(self, signum: int) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        self._stopped.set()

    def stop(self) -> None:
        """Stop accepting, store what is in flight, close every socket with 1001, then exit."""
        timeout = self.settings.server.drain_timeout
        if self._keep_alive is not None:
            self._keep_alive.kill()
        self.ws_server.close()
        self.http_server.close()
        self.node.shutdown(timeout)
        self._close_sockets(CLOSE_FLUSH_TIMEOUT)
        self.ws_server.stop(timeout=1)
        self.http_server.stop(timeout=1)
        self.storage.close()
        log.info("stopped")

    def _close_sockets(self, timeout: float) -> None:
        """Close the sockets no actor closed (those still authenticating) and let the close frames go out."""
        connections = list(self.ws_server.connections)
        for connection in connections:
            connection.transport.close(CloseCode.GOING_AWAY, "server shutting down")
        deadline = time.monotonic() + timeout
        for connection in connections:
            connection.transport.join(max(0.0, deadline - time.monotonic()))
