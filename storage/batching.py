"""Group commit: many writers' rows stored in few transactions (and many readers' rows read in few queries).

With durable commits every transaction waits for the disk, so one INSERT per
chat message caps throughput at the disk's flush rate. A `Batcher` queues
items from any greenlet and a worker stores whatever has accumulated in one
transaction while the previous one commits. Within a lane, batches run one
at a time in arrival order, so items submitted with the same key are stored
in the order they were submitted (and get increasing auto-increment ids).
The same pipeline serves reads that many greenlets make at once, such as the
summary every connecting user needs: one query answers all of them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable, Generic, Sequence, TypeVar

import gevent
from gevent.event import AsyncResult, Event

import metrics
from storage.engine import StorageUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")
Outcome = object  # a Result, or the Exception that prevented it
log = logging.getLogger(__name__)


class BatcherClosed(StorageUnavailable):
    """The service is shutting down and takes no more work."""


class Batcher(Generic[Item, Result]):
    """Group commit over `lanes` independent pipelines.

    Items with the same key always share a lane, so their order is kept; a
    slow transaction in one lane does not hold up the others.
    """

    def __init__(
        self, name: str, flush: Callable[[Sequence[Item]], Sequence[Result]], max_batch: int, lanes: int = 1
    ):
        """`flush(items)` stores items in one transaction and returns one result per item, in order."""
        self.name = name
        self._lanes = [_Lane(name, index, flush, max_batch) for index in range(lanes)]
        self._closed = False

    def submit(self, item: Item, callback: Callable[[Outcome], None], key: int = 0) -> None:
        """Queue `item` in the lane of `key`; `callback(result or exception)` runs once it is committed or failed."""
        if self._closed:
            raise BatcherClosed(f"{self.name}: shutting down")
        self._lanes[key % len(self._lanes)].submit(item, callback)

    def call(self, item: Item, timeout: float, key: int = 0) -> Result:
        """Submit `item` and wait for its result; raises the exception that prevented it."""
        outcome = AsyncResult()
        self.submit(item, outcome.set, key)
        try:
            result = outcome.get(timeout=timeout)
        except gevent.Timeout:
            raise StorageUnavailable(f"{self.name}: no answer within {timeout:g} s") from None
        if isinstance(result, Exception):
            raise result
        return result

    @property
    def backlog(self) -> int:
        return sum(lane.backlog for lane in self._lanes)

    def wait_committed(self, key: int, timeout: float) -> bool:
        """Wait until every item submitted so far with `key` is committed or failed; False on timeout."""
        return self._lanes[key % len(self._lanes)].wait_committed(timeout)

    def close(self, timeout: float) -> bool:
        """Refuse new items, store those queued; return False if that took longer than `timeout`."""
        self._closed = True
        for lane in self._lanes:
            lane.close()
        gevent.joinall([lane.worker for lane in self._lanes], timeout=timeout)
        return all(lane.worker.dead for lane in self._lanes)


class _Lane(Generic[Item, Result]):
    """One pipeline: a worker that commits whatever queued up while its previous batch committed."""

    def __init__(self, writer: str, index: int, flush: Callable[[Sequence[Item]], Sequence[Result]], max_batch: int):
        self.name = f"{writer}[{index}]"
        self._seconds = metrics.batch_seconds.labels(writer)
        self._items = metrics.batch_items.labels(writer)
        self._flush = flush
        self._max_batch = max_batch
        self._pending: deque[tuple[Item, Callable[[Outcome], None]]] = deque()
        self._wakeup = Event()
        self._closed = False
        self._submitted = 0
        self._done = 0  # items committed or failed, a prefix of those submitted
        self._progress: Event | None = None  # created only while someone waits in wait_committed
        self.worker = gevent.spawn(self._run)

    def submit(self, item: Item, callback: Callable[[Outcome], None]) -> None:
        self._pending.append((item, callback))
        self._submitted += 1
        self._wakeup.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def wait_committed(self, timeout: float) -> bool:
        target, deadline = self._submitted, time.monotonic() + timeout
        while self._done < target:
            if self._progress is None:
                self._progress = Event()
            if not self._progress.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                count = min(len(self._pending), self._max_batch)
                self._commit([self._pending.popleft() for _ in range(count)])
            if self._closed:
                return

    def _commit(self, batch: list[tuple[Item, Callable[[Outcome], None]]]) -> None:
        items = [item for item, _ in batch]
        outcomes: Sequence[Outcome]
        started = time.monotonic()
        try:
            outcomes = self._flush(items)
        except StorageUnavailable as error:
            log.warning("%s: database unavailable, %d items refused: %s", self.name, len(items), error)
            outcomes = [error] * len(items)
        except Exception as error:
            if len(items) == 1:
                log.exception("%s: item failed", self.name)
                outcomes = [error]
            else:
                # one bad item must not fail its neighbours: store them one by one to isolate it
                log.warning("%s: batch of %d failed (%s); retrying one by one", self.name, len(items), error)
                outcomes = [self._flush_alone(item) for item in items]
        self._seconds.observe(time.monotonic() - started)
        self._items.observe(len(items))
        for (_, callback), outcome in zip(batch, outcomes):
            try:
                callback(outcome)
            except Exception:
                log.exception("%s: callback failed", self.name)
        self._done += len(batch)
        if self._progress is not None:
            self._progress.set()
            self._progress = None

    def _flush_alone(self, item: Item) -> Outcome:
        try:
            return self._flush([item])[0]
        except Exception as error:
            log.exception("%s: item failed", self.name)
            return error
