/*
 * realtime.js: the browser client of the real-time chat and notification service.
 *
 * A classic script with no build step. In a page it defines the globals
 * `RealtimeClient`, `RealtimeNotifier` and `Realtime` (every export); under
 * Node it sets `module.exports`, so the pure parts (`backoffDelay`,
 * `ReconnectSchedule`, `Outbox`) and the classes, with fake browser objects,
 * can be unit tested. The wire contract is shared/protocol.md.
 */
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

  const CLOSE_NORMAL = 1000;
  const CLOSE_ABNORMAL = 1006; // what a browser reports when the connection died without a close frame
  const CLOSE_UNAUTHORIZED = 4401;
  const SOCKET_OPEN = 1; // WebSocket.OPEN
  // refusals of a `message` frame worth retrying on the same socket; the others are final
  const RETRYABLE_ERRORS = new Set(["rate_limited", "unavailable", "internal"]);
  const SEEN_MESSAGES_KEPT = 1000;

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
   *   state (state, detail)  idle | connecting | connected | reconnecting ({code, delayMs}) | unauthorized | closed
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
    } = {}) {
      super();
      if (!socketClass) throw new Error("RealtimeClient needs a WebSocket implementation");
      this.url = url || defaultUrl();
      this.userId = userId;
      this.state = "idle";
      this.outbox = new Outbox();
      this._token = token;
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
    }

    get connected() {
      return this._authenticated;
    }

    /** Open the socket (and keep it open until `close()`). */
    connect() {
      if (this._socket || this._retryTimer) return this;
      this._stopped = false;
      this._open();
      return this;
    }

    /** Close for good: no reconnect. Unacknowledged messages stay in `outbox`. */
    close() {
      this._stopped = true;
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
      if (this._socket) this._drop(CLOSE_NORMAL);
      else this._setState("closed");
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
      }
    }

    /** Queue a chat message to user `to`; returns its clientMsgId. It is sent now if connected, else on connect. */
    send(to, content) {
      const entry = { clientMsgId: newClientMsgId(), to, content };
      this.outbox.add(entry);
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
    history(withUser, { before, limit } = {}) {
      return this._request("history", { with: withUser, before, limit });
    }

    /**
     * A page of the inbox, latest activity first (Promise of the `conversations` list: {with, lastMessage, unread});
     * `before` is the lastMessage.messageId of the previous page's last entry.
     */
    conversations({ before, limit } = {}) {
      return this._request("conversations", { before, limit });
    }

    /** The newest stored notifications, newest first (Promise of the `notifications` list). */
    notifications({ before, limit } = {}) {
      return this._request("notifications", { before, limit });
    }

    // ---------------------------------------------------------------- socket life

    _open() {
      this._retryTimer = null;
      if (!this._hasConnected) this._setState("connecting");
      const socket = new this._socketClass(this.url);
      this._socket = socket;
      socket.onopen = () => this._sendFrame(this._connectFrame());
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
      if (this._authenticated) this._schedule.disconnected();
      this._authenticated = false;
      const lost = new RealtimeError("disconnected", `the connection closed (${code})`);
      for (const type of Object.keys(this._waiting)) {
        for (const pending of this._waiting[type].splice(0)) pending.reject(lost);
      }
      if (this._stopped) {
        this._setState("closed", { code });
      } else if (code === CLOSE_UNAUTHORIZED) {
        this._setState("unauthorized", { code }); // retrying with the same token is pointless: wait for setToken()
      } else {
        const delayMs = this._schedule.nextDelay();
        this._retryTimer = setTimeout(() => this._open(), delayMs);
        this._setState("reconnecting", { code, delayMs });
      }
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
      this._setState("connected");
      for (const entry of this.outbox.pending()) this._sendFrame(messageFrame(entry));
      if (this._watched !== null) this._sendFrame({ type: "watch", userIds: this._watched });
      this.emit("connected", frame);
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
      this.state = state;
      this.emit("state", state, detail);
    }

    // ---------------------------------------------------------------- frames

    _onFrame(text) {
      this._heardSincePing = true;
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

    _request(type, fields) {
      if (!this._authenticated) return Promise.reject(new RealtimeError("not_connected", "not connected"));
      return new Promise((resolve, reject) => {
        this._waiting[type].push({ resolve, reject });
        this._sendFrame({ type, ...fields });
      });
    }

    _sendIfConnected(frame) {
      if (!this._authenticated) return false;
      this._sendFrame(frame);
      return true;
    }

    _sendFrame(frame) {
      if (this._socket && this._socket.readyState === SOCKET_OPEN) this._socket.send(JSON.stringify(frame));
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

  return {
    backoffDelay,
    ReconnectSchedule,
    Outbox,
    RecentIds,
    RealtimeError,
    Emitter,
    RealtimeClient,
    RealtimeNotifier,
  };
});
