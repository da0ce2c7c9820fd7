"""Pooled greenlets: `run_soon(function, *args)` runs a short task in a greenlet of its own.

This is the one job of the module, shared by the actor runtime (an actor's turn)
and the WebSocket connection (its read loop). It is a bottom module: it imports
nothing of this service, only gevent and greenlet.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import gevent
from greenlet import getcurrent, greenlet

log = logging.getLogger(__name__)
# finished runner greenlets kept for reuse: as many as one router turn wakes actors in a fan-out batch (500
# followers), which then reuse runners instead of starting greenlets: 1 µs a turn instead of 10 (64 kept: 436 new
# greenlets per batch). 512 parked runners hold about 3.3 MB.
IDLE_RUNNERS = 512


class _Runners:
    """Greenlets that run one short task after another instead of ending.

    A fresh greenlet costs a new 16 KiB frame stack for the interpreter (an
    mmap, page faults, then a munmap when it ends), and this service starts
    several per message: actor turns and socket reads. A runner that finishes
    its task parks itself and is handed the next one.
    """

    def __init__(self, keep: int):
        self._keep = keep
        self._idle: list[greenlet] = []

    def run_soon(self, function: Callable[..., None], *args: Any) -> None:
        """Run `function(*args)` in a greenlet of its own soon; never blocks, callable from the hub."""
        if self._idle:
            gevent.get_hub().loop.run_callback(self._idle.pop().switch, (function, args))
        else:
            gevent.spawn_raw(self._run, function, args)

    def _run(self, function: Callable[..., None], args: tuple) -> None:
        hub = gevent.get_hub()
        while True:
            try:
                function(*args)
            except Exception:
                log.exception("task %r failed", function)
            if len(self._idle) >= self._keep:
                return
            self._idle.append(getcurrent())
            function, args = hub.switch()


run_soon = _Runners(IDLE_RUNNERS).run_soon

__all__ = ["IDLE_RUNNERS", "run_soon"]
