"""The real supervisord, run from a copy of one of the repository's supervisord files.

`generate_config` copies supervisord.conf or supervisord-cluster.conf so that
what supervisord writes (its log, pid file, child logs, control socket, and
whatever the programs keep under data/) goes to a test's temporary
directory, `%(here)s` still means the repository (so commands are its
`.venv/bin/python -m web`), and each program's `environment=` gets the
test's ports and database. Everything else is the file as it is.
`supervised_cluster` does that for supervisord-cluster.conf (Redis and two
nodes), for the tests of the cluster under supervisord, in Chromium and
behind nginx.
"""

from __future__ import annotations

import configparser
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from supervisor.datatypes import dict_of_key_value_pairs

from tests.helpers.client import Client
from tests.helpers.server import REPO_ROOT, ServerProcess, free_port, inherited_environment

SUPERVISORD = REPO_ROOT / ".venv" / "bin" / "supervisord"
SUPERVISORCTL = REPO_ROOT / ".venv" / "bin" / "supervisorctl"
START_TIMEOUT = 30.0
COMMAND_TIMEOUT = 60.0  # supervisorctl restart waits for the drain (stopwaitsecs) and startsecs


def read_config(path: Path) -> configparser.RawConfigParser:
    """A supervisord file's sections and options as written (`%(here)s` not expanded)."""
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # keep option names as written
    parser.read(path, encoding="utf-8")
    return parser


def generate_config(
    name: str,
    data_dir: Path,
    socket_path: Path,
    environments: dict[str, dict[str, str]],
    replacements: dict[str, str] | None = None,
) -> Path:
    """The repository's file `name` with its data paths moved to `data_dir` and its control socket to
    `socket_path`; `environments[program]` merged into that program's `environment=`, and each text of
    `replacements` (which must occur) replaced, for what the environment cannot change (a port in a command)."""
    here = "%(here)s"
    parser = read_config(REPO_ROOT / name)
    socket_file = parser.get("unix_http_server", "file")
    unused = dict(replacements or {})
    for section in parser.sections():
        for option, value in parser.items(section):
            for old, new in (replacements or {}).items():
                if old in value:
                    value = value.replace(old, new)
                    unused.pop(old, None)
            value = value.replace(socket_file, str(socket_path))
            value = value.replace(f"{here}/data", str(data_dir))
            parser.set(section, option, value.replace(here, str(REPO_ROOT)))
    assert not unused, f"not in {name}: {sorted(unused)}"
    for program, extra in environments.items():
        section = f"program:{program}"
        environment = dict_of_key_value_pairs(parser.get(section, "environment", fallback=""))
        environment.update(extra)
        parser.set(section, "environment", ",".join(f'{key}="{value}"' for key, value in environment.items()))
    path = data_dir / name
    with path.open("w", encoding="utf-8") as handle:
        parser.write(handle)
    text = path.read_text(encoding="utf-8")
    assert f"{REPO_ROOT}/data" not in text, "a data path still points into the repository"
    return path


def exited(pid: int, timeout: float) -> bool:
    """Wait until process `pid` (not necessarily a child of ours) has exited."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], timeout)  # a pidfd is readable once the process exits
        return bool(readable)
    finally:
        os.close(handle)


def refuses(port: int) -> bool:
    """Nothing listens on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


class Supervisor:
    """supervisord and supervisorctl on one generated file; `clean_up` leaves none of their processes behind."""

    def __init__(self, config: Path, data_dir: Path):
        self.config = config
        self.data_dir = data_dir
        self.pidfile = Path(read_config(config).get("supervisord", "pidfile"))
        # supervisord gets no REALTIME_* variables of its own: the programs' come from environment=
        self.env = inherited_environment()
        self.program_pids: list[int] = []

    def start(self) -> None:
        started = subprocess.run(
            [str(SUPERVISORD), "-c", str(self.config)], env=self.env, capture_output=True, text=True, timeout=30
        )
        assert started.returncode == 0, started

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr, self.log_tail())
        return done.stdout

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def program_pid(self, program: str) -> int:
        pid = int(self.ctl("pid", program).strip())
        assert pid > 0
        self.program_pids.append(pid)
        return pid

    def log_tail(self, lines: int = 30) -> str:
        """The end of every log in the data directory: supervisord's and each program's."""
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in sorted(self.data_dir.glob("*.log"))
        )

    def clean_up(self) -> None:
        """Leave nothing running, whatever state the test left it in."""
        pid = self.pid
        if pid is not None and not exited(pid, 0):
            asked = subprocess.run(
                [str(SUPERVISORCTL), "-c", str(self.config), "pid", "all"],
                env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            self.program_pids.extend(int(line) for line in asked.stdout.split() if line.isdigit() and int(line) > 0)
            subprocess.run(
                [str(SUPERVISORCTL), "-c", str(self.config), "shutdown"],
                env=self.env, capture_output=True, timeout=COMMAND_TIMEOUT,
            )  # fmt: skip
            if not exited(pid, 30):
                os.kill(pid, signal.SIGKILL)
        for program in self.program_pids:
            if not exited(program, 0):
                os.kill(program, signal.SIGKILL)


def wait_running(supervisor: Supervisor, program: str) -> None:
    """Until supervisord reports the program RUNNING (after `startsecs` of staying up)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        status = supervisor.ctl("status", program)
        if "RUNNING" in status:
            return
        assert "STARTING" in status, f"{status}\n{supervisor.log_tail()}"
        assert time.monotonic() < deadline, f"not RUNNING within {START_TIMEOUT} s: {status}\n{supervisor.log_tail()}"
        time.sleep(0.2)  # polling supervisorctl: there is no event to wait on


# ---------------------------------------------------------------- supervisord-cluster.conf

CLUSTER_PROGRAMS = ("redis", "realtime-a", "realtime-b")
CLUSTER_REDIS_PORT = 6379  # what the file says; the copy gets a free port instead


@dataclass
class SupervisedCluster:
    """supervisord running supervisord-cluster.conf: Redis and nodes a and b in demo mode on one SQLite file.

    `a` and `b` are never started themselves: they know the node's ports and the shared database."""

    control: Supervisor
    a: ServerProcess
    b: ServerProcess
    redis_port: int
    tokens: dict[int, str] = field(default_factory=dict)

    def token(self, user_id: int) -> str:
        """The user's token from node a's /demo/token, fetched once: node b accepts it as well, since both nodes
        sign with the demo secret they keep in data/, and it still works while node a is down."""
        if user_id not in self.tokens:
            url = f"http://127.0.0.1:{self.a.ws_port}/demo/token?userId={user_id}"
            with urllib.request.urlopen(url, timeout=10) as response:
                self.tokens[user_id] = json.loads(response.read())["token"]
        return self.tokens[user_id]

    def connect(self, node: ServerProcess, user_id: int) -> Client:
        """A socket on `node` authenticated as `user_id`, its `connected` frame at `client.connected`."""
        client = node.client()
        client.connected = client.connect(user_id, self.token(user_id))
        return client

    def wait_joined(self, node: ServerProcess) -> dict[str, Any]:
        """Until the node's /healthz says it reaches the other nodes (`"cluster": "ok"`); answers that body."""
        return node.wait_health(
            lambda status, body: status == 200 and body["cluster"] == "ok",
            f"{node.ws_url} in the cluster",
            START_TIMEOUT,
        )

    def start_joined(self) -> None:
        """Start supervisord, and with it Redis and both nodes; until both nodes are in the cluster."""
        self.control.start()
        self.wait_joined(self.a)
        self.wait_joined(self.b)


@contextmanager
def supervised_cluster(tmp_path: Path) -> Iterator[SupervisedCluster]:
    """A copy of supervisord-cluster.conf on free loopback ports with its data/ in `tmp_path`, not started yet;
    supervisord, Redis and both nodes are gone afterwards, whatever happened."""
    data_dir = tmp_path / "data"
    (data_dir / "redis").mkdir(parents=True)  # as docs/scaling.md's `mkdir -p data/redis`
    database = {"REALTIME_DATABASE_BACKEND": "sqlite", "REALTIME_DATABASE_PATH": str(data_dir / "realtime.sqlite3")}
    a, b = ServerProcess(tmp_path / "a", database), ServerProcess(tmp_path / "b", database)
    redis_port = free_port()
    socket_dir = Path(tempfile.mkdtemp(prefix="sv-"))  # unix socket paths are limited to about 100 bytes
    config = generate_config(
        "supervisord-cluster.conf",
        data_dir,
        socket_dir / "s.sock",
        # no secret: in demo mode both nodes sign with the demo secret they share in data/
        {f"realtime-{name}": _ports_and_database(node) for name, node in (("a", a), ("b", b))},
        {
            f"--port {CLUSTER_REDIS_PORT}": f"--port {redis_port}",
            f"redis://127.0.0.1:{CLUSTER_REDIS_PORT}/0": f"redis://127.0.0.1:{redis_port}/0",
        },
    )
    control = Supervisor(config, data_dir)
    try:
        yield SupervisedCluster(control, a, b, redis_port)
    finally:
        try:
            control.clean_up()
        finally:
            a.close_storage()
            b.close_storage()
            shutil.rmtree(socket_dir, ignore_errors=True)


def _ports_and_database(node: ServerProcess) -> dict[str, str]:
    """What the copy changes in a node's `environment=`: its ports (free ones) and the database (in the test)."""
    keys = ("SERVER_WS_PORT", "SERVER_HTTP_PORT", "DATABASE_BACKEND", "DATABASE_PATH")
    return {f"REALTIME_{key}": node.env[f"REALTIME_{key}"] for key in keys}
