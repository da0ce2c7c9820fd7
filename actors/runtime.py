"""GeventActor: a pykka runtime whose actors hold no greenlet while their mailbox is empty.

pykka's `ThreadingActor` gives every actor a thread (under gevent, a
greenlet) blocked on a queue for its whole life: with one actor per connected
user that is a parked greenlet and a queue with its locks per socket. Here
the mailbox is a plain deque; a message arriving in an empty mailbox hands
the actor's turn to a pooled greenlet (`greenlets.run_soon`), which handles
messages until the mailbox is empty again and then goes back to the pool.
Messages are still handled one at a time and in order, so an actor's state
needs no locks, exactly as with pykka's own runtimes.

A turn runs pykka's own message loop; only the mailbox, the future and the
scheduling of turns are this module's. The private parts of pykka it relies
on are pinned by `tests/unit/test_pykka_internals.py`, and pykka's own test
suite runs against this runtime (`tests/unit/test_pykka_suite.py`).
"""
from __future__ import annotations

import queue
import sys
from collections import deque
from types import TracebackType
from typing import Any, Callable, TypeVar

import gevent
import pykka
from gevent.event import AsyncResult

from greenlets import run_soon

T = TypeVar("T")
ExcInfo = tuple[type[BaseException], BaseException | None, TracebackType | None]


class GeventFuture(pykka.Future[T]):
    """A pykka future that waits on gevent's hub, whether or not threading is monkey-patched.

    It keeps pykka's semantics: `get()` raises `pykka.Timeout` when the timeout passes and re-raises a
    failure with the traceback it was set with; setting a result twice, or a result and a get hook,
    raises `queue.Full`. The exception info is kept as it is, not pickled as `AsyncResult.set_exception`
    would do with it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._outcome: AsyncResult = AsyncResult()  # its value: (value, exc_info or None)
        self._hooked = False

    def get(self, *, timeout: float | None = None) -> T:
        if self._hooked:
            return super().get(timeout=timeout)  # pykka's Future calls the hook once and keeps its result
        self._outcome.wait(timeout)
        if not self._outcome.ready():
            raise pykka.Timeout(f"{timeout} seconds")
        value, exc_info = self._outcome.value
        if exc_info is None:
            return value
        exc_type, exc_value, exc_traceback = exc_info
        raise (exc_type() if exc_value is None else exc_value).with_traceback(exc_traceback)

    def set(self, value: T | None = None) -> None:
        self._settle(value, None)

    def set_exception(self, exc_info: Any = None) -> None:
        self._settle(None, sys.exc_info() if exc_info is None else exc_info)

    def set_get_hook(self, func: Callable[[float | None], T]) -> None:
        if self._outcome.ready():
            raise queue.Full
        super().set_get_hook(func)
        self._hooked = True

    def _settle(self, value: T | None, exc_info: ExcInfo | None) -> None:
        if self._outcome.ready() or self._hooked:
            raise queue.Full
        self._outcome.set((value, exc_info))


class _TurnOver(Exception):
    """Raised by an empty mailbox's `get()`: it ends the actor's turn, out of pykka's loop."""


class _Mailbox:
    """pykka's actor inbox as a plain deque, which also paces the actor's turns.

    pykka's loop (`Actor._actor_loop_running`) takes each envelope with `get()`. Here `get()` never
    waits: on an empty mailbox it raises `_TurnOver`, which ends the turn and frees the greenlet, and
    every `fairness_batch` envelopes of one turn it lets the other greenlets run first.
    """

    __slots__ = ("envelopes", "on_first", "fairness_batch", "_taken")

    def __init__(self) -> None:
        self.envelopes: deque[Any] = deque()
        self.on_first: Callable[[], None] | None = None  # set when the actor starts
        self.fairness_batch: int | None = None
        self._taken = 0  # envelopes taken in this turn, since the last yield

    def put(self, envelope: Any, /) -> None:
        self.envelopes.append(envelope)
        if self.on_first is not None:
            self.on_first()

    def get(self) -> Any:
        if not self.envelopes:
            self._taken = 0
            raise _TurnOver
        if self._taken == self.fairness_batch:
            self._taken = 0
            gevent.sleep(0)
        self._taken += 1
        return self.envelopes.popleft()

    def empty(self) -> bool:
        return not self.envelopes

    def qsize(self) -> int:
        return len(self.envelopes)


class GeventActor(pykka.Actor):
    """A pykka actor whose turns run in pooled greenlets; subclass it like `pykka.ThreadingActor`.

    Each turn runs pykka's own loop, so messages, replies, failures, `on_failure` and a
    `BaseException` (all actors stopped) are handled exactly as by `ThreadingActor`; and once the
    actor is stopped, on whatever path, pykka's teardown fails the envelopes still queued with
    `ActorDeadError` at once.
    """

    _scheduled = False  # a turn is queued or running
    fairness_batch: int | None = 64
    """Messages handled in a row before a busy actor lets other greenlets run; None for never, which suits
    only an actor whose every turn is short and never waits (the whole mailbox is then one turn)."""

    @staticmethod
    def _create_actor_inbox() -> Any:
        return _Mailbox()

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return GeventFuture()

    def _start_actor_loop(self) -> None:
        self._scheduled = True  # the first turn runs on_start, then the mailbox
        self.actor_inbox.fairness_batch = self.fairness_batch
        self.actor_inbox.on_first = self._wake
        run_soon(self._first_turn)

    def _first_turn(self) -> None:
        self._actor_loop_setup()
        self._turn()

    def _wake(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            run_soon(self._turn)

    def _turn(self) -> None:
        """Handle envelopes until the mailbox is empty or the actor stopped; tear down once it stopped."""
        try:
            self._actor_loop_running()
        except _TurnOver:
            pass
        finally:
            self._scheduled = False
            if self.actor_stopped.is_set():
                self._actor_loop_teardown()


__all__ = ["GeventActor", "GeventFuture"]
