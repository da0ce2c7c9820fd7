"""The benchmark still runs end to end (tiny sizes, both servers, this service on two nodes); no timing asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("npm") is None, reason="the reference server needs Node.js and npm")
def test_quick_bench_drives_both_servers_without_losing_anything(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"this service", "reference"}
    ours = report["results"]["this service"]
    for scenario in ("chat", "open_200"):
        assert ours[scenario]["lost"] == 0 and ours[scenario]["duplicated"] == 0
        assert ours[scenario]["reordered"] == 0 and ours[scenario]["errors"] == 0
    assert ours["fanout"]["frames"] == ours["fanout"]["expected_frames"]
    assert ours["idle"]["alive_after_hold"] == ours["idle"]["sockets"]
    assert ours["mixed"]["lost"] == 0


@pytest.mark.skipif(shutil.which("redis-server", path=f"{os.environ['PATH']}:/usr/bin") is None, reason="needs Redis")
def test_quick_two_node_bench_spreads_clients_over_both_nodes_without_losing_anything(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--servers", "ours", "--nodes", "2",
         "--scenarios", "chat,open,fanout", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"this service, 2 nodes"}
    cluster = report["results"]["this service, 2 nodes"]
    for scenario in ("chat", "open_200"):
        assert cluster[scenario]["lost"] == 0 and cluster[scenario]["duplicated"] == 0
        assert cluster[scenario]["reordered"] == 0 and cluster[scenario]["errors"] == 0
        assert cluster[scenario]["redis_cpu_percent"] >= 0
    assert cluster["fanout"]["frames"] == cluster["fanout"]["expected_frames"]
    # both nodes had clients, and each got pushes from the other through Redis
    assert all(count > 0 for count in cluster["nodes"]["connects"])
    assert all(count > 0 for count in cluster["nodes"]["pushes_received"])
