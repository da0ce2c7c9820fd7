"""pykka's own behavioural test suite, run against this service's runtime (`actors.runtime`).

pykka runs every test case against each of its runtimes through a `runtime` fixture. Here its suite
runs with that fixture set to `GeventActor` and `GeventFuture` (`pykka_suite/conftest_gevent.py`).
pykka's code is not copied into this repository: the sdist of the installed version is downloaded
once with pip into the user's cache and checked against the sha256 pinned below. The suite runs in a
monkey-patched subprocess, as the service does; the runtime without monkey-patching is covered by
`test_runtime.py`, in this unpatched process.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import actors

PYKKA_SDIST_SHA256 = {"4.5.0": "820fcc36046552b49d7eb61fe98088d1a29631cf3314e8ce4bc26aaead8dcd4f"}
"""A pykka upgrade: check `actors/runtime.py` against the new version, then pin the sha256 of its sdist here."""

LEFT_OUT = {
    "tests/test_threading_actor.py": "tests of ThreadingActor itself (its thread's name, daemon threads), "
    "not of the runtime fixture",
}
"""pykka's test files that do not run, each with the reason; every other case must pass."""

CONFTEST = Path(__file__).parent / "pykka_suite" / "conftest_gevent.py"
REPOSITORY = Path(actors.__file__).resolve().parent.parent
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "realtime-tests"
RUN_MONKEY_PATCHED = (
    "from gevent import monkey; monkey.patch_all(); import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"
)
SUITE_TIMEOUT = 120  # seconds; the suite takes a few


def test_pykka_suite_passes_against_the_gevent_runtime(tmp_path: Path) -> None:
    suite = extract_suite(pykka_sdist(), tmp_path / "pykka")
    junit = tmp_path / "junit.xml"
    left_out = [f"--ignore={path}" for path in LEFT_OUT]
    run = subprocess.run(
        [sys.executable, "-c", RUN_MONKEY_PATCHED, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
         "-o", "timeout=30", *left_out, "tests"],
        cwd=suite, env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        capture_output=True, text=True, timeout=SUITE_TIMEOUT,
    )  # fmt: skip
    outcomes = case_outcomes(junit) if junit.exists() else {}
    not_passed = {case: outcome for case, outcome in outcomes.items() if outcome != "passed"}
    assert outcomes, f"no pykka test ran:\n{run.stdout[-4000:]}{run.stderr[-4000:]}"
    assert not not_passed, f"pykka's tests that did not pass against GeventActor:\n{run.stdout[-8000:]}"
    assert run.returncode == 0, f"pykka's suite exited with {run.returncode}:\n{run.stdout[-4000:]}{run.stderr[-4000:]}"


def pykka_sdist() -> Path:
    """The sdist of the installed pykka, downloaded once into the cache and checked against its pinned sha256."""
    version = importlib.metadata.version("pykka")
    pinned = PYKKA_SDIST_SHA256.get(version)
    assert pinned, (
        f"pykka {version} is installed, but only the sdists of {sorted(PYKKA_SDIST_SHA256)} are pinned: check"
        f" actors/runtime.py against pykka {version}, then pin its sdist's sha256 in PYKKA_SDIST_SHA256"
    )
    sdist = CACHE / f"pykka-{version}.tar.gz"
    if not sdist.exists():
        download_sdist(version, sdist)
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    assert digest == pinned, f"{sdist} has sha256 {digest}, not the pinned {pinned}: delete it to download it again"
    return sdist


def download_sdist(version: str, sdist: Path) -> None:
    sdist.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sdist.parent) as download:
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "download", f"pykka=={version}", "--no-binary", ":all:", "--no-deps",
             "--quiet", "--dest", download],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert pip.returncode == 0, f"could not download pykka {version}'s sdist from PyPI:\n{pip.stderr}"
        os.replace(Path(download) / sdist.name, sdist)  # whole or not at all, should two runs download at once


def extract_suite(sdist: Path, into: Path) -> Path:
    """pykka's `tests` package from the sdist, with `conftest_gevent.py` as its conftest."""
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.name.split("/")[1:2] == ["tests"]]
        archive.extractall(into, members=members, filter="data")
    (suite,) = into.iterdir()
    tests = suite / "tests"
    (tests / "conftest.py").rename(tests / "pykka_conftest.py")
    shutil.copyfile(CONFTEST, tests / "conftest.py")
    (suite / "pytest.ini").write_text("[pytest]\n")  # the rootdir, and none of this repository's settings
    return suite


def case_outcomes(junit: Path) -> dict[str, str]:
    """Each test case of a JUnit XML report: passed, failed, error or skipped."""
    outcomes = {}
    for case in ElementTree.parse(junit).iter("testcase"):
        problems = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[f"{case.get('classname')}.{case.get('name')}"] = problems[0] if problems else "passed"
    return outcomes
