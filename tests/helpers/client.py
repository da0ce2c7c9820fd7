"""A test client that speaks the wire contract over a real WebSocket.

Frames are read on demand and kept in arrival order; `expect` waits (with a
timeout, never a sleep) for the first frame that matches and leaves the
others for later calls, so tests can wait for events in any order.
"""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

DEFAULT_TIMEOUT = 10.0


class Client:
    def __init__(self, url: str, **options: Any):
        self.url = url
        self.connection: ClientConnection = connect(url, legacy=True, open_timeout=DEFAULT_TIMEOUT, **options)
        self.received: list[dict[str, Any]] = []  # frames not yet taken by `expect`
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # ------------------------------------------------------------ sending

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.connection.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def connect(self, user_id: int, token: str) -> dict[str, Any]:
        """Send `connect` and return the `connected` frame."""
        self.send({"type": "connect", "userId": user_id, "token": token})
        return self.expect("connected")

    def message(self, to: int, content: str, client_msg_id: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "message", "to": to, "content": content}
        if client_msg_id is not None:
            frame["clientMsgId"] = client_msg_id
        self.send(frame)

    # ------------------------------------------------------------ receiving

    def expect(self, frame_type: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any) -> dict[str, Any]:
        """Take the first frame of `frame_type` whose fields equal `fields`, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        index = 0
        while True:
            while index < len(self.received):
                frame = self.received[index]
                if frame.get("type") == frame_type and all(frame.get(k) == v for k, v in fields.items()):
                    return self.received.pop(index)
                index += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(
                    f"no {frame_type} frame matching {fields} within {timeout} s; unmatched frames: {self.received}"
                )

    def expect_error(self, code: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        return self.expect("error", timeout, code=code)

    def expect_close(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Wait for the server to close the connection; return the close code."""
        deadline = time.monotonic() + timeout
        while self.close_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"connection still open after {timeout} s")
            self._read(remaining)
        return self.close_code

    def assert_alive(self) -> None:
        """The socket still works: a ping is answered by a pong."""
        self.send({"type": "ping"})
        self.expect("pong")

    def assert_no_frame(self, frame_type: str, within: float = 0.5, **fields: Any) -> None:
        """No frame of this type (and fields) arrives within `within` seconds."""
        try:
            frame = self.expect(frame_type, within, **fields)
        except AssertionError:
            return
        raise AssertionError(f"unexpected frame {frame}")

    def take_all(self, frame_type: str, within: float) -> list[dict[str, Any]]:
        """Every frame of this type received within `within` seconds from now (or before), in arrival order."""
        deadline = time.monotonic() + within
        while (remaining := deadline - time.monotonic()) > 0 and self._read(remaining):
            pass
        taken = [frame for frame in self.received if frame.get("type") == frame_type]
        self.received[:] = [frame for frame in self.received if frame.get("type") != frame_type]
        return taken

    def _read(self, timeout: float) -> bool:
        """Read one frame into `received`; False on timeout or once the connection closed."""
        if self.close_code is not None:
            return False
        try:
            text = self.connection.recv(timeout=timeout)
        except TimeoutError:
            return False
        except ConnectionClosed as closed:
            received = closed.rcvd
            self.close_code = received.code if received is not None else 1006
            self.close_reason = received.reason if received is not None else None
            return False
        self.received.append(json.loads(text))
        return True

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
