/* realtime client 1.0.0: built from src/realtime.js by build.mjs; do not edit. */
(function (root, factory) {
  "use strict";
  const exported = factory();
  if (typeof module === "object" && module.exports) {
    module.exports = exported;
  } else {
    root.Realtime = exported;
    root.RealtimeClient = exported.RealtimeClient;
    root.RealtimeNotifier = exported.RealtimeNotifier;
  }
})(typeof self !== "undefined" ? self : this, function () {
"use strict";
/*
 * realtime.js: the browser client of the real-time chat and notification service (an ES module).
 *
 * The one source of the package under clients/js: `npm run build` (build.mjs)
 * makes dist/realtime.mjs (this module) and dist/realtime.js (a classic script
 * defining the globals `RealtimeClient`, `RealtimeNotifier` and `Realtime`, and
 * `module.exports` under Node). The wire contract is shared/protocol.md;
 * the types are realtime.d.ts.
 */

const VERSION = "1.0.0"; // replaced by the build with package.json's version

const CLOSE_NORMAL = 1000;
const CLOSE_ABNORMAL = 1006; // what a browser reports when the connection died without a close frame
const CLOSE_UNAUTHORIZED = 4401;
const SOCKET_OPEN = 1; // WebSocket.OPEN
// refusals of a `message` frame worth retrying on the same socket; the others are final
const RETRYABLE_ERRORS = new Set(["rate_limited", "unavailable", "internal"]);
const SEEN_MESSAGES_KEPT = 1000;
const REFUSED_STATUSES = new Set([403, 429]); // what a handshake probe may answer instead of 204
const TIMER_MAX_MS = 2 ** 31 - 1; // setTimeout fires at once beyond this
const OUTBOX_DB = "realtime-outbox";
const OUTBOX_STORE = "pending";

// ------------------------------------------------------------------ pure pieces

/**
 * Milliseconds to wait before reconnect attempt `attempt` (0 for the first):
 * exponential from `baseMs`, capped at `capMs`, with "equal jitter": a random
 * point in the upper half of that ceiling. The jitter spreads out clients that
 * lost the server together; the lower bound keeps any of them from retrying at once.
 */
function backoffDelay(attempt, { baseMs = 500, capMs = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * When to reconnect: counts attempts since the last stable connection, one
 * that stayed up `stableMs`, so a server that accepts and then drops
 * every socket is not hammered.
 */
class ReconnectSchedule {
  constructor({ baseMs, capMs, random, stableMs = 10000, now = Date.now } = {}) {
    this.attempt = 0;
    this._delayOptions = { baseMs, capMs, random };
    this._stableMs = stableMs;
    this._now = now;
    this._connectedAt = null;
  }

  /** The delay before the next attempt; counts that attempt. */
  nextDelay() {
    const delay = backoffDelay(this.attempt, this._delayOptions);
    this.attempt += 1;
    return delay;
  }

  connected() {
    this._connectedAt = this._now();
  }

  /** A connection ended: if it was stable, the schedule starts over. */
  disconnected() {
    if (this._connectedAt !== null && this._now() - this._connectedAt >= this._stableMs) {
      this.attempt = 0;
    }
    this._connectedAt = null;
  }

  reset() {
    this.attempt = 0;
  }
}

/**
 * The messages sent but not yet acknowledged by `message_sent`, in send order.
 * After a reconnect every one is sent again with its `clientMsgId`; the
 * server's idempotency makes that safe.
 */
class Outbox {
  constructor() {
    this._entries = new Map(); // clientMsgId -> {clientMsgId, to, content}; a Map keeps insertion order
  }

  add(entry) {
    if (this._entries.has(entry.clientMsgId)) throw new Error(`clientMsgId ${entry.clientMsgId} is already pending`);
    this._entries.set(entry.clientMsgId, entry);
  }

  get(clientMsgId) {
    return this._entries.get(clientMsgId);
  }

  has(clientMsgId) {
    return this._entries.has(clientMsgId);
  }

  /** Remove and return the entry (undefined if it was not pending, e.g. a repeated ack). */
  remove(clientMsgId) {
    const entry = this._entries.get(clientMsgId);
    this._entries.delete(clientMsgId);
    return entry;
  }

  /** What to send again after a reconnect, oldest first. */
  pending() {
    return Array.from(this._entries.values());
  }

  get size() {
    return this._entries.size;
  }
}

/**
 * The `exp` claim of a JWT in milliseconds since the epoch, or null when the token has none or is not a JWT.
 * Only read to know when to refresh: the server checks the signature.
 */
function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload.padEnd(Math.ceil(payload.length / 4) * 4, "=")));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch (error) {
    return null;
  }
}

/**
 * The URL that tells why a handshake to `socketUrl` was refused: the same address over HTTP with `probe=1`.
 * Browsers hide a refused handshake's status (the socket just closes with 1006); the server answers this GET
 * with that status (403 origin, 429 too many connections) or 204, readable from any origin.
 */
function probeUrl(socketUrl) {
  const url = new URL(socketUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.searchParams.delete("token");
  url.searchParams.set("probe", "1");
  return url.toString();
}

/**
 * The outbox kept in IndexedDB, so that a message still pending when the page reloads or closes is sent by
 * the next page of the same user (once: the server deduplicates its clientMsgId).
 * Entries are {clientMsgId, to, content, userId}. Every method resolves, even where IndexedDB is missing or
 * disabled (private windows): the outbox then lasts as long as the page.
 */
class IndexedDbOutboxStore {
  constructor(indexedDb = typeof indexedDB !== "undefined" ? indexedDB : null) {
    this._db = indexedDb ? openOutboxDb(indexedDb) : Promise.resolve(null);
  }

  /** The stored entries of user `userId`, oldest first. */
  load(userId) {
    return this._run("readonly", (store) => store.getAll()).then((entries) =>
      (entries || []).filter((entry) => entry.userId === userId).sort((a, b) => a.createdAt - b.createdAt),
    );
  }

  put(entry) {
    return this._run("readwrite", (store) => store.put({ ...entry, createdAt: Date.now() }));
  }

  delete(clientMsgId) {
    return this._run("readwrite", (store) => store.delete(clientMsgId));
  }

  _run(mode, operation) {
    return this._db
      .then(
        (db) =>
          db &&
          new Promise((resolve, reject) => {
            const request = operation(db.transaction(OUTBOX_STORE, mode).objectStore(OUTBOX_STORE));
            request.onsuccess = () => resolve(request.result);
            request.onerror = () => reject(request.error);
          }),
      )
      .catch(() => null);
  }
}

function openOutboxDb(indexedDb) {
  return new Promise((resolve) => {
    const request = indexedDb.open(OUTBOX_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OUTBOX_STORE, { keyPath: "clientMsgId" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => resolve(null);
  }).catch(() => null);
}

/** A set that keeps only the `limit` most recently added ids. */
class RecentIds {
  constructor(limit) {
    this._limit = limit;
    this._ids = new Set();
  }

  /** Add `id`; false if it was already there. */
  add(id) {
    if (this._ids.has(id)) return false;
    this._ids.add(id);
    if (this._ids.size > this._limit) this._ids.delete(this._ids.values().next().value);
    return true;
  }

  has(id) {
    return this._ids.has(id);
  }
}

class RealtimeError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "RealtimeError";
    this.code = code;
  }
}

/** `on(event, handler)` returns a function that unsubscribes; a failing handler never stops the others. */
class Emitter {
  constructor() {
    this._handlers = new Map();
  }

  on(event, handler) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(handler);
    return () => this.off(event, handler);
  }

  off(event, handler) {
    const handlers = this._handlers.get(event);
    if (handlers) handlers.delete(handler);
  }

  emit(event, ...args) {
    for (const handler of Array.from(this._handlers.get(event) || [])) {
      try {
        handler(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // reported as uncaught, without breaking the frame being handled
        });
      }
    }
  }
}

function newClientMsgId() {
  const cryptoApi = typeof crypto !== "undefined" ? crypto : null;
  if (cryptoApi && typeof cryptoApi.randomUUID === "function") return `web-${cryptoApi.randomUUID()}`;
  const random = () => Math.random().toString(36).slice(2, 12);
  return `web-${Date.now().toString(36)}-${random()}${random()}`;
}

function defaultUrl() {
  if (typeof location === "undefined") throw new Error("RealtimeClient needs a url outside a page");
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/`;
}

// ------------------------------------------------------------------ the client

/**
 * One authenticated WebSocket that keeps itself connected.
 *
 * Events (`on(event, handler)`):
 *   state (state, detail)  idle | connecting | connected | reconnecting ({code, delayMs}) | unauthorized
 *                          | refused ({status, reason, delayMs?}) | closed
 *                          refused: the server refused the handshake (403: this page's origin is not allowed,
 *                          final until reconnectNow(); 429: too many connections, retried after delayMs)
 *   connected (frame)      the `connected` frame: userId, unreadMessages, unreadNotifications
 *   message (frame)        a chat message, each messageId once
 *   sent, delivered, read  the receipts `message_sent`, `message_delivered`, `message_read`
 *   deleted (frame)        `message_deleted`: messageId, deletedAt (a message either side sent is gone)
 *   typing (frame)         `typing`: from, typing (show it for about 6 s unless renewed)
 *   presence (users)       the `presence` list {userId, online, lastSeen}: the answer to `watch`, then one entry per change
 *   notification (frame), notificationRead (frame), notifications (list)
 *   failed ({clientMsgId, to, content, error})  the server refused a message for good
 *   error (frame)          every `error` frame
 */
class RealtimeClient extends Emitter {
  constructor({
    url,
    token,
    userId = null,
    WebSocket: socketClass = typeof WebSocket !== "undefined" ? WebSocket : undefined,
    backoff = {},
    stableMs = 10000,
    connectTimeoutMs = 15000,
    heartbeatMs = 30000,
    getToken = null,
    tokenRefreshMarginMs = 60000,
    requestTimeoutMs = 15000,
    debug = false,
    outboxStore = new IndexedDbOutboxStore(),
    fetch: fetchFunction = typeof fetch !== "undefined" ? fetch.bind(globalThis) : null,
    environment = globalThis,
  } = {}) {
    super();
    if (!socketClass) throw new Error("RealtimeClient needs a WebSocket implementation");
    this.url = url || defaultUrl();
    this.userId = userId;
    this.state = "idle";
    this.outbox = new Outbox();
    this._token = token;
    this._getToken = getToken;
    this._tokenRefreshMarginMs = tokenRefreshMarginMs;
    this._tokenTimer = null;
    this._requestTimeoutMs = requestTimeoutMs;
    this._debug = debug === true ? (...args) => console.debug("[realtime]", ...args) : debug || null;
    this._store = outboxStore;
    this._restored = false; // the stored outbox was loaded for this.userId
    this._fetch = fetchFunction;
    this._env = environment;
    this._opening = false; // waiting for getToken() or a handshake probe: no socket yet, none to open
    this._opened = false; // this socket opened (a close before that may be a refused handshake)
    this._socketClass = socketClass;
    this._backoff = backoff;
    this._schedule = new ReconnectSchedule({ ...backoff, stableMs });
    this._connectTimeoutMs = connectTimeoutMs;
    this._heartbeatMs = heartbeatMs;
    this._socket = null;
    this._authenticated = false; // this socket got `connected`
    this._hasConnected = false; // some socket did: later attempts are reconnects
    this._stopped = false; // close() was called
    this._retryTimer = null;
    this._connectTimer = null;
    this._heartbeatTimer = null;
    this._heardSincePing = false;
    this._waiting = { history: [], notifications: [], conversations: [] }; // answers come in request order, per type
    this._seenMessages = new RecentIds(SEEN_MESSAGES_KEPT);
    this._watched = null; // the last `watch` list, sent again on every new socket (the server keeps it per socket)
    // the network came back, or the user looks at the page again: do not wait for the backoff
    this._wake = () => {
      const document = this._env.document;
      if (document && document.visibilityState === "hidden") return;
      if (!this._authenticated && !this._stopped && this.state !== "idle") this.reconnectNow();
    };
  }

  get connected() {
    return this._authenticated;
  }

  /** Open the socket (and keep it open until `close()`). */
  connect() {
    if (this._socket || this._retryTimer || this._opening) return this;
    this._stopped = false;
    this._listen(true);
    this._open();
    return this;
  }

  /** Close for good: no reconnect. Unacknowledged messages stay in `outbox` (and in the stored outbox). */
  close() {
    this._stopped = true;
    this._listen(false);
    clearTimeout(this._retryTimer);
    clearTimeout(this._tokenTimer);
    this._retryTimer = null;
    if (this._socket) this._drop(CLOSE_NORMAL);
    else this._setState("closed");
  }

  /** Try to connect at once, skipping the backoff wait (also after `refused` or `unauthorized`). */
  reconnectNow() {
    // a socket being opened is left to its connect timeout
    if (this._stopped || this._authenticated || this._opening || this._socket) return;
    this._log("reconnecting now");
    clearTimeout(this._retryTimer);
    this._schedule.reset();
    this._open();
  }

  /**
   * Use a new token. After a 4401 close this reconnects at once; on an open
   * socket it renews the session in place; otherwise the next attempt uses it.
   */
  setToken(token) {
    this._token = token;
    if (this.state === "unauthorized") {
      this._schedule.reset();
      this._open();
    } else if (this._authenticated) {
      this._sendFrame(this._connectFrame());
      this._scheduleTokenRefresh();
    }
  }

  /**
   * Queue a chat message to user `to`; returns its clientMsgId. It is sent now if connected, else on connect.
   * It is also stored (IndexedDB) until acknowledged, so a page of the same user sends it after a reload;
   * before the first connect that needs the `userId` option.
   */
  send(to, content) {
    const entry = { clientMsgId: newClientMsgId(), to, content };
    this.outbox.add(entry);
    this._store.put({ ...entry, userId: this.userId });
    if (this._authenticated) this._sendFrame(messageFrame(entry));
    return entry.clientMsgId;
  }

  /** Mark `messageId` and every earlier message from its sender read. False when not connected. */
  markRead(messageId) {
    return this._sendIfConnected({ type: "message_read", messageId });
  }

  /** Tell user `to` this user is typing (or stopped, with false); never queued. False when not connected. */
  typing(to, typing = true) {
    return this._sendIfConnected({ type: "typing", to, typing });
  }

  /** Delete one of this user's own messages, for both sides. False when not connected. */
  deleteMessage(messageId) {
    return this._sendIfConnected({ type: "message_delete", messageId });
  }

  /**
   * Receive `presence` for these users (at most 200; replaces the previous list). Kept and sent again
   * after every reconnect, so it may be called before connecting.
   */
  watch(userIds) {
    this._watched = Array.from(userIds);
    this._sendIfConnected({ type: "watch", userIds: this._watched });
  }

  /** Mark one notification read, a list of them (a grouped item's notificationIds), or all of them with "all".
   * False when not connected. */
  markNotificationRead(notificationId) {
    let target = { notificationId };
    if (notificationId === "all") target = { all: true };
    else if (Array.isArray(notificationId)) target = { notificationIds: notificationId };
    return this._sendIfConnected({ type: "notification_read", ...target });
  }

  /** A page of the conversation with `withUser`, oldest first (Promise of the `messages` list). */
  history(withUser, { before, limit, timeoutMs } = {}) {
    return this._request("history", { with: withUser, before, limit }, timeoutMs);
  }

  /**
   * A page of the inbox, latest activity first (Promise of the `conversations` list: {with, lastMessage, unread});
   * `before` is the lastMessage.messageId of the previous page's last entry.
   */
  conversations({ before, limit, timeoutMs } = {}) {
    return this._request("conversations", { before, limit }, timeoutMs);
  }

  /** The newest stored notifications, newest first (Promise of the `notifications` list). */
  notifications({ before, limit, timeoutMs } = {}) {
    return this._request("notifications", { before, limit }, timeoutMs);
  }

  // ---------------------------------------------------------------- socket life

  /** Listen to the page's `online` and `visibilitychange` events (or stop). */
  _listen(on) {
    const method = on ? "addEventListener" : "removeEventListener";
    if (this._env[method]) this._env[method]("online", this._wake);
    if (this._env.document && this._env.document[method]) this._env.document[method]("visibilitychange", this._wake);
  }

  /** Open a socket, with a fresh token from `getToken` first when there is none or it is about to expire. */
  _open() {
    this._retryTimer = null;
    if (!this._hasConnected) this._setState("connecting");
    if (!this._getToken || !this._tokenExpiresSoon()) {
      this._openSocket();
      return;
    }
    this._opening = true;
    this._log("getToken()");
    Promise.resolve()
      .then(() => this._getToken())
      .then(
        (token) => {
          this._token = token;
        },
        (error) => this._log("getToken() failed; trying the token held", error),
      )
      .then(() => {
        this._opening = false;
        if (!this._stopped) this._openSocket();
      });
  }

  _tokenExpiresSoon() {
    if (!this._token) return true;
    const expiry = tokenExpiry(this._token);
    return expiry !== null && expiry - Date.now() <= this._tokenRefreshMarginMs;
  }

  /** While connected: renew the session with a token from `getToken` shortly before this one expires. */
  _scheduleTokenRefresh() {
    clearTimeout(this._tokenTimer);
    const expiry = this._getToken ? tokenExpiry(this._token) : null;
    if (expiry === null) return;
    const delay = Math.min(TIMER_MAX_MS, Math.max(0, expiry - this._tokenRefreshMarginMs - Date.now()));
    this._tokenTimer = setTimeout(() => {
      this._log("token expires soon: getToken()");
      Promise.resolve()
        .then(() => this._getToken())
        .then(
          (token) => {
            if (this._authenticated) this.setToken(token);
            else this._token = token;
          },
          (error) => this._log("getToken() failed", error),
        );
    }, delay);
  }

  _openSocket() {
    this._log("opening", this.url);
    const socket = new this._socketClass(this.url);
    this._socket = socket;
    this._opened = false;
    socket.onopen = () => {
      this._opened = true;
      this._sendFrame(this._connectFrame());
    };
    socket.onmessage = (event) => this._onFrame(event.data);
    socket.onclose = (event) => this._onClose(event.code);
    // a socket that neither fails nor authenticates (a hung server) is given up on
    this._connectTimer = setTimeout(() => this._drop(CLOSE_ABNORMAL), this._connectTimeoutMs);
  }

  /** Close the socket now and handle it as closed with `code`, without waiting for the closing handshake. */
  _drop(code) {
    const socket = this._socket;
    this._onClose(code); // detaches the handlers, so the browser's own close event is not handled again
    socket.close(CLOSE_NORMAL);
  }

  _onClose(code) {
    this._socket.onopen = this._socket.onmessage = this._socket.onclose = null;
    this._socket = null;
    clearTimeout(this._connectTimer);
    clearInterval(this._heartbeatTimer);
    clearTimeout(this._tokenTimer);
    if (this._authenticated) this._schedule.disconnected();
    this._authenticated = false;
    const lost = new RealtimeError("disconnected", `the connection closed (${code})`);
    for (const type of Object.keys(this._waiting)) {
      for (const pending of this._waiting[type].splice(0)) pending.reject(lost);
    }
    this._log("closed", code);
    if (this._stopped) {
      this._setState("closed", { code });
    } else if (code === CLOSE_UNAUTHORIZED && this._getToken) {
      this._token = null; // rejected: the next attempt asks getToken() for another
      this._retry(code);
    } else if (code === CLOSE_UNAUTHORIZED) {
      this._setState("unauthorized", { code }); // retrying with the same token is pointless: wait for setToken()
    } else if (code === CLOSE_ABNORMAL && !this._opened && this._fetch) {
      this._probe(code);
    } else {
      this._retry(code);
    }
  }

  _retry(code) {
    const delayMs = this._schedule.nextDelay();
    this._retryTimer = setTimeout(() => this._open(), delayMs);
    this._setState("reconnecting", { code, delayMs });
  }

  /** The socket closed before opening: ask the server whether it refused the handshake, and why. */
  _probe(code) {
    this._opening = true;
    const url = probeUrl(this.url);
    this._log("handshake failed; probing", url);
    let timer;
    const timeout = new Promise((resolve, reject) => {
      timer = setTimeout(reject, this._connectTimeoutMs); // a hung server answers no probe either
    });
    Promise.race([this._fetch(url, { mode: "cors", cache: "no-store", credentials: "omit" }), timeout])
      .then((response) =>
        REFUSED_STATUSES.has(response.status) ? response.text().then((reason) => [response.status, reason]) : null,
      )
      .catch(() => null) // the server is unreachable: an ordinary reconnect
      .then((refusal) => {
        clearTimeout(timer);
        this._opening = false;
        if (this._stopped || this._socket || this._retryTimer) return; // close() or reconnectNow() meanwhile
        if (!refusal) {
          this._retry(code);
          return;
        }
        const [status, reason] = refusal;
        const detail = { status, reason };
        if (status === 429) {
          detail.delayMs = this._schedule.nextDelay();
          this._retryTimer = setTimeout(() => this._open(), detail.delayMs);
        }
        this._setState("refused", detail);
      });
  }

  _onConnected(frame) {
    this.userId = frame.userId;
    if (this._authenticated) {
      this.emit("connected", frame); // a token renewal on this socket
      return;
    }
    this._authenticated = true;
    this._hasConnected = true;
    clearTimeout(this._connectTimer);
    this._schedule.connected();
    this._startHeartbeat();
    this._scheduleTokenRefresh();
    this._setState("connected");
    for (const entry of this.outbox.pending()) this._sendFrame(messageFrame(entry));
    if (this._watched !== null) this._sendFrame({ type: "watch", userIds: this._watched });
    this.emit("connected", frame);
    if (!this._restored) this._restoreOutbox();
  }

  /** Once per client: the stored messages of this user left by an earlier page, sent now. */
  _restoreOutbox() {
    this._restored = true;
    const userId = this.userId;
    this._store.load(userId).then((entries) => {
      for (const stored of entries || []) {
        if (this.outbox.has(stored.clientMsgId)) continue;
        const entry = { clientMsgId: stored.clientMsgId, to: stored.to, content: stored.content };
        this._log("sending a message stored by an earlier page", entry.clientMsgId);
        this.outbox.add(entry);
        if (this._authenticated) this._sendFrame(messageFrame(entry));
      }
    });
  }

  /** Ping when idle; a socket that stayed silent for a whole interval after a ping is dead. */
  _startHeartbeat() {
    this._heardSincePing = true;
    this._heartbeatTimer = setInterval(() => {
      if (!this._heardSincePing) {
        this._drop(CLOSE_ABNORMAL);
        return;
      }
      this._heardSincePing = false;
      this._sendFrame({ type: "ping" });
    }, this._heartbeatMs);
  }

  _setState(state, detail = {}) {
    this._log("state", state, detail);
    this.state = state;
    this.emit("state", state, detail);
  }

  // ---------------------------------------------------------------- frames

  _onFrame(text) {
    this._heardSincePing = true;
    this._log("received", text);
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      return; // the server sends only JSON; nothing to act on
    }
    switch (frame.type) {
      case "connected":
        this._onConnected(frame);
        break;
      case "message":
        if (this._seenMessages.add(frame.messageId)) this.emit("message", frame);
        break;
      case "message_sent":
        this.outbox.remove(frame.clientMsgId);
        this._store.delete(frame.clientMsgId);
        this.emit("sent", frame);
        break;
      case "message_delivered":
        this.emit("delivered", frame);
        break;
      case "message_read":
        this.emit("read", frame);
        break;
      case "message_deleted":
        this.emit("deleted", frame);
        break;
      case "notification":
        this.emit("notification", frame);
        break;
      case "notification_read":
        this.emit("notificationRead", frame);
        break;
      case "typing":
        this.emit("typing", frame);
        break;
      case "presence":
        this.emit("presence", frame.users);
        break;
      case "history":
        this._answer("history", frame.messages);
        break;
      case "conversations":
        this._answer("conversations", frame.conversations);
        break;
      case "notifications":
        this.emit("notifications", frame.notifications);
        this._answer("notifications", frame.notifications);
        break;
      case "error":
        this._onError(frame);
        break;
      default:
        break; // pong, and frame types added after this client
    }
  }

  _onError(frame) {
    const ref = frame.ref || {};
    if (ref.type === "message" && this.outbox.has(ref.clientMsgId)) {
      this._onMessageRefused(this.outbox.get(ref.clientMsgId), frame);
    } else if (Object.prototype.hasOwnProperty.call(this._waiting, ref.type)) {
      const pending = this._waiting[ref.type].shift();
      if (pending) pending.reject(new RealtimeError(frame.code, frame.message));
    }
    this.emit("error", frame);
  }

  _onMessageRefused(entry, frame) {
    if (!RETRYABLE_ERRORS.has(frame.code)) {
      this.outbox.remove(entry.clientMsgId);
      this._store.delete(entry.clientMsgId);
      this.emit("failed", { ...entry, error: frame });
      return;
    }
    // kept in the outbox: sent again after a pause, or on the next connect, whichever comes first
    entry.retries = (entry.retries || 0) + 1;
    setTimeout(() => {
      if (this._authenticated && this.outbox.has(entry.clientMsgId)) this._sendFrame(messageFrame(entry));
    }, backoffDelay(entry.retries - 1, this._backoff));
  }

  _answer(type, value) {
    const pending = this._waiting[type].shift();
    if (pending) pending.resolve(value);
  }

  /**
   * Send a request frame; its answer (the next one of its type: the server answers in order) resolves the
   * promise, or it rejects with `timeout` after `timeoutMs`. A timed-out request keeps its place in the queue,
   * so a late answer is matched to it (and dropped), not to the next request.
   */
  _request(type, fields, timeoutMs = this._requestTimeoutMs) {
    if (!this._authenticated) return Promise.reject(new RealtimeError("not_connected", "not connected"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new RealtimeError("timeout", `no ${type} answer in ${timeoutMs} ms`)), timeoutMs);
      const settle = (callback) => (value) => {
        clearTimeout(timer);
        callback(value);
      };
      this._waiting[type].push({ resolve: settle(resolve), reject: settle(reject) });
      this._sendFrame({ type, ...fields });
    });
  }

  _log(...args) {
    if (this._debug) this._debug(...args);
  }

  _sendIfConnected(frame) {
    if (!this._authenticated) return false;
    this._sendFrame(frame);
    return true;
  }

  _sendFrame(frame) {
    if (!this._socket || this._socket.readyState !== SOCKET_OPEN) return;
    if (this._debug) this._log("sending", frame.type === "connect" ? { ...frame, token: "…" } : frame);
    this._socket.send(JSON.stringify(frame));
  }

  _connectFrame() {
    const frame = { type: "connect", token: this._token };
    if (this.userId !== null) frame.userId = this.userId;
    return frame;
  }
}

function messageFrame(entry) {
  return { type: "message", to: entry.to, content: entry.content, clientMsgId: entry.clientMsgId };
}

// ------------------------------------------------------------------ notifications in the page

const SOUND_KEY = "realtime.sound";
const LOCK_PREFIX = "realtime-notifier-alerts";
const READ_IDS_KEPT = 1000;
const GESTURES = ["pointerdown", "keydown"];

/**
 * The unread badge count, browser notifications and a sound for a client's notifications.
 *
 * With several tabs of one user open, only the tab holding the Web Lock
 * `realtime-notifier-alerts:<userId>` alerts (sound, browser notification);
 * the lock passes to another tab when that one closes. Without Web Locks
 * every tab alerts, and browser notifications still collapse by tag.
 *
 * Events: unread (count), alert ({notification, sound, shown}), leader (bool), sound (on), click (notification).
 * `environment` stands for the page's globals (tests pass fakes).
 */
class RealtimeNotifier extends Emitter {
  constructor(client, { title = "New notification", environment = globalThis } = {}) {
    super();
    this.unread = 0;
    this.leader = false;
    this._client = client;
    this._title = title;
    this._env = environment;
    this._readIds = new RecentIds(READ_IDS_KEPT);
    this._audio = null;
    this._sound = this._storageGet(SOUND_KEY) === "on";
    this._electedFor = null;
    this._abortElection = typeof AbortController !== "undefined" ? new AbortController() : null;
    this._resign = null;
    this._unsubscribe = [
      client.on("connected", (frame) => {
        this._setUnread(frame.unreadNotifications);
        this._elect(frame.userId);
      }),
      client.on("notification", (frame) => this._onNotification(frame)),
      client.on("notificationRead", (frame) => this._onRead(frame)),
      client.on("notifications", (list) => {
        for (const item of list) if (item.read) this._readIds.add(item.notificationId);
      }),
    ];
    this._onStorage = (event) => {
      if (event.key !== SOUND_KEY) return;
      this._sound = event.newValue === "on"; // switched in another tab
      this.emit("sound", this._sound);
    };
    // browsers let a page play audio only after a user gesture on it: be ready from the first one
    this._onGesture = () => {
      if (this._sound) this._audioContext();
    };
    if (this._env.addEventListener) {
      this._env.addEventListener("storage", this._onStorage);
      for (const type of GESTURES) this._env.addEventListener(type, this._onGesture, true);
    }
    if (client.userId !== null && client.userId !== undefined) this._elect(client.userId);
  }

  /** "granted", "denied", "default", or "unsupported". */
  get permission() {
    return this._env.Notification ? this._env.Notification.permission : "unsupported";
  }

  /** Ask for browser notifications, once: call it from a click handler (browsers require a user gesture). */
  requestPermission() {
    const api = this._env.Notification;
    if (!api) return Promise.resolve("unsupported");
    if (api.permission !== "default") return Promise.resolve(api.permission);
    return Promise.resolve(api.requestPermission());
  }

  get soundEnabled() {
    return this._sound;
  }

  /** Turn the sound on or off (saved for this site); call it from a click so the page may play audio. */
  setSoundEnabled(on) {
    this._sound = Boolean(on);
    this._storageSet(SOUND_KEY, this._sound ? "on" : "off");
    if (this._sound) this.beep();
    this.emit("sound", this._sound);
  }

  /** A short beep made with the Web Audio API; false where there is none. */
  beep() {
    const audio = this._audioContext();
    if (!audio) return false;
    const start = audio.currentTime;
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.setValueAtTime(880, start);
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.25, start + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.2);
    oscillator.connect(gain);
    gain.connect(audio.destination);
    oscillator.start(start);
    oscillator.stop(start + 0.22);
    return true;
  }

  /** Stop listening and give up the alerting role (another tab takes it). */
  destroy() {
    for (const unsubscribe of this._unsubscribe) unsubscribe();
    if (this._env.removeEventListener) {
      this._env.removeEventListener("storage", this._onStorage);
      for (const type of GESTURES) this._env.removeEventListener(type, this._onGesture, true);
    }
    if (this._abortElection) this._abortElection.abort();
    if (this._resign) this._resign();
    this._setLeader(false);
  }

  /** The page's AudioContext, created on first use and resumed if the browser suspended it. */
  _audioContext() {
    const AudioContextClass = this._env.AudioContext || this._env.webkitAudioContext;
    if (!AudioContextClass) return null;
    if (!this._audio) this._audio = new AudioContextClass();
    if (this._audio.state === "suspended") this._audio.resume().catch(() => {});
    return this._audio;
  }

  _onNotification(frame) {
    this._setUnread(this.unread + (frame.notificationIds ? frame.notificationIds.length : 1)); // a grouped one counts each
    if (!this.leader) return;
    const sound = this.soundEnabled && this.beep();
    const shown = this._showBrowserNotification(frame);
    this.emit("alert", { notification: frame, sound, shown });
  }

  _onRead(frame) {
    if (frame.all) {
      this._setUnread(0);
    } else {
      const newlyRead = (frame.notificationIds || [frame.notificationId]).filter((id) => this._readIds.add(id));
      if (newlyRead.length) this._setUnread(Math.max(0, this.unread - newlyRead.length));
    }
  }

  _showBrowserNotification(frame) {
    const api = this._env.Notification;
    const document = this._env.document;
    if (!api || api.permission !== "granted" || !document || !document.hidden) return false;
    try {
      const shown = new api(this._title, { body: frame.text, tag: `realtime-notification-${frame.notificationId}` });
      shown.onclick = () => {
        if (this._env.focus) this._env.focus();
        shown.close();
        this.emit("click", frame);
      };
      return true;
    } catch (error) {
      return false; // e.g. mobile browsers allow notifications only from a service worker
    }
  }

  /** Queue for the user's alert lock; holding it makes this tab the one that alerts. */
  _elect(userId) {
    if (this._electedFor !== null) return;
    this._electedFor = userId;
    const locks = this._env.navigator && this._env.navigator.locks;
    if (!locks) {
      this._setLeader(true);
      return;
    }
    const options = this._abortElection ? { signal: this._abortElection.signal } : {};
    locks
      .request(`${LOCK_PREFIX}:${userId}`, options, () => {
        this._setLeader(true);
        return new Promise((resolve) => {
          this._resign = resolve; // held until destroy() or the tab goes away
        });
      })
      .catch(() => {}); // aborted by destroy() while waiting
  }

  _setLeader(leader) {
    if (leader === this.leader) return;
    this.leader = leader;
    this.emit("leader", leader);
  }

  _setUnread(count) {
    this.unread = count;
    this.emit("unread", count);
  }

  _storageGet(key) {
    try {
      return this._env.localStorage ? this._env.localStorage.getItem(key) : null;
    } catch (error) {
      return null; // storage disabled by the browser's settings
    }
  }

  _storageSet(key, value) {
    try {
      if (this._env.localStorage) this._env.localStorage.setItem(key, value);
    } catch (error) {
      // storage disabled: the setting lasts as long as the page
    }
  }
}



return { VERSION, backoffDelay, tokenExpiry, probeUrl, ReconnectSchedule, Outbox, IndexedDbOutboxStore, RecentIds, RealtimeError, Emitter, RealtimeClient, RealtimeNotifier };
});
