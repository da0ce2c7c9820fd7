"""What every attack test measures about a real server process: its memory, and a bystander's latency.

An attack test starts a `Bystander` (a connected user pinging the service
at a steady pace from its own thread; other `TimedLoop`s time other actions
the same way), runs the attack, and then asserts the
three things the hostile-client issue names: the server's resident memory
grew by at most a few tens of MiB (`rss_kib`), the attacker's socket was
closed within its deadline, and the bystander's round trips stayed low.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from tests.helpers.client import Client
from tests.helpers.server import ServerProcess

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
