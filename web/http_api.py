"""The HTTP API port: the notify endpoints the main web application calls, health and metrics.

A blueprint of small handlers; `create_http_app` registers it on an app
that holds what they need (`HttpApi`). Handlers only parse and answer: a
notify request is handed to the NotificationActor and the handler waits for
its result; no SQL runs here apart from the health check's ping and the
`Idempotency-Key` claims and answers (storage's methods).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from gevent.event import AsyncResult
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

import greenlets
import metrics
from actors import Node
from actors.messages import Notify, NotifyResult
from protocol.notify import (
    IDEMPOTENCY_HEADER,
    KINDS,
    NotifyRequest,
    NotifyRequestError,
    idempotency_key,
    parse_notify_request,
    request_hash,
)
from protocol.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignature, verify
from settings import Settings
from storage import NotFound, Storage, StorageUnavailable
from web.origins import ANY, allowed_origins, cors_allow_origin, origin_allowed

log = logging.getLogger(__name__)
CORS_METHODS = "POST, GET, OPTIONS"
CORS_HEADERS = f"Content-Type, X-Notify-Secret, {TIMESTAMP_HEADER}, {SIGNATURE_HEADER}, {IDEMPOTENCY_HEADER}"
# what the contract's callers send ("JSON or form-encoded"); anything else, text/plain above all, is what a
# browser page may post to another origin without a preflight
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
BODY_TYPES = ("application/json", *FORM_TYPES)
EXTENSION = "realtime.http_api"  # the app's `HttpApi`, in `app.extensions`
IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000  # how long a key's first answer is given again (the contract's 24 h)
# a claim still unanswered after this long was made by a node that stopped mid-request: the key is free again.
# Far above any fan-out's time, which `[notify] request_timeout` does not bound (the job goes on after a 503)
UNANSWERED_CLAIM_MS = 15 * 60 * 1000


@dataclass(frozen=True)
class HttpApi:
    """What the blueprint's handlers need, set up once per app by `create_http_app`."""

    node: Node
    notify_secret: bytes  # empty: no secret, local callers only
    signature_max_skew: float
    cors_origins: frozenset[str]  # see web.origins
    max_body_bytes: int
    notify_timeout: float
    registry: CollectorRegistry  # what GET /metrics exposes


api = Blueprint("http_api", __name__)


def create_http_app(settings: Settings, node: Node) -> Flask:
    """The HTTP API port's app: the blueprint, around `node`."""
    app = Flask("realtime.http")
    app.config["MAX_CONTENT_LENGTH"] = settings.limits.max_body_bytes
    server = settings.server
    app.extensions[EXTENSION] = HttpApi(
        node=node,
        notify_secret=settings.notify.secret.encode("utf-8"),
        signature_max_skew=settings.notify.signature_max_skew,
        cors_origins=allowed_origins(settings.notify.cors_origins, server.demo, server.ws_port),
        max_body_bytes=settings.limits.max_body_bytes,
        notify_timeout=settings.notify.request_timeout,
        registry=_metrics_registry(node),
    )
    app.register_blueprint(api)
    return app


def _api() -> HttpApi:
    return current_app.extensions[EXTENSION]


def _metrics_registry(node: Node) -> CollectorRegistry:
    """The process's, the service's and the node's metrics, in a registry of this app's own."""
    registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    for metric in metrics.ALL:
        registry.register(metric)
    registry.register(_NodeCollector(node))
    return registry


@api.before_app_request
def preflight_and_caller_check() -> Response | tuple[Response, int] | None:
    """A preflight is answered at once; a notify call only from a caller allowed to make it."""
    if request.method == "OPTIONS":
        return Response(status=204)
    if not request.path.startswith("/notify/"):
        return None
    config = _api()
    if config.notify_secret:
        return _check_caller(config.notify_secret, config.signature_max_skew)
    return _check_local_caller(config.cors_origins)


@api.after_app_request
def cors(response: Response) -> Response:
    cors_origins = _api().cors_origins
    allow = cors_allow_origin(request.headers.get("Origin"), cors_origins)
    if ANY not in cors_origins:
        response.vary.add("Origin")  # the answer depends on the Origin: shared caches must know
    if allow is not None:
        response.headers["Access-Control-Allow-Origin"] = allow
    response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
    response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@api.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> tuple[Response, int]:
    response, status = _failure(error.code or 500, error.description or error.name)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(error.valid_methods)
    return response, status


@api.post("/notify/<any(" + ", ".join(KINDS) + "):kind>")
def notify(kind: str) -> tuple[Response, int]:
    """Parse the request, hand it to the NotificationActor and answer with its result."""
    config = _api()
    if request.mimetype not in BODY_TYPES:
        return _failure(415, f"the body must be sent as {' or '.join(BODY_TYPES)}")
    fields = _body_fields(config.max_body_bytes)
    if fields is None:
        return _failure(400, "body must be a JSON object or a form")
    try:
        key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
        notify_request = parse_notify_request(kind, fields)
    except NotifyRequestError as error:
        return _failure(400, str(error))
    if key is not None:
        return _notify_once(config, key, notify_request)
    return _json_answer(*_notify(config.node, notify_request, config.notify_timeout, AsyncResult()))


def _notify_once(config: HttpApi, key: str, notify_request: NotifyRequest) -> tuple[Response, int]:
    """A request with an `Idempotency-Key`: the first one with the key runs, and its answer is kept for 24 hours;
    a repeat gets that answer again (503 while it is still being worked out), another request with the key 409.

    The answer kept is the job's, even when it comes after this handler gave up waiting; a job that failed
    (5xx) stored nothing to answer for, so its key is released and a retry runs anew.
    """
    storage = config.node.storage
    digest = request_hash(notify_request)
    now = int(time.time() * 1000)
    try:
        held = storage.claim_idempotency_key(key, digest, now, now - IDEMPOTENCY_WINDOW_MS, now - UNANSWERED_CLAIM_MS)
    except StorageUnavailable:
        return _failure(503, "storage is unavailable, try again")
    if held is not None:
        if held.request_hash != digest:
            return _failure(409, f"this {IDEMPOTENCY_HEADER} was used for another request")
        if held.status is None:
            response, status = _failure(503, f"the first request with this {IDEMPOTENCY_HEADER} is still running")
            response.headers["Retry-After"] = "1"
            return response, status
        return Response(held.answer, status=held.status, mimetype="application/json"), held.status
    reply = AsyncResult()
    answer = _notify(config.node, notify_request, config.notify_timeout, reply)
    if reply.ready():
        _keep_answer(storage, key, reply)  # before answering: a repeat sent on receipt finds the answer kept
    else:
        reply.rawlink(lambda done: greenlets.run_soon(_keep_answer, storage, key, done))
    return _json_answer(*answer)


def _keep_answer(storage: Storage, key: str, reply: AsyncResult) -> None:
    """Keep the finished job's answer for the repeats of its key, or release the key if the job failed."""
    status, body = _outcome(reply)
    try:
        if status >= 500:
            storage.release_idempotency_key(key)
        else:
            storage.record_idempotent_answer(key, status, _json_text(body))
    except StorageUnavailable as error:  # the claim stays unanswered: repeats get 503 until UNANSWERED_CLAIM_MS
        log.warning("notify: the answer for an %s was not kept: %s", IDEMPOTENCY_HEADER, error)


def _notify(node: Node, notify_request: NotifyRequest, timeout: float, reply: AsyncResult) -> tuple[int, dict]:
    """Hand the request to the NotificationActor, and wait for its result on `reply` for at most `timeout`."""
    node.notifier.tell(Notify(notify_request, reply))
    reply.wait(timeout)
    if not reply.ready():
        return 503, {"success": False, "error": "notifications are still being stored; not confirmed in time"}
    return _outcome(reply)


def _json_text(body: dict) -> str:
    """A notify answer's body as the first answer and its repeats all send it, byte for byte (as jsonify would)."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True) + "\n"


def _json_answer(status: int, body: dict) -> tuple[Response, int]:
    return Response(_json_text(body), status=status, mimetype="application/json"), status


def _outcome(reply: AsyncResult) -> tuple[int, dict]:
    """(status, body) of a finished notify job."""
    if reply.successful():
        result: NotifyResult = reply.value
        return 200, {"success": True, "recipients": result.recipients, "online": result.online}
    error = reply.exception
    if isinstance(error, NotFound):
        return 404, {"success": False, "error": str(error)}
    if isinstance(error, StorageUnavailable):
        return 503, {"success": False, "error": "storage is unavailable, try again"}
    return 500, {"success": False, "error": "internal error"}


@api.get("/healthz")
def healthz() -> tuple[Response, int]:
    node = _api().node
    users, sockets = node.connected_count()
    # `cluster` is `degraded` while Redis is unreachable: this node still serves its own users, so it stays 200
    cluster = node.cluster
    node_state = {"users": users, "sockets": sockets, "node": cluster.node_name, "cluster": cluster.status()}
    if not database_up(node):
        return jsonify({"status": "unavailable", "database": "down", **node_state}), 503
    return jsonify({"status": "ok", "database": "ok", **node_state}), 200


def database_up(node: Node) -> bool:
    """Whether the database answers a query: `/healthz` answers 503 and `realtime_database_up` is 0 when not."""
    try:
        node.storage.check()
    except StorageUnavailable as error:
        log.warning("health check: database unavailable: %s", error)
        return False
    return True


@api.get("/metrics")
def prometheus_metrics() -> Response:
    return Response(generate_latest(_api().registry), mimetype=CONTENT_TYPE_LATEST)


class _NodeCollector:
    """Gauges read from the node at scrape time."""

    def __init__(self, node: Node):
        self._node = node

    def collect(self):
        users, sockets = self._node.connected_count()
        yield GaugeMetricFamily("realtime_connected_users", "Users with an open socket on this node", value=users)
        yield GaugeMetricFamily("realtime_open_sockets", "Authenticated sockets open on this node", value=sockets)
        backlog = GaugeMetricFamily("realtime_write_backlog", "Rows waiting for a group commit", labels=["writer"])
        for writer in (self._node.message_writer, self._node.delivery_writer, self._node.summary_reader):
            backlog.add_metric([writer.name], writer.backlog)
        yield backlog
        yield GaugeMetricFamily(
            "realtime_db_in_use",
            "Database transactions holding or waiting for a connection",
            value=self._node.storage.engine.in_use,
        )
        depths = GaugeMetricFamily(
            "realtime_mailbox_depth",
            "Messages waiting in actor mailboxes; for user actors the deepest one",
            labels=["actor"],
        )
        for name, depth in self._node.mailbox_depths().items():
            depths.add_metric([name], depth)
        yield depths
        yield GaugeMetricFamily(
            "realtime_database_up",
            "1 while the database answers a query, 0 while it does not (then /healthz answers 503)",
            value=int(database_up(self._node)),
        )
        yield GaugeMetricFamily(
            "realtime_cluster_up",
            "1 while this node reaches the other nodes (always with backend local), 0 while Redis is unreachable",
            value=int(self._node.cluster.status() != "degraded"),
        )


def _check_local_caller(cors_origins: frozenset[str]) -> tuple[Response, int] | None:
    """Without `[notify] secret`: the caller is on this machine, and a browser page's origin is listed."""
    if not is_loopback(request.remote_addr):
        return _failure(403, "without [notify] secret only local callers are answered")
    # a local browser is a local caller too: only the pages of [notify] cors_origins may use it
    if not origin_allowed(request.headers.get("Origin"), cors_origins):
        return _failure(403, "pages of this Origin may not call the notify API (see [notify] cors_origins)")
    return None


def _check_caller(secret: bytes, max_skew: float) -> tuple[Response, int] | None:
    """With `[notify] secret` set: the caller shows the secret, or signs the request with it (protocol.signing)."""
    offered = request.headers.get("X-Notify-Secret")
    if offered is not None:
        if hmac.compare_digest(offered.encode("utf-8"), secret):
            return None
        return _failure(401, "wrong X-Notify-Secret")
    if request.headers.get(SIGNATURE_HEADER) is None:
        return _failure(401, f"missing X-Notify-Secret or {SIGNATURE_HEADER}")
    try:
        verify(
            secret,
            request.method,
            request.path,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            request.get_data(),
            time.time(),
            max_skew,
        )
    except BadSignature as error:
        return _failure(401, f"bad request signature: {error}")
    return None


def _body_fields(max_body_bytes: int) -> dict[str, Any] | None:
    """The request's fields from a form or a JSON object body (legacy callers send either)."""
    data = request.get_data()  # cached: form parsing below reads it again
    # a chunked body has no Content-Length to refuse up front; the stream just stops at the limit
    if request.content_length is None and len(data) >= max_body_bytes and request.stream.read(1):
        raise RequestEntityTooLarge()
    if request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    if not data.strip():
        return {}
    try:
        fields = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return fields if isinstance(fields, dict) else None


def _failure(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"success": False, "error": message}), status


def is_loopback(address: str | None) -> bool:
    """True for 127.0.0.0/8, ::1, and IPv4 loopback seen through an IPv6 socket (::ffff:127.0.0.1)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed.is_loopback
