"""`actors.runtime.GeventActor` in this process, which is not monkey-patched: the guarantees the service
builds on. pykka's own suite (`test_pykka_suite.py`) covers the rest of pykka's behaviour."""

from __future__ import annotations

import gc
import time
from itertools import groupby
from typing import Any, Callable, Iterator

import gevent
import pykka
import pytest
from gevent import monkey
from gevent.event import Event
from greenlet import greenlet

from actors.runtime import GeventActor, GeventFuture
from greenlets import IDLE_RUNNERS

TIMEOUT = 5
AT_ONCE = 1.0  # seconds: far below TIMEOUT, so an answer this fast did not wait for a timeout


class Fatal(BaseException):
    """Not an Exception: what pykka answers by stopping every actor."""


class Recorder(GeventActor):
    """Records in `log` the numbers it is sent and its failures; also takes ("fail", error), ("wait", event), "log"."""

    def __init__(self, log: list[Any] | None = None, fairness_batch: int | None = GeventActor.fairness_batch):
        super().__init__()
        self.log = [] if log is None else log
        self.fairness_batch = fairness_batch

    def on_receive(self, message: Any) -> Any:
        match message:
            case "log":
                return list(self.log)
            case ("fail", error):
                raise error
            case ("wait", event):
                event.wait(TIMEOUT)
            case _:
                self.log.append(message)
        return message

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self.log.append(exception_value)


@pytest.fixture(autouse=True)
def stop_every_actor() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(timeout=TIMEOUT)


def test_this_process_is_not_monkey_patched() -> None:
    """The tests below show that the runtime needs no monkey-patching; the service's is covered by pykka's suite."""
    assert not monkey.is_module_patched("threading")


def test_tells_and_asks_are_handled_in_the_order_they_were_sent() -> None:
    actor = Recorder.start()
    for n in range(100):
        actor.tell(n)
        if n % 10 == 0:
            assert actor.ask(n + 0.5, timeout=TIMEOUT) == n + 0.5
    assert actor.ask("log", timeout=TIMEOUT) == [x for n in range(100) for x in ([n, n + 0.5] if n % 10 == 0 else [n])]


def test_an_exception_in_an_ask_reaches_the_caller_and_the_actor_lives_on() -> None:
    actor = Recorder.start()
    with pytest.raises(ValueError, match="bad request"):
        actor.ask(("fail", ValueError("bad request")), timeout=TIMEOUT)
    assert actor.ask(1, timeout=TIMEOUT) == 1
    assert actor.is_alive()


def test_an_exception_in_a_tell_calls_on_failure_and_stops_the_actor() -> None:
    log: list[Any] = []
    actor = Recorder.start(log)
    error = ValueError("bad message")
    actor.tell(1)
    actor.tell(("fail", error))
    pending = actor.ask(2, block=False)
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=TIMEOUT)
    assert log == [1, error]
    assert not actor.is_alive()
    assert pykka.ActorRegistry.get_by_urn(actor.actor_urn) is None


def test_messages_left_in_the_mailbox_after_a_stop_get_actor_dead_error_at_once() -> None:
    actor = Recorder.start()
    assert_asks_queued_behind_fail_at_once(actor, lambda: actor.stop(block=False))


def test_a_base_exception_stops_every_actor_and_fails_the_pending_asks_at_once() -> None:
    failing, bystander = Recorder.start(), Recorder.start()
    assert_asks_queued_behind_fail_at_once(failing, lambda: failing.tell(("fail", Fatal())))
    assert not failing.is_alive()
    assert pykka.ActorRegistry.get_all() == []
    assert not bystander.is_alive()


def assert_asks_queued_behind_fail_at_once(actor: pykka.ActorRef, end: Callable[[], None]) -> None:
    """While `actor` is busy, `end()` it and queue asks: each fails with ActorDeadError at once, not at its timeout."""
    release = Event()
    actor.tell(("wait", release))
    end()
    pending = [actor.ask(n, block=False) for n in range(3)]
    release.set()
    started = time.monotonic()
    for future in pending:
        with pytest.raises(pykka.ActorDeadError):
            future.get(timeout=TIMEOUT)
    assert time.monotonic() - started < AT_ONCE


@pytest.mark.parametrize(("fairness_batch", "messages", "runs"), [(4, 12, [4, 4, 4]), (None, 200, [200])])
def test_a_busy_actor_lets_other_greenlets_run_every_fairness_batch_messages(
    fairness_batch: int | None, messages: int, runs: list[int]
) -> None:
    """`runs`: how many messages the actor handles in a row between two turns of another greenlet."""
    log: list[Any] = []
    actor = Recorder.start(log, fairness_batch)
    actor.ask("log", timeout=TIMEOUT)  # started, mailbox empty
    done = False

    def other_greenlet() -> None:
        while not done:
            log.append("other")
            gevent.sleep(0)

    ticker = gevent.spawn(other_greenlet)
    for n in range(messages):
        actor.tell(n)
    actor.ask("log", timeout=TIMEOUT)  # handled after every number
    done = True
    ticker.join(TIMEOUT)
    assert [len(list(run)) for handled, run in groupby(log, lambda entry: entry != "other") if handled] == runs


def test_idle_actors_hold_no_greenlet() -> None:
    """More actors than pooled runners, each having handled a message: no greenlet waits on a mailbox."""
    before = _live_greenlets()
    actors = [Recorder.start() for _ in range(3 * IDLE_RUNNERS)]
    for actor in actors:
        assert actor.ask(1, timeout=TIMEOUT) == 1
    assert _live_greenlets() - before <= IDLE_RUNNERS


def test_a_future_is_set_from_another_greenlet_and_times_out_with_pykka_timeout() -> None:
    future: GeventFuture[int] = GeventFuture()
    with pytest.raises(pykka.Timeout):
        future.get(timeout=0.01)
    gevent.spawn(future.set, 7)
    assert future.get(timeout=TIMEOUT) == 7


def _live_greenlets() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet) and not o.dead)
