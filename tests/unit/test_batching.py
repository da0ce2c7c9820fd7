"""`storage.batching.Batcher`, the group commit, with fake flush functions and once on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Sequence

import gevent
import pytest
from gevent.event import Event

from storage import MessageDraft, Storage, StorageUnavailable
from storage.batching import Batcher, BatcherClosed
from storage.engine import SqliteEngine

TIMEOUT = 5
SHORT = 0.05  # seconds, for what must not happen while a batch is held


class FakeFlush:
    """Records each batch and answers each item with `("stored", item)`; `hold()` blocks the next batches
    until `release()`, and an item in `failing` fails every batch it is in with `error`."""

    def __init__(self, failing: Sequence[str] = (), error: Exception | None = None):
        self.batches: list[list[str]] = []
        self.failing = set(failing)
        self.error = error or ValueError("bad item")
        self.entered = Event()  # a batch is in flush
        self._open = Event()
        self._open.set()

    def __call__(self, items: Sequence[str]) -> list[tuple[str, str]]:
        self.batches.append(list(items))
        self.entered.set()
        assert self._open.wait(TIMEOUT)
        if self.failing.intersection(items):
            raise self.error
        return [("stored", item) for item in items]

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()


@pytest.fixture
def make_batcher() -> Iterator[Callable[..., Batcher]]:
    """`make_batcher(flush, max_batch=4, lanes=1)`, closed after the test."""
    made: list[Batcher] = []

    def make(flush: Callable, max_batch: int = 4, lanes: int = 1) -> Batcher:
        made.append(Batcher("test", flush, max_batch, lanes))
        return made[-1]

    yield make
    for batcher in made:
        assert batcher.close(TIMEOUT)


def submit_all(batcher: Batcher, items: Sequence[str], key: int = 0) -> list[object]:
    """Submit `items` without yielding; the returned list fills with their outcomes in callback order."""
    outcomes: list[object] = []
    for item in items:
        batcher.submit(item, outcomes.append, key)
    return outcomes


def hold_first_batch(batcher: Batcher, flush: FakeFlush, key: int = 0) -> None:
    """Put item "first" in flush and keep it there until `flush.release()`."""
    flush.hold()
    batcher.submit("first", lambda outcome: None, key)
    assert flush.entered.wait(TIMEOUT)


def test_items_queued_while_a_batch_commits_go_in_batches_of_at_most_max_batch(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush, max_batch=4)
    hold_first_batch(batcher, flush)
    items = [f"m{n}" for n in range(10)]
    outcomes = submit_all(batcher, items)
    assert batcher.backlog == 10
    flush.release()
    assert batcher.wait_committed(0, TIMEOUT)
    assert flush.batches == [["first"], items[0:4], items[4:8], items[8:10]]
    assert outcomes == [("stored", item) for item in items]


def test_items_with_one_key_are_stored_in_order_in_their_lane(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush, max_batch=3, lanes=3)
    per_key = {key: [f"k{key}-{n}" for n in range(7)] for key in range(5)}
    outcomes = {key: [] for key in per_key}
    for n in range(7):
        for key, items in per_key.items():
            batcher.submit(items[n], outcomes[key].append, key)
    for key in per_key:
        assert batcher.wait_committed(key, TIMEOUT)
    for key, items in per_key.items():
        assert outcomes[key] == [("stored", item) for item in items]
        assert [item for batch in flush.batches for item in batch if item in items] == items


def test_a_held_lane_does_not_hold_up_the_others(make_batcher) -> None:
    held, free = FakeFlush(), FakeFlush()
    batcher = make_batcher(lambda items: (held if items[0].startswith("held") else free)(items), lanes=2)
    held.hold()
    batcher.submit("held", lambda outcome: None, key=0)
    assert held.entered.wait(TIMEOUT)
    assert batcher.call("free", TIMEOUT, key=1) == ("stored", "free")
    assert not batcher.wait_committed(0, SHORT)
    held.release()
    assert batcher.wait_committed(0, TIMEOUT)


def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_item_fails(make_batcher) -> None:
    flush = FakeFlush(failing=["bad"])
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    outcomes = submit_all(batcher, ["a", "bad", "c"])
    flush.release()
    assert batcher.wait_committed(0, TIMEOUT)
    assert flush.batches == [["first"], ["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert outcomes == [("stored", "a"), flush.error, ("stored", "c")]


def test_storage_unavailable_fails_the_whole_batch_without_retrying(make_batcher) -> None:
    flush = FakeFlush(failing=["b"], error=StorageUnavailable("database down"))
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    outcomes = submit_all(batcher, ["a", "b", "c"])
    flush.release()
    assert batcher.wait_committed(0, TIMEOUT)
    assert flush.batches == [["first"], ["a", "b", "c"]]
    assert outcomes == [flush.error] * 3


def test_call_returns_the_result_or_raises_the_exception_of_its_item(make_batcher) -> None:
    flush = FakeFlush(failing=["bad"])
    batcher = make_batcher(flush)
    assert batcher.call("good", TIMEOUT) == ("stored", "good")
    with pytest.raises(ValueError, match="bad item"):
        batcher.call("bad", TIMEOUT)


def test_call_without_an_answer_within_its_timeout_raises_storage_unavailable(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    with pytest.raises(StorageUnavailable, match="no answer within"):
        batcher.call("late", SHORT)
    flush.release()


def test_wait_committed_waits_for_every_item_submitted_so_far(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    outcomes = submit_all(batcher, ["a", "b"])
    assert not batcher.wait_committed(0, SHORT)
    assert outcomes == []
    flush.release()
    assert batcher.wait_committed(0, TIMEOUT)
    assert outcomes == [("stored", "a"), ("stored", "b")]


def test_close_stores_what_is_queued_then_refuses_new_items(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    outcomes = submit_all(batcher, ["a", "b", "c"])
    closing = gevent.spawn(batcher.close, TIMEOUT)
    closing.join(SHORT)
    assert not closing.ready()  # close() waits for the queued items
    with pytest.raises(BatcherClosed):
        batcher.submit("late", lambda outcome: None)
    flush.release()
    assert closing.get(timeout=TIMEOUT) is True
    assert outcomes == [("stored", item) for item in ["a", "b", "c"]]
    assert flush.batches == [["first"], ["a", "b", "c"]]


def test_close_reports_a_batch_that_outlasts_its_timeout(make_batcher) -> None:
    flush = FakeFlush()
    batcher = make_batcher(flush)
    hold_first_batch(batcher, flush)
    assert batcher.close(SHORT) is False
    flush.release()


def test_drafts_submitted_at_once_are_stored_in_batches_on_sqlite_in_order(make_batcher, tmp_path: Path) -> None:
    storage = Storage(SqliteEngine(str(tmp_path / "realtime.sqlite3")))
    storage.prepare()
    storage.add_users([(1, "sender"), (2, "recipient")])
    batch_sizes: list[int] = []

    def store_messages(drafts: Sequence[MessageDraft]) -> list:
        batch_sizes.append(len(drafts))
        return storage.store_messages(drafts)

    batcher = make_batcher(store_messages, max_batch=8)
    drafts = [
        MessageDraft(sender_id=1, recipient_id=2, content=f"hello {n}", client_msg_id=f"c-{n}", created_at=1_000 + n)
        for n in range(20)
    ]
    outcomes = submit_all(batcher, drafts)
    assert batcher.wait_committed(0, TIMEOUT)
    again = batcher.call(drafts[3], TIMEOUT)
    storage.close()

    assert batch_sizes == [8, 8, 4, 1]
    assert all(result.created for result in outcomes)
    assert [result.message.content for result in outcomes] == [draft.content for draft in drafts]
    ids = [result.message.id for result in outcomes]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert (again.created, again.message.id) == (False, ids[3])
