"""The front end: WebSocket and HTTP on gevent, feeding the actors' mailboxes.

`python -m web` runs the service (see `web.__main__`). This package moves
bytes and HTTP; the behaviour lives in `actors`, the SQL in `storage`.
Nothing is imported here so that `python -m web` can monkey-patch first.
"""
