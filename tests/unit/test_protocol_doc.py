"""docs/protocol.md is the wire contract as the repository's own document: the same bytes as ../shared/protocol.md.

The shared copy stays the source the tests are written against; this test keeps the two from diverging.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers.server import REPO_ROOT

DOC = REPO_ROOT / "docs" / "protocol.md"
SHARED = REPO_ROOT.parent / "shared" / "protocol.md"
FIX = f"cp {SHARED} {DOC}"


def test_docs_protocol_is_the_shared_contract() -> None:
    if not SHARED.is_file():
        reason = f"{SHARED} is missing: the contract cannot be compared (put ../shared beside the repository)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(reason)
        pytest.skip(reason)
    assert DOC.read_bytes() == SHARED.read_bytes(), f"docs/protocol.md differs from {SHARED}; update it: {FIX}"
