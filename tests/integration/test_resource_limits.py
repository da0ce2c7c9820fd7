"""Attacks on one WebSocket's resources, against a real server process on the default settings.

Each attacker writes its own frames on a raw TCP socket and never reads what
the server answers (its receive buffer is made small, so the server's writes
soon have nowhere to go). Each test asserts the three things the
hostile-client issue names: the server's peak memory grew by a few tens of
MiB at most, the attacker's connection ended within the close deadline
(its sends fail, or the kernel's TCP table shows that no process holds the
server's end any more), and a bystander's ping round trips stayed well under
250 ms; and that the attack cost the server little CPU. How the server
closed is read from `/metrics` (close frames sent, by code), since an
attacker that does not read never sees the close frame.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from dataclasses import dataclass

import pytest

from settings import SCHEMA
from storage import MessageDraft
from tests.helpers.attack import Bystander, assert_rss_growth_bounded, rss_kib
from tests.helpers.operations import Scrape
from tests.helpers.server import ServerFactory, ServerProcess
from tests.helpers.wire import (
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    OPCODE_TEXT,
    RawSocket,
    client_frame,
    connect_frame,
    json_frame,
)
from web.ws.codec import MAX_FRAGMENTS
from web.ws.transport import CLOSE_FLUSH_SECONDS, CLOSE_GRACE_SECONDS

ATTACKER_RCVBUF = 4096  # the attacker's receive window: full after a few dozen pongs
CLOSE_DEADLINE = CLOSE_FLUSH_SECONDS + CLOSE_GRACE_SECONDS  # from the server's decision to the end of TCP
MARGIN = 1.5  # seconds for the decision itself and for a loaded two-core machine
LOOK_INTERVAL = 0.1  # seconds between two looks at the kernel's TCP table (`ss` takes ~15 ms here)
FLOOD_BLOCK_FRAMES = 256  # frames per buffer handed to send(): whole frames, whatever send() takes
ATTACK_SECONDS_MAX = 15.0  # no attack runs longer than this, closed or not
# server CPU during an attack, the bystander's pings included (0.03 to 0.2 s here); a flood read and discarded
# until the close deadline took 0.9 s
ATTACK_CPU_SECONDS = 0.4
SOCKET_FRAME_BURST = int(SCHEMA["limits"]["socket_frame_burst"].default)


class Attacker:
    """A raw WebSocket client that writes without ever reading (after the 101), with a small receive buffer."""

    def __init__(self, server: ServerProcess):
        self.raw = RawSocket(server.ws_port, receive_buffer=ATTACKER_RCVBUF)
        self.sock = self.raw.sock
        self.ports = (server.ws_port, self.sock.getsockname()[1])  # (the server's end, ours)

    def __enter__(self) -> Attacker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def flood(self, frames: bytes, pace: float = 0.0, max_seconds: float = ATTACK_SECONDS_MAX) -> float:
        """Send `frames` over and over (every `pace` seconds, or as fast as the socket takes them) until the
        server has let go of the connection; returns the seconds that took. Fails after `max_seconds`."""
        self.sock.setblocking(False)
        started = time.monotonic()
        deadline = started + max_seconds
        next_look = started + LOOK_INTERVAL
        pending = b""
        while (now := time.monotonic()) < deadline:
            if now >= next_look:
                if not self._held_by_the_server():
                    return now - started
                next_look = now + LOOK_INTERVAL
            if not pending:
                pending = frames
            try:
                pending = pending[self.sock.send(pending) :]
            except BlockingIOError:  # the server reads no more: wait for room, or for the end of the connection
                select.select([], [self.sock], [self.sock], LOOK_INTERVAL)
            except (ConnectionResetError, BrokenPipeError):
                return time.monotonic() - started
            if pace and not pending:
                time.sleep(pace)  # the attack's own pace, not a wait for an event
        raise AssertionError(f"the server still had the connection open after {max_seconds} s")

    def _held_by_the_server(self) -> bool:
        """Whether the server's end of this connection is still a socket of some process.

        A server that closes a connection whose peer does not read leaves its end to the kernel, which
        keeps trying to deliver what it accepted (FIN-WAIT-1, owned by no process): the attacker sees
        nothing of that, so the kernel is asked (`ss`, over netlink). An end not found at all is gone only if
        it is still missing at a second look: a dump of the table may miss an entry that moves meanwhile.
        """
        for _look in range(2):
            found = subprocess.run(
                ["ss", "-Htnp", "state", "all", f"( sport = :{self.ports[0]} and dport = :{self.ports[1]} )"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if found:
                return "users:" in found
        return False


def closes(server: ServerProcess, code: int) -> float:
    """How many close frames with `code` the server has decided to send since it started."""
    return Scrape(server).value("realtime_sockets_closed_total", code=str(code))


def cpu_seconds(server: ServerProcess) -> float:
    """The CPU time (user and system) the server process has used so far."""
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Before:
    """What the server had used, and how often it had closed with `code` (if given), before an attack."""

    server: ServerProcess
    code: int | None = None
    rss_kib: int = 0
    cpu: float = 0.0
    closes: float = 0.0

    def __post_init__(self) -> None:
        assert self.server.process is not None
        self.rss_kib = rss_kib(self.server.process.pid)
        self.cpu = cpu_seconds(self.server)
        if self.code is not None:
            self.closes = closes(self.server, self.code)

    def assert_contained(
        self, bystander: Bystander, took: float, deadline: float, cpu_bound: float | None = ATTACK_CPU_SECONDS
    ) -> None:
        """Ended within `deadline` (closed with `code`), memory and (unless None) CPU bounded, the bystander
        served."""
        assert took < deadline, f"the attacker's connection lasted {took:.1f} s (deadline {deadline:.1f} s)"
        if self.code is not None:
            assert closes(self.server, self.code) == self.closes + 1, f"the server did not close with {self.code}"
        assert_rss_growth_bounded(self.server, self.rss_kib)
        used = cpu_seconds(self.server) - self.cpu
        assert cpu_bound is None or used < cpu_bound, f"the server used {used:.2f} s of CPU during the attack"
        bystander.assert_served()


# ---------------------------------------------------------------- control frames


def test_a_ping_flood_before_connect_is_closed_with_4429_within_the_deadline(make_server: ServerFactory) -> None:
    """125-byte pings as fast as the socket takes them, no connect, nothing read (once 44 -> 695 MiB in 6 s)."""
    server = make_server().start()
    (bystander_id,) = server.add_users(1)
    before = Before(server, 4429)
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.handshake()
        ping = client_frame(OPCODE_PING, b"p" * 125)
        took = attacker.flood(ping * FLOOD_BLOCK_FRAMES)
    before.assert_contained(bystander, took, CLOSE_DEADLINE + MARGIN)


def test_a_connected_socket_flooding_pings_and_unsolicited_pongs_is_closed_with_4429(
    make_server: ServerFactory,
) -> None:
    """After connect too, control frames go through the socket's frame rate: pongs are not answered, but
    reading them costs all the same."""
    server = make_server().start()
    attacker_id, bystander_id = server.add_users(2)
    before = Before(server, 4429)
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.connect(server, attacker_id)
        frames = client_frame(OPCODE_PING, b"") + client_frame(OPCODE_PONG, b"x" * 125)
        took = attacker.flood(frames * FLOOD_BLOCK_FRAMES)
    before.assert_contained(bystander, took, CLOSE_DEADLINE + MARGIN)


def test_a_socket_that_never_connects_nor_reads_is_cut_after_the_auth_timeout(make_server: ServerFactory) -> None:
    """Pings at a pace under every rate limit, nothing read: the connection ends CLOSE_DEADLINE after the auth
    timeout at the latest, whether the close frame fits in the kernel's buffer (here, where the kernel gives the
    socket about 4 MB, it does; the history test below has a close frame that cannot) or not."""
    auth_timeout = 1.0  # the deadline under test starts here; the default 10 s would only make the test longer
    server = make_server({"REALTIME_AUTH_TIMEOUT": str(auth_timeout)}).start()
    (bystander_id,) = server.add_users(1)
    before = Before(server, 4408)
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.handshake()
        took = attacker.flood(client_frame(OPCODE_PING, b"p" * 125), pace=0.001)
    assert took > auth_timeout, f"closed after {took:.1f} s, before the auth timeout"
    before.assert_contained(bystander, took, auth_timeout + CLOSE_DEADLINE + MARGIN)


# ---------------------------------------------------------------- fragments


def test_a_fragment_bomb_of_empty_continuations_is_closed_with_1009_at_the_fragment_cap(
    make_server: ServerFactory,
) -> None:
    """6-byte empty continuation frames in one endless message (once 43 -> 173 MiB in 11 s, a core busy)."""
    server = make_server().start()
    attacker_id, bystander_id = server.add_users(2)
    before = Before(server, 1009)
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.connect(server, attacker_id)
        attacker.sock.sendall(client_frame(OPCODE_TEXT, b"{", fin=False))
        took = attacker.flood(client_frame(OPCODE_CONTINUATION, b"", fin=False) * FLOOD_BLOCK_FRAMES)
    before.assert_contained(bystander, took, CLOSE_DEADLINE + MARGIN)


def test_messages_in_many_fragments_each_under_the_cap_are_closed_by_the_frame_rate_with_4429(
    make_server: ServerFactory,
) -> None:
    """Continuation frames count against the socket's frame rate, though each message is valid and whole."""
    server = make_server().start()
    attacker_id, bystander_id = server.add_users(2)
    before = Before(server, 4429)
    pieces = [b'{"type":"flood"', *([b""] * (MAX_FRAGMENTS - 2)), b"}"]  # refused as bad_request, counted as invalid
    message = b"".join(
        client_frame(OPCODE_TEXT if index == 0 else OPCODE_CONTINUATION, piece, fin=index == len(pieces) - 1)
        for index, piece in enumerate(pieces)
    )
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.connect(server, attacker_id)
        took = attacker.flood(message)
    before.assert_contained(bystander, took, CLOSE_DEADLINE + MARGIN)
    # the socket's frame budget stopped it (its burst holds 39 such messages, and it refills while the flood is
    # read), not the per-user limit, which would have let 5,000 of these through
    reached_the_actor = Scrape(server).value("realtime_frames_received_total", type="invalid")
    assert reached_the_actor <= 2 * SOCKET_FRAME_BURST // MAX_FRAGMENTS, reached_the_actor


# ---------------------------------------------------------------- the send queue, in bytes

HISTORY_MESSAGES = 100
HISTORY_CONTENT = "h" * 4000
HISTORY_REQUESTS = 900


def test_history_pages_requested_by_a_socket_that_never_reads_close_it_with_1013(make_server: ServerFactory) -> None:
    """900 requests for 100 messages of 4,000 characters (40 KiB sent) once pinned 1.46 GB: the byte budget of
    the send queue closes the socket instead, long before the frame budget would."""
    server = make_server().start()
    attacker_id, peer_id, bystander_id = server.add_users(3)
    # stored directly: the default send limits stop a client that sends 400,000 characters at once
    server.storage.store_messages(
        [
            MessageDraft(peer_id, attacker_id, HISTORY_CONTENT, f"h-{n}", int(time.time() * 1000))
            for n in range(HISTORY_MESSAGES)
        ]
    )
    before = Before(server, 1013)
    request = json_frame({"type": "history", "with": peer_id, "limit": 100})
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.handshake()
        attacker.sock.sendall(connect_frame(server, attacker_id) + request * HISTORY_REQUESTS)
        took = attacker.flood(json_frame({"type": "ping"}), pace=0.05)  # a ping now and then, to see the end
    # the user's actor builds no page for a socket that is closing (once some 2 s of CPU for 900 pages here)
    before.assert_contained(bystander, took, CLOSE_DEADLINE + 2 * MARGIN)


# ---------------------------------------------------------------- the keep-alive


@pytest.mark.parametrize("extra", [b"", client_frame(OPCODE_PONG, b"guess")], ids=["pings", "pings-and-pongs"])
def test_a_socket_that_sends_but_never_reads_is_dropped_by_the_keep_alive(
    make_server: ServerFactory, extra: bytes
) -> None:
    """A ping a second is life to a server that counts any byte; only a pong echoing its own ping counts now."""
    interval = 1.0  # [server] ping_interval: the default 25 s would make the test last a minute
    server = make_server({"REALTIME_SERVER_PING_INTERVAL": str(interval)}).start()
    attacker_id, bystander_id = server.add_users(2)
    before = Before(server)  # a dropped peer gets no close frame: nothing queued would reach it
    with Bystander(server, bystander_id) as bystander, Attacker(server) as attacker:
        attacker.raw.connect(server, attacker_id)
        took = attacker.flood(client_frame(OPCODE_PING, b"alive") + extra, pace=0.1)
        assert server.health()[1]["sockets"] == 1  # the bystander's, kept: its client answers every ping
    # pinged at the first round, dropped at the second: two intervals, and a third for the phase of the first
    before.assert_contained(bystander, took, 3 * interval + MARGIN)
