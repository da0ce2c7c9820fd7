"""GeventActor: a pykka runtime whose actors hold no greenlet while their mailbox is empty.

pykka's `ThreadingActor` gives every actor a thread (under gevent, a
greenlet) blocked on a queue for its whole life: with one actor per connected
user that is a parked greenlet and a queue with its locks per socket. Here
the mailbox is a plain deque; a message arriving in an empty mailbox hands
the actor's turn to a pooled greenlet (`run_soon`), which handles messages
until the mailbox is empty again and then goes back to the pool. Messages are
still handled one at a time and in order, so an actor's state needs no locks,
exactly as with pykka's own runtimes.
"""

from __future__ import annotations

import logging
import queue
import sys
from collections import deque
from types import TracebackType
from typing import Any, Callable, TypeVar

import gevent
import pykka
from gevent.event import AsyncResult
from pykka._envelope import Envelope

from greenlets import run_soon

log = logging.getLogger(__name__)
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


class _Mailbox:
    """The inbox pykka puts envelopes in; tells its actor when the first one arrives."""

    __slots__ = ("envelopes", "on_first")

    def __init__(self) -> None:
        self.envelopes: deque[Envelope[Any]] = deque()
        self.on_first: Callable[[], None] | None = None

    def put(self, envelope: Envelope[Any], block: bool = True, timeout: float | None = None) -> None:
        self.envelopes.append(envelope)
        if self.on_first is not None:
            self.on_first()

    def get(self, block: bool = True, timeout: float | None = None) -> Envelope[Any]:
        return self.envelopes.popleft()

    def empty(self) -> bool:
        return not self.envelopes

    def qsize(self) -> int:
        return len(self.envelopes)


class GeventActor(pykka.Actor):
    """A pykka actor whose turns run in pooled greenlets; subclass it like `pykka.ThreadingActor`."""

    _draining = False
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
        self._draining = True  # the first greenlet runs on_start, then the mailbox
        self.actor_inbox.on_first = self._wake
        run_soon(self._first_run)

    def _first_run(self) -> None:
        self._actor_loop_setup()
        self._drain()

    def _wake(self) -> None:
        if not self._draining:
            self._draining = True
            run_soon(self._drain)

    def _drain(self) -> None:
        inbox: deque[Envelope[Any]] = self.actor_inbox.envelopes
        handled = 0
        try:
            while inbox and not self.actor_stopped.is_set():
                self._handle_envelope(inbox.popleft())
                handled += 1
                if self.fairness_batch and handled % self.fairness_batch == 0:
                    gevent.sleep(0)
        finally:
            self._draining = False
        if self.actor_stopped.is_set():
            self._actor_loop_teardown()

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        """One turn of pykka's actor loop (`Actor._actor_loop_running`), for one envelope."""
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            log.debug("%r in %s: stopping all actors", sys.exc_info()[1], self)
            self._stop()
            pykka.ActorRegistry.stop_all()
            raise


__all__ = ["GeventActor", "GeventFuture"]
