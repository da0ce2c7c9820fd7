"""The browser client (clients/js, served at /static/realtime.js) and the demo page, end to end.

Debian's headless Chromium, driven by Playwright, loads the demo page from a
real service in demo mode (`/?user=N`, served on the WebSocket port, whose
origin demo mode allows) and uses it as a person would: typing, clicking,
reading ticks and badges. The client's pure parts and classes have unit tests
in tests/js, run here with Node's own test runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    ERIN,
    ContextFactory,
    DemoPage,
    needs_chromium,
    notify,
    save_screenshot,
)
from tests.helpers.server import REPO_ROOT, ServerFactory, ServerProcess
from web.demo import DEMO_BLOCKS

RECONNECT_TIMEOUT_MS = 45_000  # a restart, then backoff attempts of up to 4 s, then the resend
TYPING_SHOWN_S = 6  # how long the page shows a `typing` that is not renewed
PHONE = {"width": 390, "height": 844}
NO_BLOCKS_CACHE = {"REALTIME_DATABASE_BLOCKS_CACHE_SECONDS": "0"}  # a block or unblock takes effect at once


@pytest.fixture
def demo_server(make_server: ServerFactory) -> ServerProcess:
    return make_server().start("--demo")


def get_from_ws_port(server: ServerProcess, path: str) -> tuple[int, str, str]:
    """A plain GET on the WebSocket port: (status, Content-Type, body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.ws_port}{path}", timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def freeze(server: ServerProcess) -> None:
    """SIGSTOP the service and wait until it is stopped: its sockets stay open, nothing is read or answered."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    _, status = os.waitpid(server.process.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status


# ---------------------------------------------------------------- what the WebSocket port serves


def test_the_client_is_served_outside_demo_mode_where_the_root_still_answers_426(server: ServerProcess) -> None:
    status, content_type, body = get_from_ws_port(server, "/static/realtime.js")
    assert (status, content_type) == (200, "text/javascript; charset=utf-8")
    assert "class RealtimeClient" in body and "module.exports" in body
    assert get_from_ws_port(server, "/")[0] == 426
    assert get_from_ws_port(server, "/demo/config")[0] == 404


def test_demo_mode_serves_the_page_its_assets_and_where_the_notify_api_is(demo_server: ServerProcess) -> None:
    status, content_type, page = get_from_ws_port(demo_server, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    # everything the page loads comes from the service itself: it works offline
    assert sorted(re.findall(r'(?:src|href)="([^"]*)"', page)) == [
        "/static/demo.css",
        "/static/demo.js",
        "/static/realtime.js",
        "data:,",
    ]
    for asset in ("/static/demo.css", "/static/demo.js"):
        assert get_from_ws_port(demo_server, asset)[0] == 200
    stylesheet = get_from_ws_port(demo_server, "/static/demo.css")[2]
    assert "url(" not in stylesheet and "@import" not in stylesheet
    status, _, config = get_from_ws_port(demo_server, "/demo/config")
    assert (status, json.loads(config)) == (200, {"httpPort": demo_server.http_port})
    assert get_from_ws_port(demo_server, "/ws")[0] == 426


# ---------------------------------------------------------------- the demo page in Chromium


@needs_chromium
def test_a_message_typed_by_one_user_reaches_the_other_and_ticks_go_sent_delivered_read(
    demo_server: ServerProcess, new_context: ContextFactory, backend: str
) -> None:
    alice = DemoPage(new_context(viewport={"width": 1280, "height": 760}), demo_server, ALICE, with_user=BOB)
    alice.send("hello bob")
    mine = alice.bubbles("hello bob")
    # bob has no socket yet: stored, not delivered
    expect(mine).to_have_attribute("data-status", "sent")

    bob = DemoPage(new_context(), demo_server, BOB)
    expect(mine).to_have_attribute("data-status", "delivered")
    expect(bob.conversation(ALICE).locator(".conversation-preview")).to_have_text("hello bob")
    expect(bob.conversation(ALICE).locator(".unread-count")).to_have_text("1")

    bob.open_conversation(ALICE)
    expect(bob.bubbles("hello bob")).to_have_count(1)
    expect(mine).to_have_attribute("data-status", "read")
    expect(bob.conversation(ALICE).locator(".unread-count")).to_be_hidden()

    # both have the conversation open now: a reply is read as it arrives
    bob.send("hi alice, got it")
    expect(alice.bubbles("hi alice, got it")).to_have_count(1)
    expect(bob.bubbles("hi alice, got it")).to_have_attribute("data-status", "read")
    expect(mine).to_have_count(1)

    alice.page.locator("#simulate-like").click()
    expect(alice.badge).to_have_text("1")
    alice.page.locator("#bell").click()
    save_screenshot(alice.page, f"demo-page-{backend}.png")
    alice.assert_no_errors()
    bob.assert_no_errors()


@needs_chromium
def test_grouped_likes_count_each_like_and_one_click_reads_them_all_live_after_a_reload_and_on_another_device(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    """The issue's case: four likes of one post in the grouping window; the first is pushed alone, the other three
    as one grouped item. The badge counts four live, on a second device and after a reload, and clicking the
    grouped item reads its three at once, everywhere."""
    laptop = DemoPage(new_context(), demo_server, ALICE)
    phone = DemoPage(new_context(), demo_server, ALICE)
    for liker in (BOB, CAROL, DAVE, ERIN):
        assert notify(demo_server, "like", postId=101, userId=liker)["online"] == 1
    for page in (laptop, phone):
        expect(page.badge).to_have_text("4")  # the first like, then the window's three grouped
    laptop.page.locator("#bell").click()
    grouped = laptop.page.locator(".notification", has_text="and 2 others liked your post")
    expect(grouped).to_have_attribute("data-read", "false")
    grouped.click()
    expect(grouped).to_have_attribute("data-read", "true")
    for page in (laptop, phone):
        expect(page.badge).to_have_text("1")  # the first like, unread
    phone.page.reload()
    expect(phone.badge).to_have_text("1")  # what the database says agrees
    phone.page.locator("#bell").click()
    expect(phone.page.locator('.notification[data-read="false"]')).to_have_count(1)
    laptop.assert_no_errors()
    phone.assert_no_errors()


@needs_chromium
def test_a_like_over_http_raises_the_owners_badge_and_reading_it_clears_it(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    alice = DemoPage(new_context(), demo_server, ALICE)
    expect(alice.badge).to_be_hidden()

    # "bob likes my post": the page POSTs {postId: 101, userId: 2} to the HTTP port's /notify/like
    alice.page.locator("#simulate-like").click()
    expect(alice.badge).to_have_text("1")
    expect(alice.page.locator("#activity-log li").first).to_contain_text("notified 1 user, 1 online")

    # the main web application calling the API directly reaches the page the same way
    assert notify(demo_server, "like", postId=999, userId=CAROL, postOwnerId=ALICE)["online"] == 1
    expect(alice.badge).to_have_text("2")

    alice.page.locator("#bell").click()
    liked_by_bob = alice.page.locator(".notification", has_text="bob liked your post")
    expect(liked_by_bob).to_have_attribute("data-read", "false")
    liked_by_bob.click()
    expect(liked_by_bob).to_have_attribute("data-read", "true")
    expect(alice.badge).to_have_text("1")
    alice.page.locator("#mark-all-read").click()
    expect(alice.badge).to_be_hidden()
    expect(alice.page.locator('.notification[data-read="false"]')).to_have_count(0)
    alice.assert_no_errors()


@needs_chromium
@pytest.mark.slow
def test_after_a_crash_the_page_reconnects_and_the_pending_message_arrives_exactly_once(
    make_server: ServerFactory, new_context: ContextFactory
) -> None:
    server = make_server().start("--demo")
    alice = DemoPage(new_context(), server, ALICE, with_user=BOB)
    bob = DemoPage(new_context(), server, BOB, with_user=ALICE)
    alice.send("before the crash")
    expect(alice.bubbles("before the crash")).to_have_attribute("data-status", "read")

    # the message leaves the page, but the server never reads it: it is pending when the process dies
    freeze(server)
    text = "sent while the server was down"
    alice.send(text)
    pending = alice.bubbles(text)
    expect(pending).to_have_attribute("data-status", "pending")
    server.kill()
    expect(alice.state).to_have_attribute("data-state", "reconnecting")
    expect(pending).to_have_attribute("data-status", "pending")

    server.start("--demo")  # same ports, same database
    alice.expect_connected(timeout=RECONNECT_TIMEOUT_MS)
    bob.expect_connected(timeout=RECONNECT_TIMEOUT_MS)
    expect(pending).to_have_attribute("data-status", "read", timeout=RECONNECT_TIMEOUT_MS)
    expect(bob.bubbles(text)).to_have_count(1)
    expect(bob.bubbles("before the crash")).to_have_count(1)
    expect(alice.bubbles(text)).to_have_count(1)

    stored = [m for m in server.storage.history(ALICE, BOB, None, 100) if m.content == text]
    assert len(stored) == 1, stored
    alice.assert_no_errors()
    bob.assert_no_errors()


@needs_chromium
def test_with_two_tabs_of_one_user_exactly_one_alerts_and_the_other_takes_over_when_it_closes(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    context = new_context()
    first = DemoPage(context, demo_server, ALICE)
    expect(first.alert_role).to_have_attribute("data-leader", "true")
    second = DemoPage(context, demo_server, ALICE)
    expect(second.alert_role).to_have_attribute("data-leader", "false")
    first.page.locator("#sound-toggle").click()  # on for both tabs (saved in localStorage), from a click
    expect(second.page.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")

    notify(demo_server, "like", postId=100 + ALICE, userId=BOB)
    # both badges count it; the alert is raised in the same turn as the badge, so the counts are final here
    expect(first.badge).to_have_text("1")
    expect(second.badge).to_have_text("1")
    expect(first.body).to_have_attribute("data-alerts", "1")
    expect(second.body).to_have_attribute("data-alerts", "0")

    first.assert_no_errors()
    first.page.close()
    expect(second.alert_role).to_have_attribute("data-leader", "true")
    notify(demo_server, "comment", postId=100 + ALICE, userId=CAROL, commentId=1)
    expect(second.badge).to_have_text("2")
    expect(second.body).to_have_attribute("data-alerts", "1")
    second.assert_no_errors()


# ---------------------------------------------------------------- the social chat on the demo page


@needs_chromium
def test_the_inbox_lists_conversations_latest_first_with_unread_badges_updated_live(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    with demo_server.connect(ALICE) as alice, demo_server.connect(CAROL) as carol:
        for sender, content in ((alice, "alice one"), (alice, "alice two"), (carol, "carol one")):
            sender.message(BOB, content)
            sender.expect("message_sent")
        bob = DemoPage(new_context(), demo_server, BOB)
        expect(bob.inbox_names).to_have_text(["carol", "alice"])
        expect(bob.unread(CAROL)).to_have_text("1")
        expect(bob.unread(ALICE)).to_have_text("2")

        alice.message(BOB, "alice three")
        expect(bob.inbox_names).to_have_text(["alice", "carol"])
        expect(bob.unread(ALICE)).to_have_text("3")
        expect(bob.conversation(ALICE).locator(".conversation-preview")).to_have_text("alice three")

        bob.open_conversation(ALICE)
        expect(bob.unread(ALICE)).to_be_hidden()
        alice.expect("message_read", readBy=BOB)
        # the server has it read too: a new page shows the same counts
        bob.page.goto(f"http://127.0.0.1:{demo_server.ws_port}/?user={BOB}")
        bob.expect_connected()
        expect(bob.unread(CAROL)).to_have_text("1")
        expect(bob.unread(ALICE)).to_be_hidden()

    # a new conversation with a demo user goes on top
    bob.page.locator("#new-conversation").select_option(str(DAVE))
    bob.send("hi dave")
    expect(bob.bubbles("hi dave")).to_have_attribute("data-status", "sent")
    expect(bob.inbox_names).to_have_text(["dave", "alice", "carol"])
    expect(bob.conversation(DAVE).locator(".conversation-preview")).to_have_text("You: hi dave")
    bob.assert_no_errors()


@needs_chromium
def test_the_typing_line_shows_while_the_peer_types_and_goes_when_it_stops_or_after_6_s(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    alice = DemoPage(new_context(), demo_server, ALICE, with_user=BOB)
    bob = DemoPage(new_context(), demo_server, BOB, with_user=ALICE)
    alice.page.locator("#composer-input").press_sequentially("hel")
    expect(bob.typing_line).to_have_text("alice is typing…")
    alice.page.locator("#messages").click()  # leaving the composer says `typing: false`
    expect(bob.typing_line).to_be_hidden()

    # a peer that never says it stopped: the line goes by itself after about 6 s
    bob.page.locator("#new-conversation").select_option(str(CAROL))
    with demo_server.connect(CAROL) as carol:
        carol.send({"type": "typing", "to": BOB})
        expect(bob.typing_line).to_have_text("carol is typing…")
        shown = time.monotonic()
        expect(bob.conversation(CAROL).locator(".conversation-preview")).to_have_text("typing…")
        expect(bob.typing_line).to_be_hidden(timeout=(TYPING_SHOWN_S + 5) * 1000)
        assert time.monotonic() - shown >= TYPING_SHOWN_S - 1.5
        expect(bob.conversation(CAROL).locator(".conversation-preview")).to_have_text("No messages yet")
    alice.assert_no_errors()
    bob.assert_no_errors()


@needs_chromium
def test_deleting_ones_own_message_shows_message_deleted_on_both_pages(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    alice = DemoPage(new_context(), demo_server, ALICE, with_user=BOB)
    bob = DemoPage(new_context(), demo_server, BOB, with_user=ALICE)
    alice.send("oops, wrong chat")
    mine = alice.bubbles("oops, wrong chat")
    expect(mine).to_have_attribute("data-status", "read")
    message_id = int(mine.get_attribute("data-message-id") or 0)
    expect(bob.bubble(message_id).locator(".message-text")).to_have_text("oops, wrong chat")
    expect(bob.bubble(message_id).locator(".message-delete")).to_have_count(0)  # only the sender may delete

    alice.bubble(message_id).locator(".message-delete").click()
    for page in (alice, bob):
        expect(page.bubble(message_id).locator(".message-text")).to_have_text("message deleted")
        expect(page.bubble(message_id)).to_have_class(re.compile(r"\bdeleted\b"))
    expect(bob.conversation(ALICE).locator(".conversation-preview")).to_have_text("message deleted")
    expect(alice.bubble(message_id).locator(".message-delete")).to_have_count(0)

    bob.page.reload()  # history and the inbox say so too
    bob.expect_connected()
    expect(bob.bubble(message_id).locator(".message-text")).to_have_text("message deleted")
    expect(bob.conversation(ALICE).locator(".conversation-preview")).to_have_text("message deleted")
    alice.assert_no_errors()
    bob.assert_no_errors()


@needs_chromium
def test_a_message_to_a_user_who_blocked_the_sender_shows_that_this_user_does_not_accept_messages(
    make_server: ServerFactory, new_context: ContextFactory
) -> None:
    server = make_server(NO_BLOCKS_CACHE).start("--demo")
    [(erin, dave)] = DEMO_BLOCKS  # the demo's own block: erin has blocked dave
    page = DemoPage(new_context(), server, dave, with_user=erin)
    notice = page.page.locator("#blocked-notice")
    expect(notice).to_be_hidden()
    page.send("can you hear me")
    expect(page.bubbles("can you hear me")).to_have_attribute("data-status", "failed")
    expect(notice).to_have_text("erin does not accept messages from you.")
    expect(page.conversation(erin).locator(".conversation-preview")).to_have_text("Does not accept your messages")

    server.unblock(erin, dave)  # at once, without a cache: the next message goes through and the notice goes
    page.send("and now?")
    expect(page.bubbles("and now?")).to_have_attribute("data-status", "sent")
    expect(notice).to_be_hidden()
    page.assert_no_errors()


@needs_chromium
def test_at_390_px_inbox_and_chat_take_turns_nothing_overflows_and_the_bell_stays_visible(
    demo_server: ServerProcess, new_context: ContextFactory
) -> None:
    alice = DemoPage(new_context(viewport=PHONE), demo_server, ALICE)
    page = alice.page
    bell = page.locator("#bell")

    def assert_fits() -> None:
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        expect(bell).to_be_in_viewport(ratio=1)

    expect(page.locator(".sidebar")).to_be_visible()
    expect(page.locator("#chat")).to_be_hidden()
    assert_fits()

    page.locator("#new-conversation").select_option(str(BOB))
    expect(page.locator("#chat")).to_be_visible()
    expect(page.locator(".sidebar")).to_be_hidden()
    alice.send("a sentence long enough to wrap over several lines of a phone " + "unbroken" * 12)
    expect(page.locator(".message.mine")).to_have_attribute("data-status", "sent")
    assert_fits()
    chat = page.locator("#messages").bounding_box()
    assert chat is not None and chat["width"] >= PHONE["width"] - 40, chat  # not one word per line

    bell.click()
    panel = page.locator("#notification-panel")
    expect(panel).to_be_in_viewport(ratio=1)
    assert_fits()
    save_screenshot(page, "demo-page-390px-chat.png")
    bell.click()

    page.locator("#back").click()
    expect(page.locator(".sidebar")).to_be_visible()
    expect(alice.conversation(BOB).locator(".conversation-preview")).to_contain_text("You: a sentence")
    assert_fits()
    save_screenshot(page, "demo-page-390px-inbox.png")
    alice.assert_no_errors()


@needs_chromium
def test_a_peers_dot_turns_online_when_it_opens_the_page_and_offline_after_the_grace(
    make_server: ServerFactory, new_context: ContextFactory
) -> None:
    server = make_server({"REALTIME_PRESENCE_GRACE_SECONDS": "1"}).start("--demo")
    alice = DemoPage(new_context(), server, ALICE, with_user=BOB)
    entry = alice.conversation(BOB)
    seen = alice.page.locator("#chat-title .chat-seen")
    expect(entry).to_have_attribute("data-presence", "offline")

    bob = DemoPage(new_context(), server, BOB)
    expect(entry).to_have_attribute("data-presence", "online")
    expect(seen).to_have_text("online")

    bob.page.close()
    expect(entry).to_have_attribute("data-presence", "offline")
    expect(seen).to_have_text(re.compile(r"^last seen "))
    alice.assert_no_errors()


# ---------------------------------------------------------------- unit tests of the client, in Node


@pytest.mark.skipif(shutil.which("node") is None, reason="node is missing")
def test_client_unit_tests_pass_in_node() -> None:
    files = sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "tests" / "js").glob("*.test.js"))
    assert files, "no tests under tests/js"
    result = subprocess.run(
        ["node", "--test", *files], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-4000:]
    assert "# fail 0" in result.stdout
