"""The service's behaviour as pykka actors on gevent: one job, turning client frames and notify requests
into stored rows and pushes to the right sockets.

- `Node` starts the actor system of one process and builds what its actors share.
- `RouterActor` maps connected user ids to their `UserActor`.
- `UserActor` owns one user's sockets and is the only writer to them.
- `NotificationActor` fans a notify request out to its recipients.
- `actors.messages` holds every message they are sent, and the `Transport` they write to.

May import `routing` (the payloads that reach a user and the `Cluster` port), `storage`, `protocol`,
`settings`, `metrics` and `greenlets`; never `cluster` (a `Cluster` is handed in) nor `web`.
"""

from actors.node import Node
from actors.router import RouterActor
from actors.user import UserActor

__all__ = ["Node", "RouterActor", "UserActor"]
