"""Chat checks over the test client: a message goes through, the service still works, a history page.

They let a test that attacks or refuses something prove that the service, or the very socket,
is still fine afterwards.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.helpers.client import Client
from tests.helpers.server import ServerProcess

MAX_CONTENT = 4000
MAX_FRAME = 65536
_ids = itertools.count(1)


def unique(prefix: str = "c") -> str:
    return f"{prefix}-{next(_ids)}"


def assert_message_goes_through(sender: Client, sender_id: int, recipient: Client, recipient_id: int) -> int:
    """A valid message from sender to recipient: acknowledged and pushed; returns its messageId."""
    client_msg_id = unique("ok")
    content = f"hello {client_msg_id}"
    sender.message(recipient_id, content, client_msg_id)
    sent = sender.expect("message_sent", clientMsgId=client_msg_id)
    assert sent["to"] == recipient_id
    received = recipient.expect("message", messageId=sent["messageId"])
    assert received["from"] == sender_id and received["to"] == recipient_id
    assert received["content"] == content and received["clientMsgId"] == client_msg_id
    return sent["messageId"]


def assert_service_works(server: ServerProcess) -> None:
    """Two users nobody else uses can still exchange a message, both ways."""
    a_id, b_id = server.add_users(2)
    with server.connect(a_id) as a, server.connect(b_id) as b:
        assert_message_goes_through(a, a_id, b, b_id)
        assert_message_goes_through(b, b_id, a, a_id)


def history(client: Client, with_user: int) -> list[dict[str, Any]]:
    client.send({"type": "history", "with": with_user})
    return client.expect("history", **{"with": with_user})["messages"]


def message_frames(client: Client) -> list[dict[str, Any]]:
    """`message` frames received but not yet taken by `expect`."""
    return [frame for frame in client.received if frame.get("type") == "message"]


def padded_message(to: int, total_bytes: int, client_msg_id: str) -> str:
    """The JSON text of a valid-looking `message` frame of exactly `total_bytes` UTF-8 bytes."""
    skeleton = json.dumps({"type": "message", "to": to, "clientMsgId": client_msg_id, "content": ""})
    text = skeleton[:-2] + "x" * (total_bytes - len(skeleton.encode())) + '"}'
    assert len(text.encode()) == total_bytes
    json.loads(text)
    return text
