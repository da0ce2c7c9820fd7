"""A post by an author with 20,000 followers, 5,000 of them connected, while a chat pair keeps talking.

Thousands of sockets do not fit the threaded test client, so this test drives
them with asyncio from one thread.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers.server import SCRIPTED_CLIENT_LIMITS, ServerFactory, ServerProcess, new_user_ids

pytestmark = pytest.mark.slow

FOLLOWERS = 20_000
CONNECTED = 5_000
CONNECT_CONCURRENCY = 100
TIMEOUT = 120.0


def _post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, json.loads(response.read())


async def _open(server: ServerProcess, user_id: int, token: str) -> ClientConnection:
    socket = await connect(server.ws_url, open_timeout=TIMEOUT, ping_interval=None, max_queue=None)
    await socket.send(json.dumps({"type": "connect", "userId": user_id, "token": token}))
    while json.loads(await socket.recv())["type"] != "connected":
        pass
    return socket


async def _open_all(server: ServerProcess, user_ids: list[int]) -> list[ClientConnection]:
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(user_id: int) -> ClientConnection:
        async with gate:
            return await _open(server, user_id, server.token(user_id))

    return await asyncio.gather(*(one(user_id) for user_id in user_ids))


class _Tally:
    """Notification frames per follower socket; `everyone` is set once each socket has one."""

    def __init__(self, sockets: int):
        self.counts = [0] * sockets
        self.reached = 0
        self.everyone = asyncio.Event()

    async def listen(self, socket: ClientConnection, index: int, post_id: int) -> None:
        async for text in socket:
            frame = json.loads(text)
            if frame["type"] == "notification" and frame["postId"] == post_id:
                self.counts[index] += 1
                if self.counts[index] == 1:
                    self.reached += 1
                    if self.reached == len(self.counts):
                        self.everyone.set()


async def _chat(
    alice: ClientConnection, bob: ClientConnection, bob_id: int, stop: asyncio.Event
) -> list[tuple[float, str]]:
    """Alice sends to Bob one message at a time until `stop`; returns (arrival time, content) of each."""
    received: list[tuple[float, str]] = []
    n = 0
    while not stop.is_set():
        content = f"during the fan-out {n}"
        await alice.send(json.dumps({"type": "message", "to": bob_id, "content": content, "clientMsgId": f"f-{n}"}))
        while True:
            frame = json.loads(await asyncio.wait_for(bob.recv(), TIMEOUT))
            if frame["type"] == "message":
                received.append((time.monotonic(), frame["content"]))
                break
        n += 1
    return received


async def _scenario(server: ServerProcess, author_id: int, online_ids: list[int], chat_ids: list[int]) -> None:
    post_id = author_id
    followers = await _open_all(server, online_ids)
    alice, bob = await _open_all(server, chat_ids)
    tally = _Tally(len(followers))
    listeners = [asyncio.create_task(tally.listen(socket, index, post_id)) for index, socket in enumerate(followers)]
    stop_chat = asyncio.Event()
    chat = asyncio.create_task(_chat(alice, bob, chat_ids[1], stop_chat))

    started = time.monotonic()
    status, body = await asyncio.to_thread(
        _post_json, f"{server.http_url}/notify/post", {"postId": post_id, "userId": author_id}
    )
    assert status == 200 and body == {"success": True, "recipients": FOLLOWERS, "online": CONNECTED}
    await asyncio.wait_for(tally.everyone.wait(), TIMEOUT)
    finished = time.monotonic()
    stop_chat.set()
    received = await asyncio.wait_for(chat, TIMEOUT)

    await asyncio.gather(*(socket.close() for socket in followers))
    await asyncio.gather(*listeners, return_exceptions=True)
    assert set(tally.counts) == {1}, "every connected follower gets exactly one frame"
    assert [content for _, content in received] == [f"during the fan-out {n}" for n in range(len(received))]
    during = [content for at, content in received if started <= at <= finished]
    assert during, f"no chat message arrived during the {finished - started:.2f} s fan-out"
    await asyncio.gather(alice.close(), bob.close())


def test_a_post_reaches_every_connected_follower_once_while_chat_flows(make_server: ServerFactory) -> None:
    server = make_server(SCRIPTED_CLIENT_LIMITS).start()  # the chat pair sends as fast as each message arrives
    author_id, *follower_ids = new_user_ids(FOLLOWERS + 1)
    chat_ids = new_user_ids(2)
    everyone = [author_id, *follower_ids, *chat_ids]
    server.storage.add_users([(user_id, f"user{user_id}") for user_id in everyone])
    server.storage.add_follows([(follower_id, author_id) for follower_id in follower_ids])
    server.storage.add_posts([(author_id, author_id)])  # the post the scenario announces (post id = author id)
    online_ids = follower_ids[:: FOLLOWERS // CONNECTED][:CONNECTED]

    asyncio.run(_scenario(server, author_id, online_ids, chat_ids))

    with server.connect(follower_ids[1]) as offline_follower:
        assert offline_follower.connected["unreadNotifications"] == 1
