"""The service watched under load: `Traffic` threads that chat and record every answer, the rows the
database holds of it, and `/metrics` scrapes.

A test holds what the clients were promised (`Traffic.acked`) against what the database holds
(`stored_messages`) with `assert_promises_kept`.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.helpers.client import Client
from tests.helpers.server import ServerProcess

TIMEOUT = 10.0


# ---------------------------------------------------------------- traffic


class Traffic(threading.Thread):
    """One authenticated socket in a thread of its own.

    With `to`, it keeps up to `window` messages in flight to user `to`, at most
    `rate` a second (below the default per-user frame rate), each with its own
    clientMsgId and content; without, it only reads. It runs until stopped or
    until the server closes the socket, recording what it sent and every answer.
    """

    def __init__(self, client: Client, user_id: int, to: int | None = None, window: int = 4, rate: float = 300.0):
        super().__init__(daemon=True, name=f"traffic-{user_id}")
        self.client = client
        self.user_id = user_id
        self.to = to
        self.window = window
        self.interval = 1.0 / rate
        self.sent: list[tuple[str, str]] = []  # (clientMsgId, content) in send order
        self.acked: dict[str, int] = {}  # clientMsgId -> messageId of its message_sent
        self.refused: dict[str, str] = {}  # clientMsgId -> error code
        self.messages: list[dict[str, Any]] = []  # `message` frames received
        self.other_errors: list[dict[str, Any]] = []  # error frames that name no clientMsgId
        self.failure: BaseException | None = None
        self.finished = False
        self._in_flight: set[str] = set()
        self._halt = threading.Event()
        self._changed = threading.Condition()

    @property
    def close_code(self) -> int | None:
        return self.client.close_code

    def content_of(self, n: int) -> str:
        # non-ASCII, quotes and a length that varies: a half-written row would show
        return f'from {self.user_id} #{n} «grüße» "✓" 🎉 ' + "x" * (n % 37)

    def run(self) -> None:
        try:
            next_send = time.monotonic()
            while not self._halt.is_set() and self.client.close_code is None:
                now = time.monotonic()
                can_send = self.to is not None and len(self._in_flight) < self.window
                if can_send and now >= next_send:
                    self._send_next()
                    next_send = max(next_send + self.interval, now)
                    continue
                # reading with a timeout is also what paces the sends
                self._receive(min(0.1, max(0.0005, next_send - now)) if can_send else 0.1)
        except BaseException as error:  # reported by wait_for and stop
            self.failure = error
        finally:
            with self._changed:
                self.finished = True
                self._changed.notify_all()

    def _send_next(self) -> None:
        n = len(self.sent)
        client_msg_id, content = f"u{self.user_id}-{n}", self.content_of(n)
        with self._changed:
            self.sent.append((client_msg_id, content))
            self._in_flight.add(client_msg_id)
        try:
            self.client.message(self.to, content, client_msg_id)
        except ConnectionClosed:
            pass  # the server closed the socket; the next read records the code

    def _receive(self, timeout: float) -> None:
        self.client._read(timeout)  # noqa: SLF001 - the test client's reader, shared with `expect`
        frames, self.client.received[:] = list(self.client.received), []
        with self._changed:
            for frame in frames:
                self._on_frame(frame)
            self._changed.notify_all()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "message_sent":
            self.acked[frame["clientMsgId"]] = frame["messageId"]
            self._in_flight.discard(frame["clientMsgId"])
        elif kind == "message":
            self.messages.append(frame)
        elif kind == "error":
            client_msg_id = (frame.get("ref") or {}).get("clientMsgId")
            if client_msg_id is None:
                self.other_errors.append(frame)
            else:
                self.refused[client_msg_id] = frame["code"]
                self._in_flight.discard(client_msg_id)

    def wait_for(self, condition: Callable[[Traffic], bool], what: str, timeout: float = TIMEOUT) -> None:
        """Wait until `condition(self)` holds (checked whenever a frame arrives)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.finished:
                    raise AssertionError(
                        f"user {self.user_id}: {what}: not so within {timeout} s; sent {len(self.sent)}, "
                        f"acknowledged {len(self.acked)}, refused {self.refused}, other errors {self.other_errors}, "
                        f"close code {self.close_code}, failure {self.failure!r}"
                    )
                self._changed.wait(remaining)

    def count_acked(self) -> int:
        with self._changed:
            return len(self.acked)

    def halt(self) -> None:
        """Stop the thread without judging it (clean-up after a failure)."""
        self._halt.set()
        self.join(TIMEOUT)

    def stop(self) -> None:
        self._halt.set()
        self.join(TIMEOUT)
        assert not self.is_alive(), f"traffic thread of user {self.user_id} did not stop"
        assert self.failure is None, f"traffic thread of user {self.user_id} failed: {self.failure!r}"

    def wait_closed(self, timeout: float = TIMEOUT) -> int:
        """Wait for the server to close the socket; return the close code."""
        self.wait_for(lambda t: t.close_code is not None, "closed by the server", timeout)
        self.join(TIMEOUT)
        assert self.failure is None, f"traffic thread of user {self.user_id} failed: {self.failure!r}"
        return self.close_code  # type: ignore[return-value]


def start_traffic(
    server: ServerProcess, senders: int, online_recipients: int, rate: float = 300.0
) -> tuple[list[Traffic], list[Traffic]]:
    """`senders` users each chatting to a recipient of their own (`rate` messages a second each); the first
    `online_recipients` recipients are connected."""
    users = server.add_users(2 * senders)
    sender_ids, recipient_ids = users[:senders], users[senders:]
    recipients = [Traffic(server.connect(r), r) for r in recipient_ids[:online_recipients]]
    chatting = [Traffic(server.connect(s), s, to=r, rate=rate) for s, r in zip(sender_ids, recipient_ids)]
    for thread in recipients + chatting:
        thread.start()
    return chatting, recipients


# ---------------------------------------------------------------- the database, read from the test


@dataclass(frozen=True)
class Row:
    id: int
    sender_id: int
    recipient_id: int
    content: str
    client_msg_id: str | None
    status: str


def _text(value: Any) -> Any:
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def stored_messages(server: ServerProcess, sender_ids: list[int]) -> list[Row]:
    """Every message row from these senders, by id."""
    marks = ", ".join(["%s"] * len(sender_ids))
    rows = server.storage.engine.transaction(
        lambda session: session.query(
            "SELECT id, sender_id, recipient_id, content, client_msg_id, status FROM realtime_messages"
            f" WHERE sender_id IN ({marks}) ORDER BY id",
            tuple(sender_ids),
        )
    )
    return [Row(int(r[0]), int(r[1]), int(r[2]), _text(r[3]), _text(r[4]), _text(r[5])) for r in rows]


def assert_promises_kept(rows: list[Row], senders: list[Traffic]) -> None:
    """Every acknowledged message is stored once, under its messageId, with its exact content; every stored
    row of these senders is one they sent, whole."""
    for sender in senders:
        sent = dict(sender.sent)
        mine = [row for row in rows if row.sender_id == sender.user_id]
        keys = [row.client_msg_id for row in mine]
        assert len(keys) == len(set(keys)), f"user {sender.user_id}: a clientMsgId is stored twice: {keys}"
        for row in mine:
            assert row.client_msg_id in sent, f"stored {row} has a clientMsgId its sender never sent"
            assert row.content == sent[row.client_msg_id], f"stored {row} is not what was sent"
            assert row.recipient_id == sender.to, row
        stored = {row.client_msg_id: row.id for row in mine}
        for client_msg_id, message_id in sender.acked.items():
            assert stored.get(client_msg_id) == message_id, (
                f"user {sender.user_id}: {client_msg_id} was acknowledged as message {message_id}, "
                f"stored as {stored.get(client_msg_id)}"
            )


# ---------------------------------------------------------------- metrics


class Scrape:
    """One `/metrics` answer, parsed by prometheus_client's own parser."""

    def __init__(self, server: ServerProcess):
        with urllib.request.urlopen(server.http_url + "/metrics", timeout=TIMEOUT) as response:
            assert response.status == 200
            assert response.headers.get_content_type() == "text/plain"
            text = response.read().decode("utf-8")
        self.families = {family.name: family for family in text_string_to_metric_families(text)}
        self.samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in self.families.values()
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a labelled child not created yet."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def labels(self, family: str, label: str) -> set[str]:
        return {sample.labels[label] for sample in self.families[family].samples}
