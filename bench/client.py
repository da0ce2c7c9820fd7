"""The load generator's WebSocket client: websockets' sans-I/O protocol under a bare asyncio Protocol.

The load generator shares the machine with the servers it measures, so every
microsecond it spends per frame is taken from them. `websockets`' asyncio
connection gives each socket tasks, locks and queues; here the same
library's protocol object parses and builds the frames, and a plain asyncio
Protocol moves the bytes: a frame received is a string in a deque, a frame
sent is one `transport.write`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import urlsplit

from websockets.client import ClientProtocol
from websockets.frames import CloseCode, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri


class SocketClosed(Exception):
    """The connection ended while a frame was awaited."""


class BenchSocket(asyncio.Protocol):
    """One client WebSocket: `send(text)`, `await recv()` or `async for`, `await close()`, and `open`."""

    def __init__(self, url: str):
        self._protocol = ClientProtocol(parse_uri(url), max_size=None)
        self._transport: asyncio.Transport | None = None
        self._messages: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        self._opened: asyncio.Future[None] = loop.create_future()
        self._lost: asyncio.Future[None] = loop.create_future()

    @classmethod
    async def connect(cls, url: str, timeout: float) -> BenchSocket:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        _, socket = await asyncio.wait_for(
            loop.create_connection(lambda: cls(url), parts.hostname, parts.port or 80), timeout
        )
        await asyncio.wait_for(asyncio.shield(socket._opened), timeout)
        return socket

    @property
    def open(self) -> bool:
        return self._protocol.state is State.OPEN and not self._lost.done()

    def send(self, text: str) -> None:
        self._protocol.send_text(text.encode())
        self._flush()

    async def recv(self) -> str:
        while not self._messages:
            if self._lost.done() or self._protocol.state is State.CLOSED:
                raise SocketClosed()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._messages.popleft()

    def __aiter__(self) -> BenchSocket:
        return self

    async def __anext__(self) -> str:
        """`async for text in socket`: every text frame until the connection ends."""
        try:
            return await self.recv()
        except SocketClosed:
            raise StopAsyncIteration from None

    async def close(self, timeout: float = 5.0) -> None:
        if self._protocol.state is State.OPEN:
            self._protocol.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        try:
            await asyncio.wait_for(asyncio.shield(self._lost), timeout)
        except asyncio.TimeoutError:
            self._transport.abort()

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._protocol.send_request(self._protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                if self._protocol.handshake_exc is not None:
                    self._opened.set_exception(self._protocol.handshake_exc)
                else:
                    self._opened.set_result(None)
            elif event.opcode is Opcode.TEXT:
                self._messages.append(event.data.decode())
        self._flush()
        self._wake()

    def eof_received(self) -> bool:
        self._protocol.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc or SocketClosed())
        self._lost.set_result(None)
        self._wake()

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._transport.write(chunk)
            elif self._transport.can_write_eof():
                self._transport.write_eof()
        if self._protocol.close_expected():
            self._transport.close()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
