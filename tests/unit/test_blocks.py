"""Blocks as storage reads them: SQLite in a temporary folder, and a fake clock for the cache's lifetime."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from storage import MessageDraft, Storage, store
from storage.engine import SqliteEngine

ANN, BOB, CAROL = 1, 2, 3
CACHE_SECONDS = 5.0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The monotonic clock storage reads; tests move it forward by hand."""
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(store, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def open_storage(tmp_path: Path, cache_seconds: float) -> Storage:
    storage = Storage(SqliteEngine(str(tmp_path / "realtime.sqlite3")), cache_seconds)
    storage.prepare()
    storage.add_users([(ANN, "ann"), (BOB, "bob"), (CAROL, "carol")])
    return storage


@pytest.fixture
def storage(tmp_path: Path, clock: SimpleNamespace) -> Iterator[Storage]:
    storage = open_storage(tmp_path, CACHE_SECONDS)
    yield storage
    storage.close()


def draft(sender_id: int, recipient_id: int) -> MessageDraft:
    return MessageDraft(sender_id=sender_id, recipient_id=recipient_id, content="hi", client_msg_id=None, created_at=1)


def test_a_message_to_a_user_who_blocked_its_sender_is_not_stored_and_the_rest_of_the_batch_is(
    storage: Storage,
) -> None:
    storage.add_blocks([(BOB, ANN)])
    blocked, allowed, reverse = storage.store_messages([draft(ANN, BOB), draft(CAROL, BOB), draft(BOB, ANN)])
    assert blocked.blocked and blocked.message is None and not blocked.created
    assert allowed.created and not allowed.blocked
    assert reverse.created  # the blocker may still write to the user it blocked
    assert storage.history(ANN, BOB, None, 10) == [reverse.message]


def test_a_users_blocks_are_read_once_and_kept_for_the_cache_lifetime(storage: Storage, clock: SimpleNamespace) -> None:
    assert storage.blocked_by(BOB) == frozenset()
    storage.add_blocks([(BOB, ANN)])
    clock.now += CACHE_SECONDS - 0.1
    assert storage.blocked_by(BOB) == frozenset()  # the read before the block still holds
    assert storage.store_messages([draft(ANN, BOB)])[0].created

    clock.now += 0.2
    assert storage.blocked_by(BOB) == frozenset({ANN})
    assert storage.store_messages([draft(ANN, BOB)])[0].blocked

    storage.remove_blocks([(BOB, ANN)])
    clock.now += CACHE_SECONDS + 0.1
    assert storage.blocked_by(BOB) == frozenset()


def test_without_a_cache_a_block_and_an_unblock_take_effect_at_once(tmp_path: Path) -> None:
    storage = open_storage(tmp_path, 0)
    try:
        assert storage.store_messages([draft(ANN, BOB)])[0].created
        storage.add_blocks([(BOB, ANN), (BOB, CAROL)])
        assert storage.blocked_by(BOB) == frozenset({ANN, CAROL})
        assert storage.store_messages([draft(ANN, BOB)])[0].blocked
        storage.remove_blocks([(BOB, ANN)])
        assert storage.store_messages([draft(ANN, BOB)])[0].created
    finally:
        storage.close()
