"""The benchmark still runs end to end (tiny sizes, both servers, this service on two nodes); no timing asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import REPO_ROOT

pytestmark = pytest.mark.slow


def run_quick_bench(tmp_path: Path, *options: str) -> dict[str, Any]:
    """`python -m bench --quick` with these options; its JSON report."""
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *options, "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def assert_chat_intact(results: dict[str, Any]) -> None:
    """Closed- and open-loop chat lost, duplicated and reordered nothing, and every fan-out frame arrived."""
    for scenario in ("chat", "open_200"):
        assert results[scenario]["lost"] == 0 and results[scenario]["duplicated"] == 0
        assert results[scenario]["reordered"] == 0 and results[scenario]["errors"] == 0
    assert results["fanout"]["frames"] == results["fanout"]["expected_frames"]


@pytest.mark.skipif(shutil.which("npm") is None, reason="the reference server needs Node.js and npm")
def test_quick_bench_drives_both_servers_without_losing_anything(tmp_path: Path) -> None:
    report = run_quick_bench(tmp_path)
    assert set(report["results"]) == {"this service", "reference"}
    ours = report["results"]["this service"]
    assert_chat_intact(ours)
    assert ours["idle"]["alive_after_hold"] == ours["idle"]["sockets"]
    assert ours["mixed"]["lost"] == 0
    # every watcher saw every change of presence (the bench waits for each); the reference has no presence
    assert ours["presence"]["cycles"] == 2 and ours["presence"]["max_online_last_watcher_s"] > 0
    assert report["results"]["reference"]["presence"] == {"skipped": "reference has no presence"}
    for name in ("this service", "reference"):  # every follower of the all-connected fan-out got each post
        everyone = report["results"][name]["fanout_connected"]
        assert everyone["connected"] == everyone["followers"] and everyone["frames"] == everyone["expected_frames"]
    typing = ours["typing"]  # chat with typing frames: nothing lost, and typing frames went through
    assert typing["lost"] == 0 and typing["duplicated"] == 0 and typing["errors"] == 0
    assert 0 < typing["typing_received"] <= typing["typing_sent"]
    assert report["results"]["reference"]["typing"] == {"skipped": "reference has no typing"}


@pytest.mark.skipif(shutil.which("redis-server", path=f"{os.environ['PATH']}:/usr/bin") is None, reason="needs Redis")
def test_quick_two_node_bench_spreads_clients_over_both_nodes_without_losing_anything(tmp_path: Path) -> None:
    report = run_quick_bench(tmp_path, "--servers", "ours", "--nodes", "2", "--scenarios", "chat,open,fanout")
    assert set(report["results"]) == {"this service, 2 nodes"}
    cluster = report["results"]["this service, 2 nodes"]
    assert_chat_intact(cluster)
    assert all(cluster[scenario]["redis_cpu_percent"] >= 0 for scenario in ("chat", "open_200"))
    # both nodes had clients, and each got pushes from the other through Redis
    assert all(count > 0 for count in cluster["nodes"]["connects"])
    assert all(count > 0 for count in cluster["nodes"]["pushes_received"])
