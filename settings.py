"""Service configuration: `config.ini`, overridden by `REALTIME_<SECTION>_<KEY>`.

Every key the service knows is declared once in `SCHEMA` with its parser,
default and description; `python -m settings --markdown` and `--ini` write
docs/configuration.md and config.ini from it, so neither can drift.

`load_settings` returns typed, frozen settings or raises `ConfigError` with
one line naming the offending key and where its value came from, so a bad
deployment stops at start-up instead of failing later.

A bottom module: it imports nothing of this service.
"""

from __future__ import annotations

import argparse
import configparser
import difflib
import os
import secrets
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import urlsplit, urlunsplit

ENV_PREFIX = "REALTIME_"
DEMO_SECRET_FILE = "demo-secret"
MIN_SECRET_BYTES = 32  # HS256 keys and the notify secret: RFC 7518 asks for at least the hash's 256 bits
SECRETS = ("auth", "notify")  # the sections whose `secret` must be that long outside demo mode
MAX_UTF8_BYTES_PER_CHAR = 4


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message names the key."""


def _kind(label: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Name the values a parser accepts, for the configuration reference (`python -m settings --markdown`)."""

    def name(parse: Callable[[str], Any]) -> Callable[[str], Any]:
        parse.kind = label  # type: ignore[attr-defined]
        return parse

    return name


@_kind("text")
def _text(raw: str) -> str:
    return raw.strip()


@_kind("port (0-65535)")
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


@_kind("whole number, at least 1")
def _positive_integer(raw: str) -> int:
    value = _integer(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


@_kind("whole number, 0 or more")
def _non_negative_integer(raw: str) -> int:
    value = _integer(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


@_kind("number, 0 or more")
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


@_kind("number, more than 0")
def _positive_number(raw: str) -> float:
    value = _number(raw)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@_kind("boolean (true/false, yes/no, on/off, 1/0)")
def _boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean (true/false)")


def _choice(*allowed: str) -> Callable[[str], str]:
    @_kind(f"one of: {', '.join(allowed)}")
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of: {', '.join(allowed)}")
        return value

    return parse


class Key(NamedTuple):
    """One setting: how its text is parsed, its default as written in config.ini, and what it does."""

    parse: Callable[[str], Any]
    default: str
    description: str

    @property
    def kind(self) -> str:
        """The values `parse` accepts, in words."""
        return str(self.parse.kind)  # type: ignore[attr-defined]


# What each section is for: the heading text of config.ini's sections and of docs/configuration.md.
SECTIONS: dict[str, str] = {
    "server": "The two ports and how connections to them are kept.",
    "database": "Where messages, notifications and the platform's tables live.",
    "auth": "The tokens the main web application mints for its users.",
    "notify": "The HTTP notify API the platform calls (on `http_port`).",
    "cluster": "One node alone, or several nodes joined through Redis.",
    "presence": "When a user is shown offline.",
    "limits": (
        "Sizes, queues and rates that keep one client or one address from taking the service. The per-user rates"
        " are token buckets of all the user's sockets on this node together: a burst at once, then a rate per"
        " second. A frame over a bucket is refused with `rate_limited` and dropped; after `rate_limit_strikes`"
        " refusals without backing off (until the bucket is full again) the socket is closed with 4429."
        " A person never meets them: a browser sends a few frames a second."
    ),
    "log": "What is logged, and how (one line per event on stderr).",
}

# section -> key -> Key(parser, default as it would be written in config.ini, what it does)
SCHEMA: dict[str, dict[str, Key]] = {
    "server": {
        "host": Key(_text, "127.0.0.1", "Address both ports listen on (`0.0.0.0` or `::` for every interface)."),
        "ws_port": Key(
            _port,
            "8080",
            "WebSocket port (paths `/` and `/ws`); also serves the browser client's files (`/client/...`) and, in"
            " demo mode, the demo page at `/`.",
        ),
        "http_port": Key(_port, "8081", "HTTP port: the notify API, `/healthz` and `/metrics`."),
        "demo": Key(
            _boolean, "false", "Seed demo users and serve `/demo/token` to pages on this machine (same as `--demo`)."
        ),
        "drain_timeout": Key(
            _positive_number,
            "10",
            "Seconds SIGTERM may take to store what is in flight and close every socket with 1001.",
        ),
        "allowed_origins": Key(
            _text,
            "",
            "Web pages (space-separated origins, e.g. `https://social.example.com`) whose scripts may open a"
            " WebSocket; `*` allows any. Clients that send no `Origin` (not browsers) are not affected. Demo mode"
            " adds its own page.",
        ),
        "ping_interval": Key(
            _non_negative_number,
            "25",
            "Seconds between WebSocket pings; a socket whose pong has not echoed the previous ping by the next one"
            " is dropped, so a peer that vanished, or sends but does not read, is let go (0: off).",
        ),
        "request_timeout": Key(
            _positive_number,
            "10",
            "Seconds to send a whole request or WebSocket handshake, body included (real clients need"
            " milliseconds); then the connection is closed.",
        ),
        "keep_alive_timeout": Key(
            _positive_number,
            "5",
            "Seconds an HTTP connection may idle between requests, on both ports (reconnecting costs a client one"
            " round trip).",
        ),
    },
    "database": {
        "backend": Key(
            _choice("sqlite", "mysql"), "sqlite", "`sqlite` (embedded, a file at `path`) or `mysql` (MySQL/MariaDB)."
        ),
        "path": Key(_text, "data/realtime.sqlite3", "SQLite: the database file; the demo secret is kept beside it."),
        "host": Key(_text, "127.0.0.1", "MySQL/MariaDB: server address."),
        "port": Key(_port, "3306", "MySQL/MariaDB: server port."),
        "user": Key(_text, "realtime", "MySQL/MariaDB: user."),
        "password": Key(_text, "", "MySQL/MariaDB: password (masked in the logs)."),
        "name": Key(_text, "realtime", "MySQL/MariaDB: database name."),
        "pool_size": Key(_positive_integer, "10", "MySQL/MariaDB: connections, all opened at start-up."),
        "write_lanes": Key(
            _positive_integer,
            "1",
            "MySQL/MariaDB: group-commit pipelines per kind of write. One gives the biggest batches, the least CPU"
            " and the lowest latency on a local database; more only help a distant one. Keep it well below"
            " `pool_size`.",
        ),
        "blocks_cache_seconds": Key(
            _non_negative_number,
            "5",
            "Seconds a user's blocks (the platform's `blocks` table), once read, are kept: a new block or unblock"
            " takes effect within this time on each node. 0 reads them for every message batch and typing frame.",
        ),
    },
    "auth": {
        "secret": Key(
            _text,
            "",
            "HS256 secret shared with the main web application. Required, of at least 32 bytes (RFC 7518: no"
            " shorter than the hash), since one captured token lets anyone try short keys offline. Demo mode needs"
            " neither: without one it keeps a random secret in the folder of `[database] path`.",
        ),
        "timeout": Key(
            _positive_number, "10", "Seconds a new socket has to send a valid `connect` frame (then close 4408)."
        ),
    },
    "notify": {
        "secret": Key(
            _text,
            "",
            "When set (at least 32 bytes outside demo mode), callers must send it in `X-Notify-Secret` or sign"
            " with it; when empty, only loopback callers are answered.",
        ),
        "cors_origins": Key(
            _text,
            "",
            "Web pages (space-separated origins; `*`: any) whose scripts may call the HTTP API and read its"
            " answers. Empty: none, as the callers are servers, and a page on this machine must not pass the"
            " loopback-only rule. Demo mode adds its own page.",
        ),
        "like_group_seconds": Key(
            _positive_number,
            "3",
            "Likes of one post arriving within this many seconds reach an online owner as one grouped frame.",
        ),
        "fanout_batch": Key(
            _positive_integer, "500", "Followers stored (and then pushed) per transaction during a post's fan-out."
        ),
        "fanout_concurrency": Key(
            _positive_integer, "4", "Fan-outs processed at once; further notify requests wait their turn."
        ),
        "request_timeout": Key(
            _positive_number,
            "60",
            "Seconds a notify request may wait for its notifications to be stored (then 503).",
        ),
        "signature_max_skew": Key(
            _positive_number,
            "300",
            "Signed requests (`X-Notify-Timestamp`, `X-Notify-Signature`) older or newer than this many seconds"
            " are refused.",
        ),
    },
    "cluster": {
        "backend": Key(
            _choice("local", "redis"),
            "local",
            "`local` (one node) or `redis` (several nodes joined through Redis pub/sub; see docs/scaling.md).",
        ),
        "redis_url": Key(
            _text, "redis://127.0.0.1:6379/0", "Redis to join through (`redis` backend); a password in it is masked."
        ),
        "node_name": Key(
            _text, "", "This node's name in `/healthz` and the logs; empty: host name and WebSocket port."
        ),
        "presence_ttl_seconds": Key(
            _positive_number,
            "15",
            "A node that stops renewing its presence record this long (killed, cut off) has its users shown offline.",
        ),
    },
    "presence": {
        "grace_seconds": Key(
            _non_negative_number,
            "5",
            "A user goes offline this many seconds after its last socket closed, so a page reload does not flap.",
        ),
    },
    "limits": {
        "max_frame_bytes": Key(_positive_integer, "65536", "Largest frame a client may send; larger: close 1009."),
        "max_content_chars": Key(
            _positive_integer, "4000", "Longest message content, in characters; longer: error `too_large`."
        ),
        "history_page": Key(_positive_integer, "50", "Messages in a `history` page when the client names no limit."),
        "history_page_max": Key(
            _positive_integer, "100", "Most messages in a `history` page; a larger `limit` is lowered to it."
        ),
        "notifications_page": Key(
            _positive_integer, "20", "Notifications in a `notifications` page when the client names no limit."
        ),
        "notifications_page_max": Key(
            _positive_integer, "100", "Most notifications in a `notifications` page; a larger `limit` is lowered to it."
        ),
        "send_queue_frames": Key(
            _positive_integer,
            "1000",
            "Frames queued for one socket before it is closed with 1013 as too slow.",
        ),
        "send_queue_bytes": Key(
            _positive_integer,
            "4194304",
            "Bytes (characters of text, control frames included) queued for one socket before it is closed with"
            " 1013. 4 MiB holds the two backlog pages (500 messages of up to 4,000 characters) a connecting user"
            " gets at once.",
        ),
        "socket_frames_per_second": Key(
            _positive_number,
            "1000",
            "Frames of any kind (pings and fragments too) one socket may send per second, before and after"
            " `connect`, after a burst of `socket_frame_burst`; one more closes it with 4429 at once. This only"
            " stops floods, which then cost a few milliseconds; the per-user limits below still apply.",
        ),
        "socket_frame_burst": Key(_positive_integer, "5000", "Burst of `socket_frames_per_second`."),
        "write_batch": Key(_positive_integer, "500", "Most rows written in one database transaction (group commit)."),
        "max_body_bytes": Key(_positive_integer, "65536", "Largest HTTP request body (413 beyond)."),
        "frames_per_second": Key(
            _positive_number,
            "50",
            "Frames per user per second (messages, one `message_read` per message read, history pages while"
            " scrolling, pings), after a burst of `frame_burst`. 500 at once would be a script, which meets the"
            " limit within a second and 4429 right after.",
        ),
        "frame_burst": Key(_positive_integer, "500", "Burst of `frames_per_second`."),
        "messages_per_second": Key(
            _positive_number,
            "10",
            "Messages stored per user per second, after a burst of `message_burst`. A person types a few a second;"
            " a reconnecting client resends its outbox at once (dozens at most); a bench or a test sends a couple"
            " of hundred.",
        ),
        "message_burst": Key(_positive_integer, "200", "Burst of `messages_per_second`."),
        "content_bytes_per_second": Key(
            _positive_number,
            "8192",
            "UTF-8 bytes of message content stored per user per second (two long pastes a second; typing is"
            " ~10 B/s), after a burst of `content_bytes_burst`. Over it: `rate_limited`, nothing stored, the"
            " socket stays open.",
        ),
        "content_bytes_burst": Key(
            _positive_integer,
            "131072",
            "Burst of `content_bytes_per_second`: 128 KiB is 32 pastes of 4,000 ASCII characters or 8 of the"
            " largest message (4,000 four-byte characters). Must be at least 4 x `max_content_chars`.",
        ),
        "rate_limit_strikes": Key(
            _positive_integer,
            "100",
            "Refused frames or messages, without backing off, before the socket is closed with 4429.",
        ),
        "sockets_per_user": Key(
            _positive_integer, "20", "Open sockets per user; one more is refused (error `rate_limited`, close 1008)."
        ),
        "connections_per_address": Key(
            _non_negative_integer,
            "0",
            "WebSocket connections per client address, handshakes still being sent included (0: no cap). Behind a"
            " proxy every client has the proxy's address.",
        ),
        "pending_connections": Key(
            _positive_integer,
            "1000",
            "Connections per port still waiting for or sending their request; more are closed at once. In effect"
            " at most a quarter of the file descriptor limit.",
        ),
        "pending_per_address": Key(
            _non_negative_integer,
            "500",
            "Of those, from one client address (0: no cap; in effect at most half of `pending_connections`): one"
            " address cannot take every place, yet a proxy's or a load generator's burst of handshakes still gets"
            " half.",
        ),
    },
    "log": {
        "level": Key(_choice("debug", "info", "warning", "error"), "info", "Least severe level written."),
        "format": Key(
            _choice("plain", "json"),
            "plain",
            "`plain` (one readable line per event) or `json` (one JSON object per line, for log collectors).",
        ),
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
        for key, (parse, default, _) in keys.items():
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
            hint = f"; did you mean {close[0]}?" if close else "; see docs/configuration.md for the settings"
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


CONFIG_INTRO = """\
The service reads `config.ini` from its working directory, or the file named by `--config PATH`. Every key
below can be overridden by an environment variable `REALTIME_<SECTION>_<KEY>` in upper case (for example
`REALTIME_SERVER_WS_PORT=9080`), which wins over the file; a key missing from both takes its default.

A mistake stops start-up with one line naming the key and where its value came from, and exit status 2, for
example `configuration error: [server] ws_port = 'x' is not a whole number (from config file)`. An unknown
section or key in the file, or a `REALTIME_*` variable that names no key, is such a mistake, so a typo cannot
leave a default running that the operator meant to change.

Secrets: `[auth] secret` is required and must be at least 32 bytes; `[notify] secret`, when set, too. The
first line the service logs is the effective configuration with `secret`, `password` and the password in
`redis_url` masked as `***`.

Demo mode (`--demo`, or `[server] demo = true`; the flag wins) is for trying the service on one machine: it
seeds demo users, serves the demo page and `/demo/token` on the WebSocket port, skips the secret length check,
and without an `[auth] secret` keeps a random one in the file `demo-secret` in the folder of `[database] path`."""

MARKDOWN_COMMAND = ".venv/bin/python -m settings --markdown > docs/configuration.md"
INI_COMMAND = ".venv/bin/python -m settings --ini > config.ini"


def markdown_reference() -> str:
    """docs/configuration.md: every key of `SCHEMA` by section, with its variable, values, default and meaning."""
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from settings.SCHEMA by `{MARKDOWN_COMMAND}`; edit settings.py, not this file. -->",
        "",
        CONFIG_INTRO,
    ]
    for section, keys in SCHEMA.items():
        lines += ["", f"## [{section}]", "", SECTIONS[section], ""]
        lines += ["| key and environment variable | default | values | meaning |", "|---|---|---|---|"]
        for name, key in keys.items():
            default = f"`{key.default}`" if key.default else "(empty)"
            variable = f"`{name}`<br>`{env_name(section, name)}`"
            lines.append(f"| {variable} | {default} | {key.kind} | {key.description} |")
    return "\n".join(lines) + "\n"


def ini_sample(width: int = 116) -> str:
    """config.ini: every key at its default, with its description and its section's as comments."""
    header = (
        "Real-time messaging service configuration; every key is at its default. Each can be overridden by an"
        " environment variable REALTIME_<SECTION>_<KEY>, e.g. REALTIME_SERVER_WS_PORT=9080 or REALTIME_AUTH_SECRET"
        f"=... See docs/configuration.md. Generated by `{INI_COMMAND}`."
    )
    lines = _comment(header, width)
    for section, keys in SCHEMA.items():
        lines += ["", f"[{section}]", *_comment(SECTIONS[section], width)]
        for name, key in keys.items():
            lines += ["", *_comment(key.description, width), f"{name} = {key.default}".rstrip()]
    return "\n".join(lines) + "\n"


def _comment(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, initial_indent="; ", subsequent_indent="; ", break_on_hyphens=False)


def main(argv: list[str] | None = None) -> int:
    """`python -m settings --markdown` or `--ini`: print the configuration reference or the sample config.ini."""
    parser = argparse.ArgumentParser(prog="python -m settings", description=main.__doc__)
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--markdown", action="store_true", help="docs/configuration.md")
    output.add_argument("--ini", action="store_true", help="config.ini")
    args = parser.parse_args(argv)
    sys.stdout.write(markdown_reference() if args.markdown else ini_sample())
    return 0


if __name__ == "__main__":
    sys.exit(main())
