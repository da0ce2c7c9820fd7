"""The operator's kit in deploy/ against the real service: the Grafana dashboard and the Prometheus alert rules
query only metrics a running service exposes, promtool accepts and unit-tests the rules, every alert has its
runbook section, and systemd accepts the unit."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from tests.helpers.promql import SCRAPE_SERIES, exposed_families, is_exposed, metric_names
from tests.helpers.server import REPO_ROOT, ServerProcess

DEPLOY = REPO_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "realtime-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
UNIT = DEPLOY / "systemd" / "realtime.service"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
PROMTOOL = "/usr/bin/promtool"  # scripts/install-system-deps.sh promtool (Debian's prometheus package)
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The metric families (name: type) a freshly started service exposes at `/metrics`."""
    workdir = tmp_path_factory.mktemp("kit")
    server = ServerProcess(
        workdir, {"REALTIME_DATABASE_BACKEND": "sqlite", "REALTIME_DATABASE_PATH": str(workdir / "kit.sqlite3")}
    ).start()
    try:
        with urllib.request.urlopen(server.http_url + "/metrics", timeout=TIMEOUT) as response:
            exposition = response.read().decode("utf-8")
    finally:
        server.stop()
    yield exposed_families(exposition)


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def queried_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def assert_exposed(exprs: dict[str, str], exposed: dict[str, str]) -> None:
    """Every metric each expression (by where it is) reads is one the service exposes."""
    missing = {
        where: sorted(name for name in metric_names(expr) if not is_exposed(name, exposed))
        for where, expr in exprs.items()
    }
    assert {where: names for where, names in missing.items() if names} == {}
    assert all(metric_names(expr) for expr in exprs.values()), "an expression that reads no metric"


# ------------------------------------------------------------ Grafana dashboard


def test_every_metric_the_dashboard_queries_is_exposed_by_the_service(exposed: dict[str, str]) -> None:
    exprs = {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in queried_panels()
        for target in panel["targets"]
    }
    assert_exposed(exprs, exposed)


def test_the_dashboard_is_an_importable_dashboard_over_a_chosen_prometheus() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= variables.keys()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in queried_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])


# ------------------------------------------------------------ Prometheus alerts


def test_promtool_accepts_the_alert_rules_and_their_unit_tests_pass() -> None:
    assert Path(PROMTOOL).exists(), f"{PROMTOOL} is missing: scripts/install-system-deps.sh promtool installs it"
    for command in (["check", "rules", str(ALERTS)], ["test", "rules", str(ALERT_TESTS)]):
        result = subprocess.run([PROMTOOL, *command], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"promtool {' '.join(command)}:\n{result.stdout}{result.stderr}"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in alert_rules():
        name = rule["alert"]
        fired = [case for case in cases if case["alertname"] == name and case["exp_alerts"]]
        assert fired, f"{name}: no test that fires it"
        # each firing case expects the alert for node "a" only: node "b"'s series must not fire it
        for case in fired:
            assert {alert["exp_labels"]["instance"] for alert in case["exp_alerts"]} == {"a"}, name


def test_every_metric_the_alerts_use_is_exposed_by_the_service(exposed: dict[str, str]) -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert_exposed(exprs, {**exposed, **{name: "gauge" for name in SCRAPE_SERIES}})


def test_every_alert_has_a_severity_a_summary_a_description_and_its_runbook_section() -> None:
    anchors = {
        github_anchor(heading) for heading in re.findall(r"^## (.+)$", RUNBOOK.read_text(encoding="utf-8"), re.M)
    }
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert rule["annotations"]["runbook_url"] == f"docs/runbook.md#{github_anchor(name)}", name
        assert github_anchor(name) in anchors, f"docs/runbook.md has no section `## {name}`"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# ------------------------------------------------------------ systemd unit


def test_systemd_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    """`systemd-analyze verify` of the shipped file, unchanged, in a root where its ExecStart exists."""
    systemd_analyze = shutil.which("systemd-analyze")
    assert systemd_analyze, "systemd-analyze is missing (Debian's systemd package)"
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    exec_start = re.search(r"^ExecStart=(\S+)", UNIT.read_text(encoding="utf-8"), re.M)
    assert exec_start, "the unit has no ExecStart"
    program = root / exec_start.group(1).lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n", encoding="utf-8")
    program.chmod(0o755)

    result = subprocess.run(
        [systemd_analyze, "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, timeout=60
    )

    about_the_unit = [line for line in (result.stdout + result.stderr).splitlines() if UNIT.name in line]
    assert result.returncode == 0 and about_the_unit == [], result.stdout + result.stderr
