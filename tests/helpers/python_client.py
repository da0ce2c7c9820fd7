"""The Python notify client (clients/python) under test: stand-in HTTP servers, the Flask example, the built package.

The tests import `realtime_notify` from the working tree (pytest.ini `pythonpath`), so a change is tested at once
without reinstalling; `build_into_fresh_venv` checks the other half, that the package builds and works on its own.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

from tests.helpers.server import REPO_ROOT

CLIENT_DIR = REPO_ROOT / "clients" / "python"
FLASK_EXAMPLE = CLIENT_DIR / "examples" / "flask_app.py"
BUILD_TIMEOUT = 120


@dataclass
class ScriptedServer:
    """Answers each POST with the next (status, JSON body[, headers]) of `answers` and keeps what it was sent."""

    answers: list[tuple[Any, ...]]
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)  # (path, headers, body)
    url: str = ""


@contextmanager
def scripted_server(answers: list[tuple[Any, ...]]) -> Iterator[ScriptedServer]:
    """A local HTTP server playing `answers` in order, for what the real service cannot be made to answer."""
    script = ScriptedServer(list(answers))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            script.requests.append((self.path, dict(self.headers), body))
            status, answer, *headers = script.answers.pop(0)
            raw = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in (headers[0] if headers else {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures, not every request
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@contextmanager
def silent_listener() -> Iterator[str]:
    """The URL of a port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def load_flask_example() -> ModuleType:
    """clients/python/examples/flask_app.py as a module (an example, not part of the installed package)."""
    spec = importlib.util.spec_from_file_location("realtime_notify_flask_example", FLASK_EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_into_fresh_venv(workdir: Path) -> Path:
    """Build the sdist, the wheel from that sdist (so the sdist is complete), install the wheel and its one
    dependency (PyJWT, at the version the service pins, from the package index or pip's cache) into a new venv
    with nothing else in it (no pip, no Flask, none of the service); that venv's python."""
    dist = workdir / "dist"
    sdist_name = _run(
        sys.executable, "-c", "import sys, flit_core.buildapi as b; print(b.build_sdist(sys.argv[1]))", dist,
        cwd=CLIENT_DIR,
    ).strip()
    _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", dist, dist / sdist_name, cwd=workdir,
    )
    (wheel,) = dist.glob("realtime_notify-*.whl")
    _run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", dist, pinned("PyJWT"), cwd=workdir)
    venv = workdir / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=workdir)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--find-links", dist,
         wheel, cwd=workdir)
    return python


def pinned(name: str) -> str:
    """The `name==version` line of the service's requirements.txt."""
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def run_in_venv(python: Path, code: str, cwd: Path) -> str:
    """Run `code` isolated (-I: no working directory, no user site) in the venv; its standard output."""
    return _run(python, "-I", "-c", code, cwd=cwd)
