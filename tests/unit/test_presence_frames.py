"""Pure tests of `watch` and `presence`: the list of watched ids is validated and deduplicated, and the
`presence` entries say online, offline with lastSeen, or nothing at all for a user the watcher may not see."""

from __future__ import annotations

import json

import pytest

from protocol.frames import (
    MAX_ID,
    MAX_WATCHED,
    ErrorCode,
    FrameError,
    Watch,
    parse_frame,
    presence_entry,
    presence_frame,
)

T = 1_795_673_125_123
T_ISO = "2026-11-26T06:05:25.123Z"


def refused(frame: dict) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_frame(json.dumps(frame))
    return caught.value


def test_watch_keeps_the_order_first_named_and_drops_repeats():
    assert parse_frame(json.dumps({"type": "watch", "userIds": [3, 1, 3, 2, 1]})) == Watch(user_ids=(3, 1, 2))


def test_an_empty_watch_list_stops_watching():
    assert parse_frame('{"type": "watch", "userIds": []}') == Watch(user_ids=())


def test_two_hundred_distinct_ids_repeated_are_still_two_hundred():
    ids = list(range(1, MAX_WATCHED + 1))
    assert parse_frame(json.dumps({"type": "watch", "userIds": ids + ids})) == Watch(user_ids=tuple(ids))


def test_more_than_two_hundred_distinct_ids_is_too_large():
    error = refused({"type": "watch", "userIds": list(range(1, MAX_WATCHED + 2))})
    assert (error.code, error.ref) == (ErrorCode.TOO_LARGE, {"type": "watch"})


@pytest.mark.parametrize("user_ids", [None, 7, "1,2", {"1": 2}], ids=repr)
def test_user_ids_that_are_not_a_list_are_a_bad_request(user_ids):
    frame = {"type": "watch"} if user_ids is None else {"type": "watch", "userIds": user_ids}
    error = refused(frame)
    assert (error.code, error.ref) == (ErrorCode.BAD_REQUEST, {"type": "watch"})


@pytest.mark.parametrize("bad", [0, -1, MAX_ID + 1, 1.5, "2", True, None, [2]], ids=repr)
def test_a_bad_id_in_the_list_is_a_bad_request(bad):
    assert refused({"type": "watch", "userIds": [1, bad]}).code == ErrorCode.BAD_REQUEST


def test_presence_frame_of_online_offline_and_invisible_users():
    users = [
        presence_entry(1, True, T),
        presence_entry(2, False, T),
        presence_entry(3, False, None),
        presence_entry(4, None, T),
    ]
    assert json.loads(presence_frame(users)) == {
        "type": "presence",
        "users": [
            {"userId": 1, "online": True, "lastSeen": None},
            {"userId": 2, "online": False, "lastSeen": T_ISO},
            {"userId": 3, "online": False, "lastSeen": None},
            {"userId": 4, "online": None, "lastSeen": None},
        ],
    }
