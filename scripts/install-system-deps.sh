#!/usr/bin/env bash
# Install the system packages the tests need, from Debian's packages.
# Usage: scripts/install-system-deps.sh [mariadb] [chromium] [node] [redis] [nginx] [promtool] [systemd] [curl]
#        (no argument: mariadb)
#   mariadb   MariaDB server and client, for the integration tests on MySQL/MariaDB
#   chromium  headless Chromium at /usr/bin/chromium, for the browser tests (tests/system/test_browser.py)
#   node      Node.js, for the browser client's unit tests (tests/js)
#   redis     Redis server, for the cluster tests and the two-node benchmark
#   nginx     nginx, for the test of the load balancer example (tests/system/test_nginx_cluster.py)
#   promtool  Prometheus's promtool, to check and unit-test the alert rules (tests/system/test_operator_kit.py)
#   systemd   systemd-analyze, to verify deploy/systemd/realtime.service (tests/system/test_operator_kit.py)
#   curl      curl, for the README's commands (tests/system/test_readme.py)
# Idempotent: installs only what is missing, and returns at once when nothing is.
set -euo pipefail

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(mariadb)

packages=()
for part in "${parts[@]}"; do
    case "$part" in
        mariadb)
            if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
                packages+=(mariadb-server mariadb-client)
            fi
            ;;
        chromium)
            [ -x /usr/bin/chromium ] || packages+=(chromium)
            ;;
        node)
            command -v node >/dev/null 2>&1 || packages+=(nodejs)
            ;;
        redis)
            [ -x /usr/bin/redis-server ] || packages+=(redis-server)
            ;;
        nginx)
            [ -x /usr/sbin/nginx ] || packages+=(nginx)
            ;;
        promtool)
            # Debian ships promtool only with the server; in a container its postinst starts no daemon
            # (policy-rc.d, no init system)
            [ -x /usr/bin/promtool ] || packages+=(prometheus)
            ;;
        systemd)
            [ -x /usr/bin/systemd-analyze ] || packages+=(systemd)
            ;;
        curl)
            command -v curl >/dev/null 2>&1 || packages+=(curl)
            ;;
        *)
            echo "error: unknown part '$part' (mariadb, chromium, node, redis, nginx, promtool, systemd or curl)" >&2
            exit 2
            ;;
    esac
done

if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing ${packages[*]} and not running as root." >&2
    echo "Run as root, or install manually:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrently running apt/dpkg instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends "${packages[@]}"
