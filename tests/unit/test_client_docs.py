"""docs/client.md names everything the browser client declares in realtime.d.ts, so it cannot fall behind it."""

from __future__ import annotations

import re

import pytest

from tests.helpers.docs import code_words
from tests.helpers.server import REPO_ROOT

DECLARATIONS = (REPO_ROOT / "clients" / "js" / "realtime.d.ts").read_text(encoding="utf-8")
# what a page uses: the classes' members, the options and their parts, the events, the states, the exports
DOCUMENTED_BLOCKS = (
    "ClientOptions",
    "BackoffOptions",
    "PageOptions",
    "StateDetail",
    "ClientEvents",
    "NotifierEvents",
    "OutboxStore",
    "Emitter",
    "Outbox",
    "IndexedDbOutboxStore",
    "RealtimeClient",
    "RealtimeNotifier",
    "ReconnectSchedule",
    "RecentIds",
)
_MEMBER = re.compile(r"^\s+(?:readonly\s+)?([A-Za-z_]\w*)\??\s*[(<:]", re.MULTILINE)


def block(name: str) -> str:
    """The body of `interface name` or `class name` in the declarations."""
    match = re.search(rf"^export (?:declare class|interface) {name}\b[^{{]*\{{(.*?)^\}}", DECLARATIONS, re.S | re.M)
    assert match, f"realtime.d.ts declares no {name}"
    return match.group(1)


def declared_names() -> list[tuple[str, str]]:
    """(where, name) for every member of the documented blocks, every state and every export."""
    names = [(where, member) for where in DOCUMENTED_BLOCKS for member in _MEMBER.findall(block(where))]
    states = re.search(r"^export type State =(.*?);", DECLARATIONS, re.S | re.M)
    assert states, "realtime.d.ts declares no State"
    names += [("State", state) for state in re.findall(r'"(\w+)"', states.group(1))]
    names += [("export", name) for name in re.findall(r"^export declare \w+ (\w+)", DECLARATIONS, re.M)]
    return [(where, name) for where, name in names if name != "constructor"]


def test_the_declarations_are_read() -> None:
    """A guard on the parsing above: it finds names from each kind of declaration."""
    names = {name for _, name in declared_names()}
    assert {"getToken", "reconnectNow", "notificationRead", "refused", "setSoundEnabled", "backoffDelay"} <= names


@pytest.mark.parametrize("where, name", declared_names())
def test_the_client_document_names_each_declared_name(where: str, name: str) -> None:
    assert name in code_words("client.md"), f"docs/client.md does not show `{name}` (of {where} in realtime.d.ts)"
