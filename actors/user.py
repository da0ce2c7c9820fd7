"""UserActor: one connected user on this node, the only writer to the user's sockets."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import gevent
import pykka

import metrics
from actors.messages import (
    AttachSocket,
    CatchUp,
    ClientFrame,
    CloseAll,
    DetachSocket,
    FlushLikes,
    PresentAmong,
    Stored,
    ToUser,
    Transport,
    WatchedPresence,
    WatchList,
)
from actors.rate_limit import Admission, SendLimiters
from actors.runtime import GeventActor
from protocol import frames
from protocol.frames import CloseCode, ErrorCode, FrameError, Limits
from protocol.notify import notification_text
from protocol.tokens import InvalidToken, authenticate
from routing import Cluster, DeliverMessage, DeliverNotification, PushFrame
from storage import (
    BACKLOG_PAGE,
    ConnectSummary,
    Delivery,
    Forbidden,
    Message,
    MessageDraft,
    NotFound,
    Notification,
    Storage,
    StorageUnavailable,
    StoreResult,
)
from storage.batching import Batcher

log = logging.getLogger(__name__)
RECENT_MESSAGES = 4096
BACKLOG_DRAIN_TIMEOUT = 30.0
SUMMARY_TIMEOUT = 10.0  # seconds a connecting user waits for its unread counts
PENDING_DELIVERIES_TIMEOUT = 2.0  # how long a history request waits for delivery marks still being stored
SUBSCRIBE_TIMEOUT = 2.0  # how long a connecting user waits for this node's subscription to the user's pushes
TOO_MANY_FRAMES = "too many frames, slow down"
# frames whose only effect is an answer on the socket that sent them; the others change state and are handled
# even when their socket is closing (the peer may have sent them just before its close frame)
ANSWER_ONLY = frozenset(
    {frames.FetchHistory, frames.FetchConversations, frames.FetchNotifications, frames.Ping, frames.Connect}
)
TOO_MANY_MESSAGES = "too many messages or too much content, slow down"
TYPING_INTERVAL = 2.0  # seconds: at most one `typing: true` forwarded per sender and recipient in this time
TYPING_TRACKED_MAX = 1000  # recipients remembered per user before those no longer shown typing are forgotten
TYPING_SHOWN = 6.0  # seconds a client shows `typing` unless renewed (the contract's "about 6 s")
PRESENT_HERE_TIMEOUT = 2.0  # how long a `watch` answer waits for the router's list of users present on this node
LAST_SEEN_PENDING_TIMEOUT = 2.0  # how long a `watch` answer waits for lastSeen values still being stored


@dataclass(frozen=True, slots=True)
class _TypingTold:
    """What this user last told one recipient: when it last forwarded a start, and whether a stop is owed."""

    started: float  # monotonic
    active: bool


@dataclass(frozen=True, slots=True)
class UserContext:
    """What the UserActors of one node share, and all they use of it; `Node` builds it once."""

    storage: Storage  # the reads and marks a frame asks for
    router: pykka.ActorRef  # to reach other users
    cluster: Cluster  # to reach this user's sockets on other nodes
    message_writer: Batcher[MessageDraft, StoreResult]
    delivery_writer: Batcher[Message, Delivery | None]  # only waited on here: `mark_delivered` submits to it
    summary_reader: Batcher[int, ConnectSummary | None]
    last_seen_writer: Batcher[tuple[int, int], None]  # only waited on here: the router's presence records lastSeen
    mark_delivered: Callable[[Message, int], None]  # (message, recipient id): a socket of the recipient has it
    send_limiters: SendLimiters
    limits: Limits
    auth_secret: str
    like_group_seconds: float
    now_ms: Callable[[], int]


class UserActor(GeventActor):
    """Owns every socket of one user on this node.

    Frames from the user's sockets, messages for the user and receipts for the
    user all arrive in this mailbox, so writes to the sockets are serialised
    without locks. Chat messages go to the group-commit writer and come back
    as `Stored`, so the actor never waits for a commit.
    """

    def __init__(self, user_id: int, context: UserContext):
        super().__init__()
        self.user_id = user_id
        self._context = context
        self._sockets: dict[int, Transport] = {}
        self._pushed: OrderedDict[int, None] = OrderedDict()  # ids of messages recently pushed here
        self._like_windows: dict[int, list[tuple[Notification, str]]] = {}  # post id -> likes held back
        self._rate = context.send_limiters.of(user_id)  # shared by the user's sockets on this node, and reconnects
        self._typing_forwarded: dict[int, _TypingTold] = {}  # recipient id -> what it was last told
        # socket id -> each watched user it may see -> the online state it was last told (at most MAX_WATCHED)
        self._watches: dict[int, dict[int, bool]] = {}
        self._handlers: dict[type, Callable[[Transport, Any], None]] = {
            frames.SendMessage: self._send_message,
            frames.MarkRead: self._mark_read,
            frames.FetchHistory: self._history,
            frames.FetchConversations: self._conversations,
            frames.FetchNotifications: self._notifications,
            frames.MarkNotificationRead: self._mark_notification_read,
            frames.Ping: self._ping,
            frames.Connect: self._reauthenticate,
            frames.Typing: self._typing,
            frames.DeleteMessage: self._delete_message,
            frames.Watch: self._watch,
        }

    def on_stop(self) -> None:
        self._context.send_limiters.release(self.user_id, self._rate)

    def on_receive(self, message: Any) -> None:
        match message:
            case ClientFrame(transport=transport, text=text):
                self._on_frame(transport, text)
            case DeliverMessage(message=chat_message):
                self._deliver(chat_message)
            case PushFrame(text=text, exclude=exclude):
                self._push(text, exclude)
            case DeliverNotification(notification=notification, actor_name=actor_name):
                self._notify(notification, actor_name)
            case WatchedPresence(change=change, text=text):
                self._push_presence(change.user_id, change.online, text)
            case CatchUp():
                self._catch_up()
                self._recheck_presence()
            case FlushLikes(post_id=post_id):
                self._flush_likes(post_id)
            case Stored():
                self._guarded(message.transport, frames.command_ref(message.command), self._on_stored, message)
            case AttachSocket(transport=transport):
                self._guarded(transport, {"type": "connect"}, self._attach, transport)
            case DetachSocket(transport=transport):
                self._sockets.pop(transport.id, None)
                if self._watches.pop(transport.id, None):
                    self._tell_watch_list()
            case CloseAll(code=code, reason=reason):
                for transport in self._sockets.values():
                    transport.close(code, reason)
            case _:
                log.warning("user %s: unexpected message %r", self.user_id, message)

    # ------------------------------------------------------------ sockets

    def _attach(self, transport: Transport) -> None:
        # what other nodes publish from now on reaches this socket, and what came before is in the summary
        self._context.cluster.wait_subscribed(self.user_id, SUBSCRIBE_TIMEOUT)
        try:
            summary = self._connect_summary()
        except StorageUnavailable:
            transport.write(frames.error_frame(ErrorCode.UNAVAILABLE, "storage is unavailable", {"type": "connect"}))
            transport.close(CloseCode.TRY_AGAIN_LATER, "storage is unavailable")
            return
        if summary is None:
            reason = f"user {self.user_id} is not in the platform's users table"
            log.info(
                "socket %s refused: %s (the platform fills `users`; the token itself was valid)", transport.id, reason
            )
            transport.write(frames.error_frame(ErrorCode.UNAUTHORIZED, reason, {"type": "connect"}))
            transport.close(CloseCode.UNAUTHORIZED, reason)
            return
        self._sockets[transport.id] = transport
        transport.write(frames.connected_frame(self.user_id, summary.unread_messages, summary.unread_notifications))
        self._send_backlog(transport, summary.backlog)

    def _connect_summary(self) -> ConnectSummary | None:
        """Unread counts and first backlog page of this user (None if unknown), read with others connecting."""
        return self._context.summary_reader.call(self.user_id, SUMMARY_TIMEOUT, key=self.user_id)

    def _send_backlog(self, transport: Transport, page: list[Message]) -> None:
        """Push the user's undelivered messages to a new socket, oldest first, as fast as it reads them.

        `page` is the first page, read with the unread counts.
        """
        while True:
            for message in page:
                self._remember_pushed(message.id)
                transport.write(_message_frame(message), self._delivery_marker(message))
            if len(page) < BACKLOG_PAGE:
                return
            if not transport.wait_for_room(BACKLOG_DRAIN_TIMEOUT):
                transport.close(CloseCode.TRY_AGAIN_LATER, "too slow to receive the backlog")
                return
            page = self._context.storage.undelivered_messages(self.user_id, page[-1].id, BACKLOG_PAGE)

    def _push(self, text: str, exclude: int | None = None, on_written: Callable[[], None] | None = None) -> None:
        for transport in self._sockets.values():
            if transport.id != exclude:
                transport.write(text, on_written)

    def _push_everywhere(self, text: str, exclude: int | None = None) -> None:
        """Push to this user's sockets here but `exclude`, and to those on other nodes."""
        self._push(text, exclude)
        self._context.cluster.publish(self.user_id, PushFrame(text))

    # ------------------------------------------------------------ client frames

    def _on_frame(self, transport: Transport, text: str) -> None:
        if transport.id not in self._sockets:
            return  # closed, or its connect was refused
        admission = self._rate.admit_frame()
        try:
            command = frames.parse_frame(text, self._context.limits)
        except FrameError as error:
            metrics.frames_received.count("invalid")
            if admission is Admission.ADMITTED:
                transport.write(frames.error_frame(error.code, error.message, error.ref))
            else:
                self._refuse_over_rate(transport, error.ref or {}, admission, TOO_MANY_FRAMES)
            return
        except Exception:  # a parser bug must cost one frame, not the user's actor
            log.exception("user %s: could not parse a frame", self.user_id)
            transport.write(frames.error_frame(ErrorCode.INTERNAL, "internal error"))
            return
        metrics.frames_received.count(frames.command_type(command))
        ref = frames.command_ref(command)
        if admission is not Admission.ADMITTED:
            self._refuse_over_rate(transport, ref, admission, TOO_MANY_FRAMES)
            return
        if transport.closing and type(command) in ANSWER_ONLY:
            return  # nobody will read the answer: a page for a socket closed meanwhile costs its queries for nothing
        if isinstance(command, frames.SendMessage):
            admission = self._rate.admit_message(command.content)
            if admission is not Admission.ADMITTED:
                self._refuse_over_rate(transport, ref, admission, TOO_MANY_MESSAGES)
                return
        self._guarded(transport, ref, self._handlers[type(command)], transport, command)

    def _refuse_over_rate(self, transport: Transport, ref: dict[str, Any], admission: Admission, why: str) -> None:
        """Refuse one frame; on EXCEEDED close the socket, and drop what it still sends: one log line per socket."""
        transport.write(frames.error_frame(ErrorCode.RATE_LIMITED, why, ref))
        if admission is Admission.EXCEEDED:
            del self._sockets[transport.id]
            log.info("socket %s: user %s kept sending over the rate limit; closing", transport.id, self.user_id)
            transport.close(CloseCode.RATE_LIMITED, "rate limit exceeded repeatedly")

    def _guarded(self, transport: Transport, ref: dict[str, Any], handler: Callable[..., None], *args: Any) -> None:
        """Run a handler, answering its failure with the contract's error code; the actor lives on."""
        try:
            handler(*args)
        except NotFound as error:
            transport.write(frames.error_frame(ErrorCode.NOT_FOUND, str(error), ref))
        except Forbidden as error:
            transport.write(frames.error_frame(ErrorCode.FORBIDDEN, str(error), ref))
        except FrameError as error:
            transport.write(frames.error_frame(error.code, error.message, ref))
        except StorageUnavailable:
            transport.write(frames.error_frame(ErrorCode.UNAVAILABLE, "storage is unavailable, try again", ref))
        except Exception:
            log.exception("user %s: %s failed", self.user_id, ref.get("type"))
            transport.write(frames.error_frame(ErrorCode.INTERNAL, "internal error", ref))

    def _send_message(self, transport: Transport, command: frames.SendMessage) -> None:
        draft = MessageDraft(
            sender_id=self.user_id,
            recipient_id=command.to,
            content=command.content,
            client_msg_id=command.client_msg_id,
            created_at=self._context.now_ms(),
        )
        reply = self.actor_ref.tell
        self._context.message_writer.submit(
            draft,
            lambda outcome: reply(Stored(transport=transport, command=command, outcome=outcome)),
            key=self.user_id,
        )

    def _on_stored(self, stored: Stored) -> None:
        if isinstance(stored.outcome, Exception):
            raise stored.outcome
        result: StoreResult = stored.outcome
        message = result.message
        if result.created:
            metrics.message_store_seconds.observe(max(0, self._context.now_ms() - message.created_at) / 1000)
        if result.blocked:
            raise Forbidden(f"user {stored.command.to} does not accept messages from you")
        if message is None:
            raise NotFound(f"user {stored.command.to} does not exist")
        stored.transport.write(
            frames.message_sent_frame(message.id, message.client_msg_id, message.recipient_id, message.created_at)
        )
        if result.created and message.recipient_id != self.user_id:
            self._push_everywhere(_message_frame(message), exclude=stored.transport.id)
        if result.created or (message.status == "sent" and message.deleted_at is None):
            # a resend of a message not yet delivered routes it again (the recipient drops repeats); a resend of a
            # deleted one must not bring it back
            self._context.router.tell(ToUser(message.recipient_id, DeliverMessage(message)))

    def _mark_read(self, transport: Transport, command: frames.MarkRead) -> None:
        mark = self._context.storage.mark_read(self.user_id, command.message_id, self._context.now_ms())
        if mark is None:
            return  # the message was deleted: its receipts stop
        frame = frames.message_read_frame(mark.message_id, mark.reader_id, mark.read_at)
        self._push_everywhere(frame, exclude=transport.id)
        if mark.sender_id != self.user_id:
            self._context.router.tell(ToUser(mark.sender_id, PushFrame(frame)))

    def _history(self, transport: Transport, command: frames.FetchHistory) -> None:
        # messages this user has already received must not show as merely sent
        self._context.delivery_writer.wait_committed(self.user_id, PENDING_DELIVERIES_TIMEOUT)
        messages = self._context.storage.history(self.user_id, command.with_user, command.before, command.limit)
        entries = [_history_entry(m) for m in messages]
        transport.write(frames.history_frame(command.with_user, entries))

    def _conversations(self, transport: Transport, command: frames.FetchConversations) -> None:
        # like history: messages this user has already received must not show as merely sent
        self._context.delivery_writer.wait_committed(self.user_id, PENDING_DELIVERIES_TIMEOUT)
        page = self._context.storage.conversations(self.user_id, command.before, command.limit)
        entries = [
            {
                "with": c.peer_id,
                "lastMessage": _history_entry(c.last_message),
                "unread": c.unread,
            }
            for c in page
        ]
        transport.write(frames.conversations_frame(entries))

    def _delete_message(self, transport: Transport, command: frames.DeleteMessage) -> None:
        """Erase one of this user's messages and tell every socket of both sides; deleting again tells them again,
        with the first deletion's time."""
        deletion = self._context.storage.delete_message(self.user_id, command.message_id, self._context.now_ms())
        frame = frames.message_deleted_frame(deletion.message_id, deletion.deleted_at)
        self._push_everywhere(frame)
        if deletion.recipient_id != self.user_id:
            self._context.router.tell(ToUser(deletion.recipient_id, PushFrame(frame)))

    def _notifications(self, transport: Transport, command: frames.FetchNotifications) -> None:
        stored = self._context.storage.notifications(self.user_id, command.before, command.limit)
        entries = [
            frames.notification_entry(n.id, n.type, n.actor_id, n.post_id, n.comment_id, n.created_at, n.text, n.read)
            for n in stored
        ]
        transport.write(frames.notifications_frame(entries))

    def _mark_notification_read(self, transport: Transport, command: frames.MarkNotificationRead) -> None:
        read_at = self._context.now_ms()
        storage = self._context.storage
        if command.notification_ids is None:
            storage.mark_notifications_read(self.user_id, command.notification_id, read_at)
            self._push_everywhere(frames.notification_read_frame(command.notification_id, read_at))
            return
        marked = storage.mark_notification_list_read(self.user_id, command.notification_ids, read_at)
        self._push_everywhere(frames.notification_read_frame(None, read_at, marked))

    def _ping(self, transport: Transport, command: frames.Ping) -> None:
        transport.write(frames.pong_frame())

    def _typing(self, transport: Transport, command: frames.Typing) -> None:
        """Tell `to` this user is typing, at most once per TYPING_INTERVAL, or that it stopped, if it was told
        it started; nothing is stored, and nothing is answered: the router drops it when `to` is offline, and it
        is dropped here when either of the two has blocked the other."""
        now = time.monotonic()
        last = self._typing_forwarded.get(command.to)
        if command.typing:
            if last is not None and now - last.started < TYPING_INTERVAL:
                return
        elif last is None or not last.active:
            return  # nothing to stop: a stream of stops would otherwise all be forwarded
        storage = self._context.storage
        if self.user_id in storage.blocked_by(command.to) or command.to in storage.blocked_by(self.user_id):
            return  # typing is shown neither to a user who blocked the sender nor to one the sender blocked
        if len(self._typing_forwarded) >= TYPING_TRACKED_MAX:
            self._typing_forwarded = {
                to: told for to, told in self._typing_forwarded.items() if now - told.started < TYPING_SHOWN
            }
        self._typing_forwarded[command.to] = _TypingTold(now if command.typing else last.started, command.typing)
        frame = frames.typing_frame(self.user_id, command.typing)
        self._context.router.tell(ToUser(command.to, PushFrame(frame)))

    def _watch(self, transport: Transport, command: frames.Watch) -> None:
        """Replace this socket's watch list and answer with each requested user's presence. The users this one
        may not see get `online: null` and are not watched; the others' changes are pushed to this socket."""
        visible = self._context.storage.presence_visible(self.user_id, command.user_ids)
        self._watches[transport.id] = dict.fromkeys(visible, False)
        self._tell_watch_list()  # before reading the states: a change after the read then comes as a push
        try:
            states = self._presence_of(visible)
        except Exception:  # answered with an error: this socket watches nothing
            del self._watches[transport.id]
            self._tell_watch_list()
            raise
        self._watches[transport.id] = {user_id: online for user_id, (online, _) in states.items()}
        entries = [
            frames.presence_entry(user_id, *states[user_id])
            if user_id in states
            else frames.presence_entry(user_id, None, None)
            for user_id in command.user_ids
        ]
        transport.write(frames.presence_frame(entries))

    def _tell_watch_list(self) -> None:
        """Tell the router every user a socket of this user here watches (at most MAX_WATCHED per socket)."""
        watched = frozenset(user_id for states in self._watches.values() for user_id in states)
        self._context.router.tell(WatchList(self.user_id, watched))

    def _presence_of(self, user_ids: set[int]) -> dict[int, tuple[bool, int | None]]:
        """(online, lastSeen ms if offline and known) of each user: present on this node, or on another."""
        if not user_ids:
            return {}
        try:
            here = self._context.router.ask(PresentAmong(tuple(user_ids)), timeout=PRESENT_HERE_TIMEOUT)
        except pykka.Timeout:
            raise FrameError(ErrorCode.UNAVAILABLE, "presence is unavailable, try again") from None
        online = here | self._context.cluster.present_among(user_ids - here)
        offline = user_ids - online
        last_seen: dict[int, int] = {}
        if offline:
            # the offline changes this node decided are queued before their pushes: a watcher told one sees it here
            self._context.last_seen_writer.wait_committed(0, LAST_SEEN_PENDING_TIMEOUT)
            last_seen = self._context.storage.last_seen(sorted(offline))
        return {user_id: (user_id in online, last_seen.get(user_id)) for user_id in user_ids}

    def _push_presence(self, user_id: int, online: bool, text: str) -> None:
        """Push a watched user's new state to the sockets that watch it and were last told otherwise, unless that
        user has blocked this one since the watch (blocks as cached by storage: a new one counts within
        `blocks_cache_seconds`)."""
        stale = [
            socket_id
            for socket_id, states in self._watches.items()
            if socket_id in self._sockets and states.get(user_id, online) is not online
        ]
        if not stale:
            return
        try:
            if self.user_id in self._context.storage.blocked_by(user_id):
                return
        except StorageUnavailable:
            log.warning("user %s: presence of %s not pushed: blocks unreadable", self.user_id, user_id)
            return
        for socket_id in stale:
            self._watches[socket_id][user_id] = online
            self._sockets[socket_id].write(text)

    def _recheck_presence(self) -> None:
        """After an outage of the cluster: changes may have been lost, so read every watched user's state again and
        push those that differ from what the sockets were told."""
        watched = {user_id for states in self._watches.values() for user_id in states}
        try:
            states = self._presence_of(watched)
        except (StorageUnavailable, FrameError) as error:
            log.warning("user %s: presence not re-checked after the outage: %s", self.user_id, error)
            return
        for user_id, (online, last_seen) in states.items():
            text = frames.presence_frame([frames.presence_entry(user_id, online, last_seen)])
            self._push_presence(user_id, online, text)

    def _reauthenticate(self, transport: Transport, command: frames.Connect) -> None:
        """A `connect` on an open socket: with a valid token for this user, answer `connected` again."""
        try:
            user_id = authenticate(self._context.auth_secret, command.token, command.user_id)
        except InvalidToken as error:
            raise FrameError(ErrorCode.UNAUTHORIZED, f"invalid token: {error}") from None
        if user_id != self.user_id:
            transport.write(
                frames.error_frame(
                    ErrorCode.UNAUTHORIZED, "this socket is connected as another user", {"type": "connect"}
                )
            )
            return
        summary = self._connect_summary()
        if summary is None:
            raise NotFound("unknown user")
        transport.write(frames.connected_frame(self.user_id, summary.unread_messages, summary.unread_notifications))

    # ------------------------------------------------------------ messages for this user

    def _deliver(self, message: Message) -> None:
        if message.id in self._pushed or not self._sockets:
            return
        self._remember_pushed(message.id)
        self._push(_message_frame(message), on_written=self._delivery_marker(message))

    def _catch_up(self) -> None:
        """Push the first page of this user's undelivered messages that are not on its sockets yet: other nodes
        stored them while their pushes could not travel. Read with other users' in one query."""
        if not self._sockets:
            return
        try:
            summary = self._connect_summary()
        except StorageUnavailable:
            log.warning("user %s: undelivered messages not caught up: storage unavailable", self.user_id)
            return
        for message in summary.backlog if summary else ():
            self._deliver(message)

    # ------------------------------------------------------------ notifications for this user

    def _notify(self, notification: Notification, actor_name: str) -> None:
        """Push a notification; likes of a post that had one pushed moments ago wait to be grouped."""
        held = self._like_windows.get(notification.post_id) if notification.type == "like" else None
        if held is not None:
            held.append((notification, actor_name))
            return
        self._push(_notification_frame(notification))
        if notification.type == "like":
            self._open_like_window(notification.post_id)

    def _open_like_window(self, post_id: int) -> None:
        self._like_windows[post_id] = []
        gevent.spawn_later(self._context.like_group_seconds, _tell_quietly, self.actor_ref, FlushLikes(post_id))

    def _flush_likes(self, post_id: int) -> None:
        """The window ended: push the likes held back as one frame, and keep grouping while they come.

        A frame standing for several likes lists their ids (`notificationIds`, newest first): each is one unread
        row, so a badge adds them all and reading the item marks them all. The like pushed before the window is
        not among them: its own frame counted it.
        """
        held = self._like_windows.pop(post_id, None)
        if not held:
            return
        latest, latest_name = held[-1]
        actor_ids = list(dict.fromkeys(n.actor_id for n, _ in reversed(held)))  # distinct, newest first
        ids = [n.id for n, _ in reversed(held)] if len(held) > 1 else None
        others = len(actor_ids) - 1
        text = notification_text("like", latest_name, others=others) if others else latest.text
        self._push(
            frames.notification_frame(
                latest.id,
                "like",
                latest.actor_id,
                post_id,
                None,
                latest.created_at,
                text,
                actor_ids if others else None,
                ids,
            )
        )
        self._open_like_window(post_id)

    def _remember_pushed(self, message_id: int) -> None:
        self._pushed[message_id] = None
        if len(self._pushed) > RECENT_MESSAGES:
            self._pushed.popitem(last=False)

    def _delivery_marker(self, message: Message) -> Callable[[], None]:
        """A callback for the first socket write of a message: it then counts as delivered."""
        return _once(partial(self._context.mark_delivered, message, self.user_id))


def _history_entry(m: Message) -> dict[str, Any]:
    return frames.history_entry(
        m.id, m.sender_id, m.recipient_id, m.content, m.created_at, m.status, m.deleted_at is not None
    )


def _message_frame(message: Message) -> str:
    return frames.message_frame(
        message.id, message.sender_id, message.recipient_id, message.content, message.created_at, message.client_msg_id
    )


def _notification_frame(notification: Notification) -> str:
    n = notification
    return frames.notification_frame(n.id, n.type, n.actor_id, n.post_id, n.comment_id, n.created_at, n.text)


def _tell_quietly(actor: pykka.ActorRef, message: Any) -> None:
    """Tell an actor that may have stopped meanwhile (a timer outliving its user's last socket)."""
    try:
        actor.tell(message)
    except pykka.ActorDeadError:
        pass


def _once(action: Callable[[], None]) -> Callable[[], None]:
    done = False

    def run() -> None:
        nonlocal done
        if not done:
            done = True
            action()

    return run
