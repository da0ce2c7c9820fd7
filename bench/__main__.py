"""`python -m bench`: this service and the reference server, side by side, on one throwaway MariaDB.

Starts MariaDB (durable settings), gives each server its own database with
the same seed, runs every scenario against each server in turn, prints a
table per scenario and writes everything to a JSON file. `--quick` shrinks
every scenario (CI runs that as a smoke test, with no timing assertions).
`--nodes 1,2` also runs this service as two nodes joined through a
throwaway Redis, with the clients spread over both (the reference server
cannot cluster: it runs on one node only).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import loadgen  # noqa: E402
from settings import load_settings  # noqa: E402
from storage import open_storage  # noqa: E402
from tests.helpers.client import Client  # noqa: E402
from tests.helpers.mariadb import MariaDB, start_mariadb  # noqa: E402
from tests.helpers.redis_server import RedisServer  # noqa: E402
from tests.helpers.server import free_port, inherited_environment  # noqa: E402

SECRET = "bench-secret-0123456789abcdef0123456789"
WORKERS = 2
AUTHOR = 1_000_000
SERIES_AUTHOR = 5_000_000  # + follower count: one author per size of the followers series
MIXED_POST = AUTHOR + 100  # the post announced in the middle of the mixed run
SERIES_USERS = 4_000_001  # first user of the users series
TYPING_USERS = 7_000_001  # first user of the typing scenario's pairs
CONNECTED_AUTHOR = 6_000_000  # its followers are users 1..all_connected_followers, every one of them connected
MIXED_WARM_UP = 1.0
# the scenarios that need more than the seed's frames, and the frame type that shows a server speaks them
FEATURES = {"typing": "typing", "presence": "watch"}
PRESENCE_GRACE = 5.0  # [presence] grace_seconds, the default the servers run with


@dataclass(frozen=True)
class Sizes:
    chat_users: int = 1000
    chat_messages: int = 20
    open_rates: tuple[int, ...] = (2000, 5000)
    open_seconds: float = 5.0
    followers: int = 20_000
    connected_followers: int = 5000
    all_connected_followers: int = 5000
    typing_pairs: int = 1000
    fanout_repeats: int = 3
    idle_sockets: int = 10_000
    idle_seconds: float = 30.0
    mixed_rate: int = 1000
    mixed_seconds: float = 6.0
    series_users: tuple[int, ...] = (1000, 5000, 10_000)
    series_messages: int = 5
    series_followers: tuple[int, ...] = (1000, 10_000, 50_000)
    presence_watchers: int = 5000
    presence_cycles: int = 10


QUICK = Sizes(
    chat_users=40,
    chat_messages=5,
    open_rates=(200,),
    open_seconds=1.0,
    followers=300,
    connected_followers=100,
    all_connected_followers=100,
    typing_pairs=20,
    fanout_repeats=1,
    idle_sockets=100,
    idle_seconds=1.0,
    mixed_rate=100,
    mixed_seconds=2.0,
    series_users=(20, 40),
    series_messages=2,
    series_followers=(50, 100),
    presence_watchers=50,
    presence_cycles=2,
)


# ---------------------------------------------------------------- servers


class Server:
    """A server under test, started on its own database and ports."""

    name = ""
    features = frozenset(FEATURES)  # the scenarios of FEATURES it can run

    def __init__(
        self, database_env: dict[str, str], workdir: Path, extra_env: dict[str, str] | None = None, label: str = ""
    ):
        self.ws_port, self.http_port = free_port(), free_port()
        self.workdir = workdir
        self.label = label or self.name  # names the log file
        self.env = {
            **inherited_environment(),
            **database_env,
            "REALTIME_AUTH_SECRET": SECRET,
            "REALTIME_SERVER_HOST": "127.0.0.1",
            "REALTIME_SERVER_WS_PORT": str(self.ws_port),
            "REALTIME_SERVER_HTTP_PORT": str(self.http_port),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None

    @property
    def urls(self) -> list[str]:
        """The WebSocket URLs the load generator spreads its clients over: one per node."""
        return [f"ws://127.0.0.1:{self.ws_port}/"]

    def command(self) -> tuple[list[str], Path]:
        raise NotImplementedError

    def start(self) -> None:
        command, cwd = self.command()
        log = (self.workdir / f"{self.label}.log").open("ab")
        self.process = subprocess.Popen(command, cwd=cwd, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.label} exited; see {log.name}"
            try:
                # a cluster node serves only its own users until it reaches Redis
                if self.health().get("cluster") != "degraded":
                    return
            except OSError:
                pass
            time.sleep(0.1)  # waiting for a child process to listen
        raise RuntimeError(f"{self.label} did not become healthy")

    def health(self) -> dict[str, Any]:
        """GET /healthz; raises OSError until the server answers 200."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def helper_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of the processes besides the server's that serve it, by name: none for one process."""
        return {}

    def notify_post(self, post_id: int, author_id: int) -> dict[str, Any]:
        body = json.dumps({"postId": post_id, "userId": author_id}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/notify/post",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())


class OurServer(Server):
    name = "this service"

    def command(self) -> tuple[list[str], Path]:
        self.env.update({"REALTIME_DATABASE_BACKEND": "mysql", "REALTIME_LOG_LEVEL": "warning"})
        return [sys.executable, "-m", "web"], self.source()

    def source(self) -> Path:
        return REPO


class BaselineServer(OurServer):
    """This service as it was at an earlier commit (`--baseline REF`), for before/after figures in one run."""

    def __init__(self, database_env: dict[str, str], workdir: Path, ref: str):
        super().__init__(database_env, workdir)
        self.ref = ref
        self.name = f"this service at {ref}"
        self.label = f"baseline-{self.ref}"
        frames = subprocess.run(
            ["git", "show", f"{ref}:protocol/frames.py"], cwd=REPO, check=True, capture_output=True, text=True
        ).stdout
        self.features = frozenset(name for name, frame in FEATURES.items() if f'"{frame}"' in frames)

    def source(self) -> Path:
        tree = self.workdir / self.label
        if not tree.exists():
            tree.mkdir()
            archive = subprocess.run(["git", "archive", self.ref], cwd=REPO, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return tree


class ReferenceServer(Server):
    name = "reference"
    features: frozenset[str] = frozenset()

    def command(self) -> tuple[list[str], Path]:
        source = REPO.parent / "shared" / "reference"
        copy = self.workdir / "reference"
        if not copy.exists():
            shutil.copytree(source, copy, copy_function=shutil.copyfile)  # shared/ is read-only
            copy.chmod(0o755)
            subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=copy, check=True)
        return ["node", "server.js"], copy


class OurCluster:
    """`count` nodes of this service on one database, joined through a throwaway Redis (no persistence).

    The scenarios drive it as one server: clients spread over its nodes'
    URLs, HTTP calls go to the first node, CPU and memory are the nodes' sums
    (Redis's CPU is reported on its own).
    """

    def __init__(self, database_env: dict[str, str], workdir: Path, count: int):
        self.name = f"this service, {count} nodes"
        self.features = frozenset(FEATURES)
        self.redis = RedisServer(workdir / f"redis-{database_env['REALTIME_DATABASE_NAME']}")
        self.nodes = [
            OurServer(
                database_env,
                workdir,
                {
                    "REALTIME_CLUSTER_BACKEND": "redis",
                    "REALTIME_CLUSTER_REDIS_URL": self.redis.url,
                    "REALTIME_CLUSTER_NODE_NAME": f"node{index + 1}",
                },
                label=f"{OurServer.name}, node {index + 1}",
            )
            for index in range(count)
        ]

    @property
    def urls(self) -> list[str]:
        return [url for node in self.nodes for url in node.urls]

    def start(self) -> None:
        self.redis.start()
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()

    def rss_bytes(self) -> int:
        return sum(node.rss_bytes() for node in self.nodes)

    def cpu_seconds(self) -> float:
        return sum(node.cpu_seconds() for node in self.nodes)

    def helper_cpu_seconds(self) -> dict[str, float]:
        return {"redis": self._redis_cpu_seconds()}

    def _redis_cpu_seconds(self) -> float:
        """User and system CPU of redis-server, all its threads, as Redis itself reports it."""
        client = self.redis.client()
        try:
            cpu = client.info("cpu")
        finally:
            client.close()
        return cpu["used_cpu_user"] + cpu["used_cpu_sys"]

    def notify_post(self, post_id: int, author_id: int) -> dict[str, Any]:
        return self.nodes[0].notify_post(post_id, author_id)

    def node_figures(self) -> dict[str, list]:
        """Per node, so far: sockets authenticated, pushes it published to Redis and received from it, CPU seconds."""
        samples = [_samples(node) for node in self.nodes]

        def counts(name: str, label: str, value: str) -> list[int]:
            return [int(node.get((name, frozenset({(label, value)})), 0)) for node in samples]

        return {
            "connects": counts("realtime_frames_received_total", "type", "connect"),
            "pushes_published": counts("realtime_cluster_pushes_total", "outcome", "published"),
            "pushes_received": counts("realtime_cluster_pushes_total", "outcome", "received"),
            "cpu_s": [node.cpu_seconds() for node in self.nodes],
            "redis_cpu_s": self._redis_cpu_seconds(),
        }


def _samples(node: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a node's /metrics, parsed by prometheus_client, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


Target = Server | OurCluster  # what the scenarios drive


# ---------------------------------------------------------------- workers


def _in_workers(function: Callable[..., dict], argument_sets: list[tuple]) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(argument_sets)) as pool:
        return pool.starmap(function, argument_sets)


def _split(items: list[int], parts: int) -> list[list[int]]:
    """Consecutive slices with an even length each, so chat pairs stay in one worker."""
    size = max(2, (len(items) // parts) // 2 * 2)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _latency(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": _percentile(values, 0.50) * 1000,
        "p95_ms": _percentile(values, 0.95) * 1000,
        "p99_ms": _percentile(values, 0.99) * 1000,
        "max_ms": max(values, default=float("nan")) * 1000,
    }


# ---------------------------------------------------------------- scenarios


def chat(
    server: Target, users: list[int], count: int, window: int | None, rate: float | None, typing: bool = False
) -> dict[str, Any]:
    start_at = time.time() + 3 + len(users) / 500  # every worker connected by then
    rate_per_user = None if rate is None else rate / len(users)
    at_start: list[tuple[float, dict[str, float]]] = []  # the connects before start_at are not the scenario's cost
    sampler = threading.Timer(
        start_at - time.time(), lambda: at_start.append((server.cpu_seconds(), server.helper_cpu_seconds()))
    )
    sampler.start()
    parts = _in_workers(
        loadgen.run_chat,
        [
            (server.urls, SECRET, part, count, window, rate_per_user, start_at, None, typing)
            for part in _split(users, WORKERS)
        ],
    )
    sampler.join()
    cpu_before, helpers_before = at_start[0]
    seconds = max(part["finished"] for part in parts) - start_at
    latencies = [value for part in parts for value in part["latencies"]]
    expected = len(users) * count
    return {
        "messages": expected,
        "persisted_per_s": sum(part["acknowledged"] for part in parts) / seconds,
        "delivered_per_s": len(latencies) / seconds,
        **_latency(latencies),
        "lost": expected - sum(part["received"] for part in parts),
        "duplicated": sum(part["duplicated"] for part in parts),
        "reordered": sum(part["reordered"] for part in parts),
        "errors": sum(part["errors"] for part in parts),
        "seconds": seconds,
        "server_cpu_percent": 100 * (server.cpu_seconds() - cpu_before) / seconds,
        "server_cpu_ms_per_message": 1000 * (server.cpu_seconds() - cpu_before) / expected,
        **{
            f"{name}_cpu_percent": 100 * (cpu - helpers_before[name]) / seconds
            for name, cpu in server.helper_cpu_seconds().items()
        },
        "loadgen_cpu_percent": 100 * sum(part["cpu"] for part in parts) / seconds,
        **(
            {
                "typing_sent": sum(part["typing_sent"] for part in parts),
                "typing_received": sum(part["typing_received"] for part in parts),
            }
            if typing
            else {}
        ),
    }


def typing_chat(server: Target, sizes: Sizes) -> dict[str, Any]:
    """`typing_pairs` pairs chatting as in `chat`, each message after a `typing` frame to the partner: chat
    throughput and latency with typing on, and how many typing frames were sent and received (the server forwards
    at most one per sender and recipient every 2 s)."""
    if "typing" not in server.features:
        return {"skipped": f"{server.name} has no typing"}
    users = list(range(TYPING_USERS, TYPING_USERS + 2 * sizes.typing_pairs))
    return chat(server, users, sizes.chat_messages, 4, None, typing=True)


def fanout(server: Target, author: int, follower_count: int, connected_count: int, posts: int) -> dict[str, Any]:
    """Posts of `author`, whose followers are users 1..follower_count; `connected_count` of them are connected."""
    followers = list(range(1, follower_count + 1))
    connected = followers[:: max(1, follower_count // connected_count)][:connected_count]
    post_ids = _post_ids(author, posts)
    context = multiprocessing.get_context("spawn")
    events = context.Manager().Queue()
    parts = _split(connected, WORKERS)
    with context.Pool(len(parts)) as pool:
        pending = pool.starmap_async(
            loadgen.run_followers, [(server.urls, SECRET, part, post_ids, events) for part in parts]
        )
        for _ in parts:
            assert events.get(timeout=600) == "ready"
        times, answers, answered = [], [], []
        cpu_before = server.cpu_seconds()
        for post_id in post_ids:
            started = time.time()
            answers.append(server.notify_post(post_id, author))
            answered.append(time.time() - started)
            for _ in parts:
                assert events.get(timeout=600) == post_id
            times.append(started)
        server_cpu = server.cpu_seconds() - cpu_before
        results = pending.get(timeout=600)
    reach = [
        max(arrival for part in results for arrival in part["arrivals"][post_id]) - started
        for post_id, started in zip(post_ids, times)
    ]
    # every frame's delay after its post's request, over all posts: the typical follower, not only the last
    delays = [
        arrival - started
        for post_id, started in zip(post_ids, times)
        for part in results
        for arrival in part["arrivals"][post_id]
    ]
    frames = sum(len(part["arrivals"][post_id]) for part in results for post_id in post_ids)
    return {
        "followers": follower_count,
        "connected": len(connected),
        "last_follower_s": reach,
        "median_last_follower_s": statistics.median(reach),
        "median_answered_s": statistics.median(answered),
        "p50_follower_s": statistics.median(delays),
        "server_cpu_ms_per_post": 1000 * server_cpu / len(post_ids),
        "frames": frames,
        "expected_frames": len(connected) * len(post_ids),
        "answers": answers,
    }


def presence(server: Target, watched: int, watcher_count: int, cycles: int) -> dict[str, Any]:
    """`watched` (followed by users 1..watcher_count, all connected and watching it) connects and disconnects
    `cycles` times: when the last watcher sees each change, and the server's CPU for it all."""
    if "presence" not in server.features:
        return {"skipped": f"{server.name} has no presence"}
    watchers = list(range(1, watcher_count + 1))
    context = multiprocessing.get_context("spawn")
    events = context.Manager().Queue()
    parts = _split(watchers, WORKERS)
    with context.Pool(len(parts)) as pool:
        pending = pool.starmap_async(
            loadgen.run_watchers, [(server.urls, SECRET, part, watched, 2 * cycles, events) for part in parts]
        )
        for _ in parts:
            assert events.get(timeout=600) == "ready"
        cpu_before = server.cpu_seconds()
        changed_at = []
        for cycle in range(cycles):
            changed_at.append(time.time())
            socket = Client(server.urls[cycle % len(server.urls)])
            socket.connect(watched, loadgen.token(SECRET, watched))
            for _ in parts:
                assert events.get(timeout=600) == 2 * cycle
            changed_at.append(time.time())
            socket.close()
            for _ in parts:
                assert events.get(timeout=600) == 2 * cycle + 1
        server_cpu = server.cpu_seconds() - cpu_before
        results = pending.get(timeout=600)
    reach = [
        max(arrival for part in results for arrival in part["arrivals"][update]) - changed
        for update, changed in enumerate(changed_at)
    ]
    return {
        "watchers": watcher_count,
        "cycles": cycles,
        "median_online_last_watcher_s": statistics.median(reach[0::2]),
        "max_online_last_watcher_s": max(reach[0::2]),
        # the offline update waits out the grace period on purpose (a reload must not flap)
        "median_offline_after_grace_s": statistics.median(reach[1::2]) - PRESENCE_GRACE,
        "server_cpu_ms_per_change": 1000 * server_cpu / (2 * cycles),
    }


def idle(server: Target, sizes: Sizes) -> dict[str, Any]:
    users = list(range(2_000_001, 2_000_001 + sizes.idle_sockets))
    context = multiprocessing.get_context("spawn")
    events = context.Manager().Queue()
    parts = _split(users, WORKERS)
    start_at = time.time() + 3  # every worker process started by then
    with context.Pool(len(parts)) as pool:
        pending = pool.starmap_async(
            loadgen.run_idle, [(server.urls, SECRET, part, sizes.idle_seconds, start_at, events) for part in parts]
        )
        while time.time() < start_at - 0.5:
            time.sleep(0.05)  # sample the server just before the connects start
        rss_before, cpu_before = server.rss_bytes(), server.cpu_seconds()
        ready = [events.get(timeout=600) for _ in parts]
        connect_seconds = max(at for _, at, _ in ready) - start_at
        server_cpu = server.cpu_seconds() - cpu_before
        rss_held = server.rss_bytes()
        results = pending.get(timeout=600 + sizes.idle_seconds)
    return {
        "sockets": len(users),
        "alive_after_hold": sum(part["alive"] for part in results),
        "connects_per_s": len(users) / connect_seconds,
        "server_cpu_ms_per_connect": 1000 * server_cpu / len(users),
        "server_cpu_percent": 100 * server_cpu / connect_seconds,
        "loadgen_cpu_percent": 100 * sum(cpu for _, _, cpu in ready) / connect_seconds,
        "rss_before_mb": rss_before / 2**20,
        "rss_held_mb": rss_held / 2**20,
        "kb_per_socket": (rss_held - rss_before) / len(users) / 1024,
    }


def mixed(server: Target, sizes: Sizes) -> dict[str, Any]:
    """Open-loop chat at a fixed rate; a fan-out starts at the middle; latency during it vs before it
    (from MIXED_WARM_UP seconds after the start: the first messages of fresh users are not the steady state)."""
    users = list(range(3_000_001, 3_000_001 + 200))
    count = int(sizes.mixed_rate * sizes.mixed_seconds / len(users))
    start_at = time.time() + 4
    rate_per_user = sizes.mixed_rate / len(users)
    context = multiprocessing.get_context("spawn")
    with context.Pool(WORKERS + 1) as pool:
        chatting = pool.starmap_async(
            loadgen.run_chat,
            [(server.urls, SECRET, part, count, None, rate_per_user, start_at) for part in _split(users, WORKERS)],
        )
        time.sleep(max(0.0, start_at + sizes.mixed_seconds / 2 - time.time()))  # the fan-out starts mid-run
        fanout_started = time.time()
        server.notify_post(MIXED_POST, AUTHOR)
        fanout_ended = time.time()
        parts = chatting.get(timeout=600)
    during, before = [], []
    for part in parts:
        for sent, latency in zip(part["sent_at"], part["latencies"]):
            if fanout_started <= sent <= fanout_ended:
                during.append(latency)
            elif start_at + MIXED_WARM_UP <= sent < fanout_started:
                before.append(latency)
    return {
        "rate": sizes.mixed_rate,
        "fanout_seconds": fanout_ended - fanout_started,
        "p99_before_ms": _percentile(before, 0.99) * 1000,
        "p99_during_ms": _percentile(during, 0.99) * 1000,
        "samples_during": len(during),
        "lost": len(users) * count - sum(part["received"] for part in parts),
    }


def series(server: Target, sizes: Sizes) -> dict[str, Any]:
    """How cost grows: chat with more and more users, a post to more and more followers (a quarter connected)."""
    results: dict[str, Any] = {}
    for count in sizes.series_users:
        users = list(range(SERIES_USERS, SERIES_USERS + count))
        run = chat(server, users, sizes.series_messages, 4, None)
        results[f"users_{count}"] = {
            key: run[key] for key in ("persisted_per_s", "p99_ms", "server_cpu_ms_per_message", "lost", "duplicated")
        }
    for count in sizes.series_followers:
        run = fanout(server, SERIES_AUTHOR + count, count, max(1, count // 4), 1)
        results[f"followers_{count}"] = {
            key: run[key] for key in ("connected", "median_last_follower_s", "median_answered_s", "frames")
        }
    return results


# ---------------------------------------------------------------- orchestration


def _seed(database: MariaDB, name: str, sizes: Sizes) -> dict[str, str]:
    database.create_database(name)
    env = {
        "REALTIME_DATABASE_HOST": database.host,
        "REALTIME_DATABASE_PORT": str(database.port),
        "REALTIME_DATABASE_USER": database.user,
        "REALTIME_DATABASE_PASSWORD": database.password,
        "REALTIME_DATABASE_NAME": name,
    }
    environ = {**env, "REALTIME_DATABASE_BACKEND": "mysql", "REALTIME_AUTH_SECRET": SECRET}
    storage = open_storage(load_settings(environ=environ).database)
    storage.prepare()
    series_authors = [SERIES_AUTHOR + count for count in sizes.series_followers]
    everyone = [
        AUTHOR,
        CONNECTED_AUTHOR,
        *series_authors,
        *range(1, max(sizes.followers, sizes.all_connected_followers, *sizes.series_followers) + 1),
        *range(1_000_001 + 1000, 1_000_001 + 1000 + sizes.chat_users * 3),
        *range(2_000_001, 2_000_001 + sizes.idle_sockets),
        *range(3_000_001, 3_000_201),
        *range(SERIES_USERS, SERIES_USERS + max(sizes.series_users)),
        *range(TYPING_USERS, TYPING_USERS + 2 * sizes.typing_pairs),
    ]
    storage.add_users([(user_id, f"user{user_id}") for user_id in everyone])
    storage.add_follows([(follower, AUTHOR) for follower in range(1, sizes.followers + 1)])
    storage.add_follows([(follower, CONNECTED_AUTHOR) for follower in range(1, sizes.all_connected_followers + 1)])
    for author, count in zip(series_authors, sizes.series_followers):
        storage.add_follows([(follower, author) for follower in range(1, count + 1)])
    # /notify/post answers 404 for a post that is not in `posts`
    posts = [*_post_ids(AUTHOR, sizes.fanout_repeats), MIXED_POST]
    storage.add_posts([(post_id, AUTHOR) for post_id in posts])
    storage.add_posts([(post_id, CONNECTED_AUTHOR) for post_id in _post_ids(CONNECTED_AUTHOR, sizes.fanout_repeats)])
    storage.add_posts([(post_id, author) for author in series_authors for post_id in _post_ids(author, 1)])
    storage.close()
    return env


def _post_ids(author: int, count: int) -> list[int]:
    """The ids of the `count` posts `fanout` announces for `author`."""
    return [author + 1 + n for n in range(count)]


def run_target(server: Target, sizes: Sizes, scenarios: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    server.start()
    try:
        chat_users = list(range(1_000_001 + 1000, 1_000_001 + 1000 + sizes.chat_users))
        if "chat" in scenarios:
            results["chat"] = chat(server, chat_users, sizes.chat_messages, 4, None)
        if "typing" in scenarios:
            results["typing"] = typing_chat(server, sizes)
        if "open" in scenarios:
            for index, rate in enumerate(sizes.open_rates):
                users = [u + (index + 1) * sizes.chat_users for u in chat_users[: sizes.chat_users]]
                count = max(1, int(rate * sizes.open_seconds / len(users)))
                results[f"open_{rate}"] = chat(server, users, count, None, rate)
        if "fanout" in scenarios:
            results["fanout"] = fanout(server, AUTHOR, sizes.followers, sizes.connected_followers, sizes.fanout_repeats)
        if "fanout_connected" in scenarios:
            count = sizes.all_connected_followers
            results["fanout_connected"] = fanout(server, CONNECTED_AUTHOR, count, count, sizes.fanout_repeats)
        if "mixed" in scenarios:
            results["mixed"] = mixed(server, sizes)
        if "presence" in scenarios:
            results["presence"] = presence(server, AUTHOR, sizes.presence_watchers, sizes.presence_cycles)
        if "series" in scenarios:
            results.update({f"series.{key}": value for key, value in series(server, sizes).items()})
        if isinstance(server, OurCluster):
            results["nodes"] = server.node_figures()  # every scenario's but idle's, which restarts the nodes
        if "idle" in scenarios:
            server.stop()  # memory per socket is measured on a fresh process, not on earlier scenarios' heap
            server.start()
            results["idle"] = idle(server, sizes)
    finally:
        server.stop()
    return results


def _targets(servers: list[str], node_counts: list[int]) -> list[tuple[str, int]]:
    """(server, node count) of each run in a round; the reference runs on one node only."""
    return [(key, nodes) for key in servers for nodes in (node_counts if key == "ours" else [1])]


def _target(key: str, nodes: int, database_env: dict[str, str], workdir: Path, baseline: str | None) -> Target:
    if nodes > 1:
        return OurCluster(database_env, workdir, nodes)
    if key == "baseline":
        return BaselineServer(database_env, workdir, baseline)
    return {"ours": OurServer, "reference": ReferenceServer}[key](database_env, workdir)


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the rounds; other values as the first round had them."""
    merged: dict[str, Any] = {}
    for scenario, values in runs[0].items():
        merged[scenario] = {}
        for key, first in values.items():
            samples = [run[scenario][key] for run in runs]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in samples)
            merged[scenario][key] = statistics.median(samples) if numeric else first
    return merged


def _print_tables(report: dict[str, Any]) -> None:
    """One row per figure, one column per server; a figure only some servers have sits with its scenario's."""
    names = list(report["results"])
    rows: dict[str, dict[str, dict[str, str]]] = {}  # scenario -> figure -> server name -> text
    for name in names:
        for scenario, values in report["results"][name].items():
            for key, value in values.items():
                if isinstance(value, float):
                    text = f"{value:,.1f}"
                elif isinstance(value, list):
                    text = ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)[:40]
                else:
                    text = str(value)[:40]
                rows.setdefault(scenario, {}).setdefault(key, {})[name] = text
    keys = [(f"{scenario}.{key}", by_name) for scenario, figures in rows.items() for key, by_name in figures.items()]
    width = max((len(key) for key, _ in keys), default=10)
    columns = [max(20, len(name)) for name in names]
    print(f"\n{'':<{width}}  " + "  ".join(f"{name:>{column}}" for name, column in zip(names, columns)))
    for key, by_name in keys:
        cells = (f"{by_name.get(name, '-'):>{column}}" for name, column in zip(names, columns))
        print(f"{key:<{width}}  " + "  ".join(cells))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="ours,reference", help="ours, reference or both (default)")
    parser.add_argument(
        "--nodes",
        default="1",
        help="node counts to run this service with, e.g. 1,2 (default 1); more than one joins them through Redis",
    )
    parser.add_argument("--scenarios", default="chat,typing,open,fanout,fanout_connected,mixed,series,presence,idle")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds, alternating the servers; the table shows each figure's median"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the bench itself")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run this service as it was at git commit REF (one node), for before/after figures in one run",
    )
    parser.add_argument("--out", default=str(REPO / "bench" / "results.json"))
    args = parser.parse_args()

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sizes = QUICK if args.quick else Sizes()
    servers = args.servers.split(",")
    if args.baseline:
        servers.insert(1, "baseline")
    scenarios = args.scenarios.split(",")
    node_counts = [int(count) for count in args.nodes.split(",")]
    if min(node_counts) < 1:
        parser.error("--nodes: counts of at least 1")
    if "reference" in servers and max(node_counts) > 1:
        print("--- the reference server cannot cluster: it runs on one node only", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    database = start_mariadb(workdir / "mariadb")
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "sizes": sizes.__dict__,
        "node_counts": node_counts,
        "results": {},
    }
    try:
        rounds: dict[str, list[dict[str, Any]]] = {}
        for round_index in range(args.repeat):
            for key, nodes in _targets(servers, node_counts):
                database_env = _seed(database, f"bench_{key}_{nodes}_{round_index}", sizes)
                server = _target(key, nodes, database_env, workdir, args.baseline)
                print(f"--- {server.name}, round {round_index + 1} of {args.repeat}", flush=True)
                rounds.setdefault(server.name, []).append(run_target(server, sizes, scenarios))
        report["rounds"] = rounds
        report["results"] = {name: _median_of(runs) for name, runs in rounds.items()}
    finally:
        database.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    _print_tables(report)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
