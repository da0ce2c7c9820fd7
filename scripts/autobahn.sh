#!/usr/bin/env bash
# RFC 6455 conformance: Autobahn|Testsuite's fuzzingclient against an echo endpoint on this service's own WebSocket
# layer (`python -m web.echo`: the service's handshake, decoder and transport, no token, no actors).
# Usage: scripts/autobahn.sh [CASE ...]   (default: 1.* to 10.*; e.g. scripts/autobahn.sh 6.4.* 7.*)
# Prints the verdict counts and the close-behaviour counts; exits 1 unless every case is OK or INFORMATIONAL and
# every close behaviour is OK. Cases 12-13 (permessage-deflate) are left out: the extension is not implemented.
# The testsuite runs on Python 2.7 only (AUTOBAHN_PYTHON2, else pyenv's 2.7.18, else python2.7 on the PATH; exit 2
# if there is none); it is installed once into a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/realtime-autobahn.
# Reports, one HTML page per case: test-artifacts/autobahn/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."

python2=${AUTOBAHN_PYTHON2:-}
if [ -z "$python2" ]; then
  for candidate in "$HOME/.pyenv/versions/2.7.18/bin/python" "$(command -v python2.7 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
      python2=$candidate
      break
    fi
  done
fi
if [ -z "$python2" ] || ! "$python2" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
  echo "Autobahn|Testsuite needs Python 2.7, which is not here: install it with 'pyenv install 2.7.18'" \
    "(or set AUTOBAHN_PYTHON2 to a python2.7 executable), then run this again." >&2
  exit 2
fi

scripts/bootstrap.sh requirements-dev.txt
cache=${XDG_CACHE_HOME:-$HOME/.cache}/realtime-autobahn
venv=$cache/venv
stamp=$venv/.installed-$(sha256sum scripts/autobahn-requirements.txt | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "installing Autobahn|Testsuite into $venv (once)" >&2
  rm -rf "$cache"
  # Python 2.7 has no venv module: a 2.7-compatible virtualenv, installed beside the environment, creates it
  "$python2" -m pip install -qq --disable-pip-version-check --target "$cache/bootstrap" virtualenv==20.15.1
  PYTHONPATH=$cache/bootstrap "$python2" -m virtualenv --quiet "$venv"
  "$venv/bin/pip" install -qq --disable-pip-version-check -r scripts/autobahn-requirements.txt
  touch "$stamp"
fi

reports=$PWD/test-artifacts/autobahn
work=$(mktemp -d)
echo_pid=
trap '[ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null; rm -rf "$work"' EXIT
.venv/bin/python -m web.echo --port 0 >"$work/url" 2>"$work/echo.log" &
echo_pid=$!
for _ in $(seq 100); do
  [ -s "$work/url" ] && break
  kill -0 "$echo_pid" 2>/dev/null || { cat "$work/echo.log" >&2; exit 1; }
  sleep 0.1
done
url=$(head -n 1 "$work/url")
[ -n "$url" ] || { echo "the echo server did not start within 10 s" >&2; exit 1; }

rm -rf "$reports"
mkdir -p "$reports"
.venv/bin/python - "$reports" "$url" "${@:-1.* 2.* 3.* 4.* 5.* 6.* 7.* 8.* 9.* 10.*}" >"$work/spec.json" <<'EOF'
import json, sys

reports, url, *cases = sys.argv[1:]
cases = [case for argument in cases for case in argument.split()]
spec = {"outdir": reports, "servers": [{"agent": "realtime", "url": url}], "cases": cases,
        "exclude-cases": ["12.*", "13.*"], "exclude-agent-cases": {}}
json.dump(spec, sys.stdout)
EOF
echo "Autobahn|Testsuite fuzzingclient against $url (log: $reports/wstest.log)" >&2
started=$SECONDS
(cd "$work" && "$venv/bin/wstest" --mode fuzzingclient --spec spec.json) >"$reports/wstest.log" 2>&1
echo "ran in $((SECONDS - started)) s; reports: $reports/index.html" >&2

.venv/bin/python - "$reports/index.json" <<'EOF'
import json, sys
from collections import Counter

(results,) = json.load(open(sys.argv[1])).values()
verdicts = Counter(result["behavior"] for result in results.values())
closes = Counter(result["behaviorClose"] for result in results.values())
print(f"{len(results)} cases")
print("verdicts:", ", ".join(f"{name} {count}" for name, count in verdicts.most_common()))
print("close behaviour:", ", ".join(f"{name} {count}" for name, count in closes.most_common()))


def passed(result: dict) -> bool:
    """OK, or INFORMATIONAL (a case that only records what happened, its close behaviour included)."""
    if result["behavior"] == "INFORMATIONAL":
        return result["behaviorClose"] in ("OK", "INFORMATIONAL")
    return result["behavior"] == "OK" and result["behaviorClose"] == "OK"


failed = [case for case in results if not passed(results[case])]
failed.sort(key=lambda case: [int(number) for number in case.split(".")])
for case in failed:
    print(f"  {case}: {results[case]['behavior']}, close {results[case]['behaviorClose']}")
sys.exit(1 if failed else 0)
EOF
