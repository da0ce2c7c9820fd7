"""The demo page in headless Chromium, driven by Playwright: what the browser tests share.

`DemoPage` is one user's page in one tab, used as a person would use it; the `browser` and
`new_context` fixtures (tests/system/conftest.py) launch Chromium and give each person a profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Locator, Page, expect

from tests.helpers import notifications
from tests.helpers.server import REPO_ROOT, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO_ROOT / "test-artifacts"
EXPECT_TIMEOUT_MS = 15_000  # how long an expectation on the page may take to come true
ALICE, BOB, CAROL, DAVE, ERIN = 1, 2, 3, 4, 5  # demo users; post 10N belongs to user N

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (scripts/install-system-deps.sh chromium installs it)"
)
ContextFactory = Callable[..., BrowserContext]


class DemoPage:
    """The demo page of one user in one tab; JavaScript errors on it fail the test."""

    def __init__(self, context: BrowserContext, server: ServerProcess, user_id: int, with_user: int | None = None):
        self.page: Page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._on_console)
        query = f"?user={user_id}" + (f"&with={with_user}" if with_user else "")
        self.page.goto(f"http://127.0.0.1:{server.ws_port}/{query}")
        self.expect_connected()

    @property
    def state(self) -> Locator:
        return self.page.locator("#connection-state")

    @property
    def badge(self) -> Locator:
        return self.page.locator("#bell-count")

    @property
    def alert_role(self) -> Locator:
        return self.page.locator("#alert-role")

    @property
    def body(self) -> Locator:
        return self.page.locator("body")

    @property
    def typing_line(self) -> Locator:
        return self.page.locator("#typing-line")

    @property
    def inbox_names(self) -> Locator:
        """The inbox's peer names, in the order shown."""
        return self.page.locator(".conversation .conversation-name")

    def expect_connected(self, timeout: float = EXPECT_TIMEOUT_MS) -> None:
        expect(self.state).to_have_attribute("data-state", "connected", timeout=timeout)

    def conversation(self, user_id: int) -> Locator:
        return self.page.locator(f'.conversation[data-user-id="{user_id}"]')

    def open_conversation(self, user_id: int) -> None:
        self.conversation(user_id).get_by_role("button").click()

    def send(self, text: str) -> None:
        self.page.locator("#composer-input").fill(text)
        self.page.locator("#composer-input").press("Enter")

    def unread(self, user_id: int) -> Locator:
        """The unread badge of the inbox entry of `user_id`."""
        return self.conversation(user_id).locator(".unread-count")

    def bubble(self, message_id: int) -> Locator:
        return self.page.locator(f'.message[data-message-id="{message_id}"]')

    def bubbles(self, text: str) -> Locator:
        """The chat pane's messages with exactly this text."""
        return self.page.locator(".message").filter(has=self.page.locator(".message-text", has_text=text))

    def assert_no_errors(self) -> None:
        assert self.errors == [], self.errors

    def _on_console(self, message: ConsoleMessage) -> None:
        """Something the page's Content-Security-Policy refused (Chromium reports it on the console) is an error."""
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)


def notify(server: ServerProcess, kind: str, **fields: int) -> dict:
    """Call the notify API as the main web application does; its JSON answer."""
    reply = notifications.notify(server, kind, **fields)
    assert reply.status == 200, (reply.status, reply.raw)
    return reply.json


def save_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot of the demo page: {path}")
    return path
