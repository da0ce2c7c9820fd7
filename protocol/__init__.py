"""The wire contract (`../shared/protocol.md`) as pure functions: frames and tokens."""
