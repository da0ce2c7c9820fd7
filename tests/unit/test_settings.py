"""`settings.load_settings`: the contract's defaults, environment overrides and one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from settings import DEMO_SECRET_FILE, SCHEMA, ConfigError, env_name, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "settings-test-secret"


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
    assert (limits.frames_per_second, limits.frame_burst, limits.rate_limit_strikes) == (500, 5000, 100)
    assert limits.sockets_per_user == 20
    assert limits.connections_per_address == 0  # no cap: behind a proxy every client shares one address


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
        "[auth]\nsecret = from-file\ntimeout = 2.5\n"
        "[limits]\nmax_content_chars = 10\n"
    )
    settings = load_settings(path, environ={})
    assert (settings.server.host, settings.server.ws_port, settings.server.http_port) == ("0.0.0.0", 9000, 9001)
    assert (settings.database.backend, settings.database.port, settings.database.pool_size) == ("mysql", 3307, 3)
    assert (settings.auth.secret, settings.auth.timeout) == ("from-file", 2.5)
    assert settings.limits.max_content_chars == 10


def test_environment_beats_the_file(config):
    path = config("[server]\nws_port = 9000\nhttp_port = 9001\n[auth]\nsecret = from-file\n")
    settings = load_settings(
        path,
        environ={
            "REALTIME_SERVER_WS_PORT": "9100",
            "REALTIME_AUTH_SECRET": "from-env",
            "REALTIME_DATABASE_BACKEND": "mysql",
            "REALTIME_CLUSTER_BACKEND": "redis",
            "REALTIME_LIMITS_MAX_FRAME_BYTES": "1024",
        },
    )
    assert settings.server.ws_port == 9100
    assert settings.server.http_port == 9001  # not overridden: the file's value
    assert settings.auth.secret == "from-env"
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
        config("[database]\npassword = db-pass\n[notify]\nsecret = notify-secret\n"),
        environ={"REALTIME_AUTH_SECRET": "auth-secret"},
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
