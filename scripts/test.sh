#!/usr/bin/env bash
# Run the whole test suite: installs the Python dependencies, and Chromium, Node.js, Redis, nginx, promtool,
# systemd-analyze, curl and MariaDB if missing, then pytest over every tier (pytest.ini: tests/unit, tests/integration,
# tests/system). Extra arguments go to pytest (e.g. tests/unit, -k chat, -x). REALTIME_TEST_BACKENDS=sqlite skips
# MariaDB.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt || exit 1
system_deps=(chromium node redis nginx promtool systemd curl)
if [[ ",${REALTIME_TEST_BACKENDS:-sqlite,mysql}," == *",mysql,"* ]]; then
  system_deps+=(mariadb)
fi
scripts/install-system-deps.sh "${system_deps[@]}" || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
