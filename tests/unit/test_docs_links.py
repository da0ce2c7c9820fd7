"""Every link and image in the repository's Markdown (README.md, docs/, the clients' READMEs) resolves inside
the repository, so a reader never meets a dead one.

Relative targets must name a file of the repository (never `../shared`, which a reader of the repository does
not have), an `#anchor` must be a heading of its file by GitHub's slug rules, and web links may point only at
a service on this machine (the examples' 127.0.0.1 and localhost). Fenced code is not checked: it is code.
"""

from __future__ import annotations

import re
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.docs import FENCE

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIPPED_FOLDERS = {"node_modules", "test-artifacts", "data"}  # others' files and the tests' output


def documents() -> list[Path]:
    """Every Markdown file of the repository: the README, docs/ and the client packages' READMEs."""
    return sorted(
        path
        for path in REPO_ROOT.rglob("*.md")
        if not any(part.startswith(".") or part in SKIPPED_FOLDERS for part in path.relative_to(REPO_ROOT).parts)
    )


DOCUMENTS = documents()
ALLOWED_HOSTS = {"127.0.0.1", "localhost"}

INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
AUTOLINK = re.compile(r"<((?:https?|ftp|wss?)://[^>\s]+)>")
HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def prose(text: str) -> str:
    """The text without fenced blocks and inline code, where link syntax is only an example."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Every link target of a Markdown text: inline, reference, autolink and HTML."""
    body = prose(text)
    return [match.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK, AUTOLINK, HTML_LINK)
            for match in pattern.finditer(body)]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation but `-` and `_` removed,
    spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(document: Path) -> set[str]:
    """The anchors of a document: its headings' slugs, numbered from -1 when repeated, and HTML anchors."""
    text = document.read_text(encoding="utf-8")
    seen: Counter[str] = Counter()
    found = set(HTML_ANCHOR.findall(text))
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = github_slug(heading)
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def problem(document: Path, target: str) -> str | None:
    """Why `target`, linked from `document`, does not resolve inside the repository; None when it does."""
    parts = urllib.parse.urlsplit(target)
    if parts.scheme in ("http", "https", "ws", "wss"):
        return None if parts.hostname in ALLOWED_HOSTS else f"leaves the machine: {target}"
    if parts.scheme:
        return f"scheme {parts.scheme!r} is not allowed: {target}"
    path = document if not parts.path else (document.parent / urllib.parse.unquote(parts.path)).resolve()
    if not path.is_relative_to(REPO_ROOT):
        return f"leaves the repository: {target}"
    if not path.exists():
        return f"no such file: {path.relative_to(REPO_ROOT)}"
    if parts.fragment:
        if path.suffix != ".md":
            return f"an anchor into a file that is not Markdown: {target}"
        if parts.fragment not in anchors(path):
            return f"no heading with the anchor #{parts.fragment} in {path.relative_to(REPO_ROOT)}"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_every_link_resolves_inside_the_repository(document: Path) -> None:
    targets = links(document.read_text(encoding="utf-8"))
    problems = [reason for reason in (problem(document, target) for target in targets) if reason]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Run it, test it", "run-it-test-it"),
        ("The page reconnects, or the client says `refused`", "the-page-reconnects-or-the-client-says-refused"),
        ("`unknown user`: a valid token is refused", "unknown-user-a-valid-token-is-refused"),
        ("Rate limited: close 4429", "rate-limited-close-4429"),
        ("Fan-out (issue 16) & [links](x.md)", "fan-out-issue-16--links"),
        ("snake_case stays", "snake_case-stays"),
    ],
)
def test_slugs_follow_github(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_links_are_found_in_prose_only() -> None:
    text = "[a](a.md) ![b](b.png) <http://127.0.0.1:8080/> `[c](c.md)`\n```md\n[d](d.md)\n```\n[e]: e.md\n"
    assert sorted(links(text)) == ["a.md", "b.png", "e.md", "http://127.0.0.1:8080/"]


def test_links_out_of_the_repository_are_problems() -> None:
    readme = REPO_ROOT / "README.md"
    assert problem(readme, "../shared/protocol.md") == "leaves the repository: ../shared/protocol.md"
    assert problem(readme, "https://example.com/") == "leaves the machine: https://example.com/"
    assert problem(readme, "http://127.0.0.1:8081/healthz") is None
    assert problem(readme, "README.md#no-such-heading") == "no heading with the anchor #no-such-heading in README.md"


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("# Fix\n## Fix\n```sh\n# not a heading\n```\n## Fix\n", encoding="utf-8")
    assert anchors(document) == {"fix", "fix-1", "fix-2"}
