"""README.md's commands and snippets, run against what its run command starts, so the README cannot drift.

The run command is started for real in a copy of the checkout (the tracked files as they are in the work tree,
so an uncommitted README edit is tested too; in CI that is the fresh clone) sharing this venv, on free ports
instead of 8080 and 8081. Every `sh` command must be one this test knows how to check, and every fenced block
one it runs: a new command or snippet cannot slip in unverified.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from protocol.tokens import mint_token
from settings import load_settings
from tests.helpers.client import Client
from tests.helpers.server import REPO_ROOT, START_TIMEOUT, free_port, inherited_environment, wait_until

README = REPO_ROOT / "README.md"
RUN_COMMAND, TEST_COMMAND, CURL = "run", "test", "curl"
README_WS, README_HTTP = "127.0.0.1:8080", "127.0.0.1:8081"  # the addresses the README gives
SECRET = "readme-test-auth-secret-0123456789abcdef"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PYTHON_SNIPPETS = ["mint_token", "NotifyClient"]  # what tells the README's Python blocks apart, in order
DEMO_PAGE_LINE = re.compile(r"^demo page: (\S+)$", re.MULTILINE)


def blocks(language: str) -> list[str]:
    """The README's fenced blocks in `language`."""
    return [body for lang, body in FENCE.findall(README.read_text(encoding="utf-8")) if lang == language]


def commands() -> list[str]:
    """The README's shell commands, one per line with continuations joined and comments dropped."""
    joined = "\n".join(blocks("sh")).replace("\\\n", " ")
    return [shlex.join(shlex.split(line, comments=True)) for line in joined.splitlines() if line.split("#")[0].strip()]


def kind(command: str) -> str | None:
    """What a README command is, for this test: the run command, the test command, a curl call; None: unknown."""
    words = shlex.split(command)
    if words == ["./scripts/run.sh"]:
        return RUN_COMMAND
    if words == ["./scripts/test.sh"]:
        return TEST_COMMAND
    if words[0] == "curl":
        return CURL
    return None


def the_command(wanted: str) -> str:
    [command] = [command for command in commands() if kind(command) == wanted]
    return command


@dataclass
class Service:
    """The service the README's run command started, and what it printed."""

    ws_port: int
    http_port: int
    log: Path

    def local(self, text: str) -> str:
        """`text` with the README's addresses replaced by this service's."""
        return text.replace(README_WS, f"127.0.0.1:{self.ws_port}").replace(README_HTTP, f"127.0.0.1:{self.http_port}")

    def get(self, url: str) -> tuple[int, str, bytes]:
        with urllib.request.urlopen(self.local(url), timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's tracked files as in the work tree, with this venv (bootstrap.sh then installs nothing
    new: it installs only when the requirements' stamp is missing, and this venv has every requirement)."""
    copy = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    (copy / ".venv").symlink_to(Path(sys.prefix))
    return copy


@pytest.fixture(scope="module")
def service(checkout: Path) -> Iterator[Service]:
    """The README's run command, started in the checkout on free ports, once /healthz answers."""
    running = Service(free_port(), free_port(), checkout / "run.log")
    env = {
        **{key: value for key, value in inherited_environment().items() if key != "PYTHONPATH"},
        "REALTIME_SERVER_WS_PORT": str(running.ws_port),
        "REALTIME_SERVER_HTTP_PORT": str(running.http_port),
        "REALTIME_AUTH_SECRET": SECRET,  # the Flask snippet's tokens must be signed with the service's secret
    }
    with running.log.open("wb") as log:
        process = subprocess.Popen(shlex.split(the_command(RUN_COMMAND)), cwd=checkout, env=env, stdout=log, stderr=log)

    def healthy() -> bool:
        assert process.poll() is None, running.log.read_text()
        try:
            return running.get(f"http://{README_HTTP}/healthz")[0] == 200
        except OSError:
            return False

    try:
        wait_until(healthy, "the README's run command answers /healthz", timeout=START_TIMEOUT + 60)
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, running.log.read_text()


def test_every_readme_command_is_one_this_test_checks() -> None:
    unknown = [command for command in commands() if kind(command) is None]
    assert unknown == [], "README commands this test does not run or check: teach test_readme.py about them"
    assert [kind(command) for command in commands()].count(RUN_COMMAND) == 1
    assert [kind(command) for command in commands()].count(TEST_COMMAND) == 1


def test_every_readme_block_is_one_this_test_runs() -> None:
    languages = sorted(lang for lang, _ in FENCE.findall(README.read_text(encoding="utf-8")) if lang != "sh")
    assert languages == ["html", "python", "python"], "README blocks test_readme.py does not run: teach it about them"
    assert [marker for block in blocks("python") for marker in PYTHON_SNIPPETS if marker in block] == PYTHON_SNIPPETS


def test_the_test_command_is_what_ci_runs() -> None:
    """Not run here (it runs this test): CI's entry point execs exactly the README's test command."""
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    [line] = [line for line in ci.splitlines() if line.startswith("exec ")]
    assert shlex.split(line) == ["exec", "bash", the_command(TEST_COMMAND).removeprefix("./")]


def test_the_readme_ports_are_the_defaults() -> None:
    settings = load_settings(REPO_ROOT / "config.ini", environ={"REALTIME_AUTH_SECRET": SECRET}, demo=False)
    assert (f"127.0.0.1:{settings.server.ws_port}", f"127.0.0.1:{settings.server.http_port}") == (
        README_WS,
        README_HTTP,
    )


def test_the_demo_page_answers_at_the_address_the_readme_gives(service: Service) -> None:
    assert f"<http://{README_WS}/>" in README.read_text(encoding="utf-8")
    printed = DEMO_PAGE_LINE.findall(service.log.read_text(encoding="utf-8"))
    assert printed == [service.local(f"http://{README_WS}/")]
    status, content_type, page = service.get(printed[0])
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert b"<title>" in page


def test_the_readme_curl_commands_succeed(service: Service) -> None:
    """Each answers 2xx with JSON; /healthz says ok, a notify call succeeds."""
    curls = [command for command in commands() if kind(command) == CURL]
    for command in curls:
        words = shlex.split(service.local(command))
        done = subprocess.run([words[0], "--fail-with-body", *words[1:]], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        answer = json.loads(done.stdout)
        if "/healthz" in command:
            assert {"status": "ok", "database": "ok"}.items() <= answer.items()
        if "/notify/" in command:
            assert answer["success"] is True and answer["recipients"] >= 1, (command, answer)
    assert any("/healthz" in command for command in curls)


def test_the_flask_snippet_mints_a_token_the_service_accepts(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTIME_AUTH_SECRET", SECRET)
    app = run_snippet("mint_token")["app"]
    app.secret_key = "the platform's session key"
    with app.test_client() as browser:
        with browser.session_transaction() as session:
            session["user_id"] = 1
        answer = browser.get("/realtime-token")
    assert answer.status_code == 200
    alice = Client(f"ws://127.0.0.1:{service.ws_port}/")
    try:
        assert alice.connect(1, answer.get_data(as_text=True))["type"] == "connected"
    finally:
        alice.close()


def test_the_notify_snippet_notifies_the_post_owner(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REALTIME_NOTIFY_SECRET", raising=False)  # the demo has no [notify] secret
    bob = Client(f"ws://127.0.0.1:{service.ws_port}/")
    try:
        bob.connect(2, mint_token(SECRET, 2))
        result = run_snippet("NotifyClient", service)["result"]
        assert (result.recipients, result.online) == (1, 1)
        assert bob.expect("notification")["text"] == "alice liked your post"
    finally:
        bob.close()


def test_the_html_snippet_loads_the_client_from_the_service(service: Service) -> None:
    [html] = blocks("html")
    [module] = re.findall(r'from "(http://[^"]+)"', html)
    status, content_type, source = service.get(module)
    assert (status, content_type.split(";")[0]) == (200, "text/javascript")
    assert re.search(rb"^export \{[^}]*\bRealtimeClient\b", source, re.MULTILINE | re.DOTALL)
    version = json.loads((REPO_ROOT / "clients" / "js" / "package.json").read_text(encoding="utf-8"))["version"]
    assert f"/client/v{version}/realtime.mjs" in module
    assert f'url: "ws://{README_WS}/"' in html


def run_snippet(marker: str, service: Service | None = None) -> dict[str, Any]:
    """Run the one README Python block that mentions `marker` (on `service`'s ports); its names."""
    [code] = [block for block in blocks("python") if marker in block]
    namespace: dict[str, Any] = {"__name__": "readme_snippet"}
    exec(compile(service.local(code) if service else code, str(README), "exec"), namespace)
    return namespace



