"""Hostile clients before they are WebSocket users, on both ports (issue 14, item 4).

Every phase a peer controls ends at its deadline ([server] request_timeout
for a request, keep_alive_timeout between requests), headers get 16 KiB,
half-sent requests cannot crowd anyone else out ([limits] pending_*), and
running out of descriptors is logged once a second and recovered from.
Each attack runs against a real server process on the default settings
while a connected user pings (`Bystander`) and a newcomer keeps opening a
WebSocket and reading /healthz (`Newcomer`), and asserts the server's
memory, when the attacker was closed, and that both were served.
"""

from __future__ import annotations

import re
import resource
import selectors
import signal
import socket
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from tests.helpers.attack import Bystander, TimedLoop, assert_rss_growth_bounded, rss_kib
from tests.helpers.server import ServerFactory, ServerProcess, wait_until
from tests.helpers.wire import RawSocket

REQUEST_TIMEOUT = 10.0  # the defaults of [server] request_timeout and keep_alive_timeout
KEEP_ALIVE_TIMEOUT = 5.0
EARLY = 0.5  # a close this long before its deadline is not the deadline's doing
LATE = 2.5  # how long past its deadline a busy two-core machine may take to close a socket
AT_ONCE = 1.0  # seconds: a connection refused "at once" is closed within this
DRIP_PACE = 0.5  # seconds between two bytes of a dripping attacker
BURST = 600  # connections at once: more than gevent's default listen backlog (128), fewer than RLIMIT_NOFILE
ATTACKER = "127.0.0.2"  # loopback too, but not the newcomer's 127.0.0.1: per-address caps tell them apart
HEADER_BUDGET = 16 * 1024


def connect_from(port: int, source: str = ATTACKER) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def upgrade_request(port: int, extra_headers: bytes = b"", end: bytes = b"\r\n") -> bytes:
    """A WebSocket handshake; `end=b""` leaves it half-sent (the blank line never comes)."""
    return (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s%s"
    ) % (port, extra_headers, end)


def padding_header(size: int) -> bytes:
    """One header line of exactly `size` bytes."""
    return b"X-Pad: " + b"a" * (size - 9) + b"\r\n"


def status_of(sock: socket.socket, request: bytes) -> str:
    """Send `request`; the response's status line."""
    sock.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        assert data, f"closed without a response; received {received!r}"
        received += data
    return received.split(b"\r\n", 1)[0].decode()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes the connection (after its response) within `AT_ONCE`."""
    sock.settimeout(AT_ONCE)
    try:
        while sock.recv(65536):
            pass  # the rest of a response
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def pending_caps(server: ServerProcess) -> tuple[int, int]:
    """The caps the server derived from its settings and descriptor limit, as it logged them."""
    found = re.search(r"pending connections: (\d+) per port, (\d+) per address", server.log_path.read_text())
    assert found, server.log_tail()
    return int(found[1]), int(found[2])


class Newcomer(TimedLoop):
    """A new client, again and again: a WebSocket handshake, then GET /healthz."""

    def __init__(self, server: ServerProcess, interval: float = 0.1):
        super().__init__(interval)
        self._server = server

    def round_trip(self, count: int) -> None:
        with RawSocket(self._server.ws_port) as newcomer:
            newcomer.handshake()
        status, _ = self._server.get("/healthz")
        assert status == 200, status


@dataclass(eq=False)
class Attacker:
    """One hostile socket: what it has still to drip, and when (seconds after `started`) the server closed it."""

    name: str
    sock: socket.socket
    deadline: float
    drip: bytes = b""
    started: float = field(default_factory=time.monotonic)
    closed_after: float | None = None


def watch(attackers: list[Attacker], limit: float) -> None:
    """Until the server has closed every attacker (at most `limit` seconds): drip their bytes, one each
    `DRIP_PACE`, read and drop what the server sends, and note when each connection ended."""
    selector = selectors.DefaultSelector()
    for attacker in attackers:
        attacker.sock.setblocking(False)
        selector.register(attacker.sock, selectors.EVENT_READ, attacker)
    end = time.monotonic() + limit
    next_drip = time.monotonic()
    while selector.get_map() and time.monotonic() < end:
        for key, _ in selector.select(max(0.0, min(next_drip, end) - time.monotonic())):
            attacker = key.data
            try:
                ended = attacker.sock.recv(65536) == b""
            except ConnectionResetError:
                ended = True
            if ended:
                attacker.closed_after = time.monotonic() - attacker.started
                selector.unregister(attacker.sock)
                attacker.sock.close()
        if time.monotonic() >= next_drip:
            next_drip += DRIP_PACE
            for key in list(selector.get_map().values()):
                attacker = key.data
                if attacker.drip:
                    try:
                        attacker.sock.send(attacker.drip[:1])
                    except OSError:
                        continue  # closed: the next select reads its end
                    attacker.drip = attacker.drip[1:]
    for key in list(selector.get_map().values()):
        key.fileobj.close()
    selector.close()


def assert_closed_at_deadlines(attackers: list[Attacker]) -> None:
    wrong = [
        f"{attacker.name}: closed after {attacker.closed_after} s, deadline {attacker.deadline} s"
        for attacker in attackers
        if attacker.closed_after is None
        or not attacker.deadline - EARLY <= attacker.closed_after <= attacker.deadline + LATE
    ]
    assert not wrong, "\n".join(wrong)


# ---------------------------------------------------------------- deadlines


def test_every_phase_a_peer_controls_ends_at_its_deadline_on_both_ports(server: ServerProcess) -> None:
    user_id, quiet_id = server.add_users(2)
    ws, http = server.ws_port, server.http_port
    post = b"POST /notify/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    attacks = [  # name, port, sent at once, dripped, deadline
        ("silent on the WebSocket port", ws, b"", b"", REQUEST_TIMEOUT),
        ("silent on the HTTP port", http, b"", b"", REQUEST_TIMEOUT),
        ("handshake dripped a byte at a time", ws, b"", upgrade_request(ws, padding_header(200)), REQUEST_TIMEOUT),
        ("HTTP headers dripped", http, b"", b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200, REQUEST_TIMEOUT),
        ("a POST whose body never comes", http, post + b'{"postId"', b"", REQUEST_TIMEOUT),
        ("a POST body dripped", http, post, b'{"postId": 1, "authorId": 2, "x": "' + b"a" * 200, REQUEST_TIMEOUT),
        (
            "idle keep-alive on the HTTP port",
            http,
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"",
            KEEP_ALIVE_TIMEOUT,
        ),
        ("idle keep-alive on the WebSocket port", ws, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"", KEEP_ALIVE_TIMEOUT),
    ]
    stalled_handshake = upgrade_request(ws, padding_header(HEADER_BUDGET - 400), end=b"")  # just within the budget
    with Bystander(server, user_id) as bystander, Newcomer(server) as newcomer, server.connect(quiet_id) as quiet:
        rss_before = rss_kib(server.process.pid)
        attackers = []
        for name, port, sent, drip, deadline in attacks:
            attacker = Attacker(name, connect_from(port), deadline, drip)
            attacker.sock.sendall(sent)
            attackers.append(attacker)
        for n in range(100):
            attacker = Attacker(f"stalled 16 KiB handshake {n}", connect_from(ws), REQUEST_TIMEOUT)
            attacker.sock.sendall(stalled_handshake)
            attackers.append(attacker)
        watch(attackers, REQUEST_TIMEOUT + LATE)
        quiet.assert_alive()  # silent longer than any deadline: an upgraded socket keeps none
    assert_closed_at_deadlines(attackers)
    bystander.assert_served()
    newcomer.assert_served()
    assert_rss_growth_bounded(server, rss_before)


# ---------------------------------------------------------------- header budget


def test_headers_beyond_16_kib_get_431_on_both_ports_and_a_6_mib_header_flood_is_cut_short(
    server: ServerProcess,
) -> None:
    (user_id,) = server.add_users(1)
    ws, http = server.ws_port, server.http_port
    healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n"
    for size, refused in ((HEADER_BUDGET - 400, False), (HEADER_BUDGET, True)):
        with connect_from(ws) as sock:
            assert status_of(sock, upgrade_request(ws, padding_header(size))) == (
                "HTTP/1.1 431 Request Header Fields Too Large" if refused else "HTTP/1.1 101 Switching Protocols"
            )
            assert not refused or closed_by_server(sock)
        with connect_from(http) as sock:
            assert status_of(sock, healthz % padding_header(size)) == (
                "HTTP/1.1 431 Request Header Fields Too Large" if refused else "HTTP/1.1 200 OK"
            )
            assert closed_by_server(sock) == refused

    flood = upgrade_request(ws, padding_header(64 * 1024) * 100)  # pywsgi alone read and held all 6.4 MB
    cut_after: list[float | None] = []  # per flood: seconds until the server cut it (None: it took it all)

    def keep_flooding(until: float) -> None:
        while time.monotonic() < until:
            started = time.monotonic()
            with connect_from(ws) as sock:
                try:
                    sock.sendall(flood)
                    cut_after.append(None)
                except (ConnectionResetError, BrokenPipeError):
                    cut_after.append(time.monotonic() - started)

    with Bystander(server, user_id) as bystander, Newcomer(server) as newcomer:
        rss_before = rss_kib(server.process.pid)
        until = time.monotonic() + 4
        floods = [threading.Thread(target=keep_flooding, args=(until,)) for _ in range(4)]
        for thread in floods:
            thread.start()
        for thread in floods:
            thread.join(30)
    assert cut_after and all(took is not None and took < AT_ONCE for took in cut_after), cut_after
    bystander.assert_served()
    newcomer.assert_served()
    assert_rss_growth_bounded(server, rss_before)


def test_a_body_over_the_limit_is_answered_413_and_no_more_than_1_mib_of_its_rest_is_read(
    server: ServerProcess,
) -> None:
    (user_id,) = server.add_users(1)
    head = b"POST /notify/post HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with connect_from(server.http_port) as sock:  # a client that sends its whole body before reading sees the 413
        assert status_of(sock, head % (1 << 20) + b"{" * (1 << 20)) == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
    sent_until_cut: list[int] = []  # per endless body: the bytes the client got to send before the server closed

    def send_endless_body() -> None:
        with connect_from(server.http_port) as sock:
            sock.sendall(head % (1 << 40))
            sent = 0
            try:
                while sent < 100 << 20:
                    sent += sock.send(b"{" * 65536)
            except (ConnectionResetError, BrokenPipeError):
                pass
            sent_until_cut.append(sent)

    with Bystander(server, user_id) as bystander:
        rss_before = rss_kib(server.process.pid)
        until = time.monotonic() + 3
        while time.monotonic() < until:
            send_endless_body()
    # what the server read, and what the kernel's socket buffers took on both sides
    assert sent_until_cut and max(sent_until_cut) < 16 << 20, sent_until_cut
    bystander.assert_served()
    assert_rss_growth_bounded(server, rss_before)


def test_handshakes_cut_short_or_without_a_version_are_refused_and_nothing_in_the_module_logged_a_traceback(
    server: ServerProcess,
) -> None:
    ws = server.ws_port
    with connect_from(ws) as sock:
        sock.sendall(upgrade_request(ws, end=b""))
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b"", "an incomplete request gets no response, only the end"
    no_version = upgrade_request(ws).replace(b"Sec-WebSocket-Version: 13\r\n", b"")
    with connect_from(ws) as sock:
        assert status_of(sock, no_version) == "HTTP/1.1 426 Upgrade Required"
    assert "Traceback" not in server.log_path.read_text()  # this module's attacks included


# ---------------------------------------------------------------- pending connections


def test_half_sent_handshakes_from_one_address_are_capped_and_crowd_nobody_out(make_server: ServerFactory) -> None:
    # a lower per-address cap than the default's 500, so that the attack stays short
    server = make_server({"REALTIME_LIMITS_PENDING_PER_ADDRESS": "250"}).start()
    (user_id,) = server.add_users(1)
    _, per_address = pending_caps(server)
    half_sent = upgrade_request(server.ws_port, end=b"")
    with Bystander(server, user_id) as bystander, Newcomer(server) as newcomer:
        rss_before = rss_kib(server.process.pid)
        attackers = []
        for n in range(per_address + 50):
            attacker = Attacker(f"half-sent handshake {n}", connect_from(server.ws_port), REQUEST_TIMEOUT)
            try:
                attacker.sock.sendall(half_sent)
            except OSError:
                pass  # closed at once already
            attackers.append(attacker)
        watch(attackers, REQUEST_TIMEOUT + LATE)
    closed_at_once = [attacker for attacker in attackers if attacker.closed_after < AT_ONCE]
    assert len(closed_at_once) == 50, [attacker.closed_after for attacker in attackers]
    assert_closed_at_deadlines([attacker for attacker in attackers if attacker not in closed_at_once])
    bystander.assert_served()
    newcomer.assert_served()
    assert_rss_growth_bounded(server, rss_before)


def test_pending_handshakes_count_against_connections_per_address(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_LIMITS_CONNECTIONS_PER_ADDRESS": "3"}).start()
    ws = server.ws_port
    with ExitStack() as stack:
        pending = [stack.enter_context(connect_from(ws)) for _ in range(2)]
        for sock in pending:
            sock.sendall(upgrade_request(ws, end=b""))
        upgraded = stack.enter_context(connect_from(ws))
        assert status_of(upgraded, upgrade_request(ws)).startswith("HTTP/1.1 101")
        with connect_from(ws) as refused:  # one upgraded and two pending: three already
            assert status_of(refused, upgrade_request(ws)).startswith("HTTP/1.1 429")
        with connect_from(ws, "127.0.0.3") as other:
            assert status_of(other, upgrade_request(ws)).startswith("HTTP/1.1 101")
        third = stack.enter_context(connect_from(ws))  # a third pending one is let in; a fourth could not be
        third.sendall(upgrade_request(ws, end=b""))
        wait_until(lambda: _closed_at_once(connect_from(ws)), "a fourth pending connection closed at once")


def _handshake_succeeds(port: int) -> bool:
    try:
        with connect_from(port, "127.0.0.1") as sock:
            return status_of(sock, upgrade_request(port)).startswith("HTTP/1.1 101")
    except (AssertionError, OSError):
        return False


def _closed_at_once(sock: socket.socket) -> bool:
    with sock:
        return closed_by_server(sock)


def test_beyond_the_global_cap_new_connections_are_closed_at_once_and_the_other_port_is_served(
    make_server: ServerFactory,
) -> None:
    server = make_server({"REALTIME_LIMITS_PENDING_CONNECTIONS": "20"}).start()
    (user_id,) = server.add_users(1)
    assert pending_caps(server) == (20, 10)
    ws = server.ws_port
    with server.connect(user_id) as connected, ExitStack() as stack:
        for source in ("127.0.0.4", "127.0.0.5"):
            for _ in range(10):
                stack.enter_context(connect_from(ws, source)).sendall(upgrade_request(ws, end=b""))
        wait_until(lambda: _closed_at_once(connect_from(ws, "127.0.0.6")), "a 21st pending connection closed at once")
        assert server.get("/healthz")[0] == 200  # the HTTP port counts its own
        connected.send({"type": "ping"})
        connected.expect("pong")  # and those already connected are served
    wait_until(lambda: _handshake_succeeds(ws), "a handshake once the pending connections are gone")


# ---------------------------------------------------------------- running out of descriptors

DESCRIPTOR_LIMIT = 256
EXHAUSTION_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d)\.\d{3}Z ERROR web\.server: port (\d+): cannot accept connections: "
    r"Too many open files \(\d+ failed accept\(s\) in the last second\); retrying$"
)


def exhaustion_lines(server: ServerProcess) -> list[tuple[int, int]]:
    """(port, second of the day) of each log line about running out of descriptors."""
    lines = [line for line in server.log_path.read_text().splitlines() if "Too many open files" in line]
    parsed = [EXHAUSTION_LINE.match(line) for line in lines]
    assert all(parsed), f"not in the log format: {[line for line, ok in zip(lines, parsed) if not ok]}"
    return [(int(m[4]), int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3])) for m in parsed]


def test_running_out_of_descriptors_is_logged_once_a_second_and_the_service_recovers(
    make_server: ServerFactory,
) -> None:
    server = make_server().start()
    (user_id,) = server.add_users(1)
    pid = server.process.pid
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    ws = server.ws_port
    with Bystander(server, user_id) as bystander, ExitStack() as attack:
        rss_before = rss_kib(pid)
        # upgraded sockets (not yet authenticated: the auth timeout is 10 s away) until one is not accepted
        for n in range(DESCRIPTOR_LIMIT + 10):
            sock = attack.enter_context(connect_from(ws, f"127.0.1.{n % 200 + 1}"))
            sock.settimeout(AT_ONCE)
            try:
                assert status_of(sock, upgrade_request(ws)).startswith("HTTP/1.1 101")
            except TimeoutError:
                break  # in the listen backlog: the server cannot accept it
        else:
            raise AssertionError(f"{DESCRIPTOR_LIMIT + 10} sockets accepted under a limit of {DESCRIPTOR_LIMIT}")
        wait_until(lambda: len(exhaustion_lines(server)) >= 2, "two log lines about the exhaustion", timeout=5)
    wait_until(lambda: _handshake_succeeds(ws), "a handshake once descriptors are free", timeout=5)
    assert server.get("/healthz")[0] == 200
    bystander.assert_served()
    assert_rss_growth_bounded(server, rss_before)
    lines = exhaustion_lines(server)
    assert {port for port, _ in lines} == {ws}
    seconds = [second for _, second in lines]
    assert seconds == sorted(set(seconds)), f"more than one line a second: {seconds}"
    assert "Traceback" not in server.log_path.read_text()


def test_handshakes_refused_in_a_loop_are_logged_once_a_second_not_once_each(make_server: ServerFactory) -> None:
    """A peer retrying a forbidden Origin, or a handshake without a version, cannot flood the log."""
    server = make_server().start()
    ws = server.ws_port
    forbidden = upgrade_request(ws, b"Origin: https://elsewhere.example\r\n")
    no_version = upgrade_request(ws).replace(b"Sec-WebSocket-Version: 13\r\n", b"")
    started = time.monotonic()
    for _ in range(100):
        for request, status in ((forbidden, "HTTP/1.1 403 Forbidden"), (no_version, "HTTP/1.1 426 Upgrade Required")):
            with connect_from(ws) as sock:
                assert status_of(sock, request) == status
    seconds = time.monotonic() - started
    log = server.log_path.read_text()
    refusals = [line for line in log.splitlines() if "WebSocket handshake(s)" in line]
    assert 1 <= len(refusals) <= seconds + 1, refusals
    assert "No protocol defined" not in log, "gevent-websocket's warning for each handshake without a version"


def test_a_burst_of_connections_waits_in_the_listen_backlog_while_the_server_is_busy(
    make_server: ServerFactory,
) -> None:
    """A reconnect storm (every client of a restarted node at once) queues in the kernel until accepted. With a
    short listen backlog the kernel drops the SYNs beyond it, and each such client waits for its SYN to be sent
    again: one second, then three, seven."""
    server = make_server().start()
    storm: list[socket.socket] = []
    server.process.send_signal(signal.SIGSTOP)  # the server accepts nothing: only the backlog holds them
    try:
        for _ in range(BURST):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.ws_port))
            storm.append(sock)
        connected = _wait_connected(storm, timeout=5.0)
        assert connected == BURST, f"{connected} of {BURST} connections completed while the server was busy"
    finally:
        server.process.send_signal(signal.SIGCONT)
        for sock in storm:
            sock.close()
    assert _handshake_succeeds(server.ws_port)


def _wait_connected(socks: list[socket.socket], timeout: float) -> int:
    """How many of `socks` (connecting, non-blocking) the kernel connected within `timeout`."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_WRITE)
    connected, end = 0, time.monotonic() + timeout
    while selector.get_map() and time.monotonic() < end:
        for key, _ in selector.select(max(0.0, end - time.monotonic())):
            selector.unregister(key.fileobj)
            connected += key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    selector.close()
    return connected
