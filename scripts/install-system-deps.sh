#!/usr/bin/env bash
# Install the system packages the integration tests need (MariaDB server and
# client). Idempotent: returns immediately when mariadbd is already present.
set -euo pipefail

if command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: mariadbd not found and not running as root." >&2
    echo "Run as root, or install manually:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends mariadb-server mariadb-client" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for a concurrently running apt/dpkg instead of failing on its lock.
apt_opts=(-o DPkg::Lock::Timeout=600)
apt-get "${apt_opts[@]}" update
apt-get "${apt_opts[@]}" install -y --no-install-recommends mariadb-server mariadb-client
