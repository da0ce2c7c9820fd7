"""Grouped likes and unread counts that add up: a grouped `notification` frame lists every stored notification
it stands for (`notificationIds`), and `notification_read` takes such a list, so the badge a client keeps from
the frames, the count after reading the grouped item, the count after a reload and the count on another device
all agree, on both database backends (issue 17's repro: four likes, the first pushed alone, then one grouped
frame of three).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.client import Client
from tests.helpers.notifications import ISO_UTC_MS, QUIET, assert_ok, notify, post_of
from tests.helpers.server import ServerFactory, ServerProcess

LIKE_WINDOW = 1.0  # [notify] like_group_seconds of the grouping server


class Badge:
    """The unread badge a client keeps from frames alone: each notification frame adds the notifications it
    stands for, each `notification_read` echo takes away those it names (or all)."""

    def __init__(self, connected: dict[str, Any]):
        self.unread_before = connected["unreadNotifications"]
        self.unread: set[int] = set()

    def count(self, frame: dict[str, Any]) -> None:
        if frame["type"] == "notification":
            self.unread.update(frame.get("notificationIds") or [frame["notificationId"]])
        elif frame.get("all"):
            self.unread_before, self.unread = 0, set()
        else:
            self.unread.difference_update(frame.get("notificationIds") or [frame["notificationId"]])

    @property
    def shown(self) -> int:
        return self.unread_before + len(self.unread)


def unread_after_reload(server: ServerProcess, user_id: int) -> int:
    with server.connect(user_id) as socket:
        return socket.connected["unreadNotifications"]


def stored_of_post(client: Client, post_id: int) -> list[dict[str, Any]]:
    client.send({"type": "notifications"})
    return [e for e in client.expect("notifications")["notifications"] if e["postId"] == post_id]


@pytest.fixture
def grouping_server(make_server: ServerFactory) -> ServerProcess:
    return make_server({"REALTIME_NOTIFY_LIKE_GROUP_SECONDS": str(LIKE_WINDOW)}).start()


@pytest.mark.slow  # starts a server of its own
def test_four_likes_count_four_live_after_a_reload_and_on_another_device_and_one_after_reading_the_group(
    grouping_server: ServerProcess,
) -> None:
    server = grouping_server
    owner, first, *others = server.add_users(5)
    post_id = post_of(server, owner)
    with server.connect(owner) as laptop, server.connect(owner) as phone:
        badges = {laptop: Badge(laptop.connected), phone: Badge(phone.connected)}
        assert_ok(notify(server, "like", postId=post_id, userId=first), 1, 1)
        for socket, badge in badges.items():
            badge.count(socket.expect("notification", timeout=LIKE_WINDOW * 0.8, postId=post_id))
        for liker in others:
            assert_ok(notify(server, "like", postId=post_id, userId=liker), 1, 1)
        grouped = laptop.expect("notification", timeout=LIKE_WINDOW + 5, postId=post_id)
        assert phone.expect("notification", postId=post_id) == grouped
        for badge in badges.values():
            badge.count(grouped)
        assert grouped["count"] == 3 and len(grouped["notificationIds"]) == 3

        # live, after a reload: the four stored likes
        assert [badge.shown for badge in badges.values()] == [4, 4]
        assert unread_after_reload(server, owner) == 4

        # clicking the grouped item on the laptop reads the three it stands for, on every device
        laptop.send({"type": "notification_read", "notificationIds": grouped["notificationIds"]})
        for socket, badge in badges.items():
            echo = socket.expect("notification_read")
            assert echo["notificationIds"] == grouped["notificationIds"] and ISO_UTC_MS.match(echo["readAt"])
            assert "notificationId" not in echo and "all" not in echo
            badge.count(echo)
        assert [badge.shown for badge in badges.values()] == [1, 1]
        assert unread_after_reload(server, owner) == 1
        entries = stored_of_post(phone, post_id)
        assert [(e["actorId"], e["read"]) for e in entries] == [
            (others[2], True), (others[1], True), (others[0], True), (first, False)
        ]
        laptop.assert_no_frame("error", within=QUIET)


def test_reading_a_list_marks_only_the_users_own_and_echoes_those(server: ServerProcess) -> None:
    owner, stranger, commenter = server.add_users(3)
    own_post, strangers_post = post_of(server, owner), post_of(server, stranger)
    for comment_id in (1, 2):
        assert_ok(notify(server, "comment", postId=own_post, userId=commenter, commentId=comment_id), 1, 0)
    assert_ok(notify(server, "comment", postId=strangers_post, userId=commenter, commentId=3), 1, 0)
    with server.connect(stranger) as socket:
        [theirs] = stored_of_post(socket, strangers_post)
    with server.connect(owner) as laptop, server.connect(owner) as phone:
        newer, older = (e["notificationId"] for e in stored_of_post(laptop, own_post))
        laptop.send({"type": "notification_read", "notificationIds": [older, theirs["notificationId"], older]})
        for socket in (laptop, phone):
            assert socket.expect("notification_read")["notificationIds"] == [older]
        assert [e["read"] for e in stored_of_post(laptop, own_post)] == [False, True]

        laptop.send({"type": "notification_read", "notificationIds": [theirs["notificationId"], 2**62]})
        assert laptop.expect_error("not_found")["ref"] == {"type": "notification_read"}
        phone.assert_no_frame("notification_read", within=QUIET)
    assert unread_after_reload(server, owner) == 1
    assert unread_after_reload(server, stranger) == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"notificationIds": 5}, "bad_request"),
        ({"notificationIds": []}, "bad_request"),
        ({"notificationIds": [0]}, "bad_request"),
        ({"notificationIds": [-1]}, "bad_request"),
        ({"notificationIds": ["3"]}, "bad_request"),
        ({"notificationIds": [True]}, "bad_request"),
        ({"notificationIds": [1.5]}, "bad_request"),
        ({"notificationIds": [1], "notificationId": 1}, "bad_request"),
        ({"notificationIds": [1], "all": True}, "bad_request"),
        ({"notificationIds": list(range(1, 102))}, "too_large"),
    ],
)
def test_bad_notification_ids_are_refused_and_the_socket_keeps_working(
    server: ServerProcess, fields: dict[str, Any], code: str
) -> None:
    owner, commenter = server.add_users(2)
    post_id = post_of(server, owner)
    assert_ok(notify(server, "comment", postId=post_id, userId=commenter, commentId=1), 1, 0)
    with server.connect(owner) as socket:
        socket.send({"type": "notification_read", **fields})
        assert socket.expect_error(code)["ref"] == {"type": "notification_read"}
        socket.assert_no_frame("notification_read", within=QUIET)
        [entry] = stored_of_post(socket, post_id)
        assert entry["read"] is False
        # a hundred ids (repeats counted once) are fine
        hundred = [entry["notificationId"]] * 2 + list(range(1, 100))
        socket.send({"type": "notification_read", "notificationIds": hundred})
        assert entry["notificationId"] in socket.expect("notification_read")["notificationIds"]
    assert unread_after_reload(server, owner) == 0
