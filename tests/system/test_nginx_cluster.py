"""deploy/nginx-cluster.conf in a real nginx (Debian's package) in front of supervisord-cluster.conf's two nodes.

A copy of the file points its upstreams at the test's nodes (tests/helpers/supervision.py) and listens on free
loopback ports; nginx runs in the foreground with its prefix, logs and temporary files in the test's
directory. Clients that speak only to nginx are spread over both nodes, chat and are notified.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from settings import load_settings
from tests.helpers.client import Client
from tests.helpers.notifications import assert_notification, assert_ok, notify
from tests.helpers.server import REPO_ROOT, SECRET, free_port, wait_until
from tests.helpers.supervision import SupervisedCluster, refuses, supervised_cluster

NGINX = Path("/usr/sbin/nginx")
SITE = REPO_ROOT / "deploy" / "nginx-cluster.conf"

needs_nginx = pytest.mark.skipif(
    not NGINX.exists(), reason=f"{NGINX} is missing (scripts/install-system-deps.sh nginx installs it)"
)


class Nginx:
    """nginx in the foreground on a copy of deploy/nginx-cluster.conf aimed at the cluster's nodes."""

    def __init__(self, prefix: Path, cluster: SupervisedCluster):
        self.prefix = prefix
        self.ws_port, self.notify_port = free_port(), free_port()
        site = SITE.read_text(encoding="utf-8")
        for old, new in {
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{cluster.a.ws_port};",
            "server 127.0.0.1:8090;": f"server 127.0.0.1:{cluster.b.ws_port};",
            "server 127.0.0.1:8081;": f"server 127.0.0.1:{cluster.a.http_port};",
            "server 127.0.0.1:8091;": f"server 127.0.0.1:{cluster.b.http_port};",
            "listen 80;": f"listen 127.0.0.1:{self.ws_port};",
            "listen 127.0.0.1:8071;": f"listen 127.0.0.1:{self.notify_port};",
        }.items():
            assert site.count(old) == 1, f"{old!r} is not in {SITE} once"
            site = site.replace(old, new)
        (prefix / "realtime.conf").write_text(site, encoding="utf-8")
        temporary = "\n".join(
            f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        # one worker: least_conn then spreads connections deterministically
        self.config = prefix / "nginx.conf"
        self.config.write_text(
            f"daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log off;\n{temporary}\n    include {prefix / 'realtime.conf'};\n}}\n",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def command(self, *args: str) -> list[str]:
        return [str(NGINX), "-p", str(self.prefix), "-c", str(self.config), "-e", str(self.prefix / "error.log"), *args]

    def check(self) -> str:
        """`nginx -t`: the configuration is valid; answers what nginx said."""
        tested = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert tested.returncode == 0, tested.stderr
        return tested.stderr

    def start(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: not refuses(self.ws_port) and not refuses(self.notify_port), "nginx listening")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # fast shutdown: open WebSockets are cut
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Nginx, SupervisedCluster]]:
    with supervised_cluster(tmp_path) as cluster:
        cluster.start_joined()
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        nginx = Nginx(prefix, cluster)
        try:
            yield nginx, cluster
        finally:
            nginx.stop()


def test_nginx_keeps_a_quiet_socket_open_for_at_least_two_ping_intervals() -> None:
    """A socket's only traffic may be the server's ping every [server] ping_interval; one lost ping is no reason
    for nginx to cut it."""
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", SITE.read_text(encoding="utf-8"))
    assert read_timeout is not None, "no proxy_read_timeout: nginx's default (60 s) would be implicit"
    settings = load_settings(REPO_ROOT / "config.ini", environ={"REALTIME_AUTH_SECRET": SECRET})
    ping_interval = settings.server.ping_interval
    assert int(read_timeout.group(1)) >= 2 * ping_interval


@needs_nginx
@pytest.mark.slow
def test_clients_of_nginx_are_spread_over_both_nodes_chat_and_are_notified(
    proxied: tuple[Nginx, SupervisedCluster],
) -> None:
    nginx, cluster = proxied
    assert "test is successful" in nginx.check()
    nginx.start()
    alice_id, bob_id = cluster.a.add_users(2)

    def connect(user_id: int) -> Client:
        client = Client(f"ws://127.0.0.1:{nginx.ws_port}/")
        client.connect(user_id, cluster.token(user_id))
        return client

    with connect(alice_id) as alice, connect(bob_id) as bob:
        # no stickiness needed: each socket is on one node, and a user's pushes reach it there through Redis
        assert [node.health()[1]["sockets"] for node in (cluster.a, cluster.b)] == [1, 1]

        alice.message(bob_id, "through nginx", "ng-1")
        sent = alice.expect("message_sent", clientMsgId="ng-1")["messageId"]
        assert bob.expect("message", messageId=sent)["content"] == "through nginx"
        alice.expect("message_delivered", messageId=sent)
        bob.send({"type": "message_read", "messageId": sent})
        alice.expect("message_read", messageId=sent, readBy=bob_id)

        notify_api = SimpleNamespace(http_url=f"http://127.0.0.1:{nginx.notify_port}")
        assert_ok(notify(notify_api, "like", postId=7001, userId=bob_id, postOwnerId=alice_id), recipients=1, online=1)
        assert_notification(alice.expect("notification"), "like", bob_id, 7001, f"user{bob_id} liked your post")
