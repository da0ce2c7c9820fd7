"""The WebSocket layer (RFC 6455): from an HTTP upgrade to messages in and frames out, one socket at a time.

One job per module:

- `codec`: the protocol without I/O: frames decoded and encoded, and the
  state machine that decides what each frame means (close handshake, pings);
- `handshake`: the WebSocket port's server and the upgrade's checks;
- `connection`: a socket read when readable (libev watchers), the registry of
  open connections, and the keep-alive;
- `transport`: the writes, bounded, and the close deadline.

It carries bytes and knows nothing of the application's frames, tokens or
actors: an application accepts a connection with a listener and gets a
transport to write with. It may import `protocol` (the close codes),
`metrics`, the pooled greenlets, and of `web` only the generic HTTP pieces
(`web.server`, `web.origins`), never the application (`web.app`,
`web.session`, `web.http_api`, `web.service`).
"""
