"""The demo page on two nodes of a cluster, in Chromium: supervisord-cluster.conf's Redis and nodes a and b.

Alice's page is served by node a and holds its socket there; bob's is served by node b. Everything
between them crosses Redis: chat with ticks up to read, and notifications sent through one node's
notify API raising the badge in the page of the other node (tests/helpers/browser.py has the page
helpers, tests/system/test_browser.py the single-node tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import ALICE, BOB, CAROL, ContextFactory, DemoPage, needs_chromium, notify, save_screenshot
from tests.helpers.supervision import SupervisedCluster, supervised_cluster

VIEWPORT = {"width": 1280, "height": 760}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SupervisedCluster]:
    """Redis and both nodes running and joined, in demo mode on one new SQLite file."""
    with supervised_cluster(tmp_path) as started:
        started.start_joined()
        yield started


@needs_chromium
@pytest.mark.slow
def test_pages_on_two_nodes_chat_to_read_and_raise_each_others_badges(
    cluster: SupervisedCluster,
    new_context: ContextFactory,  # noqa: F811  (the fixture imported above)
) -> None:
    alice = DemoPage(new_context(viewport=VIEWPORT), cluster.a, ALICE, with_user=BOB)
    bob = DemoPage(new_context(viewport=VIEWPORT), cluster.b, BOB, with_user=ALICE)

    alice.send("hello bob, from node a")
    expect(bob.bubbles("hello bob, from node a")).to_have_count(1)
    # bob has the conversation open: read as it arrives, and the receipt crosses back to node a
    expect(alice.bubbles("hello bob, from node a")).to_have_attribute("data-status", "read")
    bob.send("hi alice, from node b")
    expect(alice.bubbles("hi alice, from node b")).to_have_count(1)
    expect(bob.bubbles("hi alice, from node b")).to_have_attribute("data-status", "read")

    # alice's page has node a's notify API publish a post by carol: her followers online are on both nodes
    alice.page.locator("#actor").select_option(str(CAROL))
    alice.page.locator("#simulate-post").click()
    expect(bob.badge).to_have_text("1")
    expect(alice.badge).to_have_text("1")
    expect(alice.page.locator("#activity-log li").first).to_contain_text("notified 4 users, 2 online")

    # the main web application calls node b's notify API: "bob liked your post" rings on node a's page
    assert notify(cluster.b, "like", postId=100 + ALICE, userId=BOB)["online"] == 1
    expect(alice.badge).to_have_text("2")

    alice.page.locator("#bell").click()
    bob.page.locator("#bell").click()
    save_screenshot(alice.page, "demo-cluster-node-a.png")
    save_screenshot(bob.page, "demo-cluster-node-b.png")
    alice.assert_no_errors()
    bob.assert_no_errors()
