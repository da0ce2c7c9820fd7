"""What every attack test measures about a real server process: its memory, and a bystander's latency.

An attack test starts a `Bystander` (a connected user pinging the service
at a steady pace from its own thread; other `TimedLoop`s time other actions
the same way), runs the attack, and then asserts the
three things the hostile-client issue names: the server's resident memory
grew by at most a few tens of MiB (`rss_kib`), the attacker's socket was
closed within its deadline, and the bystander's round trips stayed low.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.helpers.client import Client
from tests.helpers.server import ServerProcess
from tests.helpers.wire import OPCODE_CLOSE, OPCODE_TEXT, RawSocket

BYSTANDER_INTERVAL = 0.02  # seconds between the bystander's pings
BYSTANDER_P99_BOUND = 0.25  # seconds: "well under 250 ms" is asserted on the p99 of these round trips
RSS_GROWTH_BOUND_KIB = 40 * 1024


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """A size from /proc/<pid>/status, in KiB (VmRSS: resident memory now; VmHWM: its peak)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


class TimedLoop:
    """Does `round_trip` every `interval` seconds from its own thread and times each one.

    Use as a context manager around the attack; afterwards `round_trips`
    holds every time in seconds and `assert_served` checks them. A failed
    round trip ends the loop and fails `assert_served`.
    """

    def __init__(self, interval: float):
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._failure: BaseException | None = None
        self.round_trips: list[float] = []

    def __enter__(self) -> TimedLoop:
        self.open()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(30)
        self.close()

    def open(self) -> None:
        """Before the first round trip."""

    def close(self) -> None:
        """After the last round trip."""

    def round_trip(self, count: int) -> None:
        """The `count`th action to time (from 0); raises if it was not served."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            count = 0
            while not self._stop.wait(self._interval):
                started = time.monotonic()
                self.round_trip(count)
                self.round_trips.append(time.monotonic() - started)
                count += 1
        except BaseException as failure:  # reported by assert_served, in the test's thread
            self._failure = failure

    def p99(self) -> float:
        return statistics.quantiles(self.round_trips, n=100, method="inclusive")[98]

    def assert_served(self, bound: float = BYSTANDER_P99_BOUND, min_round_trips: int = 20) -> None:
        """Every round trip was served, there were enough of them to count, and the p99 stayed under `bound`."""
        assert self._failure is None, f"{type(self).__name__} was not served: {self._failure!r}"
        assert len(self.round_trips) >= min_round_trips, f"only {len(self.round_trips)} round trips measured"
        worst = max(self.round_trips)
        assert self.p99() < bound, f"{type(self).__name__} p99 {self.p99() * 1000:.0f} ms (worst {worst * 1000:.0f} ms)"


class Bystander(TimedLoop):
    """A connected user who keeps pinging the service (`ping` frames, answered by its UserActor)."""

    def __init__(self, server: ServerProcess, user_id: int, interval: float = BYSTANDER_INTERVAL):
        super().__init__(interval)
        self._server = server
        self._user_id = user_id
        self._client: Client | None = None

    def open(self) -> None:
        self._client = self._server.connect(self._user_id)

    def close(self) -> None:
        self._client.close()

    def round_trip(self, count: int) -> None:
        self._client.send({"type": "ping"})
        self._client.expect("pong", timeout=10)


def assert_rss_growth_bounded(server: ServerProcess, before_kib: int, bound_kib: int = RSS_GROWTH_BOUND_KIB) -> None:
    """The server's peak resident memory since `before_kib` was read grew by at most `bound_kib`."""
    peak = rss_kib(server.process.pid, "VmHWM")
    growth = peak - before_kib
    assert growth <= bound_kib, f"server memory grew by {growth / 1024:.0f} MiB (bound {bound_kib / 1024:.0f} MiB)"


class Flooder:
    """Sends frames from a thread as fast as the socket takes them, for at most `seconds`, and keeps on after the
    server's close frame, as a script that never reads its errors would, until the server ends the connection."""

    def __init__(self, socket: RawSocket, frames: list[bytes], seconds: float):
        self._socket = socket
        self._frames = frames
        self._seconds = seconds
        self.sent = 0
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flooder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._seconds
        try:
            for frame in self._frames:
                if time.monotonic() > deadline:
                    break
                self._socket.send(frame)
                self.sent += 1
        except OSError:
            pass  # the server ended the connection
        finally:
            self.finished.set()


def _read_until_closed(socket: RawSocket, timeout: float) -> tuple[list[dict[str, Any]], int | None, float, float]:
    """Read everything (so the server's writes never wait on this socket) until the server ends the connection:
    (the text frames, the close code, when the close frame came, when the connection ended), times monotonic."""
    texts: list[dict[str, Any]] = []
    close_code, closed_at = None, float("nan")
    try:
        while True:
            opcode, payload = socket.read_frame(timeout=timeout)
            if opcode == OPCODE_TEXT:
                texts.append(json.loads(payload))
            elif opcode == OPCODE_CLOSE and close_code is None:
                close_code, closed_at = int.from_bytes(payload[:2], "big"), time.monotonic()
    except (EOFError, ConnectionResetError):  # a reset: the server cut a peer still sending (web.ws.transport)
        return texts, close_code, closed_at, time.monotonic()


@dataclass(frozen=True)
class Flood:
    """What a flooding attacker saw: every text frame, the close code, and the times (seconds)."""

    texts: list[dict[str, Any]]
    close_code: int | None
    closed_after: float  # from the first frame sent to the server's close frame
    ended_after: float  # from the close frame to the end of the TCP connection
    sent: int  # frames the attacker sent

    def assert_closed(self, code: int, close_deadline: float, tcp_deadline: float) -> None:
        """Closed with `code` within `close_deadline`, and the connection gone within `tcp_deadline` after."""
        assert self.close_code == code, (self.close_code, self.texts[-3:])
        assert self.closed_after < close_deadline, f"{code} after {self.closed_after:.1f} s"
        assert self.ended_after < tcp_deadline, f"TCP still open {self.ended_after:.1f} s after the {code}"


def flood(server: ServerProcess, attacker_id: int, frames: list[bytes], seconds: float, timeout: float) -> Flood:
    """Connect as `attacker_id` and send `frames` as fast as the socket takes them for at most `seconds`, reading
    everything until the server ends the connection (at most `timeout` between two frames)."""
    with RawSocket(server.ws_port) as attacker:
        attacker.connect(server, attacker_id)
        flooder = Flooder(attacker, frames, seconds)
        started = time.monotonic()
        flooder.start()
        texts, close_code, closed_at, ended_at = _read_until_closed(attacker, timeout)
        assert flooder.finished.wait(seconds + 5)
    return Flood(texts, close_code, closed_at - started, ended_at - closed_at, flooder.sent)
