"""The repository passes its linter (ruff.toml): unused imports, import order, long lines, likely bugs."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.server import REPO_ROOT


def test_ruff_finds_nothing() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
