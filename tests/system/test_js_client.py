"""The packaged browser client (clients/js): how the service serves it, the package built from a fresh clone,
and in Chromium a page of the platform on another origin importing the ES module from the versioned path.

The platform's pages come from small HTTP servers at http://localhost:PORT (another origin than the service's
http://127.0.0.1:PORT, both on loopback, which Chromium's local network access rules require), so the browser
applies its real cross-origin rules to the module, the WebSocket and the handshake probe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import BrowserContext, Page

from protocol.tokens import mint_token
from tests.helpers.browser import ALICE, BOB, ContextFactory, needs_chromium
from tests.helpers.client import Client
from tests.helpers.server import REPO_ROOT, SECRET, ServerFactory, ServerProcess
from web.app import CLIENT_VERSION

PLATFORM_PAGE = b"<!doctype html><title>platform</title><p>a page of the platform</p>"
PACKAGE_FILES = ["README.md", "dist/realtime.js", "dist/realtime.mjs", "package.json", "realtime.d.ts"]
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is missing")


class PlatformPageHandler(BaseHTTPRequestHandler):
    """Answers every GET with the platform's (empty) page."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PLATFORM_PAGE)))
        self.end_headers()
        self.wfile.write(PLATFORM_PAGE)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def serve_platform() -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PlatformPageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """(an origin the service allows, one it does not): the platform's pages at http://localhost:PORT."""
    servers = [serve_platform(), serve_platform()]
    yield tuple(f"http://localhost:{server.server_address[1]}" for server in servers)  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def allowed(origins: tuple[str, str]) -> str:
    return origins[0]


@pytest.fixture
def refused(origins: tuple[str, str]) -> str:
    return origins[1]


@pytest.fixture
def client_server(make_server: ServerFactory, allowed: str) -> ServerProcess:
    return make_server({"REALTIME_SERVER_ALLOWED_ORIGINS": allowed}).start("--demo")


def get(server: ServerProcess, path: str, origin: str | None = None) -> tuple[int, dict[str, str], str]:
    """A GET on the WebSocket port, as a page of `origin` would send it: (status, headers, body)."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.ws_port}{path}")
    if origin is not None:
        request.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def module_url(server: ServerProcess, build: str = "realtime.mjs") -> str:
    return f"http://127.0.0.1:{server.ws_port}/client/v{CLIENT_VERSION}/{build}"


# ---------------------------------------------------------------- what the service serves


def test_the_builds_are_served_under_the_version_with_cors_for_the_allowed_origins(
    client_server: ServerProcess, allowed: str, refused: str
) -> None:
    built = REPO_ROOT / "clients" / "js" / "dist"
    for build in ("realtime.mjs", "realtime.js"):
        status, headers, body = get(client_server, f"/client/v{CLIENT_VERSION}/{build}", allowed)
        assert (status, headers["Content-Type"]) == (200, "text/javascript; charset=utf-8")
        assert body == (built / build).read_text()
        assert headers["Access-Control-Allow-Origin"] == allowed
        assert "Origin" in headers["Vary"]
        status, headers, _ = get(client_server, f"/client/v{CLIENT_VERSION}/{build}", refused)
        assert status == 200 and "Access-Control-Allow-Origin" not in headers
    assert get(client_server, "/client/v0.0.0/realtime.mjs", allowed)[0] == 404
    # the old path serves the classic build: the demo page and older pages keep working
    status, _, body = get(client_server, "/static/realtime.js")
    assert (status, body) == (200, (built / "realtime.js").read_text())
    assert "root.RealtimeClient" in body and f'VERSION = "{CLIENT_VERSION}"' in body


def test_the_handshake_probe_answers_what_a_handshake_from_that_page_would_get(
    client_server: ServerProcess, allowed: str, refused: str
) -> None:
    status, headers, body = get(client_server, "/?probe=1", refused)
    assert (status, headers["Access-Control-Allow-Origin"]) == (403, "*")
    assert "allowed_origins" in body
    status, headers, _ = get(client_server, "/ws?probe=1", allowed)
    assert (status, headers["Access-Control-Allow-Origin"], headers["Cache-Control"]) == (204, "*", "no-store")


def test_the_probe_tells_a_page_over_the_connection_cap_429(make_server: ServerFactory) -> None:
    server = make_server({"REALTIME_LIMITS_CONNECTIONS_PER_ADDRESS": "1"}).start()
    with Client(server.ws_url):
        status, _, body = get(server, "/?probe=1")
    assert status == 429 and "connections_per_address" in body


# ---------------------------------------------------------------- the package from a fresh clone


def npm(package: Path, *args: str) -> str:
    result = subprocess.run(["npm", *args], cwd=package, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


@needs_npm
def test_the_package_builds_type_checks_and_packs_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    package = clone / "clients" / "js"
    committed = {build: (package / "dist" / build).read_text() for build in ("realtime.mjs", "realtime.js")}
    npm(package, "ci", "--no-audit", "--no-fund")
    npm(package, "run", "build")
    assert {build: (package / "dist" / build).read_text() for build in committed} == committed, (
        "dist/ is not what src/realtime.js builds to: run `npm run build` in clients/js and commit"
    )
    npm(package, "run", "typecheck")  # tsc --noEmit on test/consumer.ts against realtime.d.ts

    [packed] = json.loads(npm(package, "pack", "--json"))
    assert sorted(entry["path"] for entry in packed["files"]) == PACKAGE_FILES
    assert packed["version"] == CLIENT_VERSION
    with tarfile.open(package / packed["filename"]) as tarball:
        tarball.extractall(tmp_path / "unpacked", filter="data")
    unpacked = tmp_path / "unpacked" / "package"
    script = (
        "const cjs = require('./dist/realtime.js');"
        "import('./dist/realtime.mjs').then((esm) => console.log(JSON.stringify("
        "[cjs.VERSION, esm.VERSION, typeof cjs.RealtimeClient, typeof esm.RealtimeClient])));"
    )
    result = subprocess.run(["node", "-e", script], cwd=unpacked, capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout) == [CLIENT_VERSION, CLIENT_VERSION, "function", "function"], result.stderr


# ---------------------------------------------------------------- a platform page in Chromium


class PlatformPage:
    """A page of the platform at `origin`, talking to the service at `server`."""

    def __init__(self, context: BrowserContext, server: ServerProcess, origin: str):
        self.server = server
        self.origin = origin
        self.errors: list[str] = []
        self.page: Page = context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.load()

    def load(self) -> None:
        self.page.goto(f"{self.origin}/app")

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self.server.ws_port}/"

    def start_client(self, user_id: int, token: str | None, connect: bool = True, **options: object) -> None:
        """Import the ES module and make `window.client` with these options (getToken: the page's `nextToken`)."""
        self.page.evaluate(
            """async ([moduleUrl, url, userId, token, connect, options]) => {
                const realtime = await import(moduleUrl);
                window.realtime = realtime;
                window.states = [];
                window.sent = [];
                window.connectedFrames = 0; // the first, then one per token renewal on the same socket
                const getToken = window.nextToken ? () => window.nextToken() : undefined;
                window.client = new realtime.RealtimeClient({ url, userId, token, getToken, ...options });
                window.client.on("state", (state, detail) => window.states.push([state, detail]));
                window.client.on("sent", (frame) => window.sent.push(frame));
                window.client.on("connected", () => window.connectedFrames++);
                if (connect) window.client.connect();
            }""",
            [module_url(self.server), self.socket_url, user_id, token, connect, options],
        )

    def wait_for_state(self, state: str) -> None:
        self.page.wait_for_function("(state) => window.client.state === state", arg=state)

    def history(self, with_user: int) -> list[dict]:
        return self.page.evaluate("(withUser) => window.client.history(withUser)", with_user)


def demo_token(user_id: int, ttl_seconds: float = 3600) -> str:
    return mint_token(SECRET, user_id, ttl_seconds)


@needs_chromium
def test_a_page_of_an_allowed_origin_imports_the_module_and_chats(
    client_server: ServerProcess, new_context: ContextFactory, allowed: str
) -> None:
    page = PlatformPage(new_context(), client_server, allowed)
    page.start_client(ALICE, demo_token(ALICE))
    page.wait_for_state("connected")
    assert page.page.evaluate("() => window.realtime.VERSION") == CLIENT_VERSION
    page.page.evaluate("(to) => window.client.send(to, 'from the platform page')", BOB)
    page.page.wait_for_function("() => window.sent.length === 1")
    assert [m["content"] for m in page.history(BOB)] == ["from the platform page"]
    assert page.errors == []


@needs_chromium
def test_a_page_of_a_refused_origin_cannot_import_the_module_and_its_client_shows_refused_403(
    client_server: ServerProcess, new_context: ContextFactory, refused: str
) -> None:
    page = PlatformPage(new_context(), client_server, refused)
    imported = page.page.evaluate(
        "(url) => import(url).then(() => 'imported', (error) => error.constructor.name)", module_url(client_server)
    )
    assert imported == "TypeError"  # the browser's CORS check: no Access-Control-Allow-Origin for this origin
    # a classic script needs no CORS: its client learns from the probe why the handshake failed
    page.page.add_script_tag(url=module_url(client_server, "realtime.js"))
    page.page.evaluate(
        """([url, token]) => {
            window.client = new RealtimeClient({ url, token });
            window.refusal = new Promise((resolve) => window.client.on("state", (state, detail) => {
                if (state === "refused") resolve(detail);
            }));
            window.client.connect();
        }""",
        [page.socket_url, demo_token(ALICE)],
    )
    detail = page.page.evaluate("() => window.refusal")
    assert detail["status"] == 403 and "allowed_origins" in detail["reason"]
    assert page.page.evaluate("() => window.client.state") == "refused"


@needs_chromium
def test_get_token_is_called_on_connect_and_again_before_the_token_expires(
    client_server: ServerProcess, new_context: ContextFactory, allowed: str
) -> None:
    context = new_context()
    issued: list[int] = []

    def next_token() -> str:
        issued.append(4 if not issued else 3600)  # a token about to expire, then a long-lived one
        return demo_token(ALICE, issued[-1])

    context.expose_function("nextToken", next_token)
    page = PlatformPage(context, client_server, allowed)
    page.start_client(ALICE, None, tokenRefreshMarginMs=2500)
    # about 1 s after connecting the session is renewed in place: the server answers the new token with `connected`
    page.page.wait_for_function("() => window.connectedFrames === 2")
    assert issued == [4, 3600]
    assert [state for state, _ in page.page.evaluate("() => window.states")] == ["connecting", "connected"]
    assert page.history(BOB) == []


@needs_chromium
def test_a_message_typed_before_a_reload_is_sent_after_it_exactly_once(
    client_server: ServerProcess, new_context: ContextFactory, allowed: str
) -> None:
    page = PlatformPage(new_context(), client_server, allowed)
    token = demo_token(ALICE)
    page.start_client(ALICE, token, connect=False)  # typed before the socket is up; the page reloads at once
    client_msg_id = page.page.evaluate("(to) => window.client.send(to, 'typed before the reload')", BOB)
    stored = """(userId) => new window.realtime.IndexedDbOutboxStore().load(userId)
        .then((entries) => entries.map((entry) => entry.clientMsgId))"""
    assert page.page.evaluate(stored, ALICE) == [client_msg_id]

    page.load()
    page.start_client(ALICE, token)
    page.page.wait_for_function("() => window.sent.length === 1")
    assert page.page.evaluate("() => window.sent[0].clientMsgId") == client_msg_id
    assert page.page.evaluate(stored, ALICE) == []

    # both pages are gone; the next one finds nothing to send, and the message was stored once
    page.load()
    page.start_client(ALICE, token)
    page.wait_for_state("connected")
    assert [message["content"] for message in page.history(BOB)] == ["typed before the reload"]
    assert page.page.evaluate("() => window.sent") == []
    assert page.errors == []
