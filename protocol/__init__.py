"""The wire contract (docs/protocol.md) as pure functions: frames and tokens.

One job: bytes and fields in, checked commands or built frames out, with no
socket, database or actor in sight, so that all of it is unit-tested as it
is. May import only the bottom modules (`settings`, `metrics`, `greenlets`);
it needs none of them.
"""
