"""docs/configuration.md and config.ini are generated from settings.SCHEMA, the one place a key is described."""

from __future__ import annotations

import configparser
import subprocess
import sys

from settings import INI_COMMAND, MARKDOWN_COMMAND, SCHEMA, ini_sample, markdown_reference
from tests.helpers.server import REPO_ROOT


def test_every_key_is_described() -> None:
    undescribed = [
        f"[{section}] {name}" for section, keys in SCHEMA.items() for name, key in keys.items() if not key.description
    ]
    assert not undescribed, f"describe these keys in settings.SCHEMA: {undescribed}"
    assert all(key.kind for keys in SCHEMA.values() for key in keys.values())


def test_docs_configuration_is_generated_from_the_schema() -> None:
    written = (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert written == markdown_reference(), f"docs/configuration.md is out of date; regenerate it: {MARKDOWN_COMMAND}"


def test_reference_names_every_key_and_its_environment_variable() -> None:
    reference = markdown_reference()
    for section, keys in SCHEMA.items():
        assert f"## [{section}]" in reference
        for name in keys:
            assert f"| `{name}`<br>`REALTIME_{section.upper()}_{name.upper()}` |" in reference


def test_config_ini_names_only_schema_keys() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO_ROOT / "config.ini", encoding="utf-8")
    unknown = [f"[{s}] {k}" for s in parser.sections() for k in parser.options(s) if k not in SCHEMA.get(s, {})]
    assert not unknown


def test_config_ini_is_generated_from_the_schema() -> None:
    written = (REPO_ROOT / "config.ini").read_text(encoding="utf-8")
    assert written == ini_sample(), f"config.ini is out of date; regenerate it: {INI_COMMAND}"


def test_the_generator_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "settings", "--markdown"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout == markdown_reference()
