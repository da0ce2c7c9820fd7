#!/usr/bin/env bash
# Benchmark this service against the reference server (../shared/reference) on a throwaway MariaDB.
# Extra arguments go to `python -m bench` (--quick, --servers ours, --scenarios chat,fanout, --out FILE,
# --nodes 1,2: this service also as two nodes joined through a throwaway Redis).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt
scripts/install-system-deps.sh mariadb redis
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "the reference server needs Node.js and npm (apt-get install -y nodejs npm)" >&2
  exit 1
}
exec .venv/bin/python -m bench "$@"
