"""The private parts of pykka that `actors/runtime.py` builds on, pinned: a pykka upgrade that changes one
fails here, naming it, before the runtime misbehaves."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors.runtime

PINNED = {
    "_create_actor_inbox": "pykka's hook for a runtime's inbox: GeventActor's is a deque that ends a turn when empty",
    "_create_future": "pykka's hook for a runtime's future: GeventFuture",
    "_start_actor_loop": "pykka's hook to start an actor: GeventActor schedules a turn instead of a thread",
    "_actor_loop_setup": "runs on_start as pykka does, in the first turn",
    "_actor_loop_running": "pykka's own message loop, run in each turn; it takes envelopes with actor_inbox.get()",
    "_actor_loop_teardown": "fails the envelopes left after a stop with ActorDeadError, at the end of the last turn",
}
"""Every private name of pykka the runtime uses, with what it is used for."""

UPGRADE = "pykka changed under actors/runtime.py: adapt GeventActor, then this pin"


@pytest.mark.parametrize("name", sorted(PINNED))
def test_each_pinned_method_is_still_on_pykka_actor_with_the_same_signature(name: str) -> None:
    method = getattr(pykka.Actor, name, None)
    assert callable(method), f"pykka {pykka_version()} has no Actor.{name} ({PINNED[name]}): {UPGRADE}"
    parameters = list(inspect.signature(method).parameters)
    expected = [] if isinstance(inspect.getattr_static(pykka.Actor, name), staticmethod) else ["self"]
    assert parameters == expected, f"pykka {pykka_version()}: Actor.{name}{parameters} is not ({expected}): {UPGRADE}"


def test_the_runtime_uses_no_other_private_name_of_pykka() -> None:
    tree = ast.parse(Path(actors.runtime.__file__).read_text())
    private_modules = [
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module.startswith("pykka._")
    ]
    pykka_privates = {name for cls in (pykka.Actor, pykka.Future) for name in dir(cls) if _is_private(name)}
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} | {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
    }
    assert not private_modules, f"actors/runtime.py imports pykka's private modules {private_modules}"
    assert used & pykka_privates <= set(PINNED), f"unpinned private names of pykka in use: {used & pykka_privates}"


def test_pykka_loop_leaves_an_exception_from_the_inbox_to_its_caller() -> None:
    """GeventActor's mailbox ends a turn by raising from `get()`: pykka's loop must take envelopes outside its try."""

    class TurnOver(Exception):
        pass

    class EmptyInbox:
        def get(self) -> Any:
            raise TurnOver

    class Probe(pykka.Actor):
        _create_actor_inbox = staticmethod(EmptyInbox)
        _create_future = staticmethod(pykka.Future)

        def _start_actor_loop(self) -> None:
            pass

    actor = Probe()
    try:
        actor._actor_loop_running()
    except TurnOver:
        return
    pytest.fail(f"pykka {pykka_version()}: an exception from actor_inbox.get() no longer ends the loop: {UPGRADE}")


def pykka_version() -> str:
    return importlib.metadata.version("pykka")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")
