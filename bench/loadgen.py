"""Load generator: asyncio WebSocket clients (on uvloop) that speak the wire contract.

Each public `run_*` function runs in a worker process (several at once, so
the generator is not the bottleneck) and returns plain data for the parent to
merge. Workers start sending at a shared wall-clock instant `start_at`.
Each takes the server's WebSocket URLs, one per node: the i-th user of its
list connects to `urls[i % len(urls)]`, so with two nodes the chat pairs
(0, 1), (2, 3), ... have one user on each and the followers alternate.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import uvloop

from bench.client import BenchSocket

CONNECT_CONCURRENCY = 100
OPEN_TIMEOUT = 60.0


def token(secret: str, user_id: int) -> str:
    return jwt.encode({"sub": str(user_id), "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


async def open_socket(url: str, secret: str, user_id: int) -> BenchSocket:
    socket = await BenchSocket.connect(url, OPEN_TIMEOUT)
    socket.send(json.dumps({"type": "connect", "userId": user_id, "token": token(secret, user_id)}))
    while json.loads(await socket.recv())["type"] != "connected":
        pass
    return socket


async def open_sockets(urls: list[str], secret: str, user_ids: list[int]) -> tuple[list[BenchSocket], float]:
    """Connect and authenticate every user, spread over `urls`; return the sockets and the seconds it took."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int, user_id: int) -> BenchSocket:
        async with gate:
            return await open_socket(urls[index % len(urls)], secret, user_id)

    started = time.perf_counter()
    sockets = await asyncio.gather(*(one(index, user_id) for index, user_id in enumerate(user_ids)))
    return list(sockets), time.perf_counter() - started


async def _wait_until(start_at: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.time()))


@dataclass
class ChatTally:
    """What one worker's users saw."""

    latencies: list[float] = field(default_factory=list)  # send-to-receive, seconds
    sent_at: list[float] = field(default_factory=list)  # wall-clock send times, parallel to latencies
    acknowledged: int = 0
    received: int = 0
    duplicated: int = 0
    reordered: int = 0
    errors: int = 0
    typing_sent: int = 0
    typing_received: int = 0


async def _chat_user(
    socket: BenchSocket,
    user_id: int,
    partner_id: int,
    count: int,
    window: int | None,
    interval: float | None,
    phase: float,
    start_at: float,
    run: str,
    tally: ChatTally,
    typing: bool,
) -> None:
    """Send `count` messages to the partner (closed loop: `window` unacknowledged at most;
    open loop: one every `interval` seconds, starting `phase` seconds after `start_at`), each after a `typing`
    frame if `typing`, and read everything the partner sends."""
    credit = asyncio.Semaphore(window or count)
    seen: set[int] = set()
    last_index = -1

    async def read() -> None:
        nonlocal last_index
        acknowledged = received = 0
        while acknowledged < count or received < count:
            frame = json.loads(await socket.recv())
            kind = frame["type"]
            if kind == "message_sent":
                acknowledged += 1
                tally.acknowledged += 1
                credit.release()
            elif kind == "message":
                now = time.time()
                sent, index = frame["content"].split("|")
                if frame["messageId"] in seen:
                    tally.duplicated += 1
                    continue
                seen.add(frame["messageId"])
                received += 1
                tally.received += 1
                tally.latencies.append(now - float(sent))
                tally.sent_at.append(float(sent))
                if int(index) <= last_index:
                    tally.reordered += 1
                last_index = max(last_index, int(index))
            elif kind == "error":
                tally.errors += 1
                credit.release()
                acknowledged += 1
            elif kind == "typing":
                tally.typing_received += 1

    reader = asyncio.create_task(read())
    await _wait_until(start_at)
    for n in range(count):
        if interval is not None:
            # open loop: latency counts from the scheduled time, so a late send is not excused
            stamp = start_at + phase + n * interval
            await asyncio.sleep(max(0.0, stamp - time.time()))
        else:
            stamp = time.time()
        await credit.acquire()
        if typing:
            socket.send(json.dumps({"type": "typing", "to": partner_id}))
            tally.typing_sent += 1
        frame = {"type": "message", "to": partner_id, "content": f"{stamp!r}|{n}", "clientMsgId": f"{run}-{n}"}
        socket.send(json.dumps(frame))
    await reader


def run_chat(
    urls: list[str],
    secret: str,
    user_ids: list[int],
    count: int,
    window: int | None,
    rate_per_user: float | None,
    start_at: float,
    events: Any = None,
    typing: bool = False,
) -> dict[str, Any]:
    """Users in pairs (0,1), (2,3), ... each send `count` messages to their partner (each after a `typing`
    frame if `typing`)."""

    async def main() -> dict[str, Any]:
        sockets, _ = await open_sockets(urls, secret, user_ids)
        tally = ChatTally()
        run = f"{os.getpid()}-{time.time_ns()}"
        cpu = time.process_time()
        interval = None if rate_per_user is None else 1.0 / rate_per_user
        # users' sends are spread evenly over each interval: a steady offered rate, not bursts
        phases = [i * (interval or 0.0) / len(user_ids) for i in range(len(user_ids))]
        await asyncio.gather(
            *(
                _chat_user(
                    socket, user_id, user_ids[i ^ 1], count, window, interval, phases[i], start_at, run, tally, typing
                )
                for i, (socket, user_id) in enumerate(zip(sockets, user_ids))
            )
        )
        finished = time.time()
        cpu = time.process_time() - cpu
        await asyncio.gather(*(socket.close() for socket in sockets))
        return {**tally.__dict__, "finished": finished, "cpu": cpu}

    return uvloop.run(main())


def run_followers(
    urls: list[str], secret: str, user_ids: list[int], post_ids: list[int], events: Any
) -> dict[str, Any]:
    """Hold the followers' sockets; record when each notification of each post arrives.

    Puts "ready" on `events` once connected, then each post id once all its sockets have it.
    """

    async def main() -> dict[str, Any]:
        sockets, _ = await open_sockets(urls, secret, user_ids)
        arrivals: dict[int, list[float]] = {post_id: [] for post_id in post_ids}
        done = asyncio.Event()
        remaining = len(post_ids)

        async def listen(socket: BenchSocket) -> None:
            nonlocal remaining
            async for text in socket:
                frame = json.loads(text)
                if frame["type"] == "notification" and frame["postId"] in arrivals:
                    times = arrivals[frame["postId"]]
                    times.append(time.time())
                    if len(times) == len(sockets):
                        events.put(frame["postId"])
                        remaining -= 1
                        if remaining == 0:
                            done.set()

        listeners = [asyncio.create_task(listen(socket)) for socket in sockets]
        events.put("ready")
        cpu = time.process_time()
        await asyncio.wait_for(done.wait(), timeout=600)
        cpu = time.process_time() - cpu
        await asyncio.gather(*(socket.close() for socket in sockets))
        await asyncio.gather(*listeners, return_exceptions=True)
        return {"arrivals": arrivals, "cpu": cpu}

    return uvloop.run(main())


def run_idle(
    urls: list[str], secret: str, user_ids: list[int], hold_seconds: float, start_at: float, events: Any
) -> dict[str, Any]:
    """From `start_at`, connect and authenticate every user, report ("ready", time, cpu seconds) on `events`,
    hold the sockets idle, then check they are all still open."""

    async def main() -> dict[str, Any]:
        await _wait_until(start_at)
        cpu = time.process_time()
        sockets, seconds = await open_sockets(urls, secret, user_ids)
        events.put(("ready", time.time(), time.process_time() - cpu))
        await asyncio.sleep(hold_seconds)  # holding idle sockets is the scenario itself
        alive = sum(1 for socket in sockets if socket.open)
        await asyncio.gather(*(socket.close() for socket in sockets))
        return {"connect_seconds": seconds, "alive": alive}

    return uvloop.run(main())


def run_watchers(urls: list[str], secret: str, user_ids: list[int], watched: int, updates: int, events: Any) -> dict:
    """Hold the watchers' sockets, each watching `watched`; record when each presence update of it arrives.

    Puts "ready" on `events` once every socket has its answer to `watch`, then the index of each update
    (0 for the first online, 1 for the next offline, ...) once all the sockets have it.
    """

    async def main() -> dict[str, Any]:
        sockets, _ = await open_sockets(urls, secret, user_ids)
        arrivals: list[list[float]] = [[] for _ in range(updates)]
        answered = asyncio.Semaphore(0)
        done = asyncio.Event()

        async def listen(socket: BenchSocket) -> None:
            seen = -1  # the watch answer comes first; then the updates, in order
            async for text in socket:
                frame = json.loads(text)
                if frame["type"] != "presence":
                    continue
                if seen == -1:
                    answered.release()
                elif seen < updates:
                    times = arrivals[seen]
                    times.append(time.time())
                    if len(times) == len(sockets):
                        events.put(seen)
                        if seen == updates - 1:
                            done.set()
                seen += 1

        listeners = [asyncio.create_task(listen(socket)) for socket in sockets]
        for socket in sockets:
            socket.send(json.dumps({"type": "watch", "userIds": [watched]}))
        for _ in sockets:
            await asyncio.wait_for(answered.acquire(), timeout=OPEN_TIMEOUT)
        events.put("ready")
        await asyncio.wait_for(done.wait(), timeout=600)
        await asyncio.gather(*(socket.close() for socket in sockets))
        await asyncio.gather(*listeners, return_exceptions=True)
        return {"arrivals": arrivals}

    return uvloop.run(main())
