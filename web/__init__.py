"""The front end: WebSocket and HTTP on gevent, feeding the actors' mailboxes.

Its one job is to turn bytes and HTTP requests into messages for the actors,
and to compose the service (`web.service` wires storage, actors, cluster and
both servers). The behaviour lives in `actors`, the SQL in `storage`. The
WebSocket protocol itself is `web.ws`; beside it here are the generic HTTP
server (`web.server`, `web.headers`, `web.origins`), the application's socket
session (`web.session`), the two Flask apps (`web.app`, `web.http_api`) and
the command-line entry points (`python -m web`, `web.echo`, `web.token`).

It is the top layer: it may import every layer below it (`actors`,
`cluster`, `routing`, `storage`, `protocol`, `settings`, `metrics`,
`greenlets`), and nothing below imports it. Nothing is imported here so
that `python -m web` can monkey-patch first.
"""
