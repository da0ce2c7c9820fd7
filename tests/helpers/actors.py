"""Actors in the test process: a socket as actors see it that records what they write, and the web layer's two
moves (attach a socket, hand it a frame). Every wait is on an event, with a timeout."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

import gevent
import orjson
import pykka
from gevent.event import Event

from actors import Node
from actors.messages import AttachSocket, ClientFrame
from settings import Settings, load_settings

TIMEOUT = 5.0  # seconds any one expected event may take
_transport_ids = itertools.count(1)


class FakeTransport:
    """A socket as actors see it (`actors.messages.Transport`): records the frames written and the close.

    A frame counts as on the wire as soon as it is written, so its `on_written` runs at once. `room` is what
    `wait_for_room` does: None answers True at once, an Event is waited on, False refuses (a socket too slow).
    """

    def __init__(self, room: Event | bool | None = None):
        self.id = next(_transport_ids)
        self.closing = False
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.waiting_for_room = Event()
        self._room = room
        self._read = 0
        self._changed = Event()

    def write(self, text: str, on_written: Callable[[], None] | None = None) -> bool:
        if self.closing:
            return False
        self.frames.append(orjson.loads(text))
        self._changed.set()
        if on_written is not None:
            on_written()
        return True

    def close(self, code: int, reason: str = "") -> None:
        if not self.closing:
            self.closing, self.close_code = True, code
            self._changed.set()

    def wait_for_room(self, timeout: float) -> bool:
        self.waiting_for_room.set()
        if isinstance(self._room, Event):
            return self._room.wait(timeout)
        return self._room is None

    def next_frame(self) -> dict[str, Any]:
        """The next frame written that the test has not read yet, waiting for it."""
        self._wait_for(lambda: self._read < len(self.frames), "a frame")
        self._read += 1
        return self.frames[self._read - 1]

    def expect(self, frame_type: str, **fields: Any) -> dict[str, Any]:
        """The next frame, which must be of `frame_type` and have `fields`."""
        frame = self.next_frame()
        assert frame["type"] == frame_type, f"socket {self.id}: expected {frame_type} {fields}, got {frame}"
        assert {key: frame.get(key) for key in fields} == fields, f"socket {self.id}: got {frame}"
        return frame

    def wait_closed(self) -> int:
        self._wait_for(lambda: self.close_code is not None, "its close")
        assert self.close_code is not None
        return self.close_code

    def _wait_for(self, condition: Callable[[], bool], what: str) -> None:
        with gevent.Timeout(TIMEOUT, AssertionError(f"socket {self.id}: no {what} in {TIMEOUT} s: {self.frames}")):
            while not condition():
                self._changed.clear()
                self._changed.wait()


def connect(node: Node, user_id: int, transport: FakeTransport | None = None) -> tuple[pykka.ActorRef, FakeTransport]:
    """Attach a socket as the web layer does after a valid `connect`; answers the user's actor and the socket."""
    transport = transport or FakeTransport()
    actor = node.router.ask(AttachSocket(user_id, transport), timeout=TIMEOUT)
    assert actor is not None, f"user {user_id}: socket refused"
    return actor, transport


def send(actor: pykka.ActorRef, transport: FakeTransport, **frame: Any) -> None:
    actor.tell(ClientFrame(transport, orjson.dumps(frame).decode()))


def unit_settings(folder: Path, **environ: str) -> Settings:
    """The defaults, with a test secret, SQLite in `folder`, and these REALTIME_* overrides (no config file read)."""
    empty = folder / "empty.ini"
    empty.write_text("", encoding="utf-8")
    defaults = {
        "REALTIME_AUTH_SECRET": "unit-test-secret-0123456789abcdef",
        "REALTIME_DATABASE_PATH": str(folder / "realtime.sqlite3"),
    }
    return load_settings(empty, environ={**defaults, **environ})
