"""`settings.load_settings`: the contract's defaults, environment overrides and one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from settings import DEMO_SECRET_FILE, SCHEMA, ConfigError, env_name, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "settings-test-secret-0123456789abcdef"


@pytest.fixture
def config(tmp_path: Path):
    """`config(text)`: a config file with `text`, its path."""

    def write(text: str = "") -> Path:
        path = tmp_path / "config.ini"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def load(path: Path | None, **environ: str):
    return load_settings(path, environ={"REALTIME_AUTH_SECRET": SECRET, **environ})


def config_error(path: Path | None, environ: dict[str, str] | None = None, **kwargs) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"REALTIME_AUTH_SECRET": SECRET} if environ is None else environ, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------ defaults


def test_defaults_match_the_contract(config):
    settings = load(config(""))
    assert settings.server.host == "127.0.0.1"
    assert settings.server.ws_port == 8080
    assert settings.server.http_port == 8081
    assert settings.server.demo is False
    assert settings.database.backend == "sqlite"
    assert settings.database.path.startswith("data/")
    assert settings.database.pool_size >= 1
    assert settings.database.write_lanes == 1
    assert settings.auth.secret == SECRET
    assert settings.auth.timeout == 10
    assert settings.notify.secret == ""
    assert settings.cluster.backend == "local"
    assert settings.cluster.redis_url.startswith("redis://")
    assert settings.limits.max_frame_bytes == 65536
    assert settings.limits.max_content_chars == 4000
    assert settings.limits.history_page == 50
    assert settings.limits.history_page_max == 100
    assert settings.limits.notifications_page == 20
    assert settings.limits.notifications_page_max == 100
    assert settings.log.level == "info"


def test_hardening_defaults(config):
    settings = load(config(""))
    assert settings.server.allowed_origins == ""  # no web page may open a socket until listed
    assert settings.server.ping_interval == 25
    assert settings.notify.signature_max_skew == 300
    limits = settings.limits
    assert (limits.frames_per_second, limits.frame_burst, limits.rate_limit_strikes) == (50, 500, 100)
    assert (limits.messages_per_second, limits.message_burst) == (10, 200)
    assert (limits.content_bytes_per_second, limits.content_bytes_burst) == (8192, 128 * 1024)
    assert limits.sockets_per_user == 20
    assert limits.connections_per_address == 0  # no cap: behind a proxy every client shares one address


def test_a_content_byte_burst_too_small_for_the_largest_message_is_refused_at_start(config):
    """A message of max_content_chars four-byte characters must fit in a full bucket, or it could never be sent."""
    limits = "[limits]\nmax_content_chars = 1000\ncontent_bytes_burst = {}\n"
    assert load(config(limits.format(4000))).limits.content_bytes_burst == 4000
    message = config_error(config(limits.format(3999)), {"REALTIME_AUTH_SECRET": SECRET})
    assert "[limits] content_bytes_burst = 3999" in message and "max_content_chars (1000)" in message


def test_socket_budget_defaults(config):
    limits = load(config("")).limits
    assert (limits.send_queue_frames, limits.send_queue_bytes) == (1000, 4 * 1024 * 1024)
    assert (limits.socket_frames_per_second, limits.socket_frame_burst) == (1000, 5000)


def test_zero_turns_off_pings_and_the_address_cap(config):
    settings = load(config("[server]\nping_interval = 0\n[limits]\nconnections_per_address = 0\n"))
    assert settings.server.ping_interval == 0 and settings.limits.connections_per_address == 0


def test_without_a_path_and_without_config_ini_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load(None)
    assert (settings.server.ws_port, settings.server.http_port) == (8080, 8081)


def test_without_a_path_config_ini_in_the_working_directory_is_read(tmp_path, monkeypatch):
    (tmp_path / "config.ini").write_text("[server]\nws_port = 9001\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load(None).server.ws_port == 9001


def test_the_shipped_config_ini_loads():
    settings = load(REPO_ROOT / "config.ini")
    assert settings.database.backend in ("sqlite", "mysql")


def test_settings_are_frozen(config):
    settings = load(config(""))
    with pytest.raises(AttributeError):
        settings.server.ws_port = 1  # type: ignore[misc]


# ------------------------------------------------------------ file and environment


def test_file_values_are_used(config):
    path = config(
        "[server]\nhost = 0.0.0.0\nws_port = 9000\nhttp_port = 9001\n"
        "[database]\nbackend = MySQL\nport = 3307\npool_size = 3\n"
        "[auth]\nsecret = from-file-0123456789abcdef0123456789\ntimeout = 2.5\n"
        "[limits]\nmax_content_chars = 10\n"
    )
    settings = load_settings(path, environ={})
    assert (settings.server.host, settings.server.ws_port, settings.server.http_port) == ("0.0.0.0", 9000, 9001)
    assert (settings.database.backend, settings.database.port, settings.database.pool_size) == ("mysql", 3307, 3)
    assert (settings.auth.secret, settings.auth.timeout) == ("from-file-0123456789abcdef0123456789", 2.5)
    assert settings.limits.max_content_chars == 10


def test_environment_beats_the_file(config):
    path = config("[server]\nws_port = 9000\nhttp_port = 9001\n[auth]\nsecret = from-file-0123456789abcdef0123456789\n")
    settings = load_settings(
        path,
        environ={
            "REALTIME_SERVER_WS_PORT": "9100",
            "REALTIME_AUTH_SECRET": "from-env-0123456789abcdef0123456789",
            "REALTIME_DATABASE_BACKEND": "mysql",
            "REALTIME_CLUSTER_BACKEND": "redis",
            "REALTIME_LIMITS_MAX_FRAME_BYTES": "1024",
        },
    )
    assert settings.server.ws_port == 9100
    assert settings.server.http_port == 9001  # not overridden: the file's value
    assert settings.auth.secret == "from-env-0123456789abcdef0123456789"
    assert settings.database.backend == "mysql"
    assert settings.cluster.backend == "redis"
    assert settings.limits.max_frame_bytes == 1024


def test_every_schema_key_has_an_environment_override():
    assert env_name("server", "ws_port") == "REALTIME_SERVER_WS_PORT"
    for section, keys in SCHEMA.items():
        for key in keys:
            assert env_name(section, key) == f"REALTIME_{section.upper()}_{key.upper()}"


def test_values_are_stripped(config):
    settings = load(config(""), REALTIME_SERVER_WS_PORT=" 9000 ", REALTIME_SERVER_HOST=" localhost ")
    assert (settings.server.ws_port, settings.server.host) == (9000, "localhost")


@pytest.mark.parametrize("raw, expected", [("true", True), ("YES", True), ("1", True), ("off", False), ("", False)])
def test_booleans(config, raw, expected):
    assert load(config(""), REALTIME_SERVER_DEMO=raw).server.demo is expected


# ------------------------------------------------------------ invalid values


@pytest.mark.parametrize(
    "name, raw, named",
    [
        ("REALTIME_SERVER_WS_PORT", "abc", "[server] ws_port"),
        ("REALTIME_SERVER_HTTP_PORT", "70000", "[server] http_port"),
        ("REALTIME_SERVER_WS_PORT", "-1", "[server] ws_port"),
        ("REALTIME_SERVER_WS_PORT", "80.5", "[server] ws_port"),
        ("REALTIME_SERVER_DEMO", "maybe", "[server] demo"),
        ("REALTIME_DATABASE_BACKEND", "oracle", "[database] backend"),
        ("REALTIME_DATABASE_POOL_SIZE", "0", "[database] pool_size"),
        ("REALTIME_DATABASE_WRITE_LANES", "0", "[database] write_lanes"),
        ("REALTIME_DATABASE_PORT", "x", "[database] port"),
        ("REALTIME_AUTH_TIMEOUT", "x", "[auth] timeout"),
        ("REALTIME_AUTH_TIMEOUT", "0", "[auth] timeout"),
        ("REALTIME_AUTH_TIMEOUT", "-3", "[auth] timeout"),
        ("REALTIME_AUTH_TIMEOUT", "nan", "[auth] timeout"),
        ("REALTIME_CLUSTER_BACKEND", "zookeeper", "[cluster] backend"),
        ("REALTIME_LIMITS_MAX_FRAME_BYTES", "0", "[limits] max_frame_bytes"),
        ("REALTIME_LIMITS_MAX_CONTENT_CHARS", "lots", "[limits] max_content_chars"),
        ("REALTIME_LOG_LEVEL", "verbose", "[log] level"),
        ("REALTIME_SERVER_PING_INTERVAL", "-1", "[server] ping_interval"),
        ("REALTIME_SERVER_PING_INTERVAL", "inf", "[server] ping_interval"),
        ("REALTIME_NOTIFY_SIGNATURE_MAX_SKEW", "0", "[notify] signature_max_skew"),
        ("REALTIME_LIMITS_FRAMES_PER_SECOND", "0", "[limits] frames_per_second"),
        ("REALTIME_LIMITS_FRAME_BURST", "0.5", "[limits] frame_burst"),
        ("REALTIME_LIMITS_RATE_LIMIT_STRIKES", "0", "[limits] rate_limit_strikes"),
        ("REALTIME_LIMITS_MESSAGES_PER_SECOND", "0", "[limits] messages_per_second"),
        ("REALTIME_LIMITS_MESSAGE_BURST", "0", "[limits] message_burst"),
        ("REALTIME_LIMITS_CONTENT_BYTES_PER_SECOND", "-1", "[limits] content_bytes_per_second"),
        ("REALTIME_LIMITS_CONTENT_BYTES_BURST", "many", "[limits] content_bytes_burst"),
        ("REALTIME_LIMITS_SOCKETS_PER_USER", "0", "[limits] sockets_per_user"),
        ("REALTIME_LIMITS_CONNECTIONS_PER_ADDRESS", "-1", "[limits] connections_per_address"),
        ("REALTIME_LIMITS_SEND_QUEUE_BYTES", "0", "[limits] send_queue_bytes"),
        ("REALTIME_LIMITS_SOCKET_FRAMES_PER_SECOND", "0", "[limits] socket_frames_per_second"),
        ("REALTIME_LIMITS_SOCKET_FRAME_BURST", "1.5", "[limits] socket_frame_burst"),
    ],
)
def test_invalid_environment_value(config, name, raw, named):
    message = config_error(config(""), {"REALTIME_AUTH_SECRET": SECRET, name: raw})
    assert named in message
    assert repr(raw) in message
    assert f"environment {name}" in message


@pytest.mark.parametrize(
    "text, named",
    [
        ("[server]\nws_port = abc\n", "[server] ws_port"),
        ("[server]\nhttp_port = 70000\n", "[server] http_port"),
        ("[database]\nbackend = oracle\n", "[database] backend"),
        ("[database]\npool_size = 0\n", "[database] pool_size"),
        ("[auth]\ntimeout = x\n", "[auth] timeout"),
    ],
)
def test_invalid_file_value(config, text, named):
    message = config_error(config(text))
    assert named in message
    assert "config file" in message


def test_unknown_key_in_the_file(config):
    assert "[server] wsport" in config_error(config("[server]\nwsport = 9000\n"))


@pytest.mark.parametrize(
    "name, hint",
    [
        ("REALTIME_SERVER_WSPORT", "did you mean REALTIME_SERVER_WS_PORT?"),
        ("REALTIME_CLUSTER_REDISURL", "did you mean REALTIME_CLUSTER_REDIS_URL?"),
        ("REALTIME_TEST_BACKENDS", "see docs/configuration.md for the settings"),
    ],
)
def test_an_environment_variable_that_names_no_setting_is_refused_with_a_hint(config, name, hint):
    message = config_error(config(""), {"REALTIME_AUTH_SECRET": SECRET, name: "1"})
    assert message == f"environment variable {name} is not a setting; {hint}"


def test_other_environment_variables_are_not_the_service_s_business(config):
    assert load(config(""), REALTIMEX="1", HOME="/root").server.ws_port == 8080


def test_unknown_section_in_the_file(config):
    assert "[servers]" in config_error(config("[servers]\nws_port = 9000\n"))


def test_missing_file_given_by_path(tmp_path):
    missing = tmp_path / "nope" / "config.ini"
    assert str(missing) in config_error(missing)


def test_directory_given_as_the_config_path(tmp_path):
    assert str(tmp_path) in config_error(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "[server]\nws_port = 1\nws_port = 2\n",
        "[server]\nws_port = 1\n[server]\nhttp_port = 2\n",
        "ws_port = 1\n",
        "[server]\nthis line has no equals sign\n",
    ],
    ids=["duplicate key", "duplicate section", "no section header", "unparsable line"],
)
def test_malformed_file(config, text):
    config_error(config(text))


# ------------------------------------------------------------ the auth secret and demo mode


def test_missing_secret_without_demo(config):
    assert "REALTIME_AUTH_SECRET" in config_error(config(""), environ={})


def test_blank_secret_counts_as_missing(config):
    assert "REALTIME_AUTH_SECRET" in config_error(config(""), environ={"REALTIME_AUTH_SECRET": "   "})


@pytest.mark.parametrize(("section", "env"), [("auth", "REALTIME_AUTH_SECRET"), ("notify", "REALTIME_NOTIFY_SECRET")])
@pytest.mark.parametrize(
    "secret", ["x", "a" * 31, "é" * 15 + "a"], ids=["one character", "31 bytes", "16 characters of 31 bytes"]
)
def test_a_secret_under_32_bytes_is_refused_naming_the_key_and_its_source(config, section, env, secret):
    message = config_error(config(""), {"REALTIME_AUTH_SECRET": SECRET, env: secret})
    assert message.startswith(f"[{section}] secret is {len(secret.encode())} bytes long; at least 32 are required")
    assert f"environment {env}" in message and secret not in message


def test_a_short_secret_from_the_file_is_refused_naming_the_file(config):
    message = config_error(config("[notify]\nsecret = short\n"))
    assert message.startswith("[notify] secret is 5 bytes long") and "(from config file)" in message


def test_secrets_of_32_bytes_are_accepted(config):
    settings = load(config(""), REALTIME_AUTH_SECRET="a" * 32, REALTIME_NOTIFY_SECRET="é" * 16)
    assert (settings.auth.secret, settings.notify.secret) == ("a" * 32, "é" * 16)


def test_an_empty_notify_secret_is_not_short_but_unset(config):
    assert load(config(""), REALTIME_NOTIFY_SECRET="").notify.secret == ""


def test_demo_mode_accepts_short_secrets(tmp_path):
    environ = {"REALTIME_AUTH_SECRET": "demo", "REALTIME_NOTIFY_SECRET": "demo"}
    settings = load_settings(_empty(tmp_path), environ=environ, demo=True)
    assert (settings.auth.secret, settings.notify.secret) == ("demo", "demo")


def test_demo_mode_without_secret_keeps_one_next_to_the_database(tmp_path):
    database = tmp_path / "db" / "realtime.sqlite3"
    environ = {"REALTIME_DATABASE_PATH": str(database)}
    first = load_settings(_empty(tmp_path), environ=environ, demo=True)
    secret_file = database.parent / DEMO_SECRET_FILE
    assert secret_file.is_file()
    assert first.auth.secret and len(first.auth.secret) >= 32
    assert secret_file.read_text(encoding="utf-8").strip() == first.auth.secret
    assert stat.S_IMODE(os.stat(secret_file).st_mode) & 0o077 == 0  # not readable by others
    second = load_settings(_empty(tmp_path), environ=environ, demo=True)
    assert second.auth.secret == first.auth.secret
    assert second.server.demo is True


def test_demo_mode_from_the_environment(tmp_path):
    database = tmp_path / "data" / "x.sqlite3"
    settings = load_settings(
        _empty(tmp_path), environ={"REALTIME_DATABASE_PATH": str(database), "REALTIME_SERVER_DEMO": "true"}
    )
    assert settings.server.demo is True
    assert (database.parent / DEMO_SECRET_FILE).read_text(encoding="utf-8").strip() == settings.auth.secret


def test_demo_flag_false_beats_the_file(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text("[server]\ndemo = true\n", encoding="utf-8")
    assert "REALTIME_AUTH_SECRET" in config_error(path, environ={}, demo=False)


def test_demo_mode_with_a_secret_uses_that_secret(tmp_path):
    database = tmp_path / "db" / "x.sqlite3"
    settings = load_settings(
        _empty(tmp_path), environ={"REALTIME_DATABASE_PATH": str(database), "REALTIME_AUTH_SECRET": "given"}, demo=True
    )
    assert settings.auth.secret == "given"
    assert not (database.parent / DEMO_SECRET_FILE).exists()


def test_empty_demo_secret_file_is_not_an_empty_secret(tmp_path):
    database = tmp_path / "db" / "x.sqlite3"
    database.parent.mkdir()
    (database.parent / DEMO_SECRET_FILE).write_text("", encoding="utf-8")
    try:
        settings = load_settings(_empty(tmp_path), environ={"REALTIME_DATABASE_PATH": str(database)}, demo=True)
    except ConfigError:
        return
    assert settings.auth.secret


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.ini"
    path.write_text("", encoding="utf-8")
    return path


# ------------------------------------------------------------ redacted


def test_redacted_masks_secrets_and_passwords(config):
    settings = load_settings(
        config("[database]\npassword = db-pass\n[notify]\nsecret = notify-secret-0123456789abcdef0123\n"),
        environ={"REALTIME_AUTH_SECRET": "auth-secret-0123456789abcdef012345"},
    )
    shown = settings.redacted()
    assert shown["auth"]["secret"] == "***"
    assert shown["notify"]["secret"] == "***"
    assert shown["database"]["password"] == "***"
    assert shown["server"]["ws_port"] == 8080
    assert shown["database"]["user"] == "realtime"
    text = repr(shown)
    for secret in ("db-pass", "notify-secret", "auth-secret"):
        assert secret not in text
    assert set(shown) == set(SCHEMA)
    for section, keys in SCHEMA.items():
        assert set(shown[section]) == set(keys)


def test_redacted_shows_that_an_empty_secret_is_empty(config):
    shown = load(config("")).redacted()
    assert shown["notify"]["secret"] == ""
    assert shown["database"]["password"] == ""


def test_redacted_masks_a_password_inside_the_redis_url(config):
    settings = load(config(""), REALTIME_CLUSTER_REDIS_URL="redis://:hunter2-secret@redis.internal:6379/0")
    assert "hunter2-secret" not in repr(settings.redacted())
