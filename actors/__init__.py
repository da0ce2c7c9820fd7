"""The service's behaviour as pykka actors on gevent.

- `Node` starts the actor system of one process and holds what actors share.
- `RouterActor` maps connected user ids to their `UserActor`.
- `UserActor` owns one user's sockets and is the only writer to them.
"""

from actors.node import Node
from actors.router import RouterActor
from actors.user import UserActor

__all__ = ["Node", "RouterActor", "UserActor"]
