"""Remake docs/images/demo-page.png, the README's picture: alice's demo page after a short chat with bob and a like.

    .venv/bin/python scripts/screenshot.py [OUTPUT]

It starts the real service in demo mode on free ports in a temporary directory and drives Debian's Chromium
(`scripts/install-system-deps.sh chromium`) with Playwright, as the browser tests do, whose helpers it uses.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from tests.helpers.browser import ALICE, BOB, CHROMIUM, CHROMIUM_ARGS, DemoPage, notify  # noqa: E402
from tests.helpers.server import REPO_ROOT, ServerProcess  # noqa: E402

OUTPUT = REPO_ROOT / "docs" / "images" / "demo-page.png"
VIEWPORT = {"width": 1200, "height": 750}


def take(output: Path) -> None:
    """Chat as alice and bob, have bob like alice's post, open alice's bell, and save alice's window."""
    with tempfile.TemporaryDirectory() as workdir, sync_playwright() as playwright:
        database = {"REALTIME_DATABASE_BACKEND": "sqlite", "REALTIME_DATABASE_PATH": f"{workdir}/realtime.sqlite3"}
        server = ServerProcess(Path(workdir) / "server", database).start("--demo")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            alice = DemoPage(browser.new_context(viewport=VIEWPORT), server, ALICE, with_user=BOB)
            bob = DemoPage(browser.new_context(viewport=VIEWPORT), server, BOB, with_user=ALICE)
            for page, text in ((alice, "Hi bob! Did you see my post about the lake?"), (bob, "Just now, it's great"),
                               (alice, "Thanks! Coming on Saturday?")):
                page.send(text)
                expect(page.bubbles(text)).to_have_attribute("data-status", "read")
            notify(server, "like", postId=101, userId=BOB)
            expect(alice.badge).to_have_text("1")
            alice.page.locator("#bell").click()
            expect(alice.page.locator("#notification-list li")).to_have_count(1)
            output.parent.mkdir(parents=True, exist_ok=True)
            alice.page.screenshot(path=str(output))
            alice.assert_no_errors()
            bob.assert_no_errors()
        finally:
            browser.close()
            server.stop()
    print(f"{output}: {output.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    take(Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT)
