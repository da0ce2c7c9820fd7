"""Reading the project's Markdown documents in tests: which names a document shows as code."""

from __future__ import annotations

import re

from tests.helpers.server import REPO_ROOT

DOCS = REPO_ROOT / "docs"
# a fenced block: ``` or ~~~ (three or more), up to a closing fence as long, as CommonMark has it
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,}).*?^ {0,3}\1[`~]*[ \t]*$", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_WORD = re.compile(r"[A-Za-z_$][\w$]*")


def code_words(document: str) -> set[str]:
    """Every identifier inside the document's code: fenced blocks and `inline spans`. A name a reader may look
    for is "documented" when it appears there, not merely in prose where it could be an ordinary word."""
    text = (DOCS / document).read_text(encoding="utf-8")
    code = [block.group(0) for block in FENCE.finditer(text)]
    code += _INLINE.findall(FENCE.sub("", text))
    return {word for chunk in code for word in _WORD.findall(chunk)}


def code_spans(document: str) -> set[str]:
    """The text of every `inline span` of the document, whole (for paths, routes and the like)."""
    return set(_INLINE.findall((DOCS / document).read_text(encoding="utf-8")))
