"""Service configuration: `config.ini`, overridden by `REALTIME_<SECTION>_<KEY>`.

Every key the service knows is declared once in `SCHEMA` with its parser and
default. `load_settings` returns typed, frozen settings or raises `ConfigError`
with one line naming the offending key and where its value came from, so a
bad deployment stops at start-up instead of failing later.

A bottom module: it imports nothing of this service.
"""

from __future__ import annotations

import configparser
import difflib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "REALTIME_"
DEMO_SECRET_FILE = "demo-secret"
MIN_SECRET_BYTES = 32  # HS256 keys and the notify secret: RFC 7518 asks for at least the hash's 256 bits
SECRETS = ("auth", "notify")  # the sections whose `secret` must be that long outside demo mode
MAX_UTF8_BYTES_PER_CHAR = 4


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the key."""


def _text(raw: str) -> str:
    return raw.strip()


def _port(raw: str) -> int:
    value = _integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError("is not a port number (0-65535)")
    return value


def _integer(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("is not a whole number") from None


def _positive_integer(raw: str) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _non_negative_integer(raw: str) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _non_negative_number(raw: str) -> float:
    value = _number(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("is not a finite number")
    return value


def _positive_number(raw: str) -> float:
    value = _number(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean (true/false)")


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return value

    return parse


# section -> key -> (parser, default as it would be written in config.ini)
SCHEMA: dict[str, dict[str, tuple[Callable[[str], Any], str]]] = {
    "server": {
        "host": (_text, "127.0.0.1"),
        "ws_port": (_port, "8080"),
        "http_port": (_port, "8081"),
        "demo": (_boolean, "false"),
        "drain_timeout": (_positive_number, "10"),
        "allowed_origins": (_text, ""),
        "ping_interval": (_non_negative_number, "25"),
        "request_timeout": (_positive_number, "10"),
        "keep_alive_timeout": (_positive_number, "5"),
    },
    "database": {
        "backend": (_choice("sqlite", "mysql"), "sqlite"),
        "path": (_text, "data/realtime.sqlite3"),
        "host": (_text, "127.0.0.1"),
        "port": (_port, "3306"),
        "user": (_text, "realtime"),
        "password": (_text, ""),
        "name": (_text, "realtime"),
        "pool_size": (_positive_integer, "10"),
        "write_lanes": (_positive_integer, "1"),
        "blocks_cache_seconds": (_non_negative_number, "5"),
    },
    "auth": {
        "secret": (_text, ""),
        "timeout": (_positive_number, "10"),
    },
    "notify": {
        "secret": (_text, ""),
        "cors_origins": (_text, ""),
        "like_group_seconds": (_positive_number, "3"),
        "fanout_batch": (_positive_integer, "500"),
        "fanout_concurrency": (_positive_integer, "4"),
        "request_timeout": (_positive_number, "60"),
        "signature_max_skew": (_positive_number, "300"),
    },
    "cluster": {
        "backend": (_choice("local", "redis"), "local"),
        "redis_url": (_text, "redis://127.0.0.1:6379/0"),
        "node_name": (_text, ""),
        "presence_ttl_seconds": (_positive_number, "15"),
    },
    "presence": {
        "grace_seconds": (_non_negative_number, "5"),
    },
    "limits": {
        "max_frame_bytes": (_positive_integer, "65536"),
        "max_content_chars": (_positive_integer, "4000"),
        "history_page": (_positive_integer, "50"),
        "history_page_max": (_positive_integer, "100"),
        "notifications_page": (_positive_integer, "20"),
        "notifications_page_max": (_positive_integer, "100"),
        "send_queue_frames": (_positive_integer, "1000"),
        "send_queue_bytes": (_positive_integer, "4194304"),
        "socket_frames_per_second": (_positive_number, "1000"),
        "socket_frame_burst": (_positive_integer, "5000"),
        "write_batch": (_positive_integer, "500"),
        "max_body_bytes": (_positive_integer, "65536"),
        "frames_per_second": (_positive_number, "50"),
        "frame_burst": (_positive_integer, "500"),
        "messages_per_second": (_positive_number, "10"),
        "message_burst": (_positive_integer, "200"),
        "content_bytes_per_second": (_positive_number, "8192"),
        "content_bytes_burst": (_positive_integer, "131072"),
        "rate_limit_strikes": (_positive_integer, "100"),
        "sockets_per_user": (_positive_integer, "20"),
        "connections_per_address": (_non_negative_integer, "0"),
        "pending_connections": (_positive_integer, "1000"),
        "pending_per_address": (_non_negative_integer, "500"),
    },
    "log": {
        "level": (_choice("debug", "info", "warning", "error"), "info"),
        "format": (_choice("plain", "json"), "plain"),
    },
}


@dataclass(frozen=True)
class ServerSettings:
    host: str
    ws_port: int
    http_port: int
    demo: bool
    drain_timeout: float
    allowed_origins: str
    ping_interval: float
    request_timeout: float
    keep_alive_timeout: float


@dataclass(frozen=True)
class DatabaseSettings:
    backend: str
    path: str
    host: str
    port: int
    user: str
    password: str
    name: str
    pool_size: int
    write_lanes: int
    blocks_cache_seconds: float


@dataclass(frozen=True)
class AuthSettings:
    secret: str
    timeout: float


@dataclass(frozen=True)
class NotifySettings:
    secret: str
    cors_origins: str
    like_group_seconds: float
    fanout_batch: int
    fanout_concurrency: int
    request_timeout: float
    signature_max_skew: float


@dataclass(frozen=True)
class ClusterSettings:
    backend: str
    redis_url: str
    node_name: str
    presence_ttl_seconds: float


@dataclass(frozen=True)
class PresenceSettings:
    grace_seconds: float


@dataclass(frozen=True)
class LimitSettings:
    max_frame_bytes: int
    max_content_chars: int
    history_page: int
    history_page_max: int
    notifications_page: int
    notifications_page_max: int
    send_queue_frames: int
    send_queue_bytes: int
    socket_frames_per_second: float
    socket_frame_burst: int
    write_batch: int
    max_body_bytes: int
    frames_per_second: float
    frame_burst: int
    messages_per_second: float
    message_burst: int
    content_bytes_per_second: float
    content_bytes_burst: int
    rate_limit_strikes: int
    sockets_per_user: int
    connections_per_address: int
    pending_connections: int
    pending_per_address: int


@dataclass(frozen=True)
class LogSettings:
    level: str
    format: str


@dataclass(frozen=True)
class Settings:
    server: ServerSettings
    database: DatabaseSettings
    auth: AuthSettings
    notify: NotifySettings
    cluster: ClusterSettings
    presence: PresenceSettings
    limits: LimitSettings
    log: LogSettings

    def redacted(self) -> dict[str, dict[str, Any]]:
        """The effective configuration with every secret masked, for start-up logs."""
        shown: dict[str, dict[str, Any]] = {}
        for section, keys in SCHEMA.items():
            values = getattr(self, section)
            shown[section] = {key: _redact(key, getattr(values, key)) for key in keys}
        return shown


_SECTION_TYPES = {
    "server": ServerSettings,
    "database": DatabaseSettings,
    "auth": AuthSettings,
    "notify": NotifySettings,
    "cluster": ClusterSettings,
    "presence": PresenceSettings,
    "limits": LimitSettings,
    "log": LogSettings,
}


def _redact(key: str, value: Any) -> Any:
    if key in ("secret", "password"):
        return "***" if value else value
    if key.endswith("_url") and isinstance(value, str):
        parts = urlsplit(value)
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    return value


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    demo: bool | None = None,
) -> Settings:
    """Read `path` (default `config.ini` if present), apply environment overrides.

    `demo` (the `--demo` flag) wins over `[server] demo`. In demo mode without
    an `[auth] secret`, a random secret is kept in the data directory so tokens
    survive restarts.
    """
    environ = os.environ if environ is None else environ
    if path is None and Path("config.ini").is_file():
        path = "config.ini"
    parser = _read_config_file(path)
    _reject_unknown_keys(parser)
    _reject_unknown_environment(environ)

    sections: dict[str, Any] = {}
    sources: dict[tuple[str, str], str] = {}
    for section, keys in SCHEMA.items():
        values = {}
        for key, (parse, default) in keys.items():
            name = env_name(section, key)
            if name in environ:
                raw, source = environ[name], f"environment {name}"
            elif parser.has_option(section, key):
                raw, source = parser.get(section, key), "config file"
            else:
                raw, source = default, "default"
            sources[section, key] = source
            try:
                values[key] = parse(raw)
            except ValueError as problem:
                raise ConfigError(f"[{section}] {key} = {raw!r} {problem} (from {source})") from None
        sections[section] = values

    limits = sections["limits"]
    if limits["content_bytes_burst"] < MAX_UTF8_BYTES_PER_CHAR * limits["max_content_chars"]:
        raise ConfigError(
            f"[limits] content_bytes_burst = {limits['content_bytes_burst']} must hold the largest message: at least"
            f" {MAX_UTF8_BYTES_PER_CHAR} bytes per character of max_content_chars ({limits['max_content_chars']})"
        )
    if demo is not None:
        sections["server"]["demo"] = demo
    if not sections["auth"]["secret"]:
        if not sections["server"]["demo"]:
            raise ConfigError(
                "[auth] secret is required (set it in config.ini or REALTIME_AUTH_SECRET), "
                "unless demo mode is on (--demo)"
            )
        sections["auth"]["secret"] = _demo_secret(Path(sections["database"]["path"]).parent)
    if not sections["server"]["demo"]:
        for section in SECRETS:
            _check_secret_length(section, sections[section]["secret"], sources[section, "secret"])
    return Settings(**{name: _SECTION_TYPES[name](**values) for name, values in sections.items()})


def _check_secret_length(section: str, secret: str, source: str) -> None:
    """A short secret can be guessed offline from one token or signed request; empty means unset."""
    length = len(secret.encode("utf-8"))
    if 0 < length < MIN_SECRET_BYTES:
        raise ConfigError(
            f"[{section}] secret is {length} bytes long; at least {MIN_SECRET_BYTES} are required "
            f"outside demo mode (from {source})"
        )


def _read_config_file(path: str | os.PathLike[str] | None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    if path is None:
        return parser
    if not Path(path).is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise ConfigError(f"config file {path} cannot be read: {first_line}") from None
    return parser


def _reject_unknown_keys(parser: configparser.ConfigParser) -> None:
    for section in parser.sections():
        if section not in SCHEMA:
            raise ConfigError(f"[{section}] is not a known section (known: {', '.join(SCHEMA)})")
        for key in parser.options(section):
            if key not in SCHEMA[section]:
                raise ConfigError(f"[{section}] {key} is not a known key")


def _reject_unknown_environment(environ: Mapping[str, str]) -> None:
    """A `REALTIME_*` variable that names no setting is a typo (`REALTIME_SERVER_WSPORT`): ignoring it would run
    the service with the default the operator meant to change."""
    known = {env_name(section, key) for section, keys in SCHEMA.items() for key in keys}
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.9)
            hint = f"; did you mean {close[0]}?" if close else "; see config.ini for the settings"
            raise ConfigError(f"environment variable {name} is not a setting{hint}")


def _demo_secret(data_dir: Path) -> str:
    """A random secret kept in `data_dir`, created on first use (demo mode only).

    The file appears complete or not at all (written aside, then linked into
    place), so a crash never leaves an empty secret and two processes starting
    together end up with the same one.
    """
    secret_file = data_dir / DEMO_SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            existing = secret_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            existing = ""
        if len(existing) >= MIN_SECRET_BYTES:
            return existing
        if secret_file.exists():
            secret_file.unlink()  # empty or truncated: not a secret
        draft = data_dir / f".{DEMO_SECRET_FILE}.{os.getpid()}"
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, secret_file)
        except FileExistsError:
            pass  # another process got there first: use its secret
        finally:
            draft.unlink()
    raise ConfigError(f"[auth] secret: cannot create a demo secret in {secret_file}")
