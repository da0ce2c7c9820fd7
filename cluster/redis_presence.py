"""Presence shared through Redis: who has a socket anywhere in the deployment.

Each node keeps in Redis the set of users present on it, and each user the
set of nodes it is present on. Small Lua scripts change both at once, so the
node whose change empties or fills a user's set is the one that announces
the user online or offline, on one channel every node reads; no two nodes
announce the same change. Changes are applied and published in batches: a
thousand users coming online cost one script call and one PUBLISH.

Nodes die without saying so. Each renews a record that expires after
`[cluster] presence_ttl_seconds`; every node looks for expired records at a
third of that interval, and the first to find one takes the dead node's
users out (a script again, so only one node announces them offline). Until
then a dead node's users stay online, which is also what spares users of a
restarting node a flap when they reconnect elsewhere in that time.

Redis may forget everything (a restart) or lose changes (an outage): this
node's own set of present users is the truth, and on every reconnection it
puts Redis back in line with it, announcing whatever differs. While Redis is
down, this node's own changes are announced to this node only.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from typing import Callable, Iterable, Sequence

import gevent
import redis
from gevent.event import Event

import metrics
from routing import PresenceChange, PresenceChanged

log = logging.getLogger(__name__)
CHANNEL = "realtime:presence"
KEY_PREFIX = "realtime:presence:"  # then user:<id>, node:<instance>, alive:<instance>, and `nodes`
COUNT_BATCH = 1000  # users per pipeline of SCARD

# every script gets the key prefix as ARGV[1] and this node's (or the dead node's) instance as ARGV[2]
_PRESENT = """
local prefix, instance = ARGV[1], ARGV[2]
local arrived = {}
for i = 3, #ARGV do
  local user_key = prefix .. 'user:' .. ARGV[i]
  if redis.call('SADD', user_key, instance) == 1 and redis.call('SCARD', user_key) == 1 then
    arrived[#arrived + 1] = ARGV[i]
  end
  redis.call('SADD', prefix .. 'node:' .. instance, ARGV[i])
end
redis.call('SADD', prefix .. 'nodes', instance)
return arrived
"""

_ABSENT = """
local prefix, instance = ARGV[1], ARGV[2]
local left = {}
for i = 3, #ARGV do
  local user_key = prefix .. 'user:' .. ARGV[i]
  if redis.call('SREM', user_key, instance) == 1 and redis.call('SCARD', user_key) == 0 then
    left[#left + 1] = ARGV[i]
  end
  redis.call('SREM', prefix .. 'node:' .. instance, ARGV[i])
end
return left
"""

# a node whose record expired: take its users out (unless it renewed meanwhile), answer those now present nowhere
_REAP = """
local prefix, instance = ARGV[1], ARGV[2]
if redis.call('EXISTS', prefix .. 'alive:' .. instance) == 1 then
  return {}
end
local left = {}
local node_key = prefix .. 'node:' .. instance
for _, user in ipairs(redis.call('SMEMBERS', node_key)) do
  local user_key = prefix .. 'user:' .. user
  if redis.call('SREM', user_key, instance) == 1 and redis.call('SCARD', user_key) == 0 then
    left[#left + 1] = user
  end
end
redis.call('DEL', node_key)
redis.call('SREM', prefix .. 'nodes', instance)
return left
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisPresence:
    """This node's part of the deployment's presence; `RedisCluster` runs it and hands it the channel's messages.

    `set_present` and `set_absent` never block: a greenlet applies them in order, in batches, and renews this
    node's record and reaps dead nodes' between batches.
    """

    def __init__(self, client: redis.Redis, instance: str, ttl_seconds: float, is_up: Callable[[], bool]):
        self._client = client
        self._instance = instance
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._is_up = is_up
        self._present: set[int] = set()  # users with a socket here, as the router said: the truth
        self._pending: deque[tuple[int, int | None]] = deque()  # (user id, None to add or the close time)
        self._wake = Event()
        self._changed: PresenceChanged | None = None
        self._reconcile_due = True
        self._scripts = {
            name: client.register_script(source)
            for name, source in (("present", _PRESENT), ("absent", _ABSENT), ("reap", _REAP))
        }

    def start(self, changed: PresenceChanged) -> gevent.Greenlet:
        self._changed = changed
        return gevent.spawn(self._run)

    def set_present(self, user_ids: Sequence[int]) -> None:
        self._present.update(user_ids)
        self._pending.extend((user_id, None) for user_id in user_ids)
        self._wake.set()

    def set_absent(self, absences: Sequence[tuple[int, int]]) -> None:
        self._present.difference_update(user_id for user_id, _ in absences)
        self._pending.extend(absences)
        self._wake.set()

    def present_among(self, user_ids: Iterable[int]) -> set[int]:
        """Which of these users have a socket on some node; empty while Redis is down."""
        if not self._is_up():
            return set()
        users = list(user_ids)
        present: set[int] = set()
        try:
            for start in range(0, len(users), COUNT_BATCH):
                batch = users[start : start + COUNT_BATCH]
                pipeline = self._client.pipeline(transaction=False)
                for user_id in batch:
                    pipeline.scard(f"{KEY_PREFIX}user:{user_id}")
                present.update(user_id for user_id, count in zip(batch, pipeline.execute()) if count)
        except redis.RedisError as error:
            log.warning("presence: could not ask Redis who is present: %s", error)
            return set()
        return present

    def on_message(self, data: bytes) -> None:
        """A batch of changes some node published, this one included."""
        try:
            published = json.loads(data)
            changes = [PresenceChange(int(user), bool(online), seen) for user, online, seen in published["changes"]]
            origin = published["origin"]
        except (ValueError, KeyError, TypeError) as error:
            metrics.cluster_pushes.count("malformed")
            log.warning("presence: dropped a malformed change: %s", error)
            return
        self._changed(changes, origin == self._instance)

    def reconnected(self) -> None:
        """Redis answers again (or for the first time): set it right before anything else."""
        self._reconcile_due = True
        self._wake.set()

    # ------------------------------------------------------------ the greenlet

    def _run(self) -> None:
        tick = self._ttl_ms / 3000
        next_tick = time.monotonic()
        while True:
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            try:
                if self._reconcile_due and self._is_up():
                    self._reconcile()
                self._apply_pending()
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + tick
                    if self._is_up():
                        if self._renew():
                            self._reconcile()  # stalled past the record's lifetime: other nodes took our users out
                        self._reap()
            except redis.RedisError as error:
                self._reconcile_due = True
                log.warning(
                    "presence: Redis failed (%s); this node's changes are shown here only until it is back", error
                )
            except Exception:  # a bug must not end presence for the node's lifetime
                self._reconcile_due = True
                log.exception("presence: could not apply changes; Redis will be set right from this node's users")

    def _reconcile(self) -> None:
        """Put Redis in line with this node's present users, and announce the difference: after a Redis restart
        all of them come online again (a watcher is never told a state it already has)."""
        self._pending.clear()  # the comparison covers them
        recorded = {int(user) for user in self._client.smembers(f"{KEY_PREFIX}node:{self._instance}")}
        self._renew()
        now = _now_ms()
        self._publish(
            self._apply("present", {user_id: None for user_id in self._present - recorded})
            + self._apply("absent", {user_id: now for user_id in recorded - self._present})
        )
        self._reconcile_due = False

    def _apply_pending(self) -> None:
        """Apply the router's changes in order, one script call per run of arrivals or of departures."""
        while self._pending:
            arriving = self._pending[0][1] is None
            run: dict[int, int | None] = {}
            while self._pending and (self._pending[0][1] is None) == arriving:
                user_id, closed_at = self._pending.popleft()
                run.pop(user_id, None)
                run[user_id] = closed_at
            if not self._is_up():
                self._announce_here(run)
                continue
            try:
                changes = self._apply("present" if arriving else "absent", run)
            except redis.RedisError:
                self._announce_here(run)
                raise
            self._publish(changes)

    def _apply(self, script: str, users: dict[int, int | None]) -> list[PresenceChange]:
        """Run `present` or `absent` for these users (id -> lastSeen); the deployment-wide changes it made."""
        if not users:
            return []
        changed = self._scripts[script](args=[KEY_PREFIX, self._instance, *users])
        return [PresenceChange(int(user), script == "present", users[int(user)]) for user in changed]

    def _announce_here(self, run: dict[int, int | None]) -> None:
        """Redis is down: this node's watchers still see this node's users come and go."""
        metrics.cluster_presence.count("local", len(run))
        self._changed([PresenceChange(user_id, closed is None, closed) for user_id, closed in run.items()], True)

    def _publish(self, changes: list[PresenceChange]) -> None:
        if not changes:
            return
        data = json.dumps(
            {"origin": self._instance, "changes": [[c.user_id, c.online, c.last_seen] for c in changes]},
            separators=(",", ":"),
        )
        self._client.publish(CHANNEL, data)
        metrics.cluster_presence.count("published", len(changes))

    def _renew(self) -> bool:
        """Renew this node's record; True if it had expired (the node may have been reaped)."""
        alive_key = f"{KEY_PREFIX}alive:{self._instance}"
        pipeline = self._client.pipeline(transaction=False)
        pipeline.exists(alive_key)
        pipeline.set(alive_key, b"1", px=self._ttl_ms)
        pipeline.sadd(f"{KEY_PREFIX}nodes", self._instance)
        existed, _, _ = pipeline.execute()
        return not existed

    def _reap(self) -> None:
        """Take out the users of every node whose record expired; only the node whose script found them announces."""
        nodes = [node.decode() for node in self._client.smembers(f"{KEY_PREFIX}nodes")]
        others = [node for node in nodes if node != self._instance]
        if not others:
            return
        pipeline = self._client.pipeline(transaction=False)
        for node in others:
            pipeline.exists(f"{KEY_PREFIX}alive:{node}")
        now = _now_ms()
        for node, alive in zip(others, pipeline.execute()):
            if alive:
                continue
            left = self._scripts["reap"](args=[KEY_PREFIX, node])
            log.info("presence: node %s stopped renewing its record; %d of its users went offline", node, len(left))
            metrics.cluster_presence.count("reaped", len(left))
            self._publish([PresenceChange(int(user), False, now) for user in left])


__all__ = ["CHANNEL", "RedisPresence"]
