#!/usr/bin/env bash
# Run the service on the embedded SQLite database with demo users (no other set-up needed).
# WebSocket on ws://127.0.0.1:8080/, HTTP API on http://127.0.0.1:8081/. Extra arguments go to `python -m web`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
exec .venv/bin/python -m web --demo "$@"
