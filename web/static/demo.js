/*
 * The demo page (demo mode only): the inbox from the server with unread
 * badges and presence dots, chat between the demo users with delivery ticks,
 * a typing line, deletion of one's own messages and the state of a peer who
 * does not accept one's messages; a notification bell, and buttons that make
 * the notify API send notifications. `/?user=N` opens the page as demo user
 * N; `&with=M` opens the conversation with M. Built on realtime.js
 * (RealtimeClient, RealtimeNotifier).
 */
(function () {
  "use strict";

  const STATUS_RANK = { pending: 0, sent: 1, delivered: 2, read: 3 };
  const STATUS_LABEL = { pending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not sent" };
  const HISTORY_PAGE = 50;
  const INBOX_PAGE = 50;
  const WATCH_MAX = 200; // the contract's limit on a `watch` list: the most recent conversations' peers
  const TYPING_SHOWN_MS = 6000; // the contract: show `typing` for about 6 s unless renewed
  const TYPING_RENEW_MS = 3000; // renew while typing, above the server's one-per-2-s limit
  const NOTIFICATION_PAGE = 30;
  const TOAST_MS = 4000;
  const ACTIVITY_KEPT = 6;

  const ICONS = {
    pending:
      '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="1.6"/><path d="M8 4.5V8l2.5 1.5" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linecap="round"/></svg>',
    sent: '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M3 8.5l3 3 7-7" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    delivered:
      '<svg viewBox="0 0 20 16" aria-hidden="true"><path d="M1.5 8.5l3 3 7-7M7.5 11.5l7-7" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/></svg>',
    failed:
      '<svg viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6.5" fill="currentColor"/><path d="M8 4.5v4.2M8 11v.3" stroke="#fff" stroke-width="1.8" stroke-linecap="round"/></svg>',
    bell: '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 3a6 6 0 0 0-6 6v3.6L4.3 15.4A1 1 0 0 0 5.2 17h13.6a1 1 0 0 0 .9-1.6L18 12.6V9a6 6 0 0 0-6-6zm-2.5 15a2.5 2.5 0 0 0 5 0z" fill="currentColor"/></svg>',
    soundOn:
      '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 9v6h4l5 4V5L8 9z" fill="currentColor"/><path d="M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>',
    soundOff:
      '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 9v6h4l5 4V5L8 9z" fill="currentColor"/><path d="M16.5 9.5l5 5m0-5l-5 5" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"/></svg>',
  };
  ICONS.read = ICONS.delivered; // the same double tick, coloured by CSS

  const $ = (id) => document.getElementById(id);

  start().catch((error) => showFatal(`The demo could not start: ${error.message}`));

  async function start() {
    const [usersReply, config] = await Promise.all([getJson("/demo/users"), getJson("/demo/config")]);
    const params = new URLSearchParams(location.search);
    const users = usersReply.users;
    const me = users.find((user) => user.id === Number(params.get("user")));
    if (!me) {
      showPicker(users);
      return;
    }
    const { token } = await getJson(`/demo/token?userId=${me.id}`);
    const page = new DemoPage(me, users, token, config);
    page.start(Number(params.get("with")) || null);
  }

  function showPicker(users) {
    const list = $("picker-users");
    for (const user of users) {
      const item = element("li");
      const link = element("a", "picker-user");
      link.href = `/?user=${user.id}`;
      link.append(avatar(user), element("span", "picker-name", user.username));
      item.append(link);
      list.append(item);
    }
    $("picker").hidden = false;
  }

  /** Everything on the page of one signed-in demo user. */
  class DemoPage {
    constructor(me, users, token, config) {
      this.me = me;
      this.users = new Map(users.map((user) => [user.id, user]));
      this.config = config;
      // partner -> {user, last, unread, messages, loaded, blocked}: `last` and `unread` come from the server's
      // inbox and are kept up to date by the frames; `messages` are those of the chat pane, loaded on opening
      this.conversations = new Map();
      this.byMessageId = new Map();
      this.byClientMsgId = new Map();
      this.order = 0; // arrival order, for messages that have no id yet
      this.openWith = null;
      this.presence = new Map(); // userId -> {userId, online, lastSeen}
      this.watched = "";
      this.typingFrom = new Map(); // userId -> the timer that hides its typing line
      this.typingSent = null; // {to, at} of the last `typing: true` sent
      this.notifications = new Map(); // notificationId -> {notificationId, text, createdAt, read}
      this.alerts = 0;
      this.renewedToken = false; // a fresh token was fetched since the last successful connect
      this.client = new RealtimeClient({ token, userId: me.id });
      this.notifier = new RealtimeNotifier(this.client, { title: `Realtime demo · ${me.username}` });
    }

    start(openWith) {
      document.title = `${this.me.username} · Realtime demo`;
      const me = $("me");
      me.append(avatar(this.me), element("span", "me-name", this.me.username));
      me.hidden = false;
      $("tools").hidden = false;
      $("app").hidden = false;
      $("bell").insertAdjacentHTML("afterbegin", ICONS.bell);
      this.listen();
      this.renderNewConversation();
      this.renderConversations();
      this.renderSimulator();
      this.renderSound(this.notifier.soundEnabled);
      this.renderDesktopButton();
      if (openWith && openWith !== this.me.id) this.open(openWith);
      this.client.connect();
    }

    // ---------------------------------------------------------------- wiring

    listen() {
      const client = this.client;
      client.on("state", (state, detail) => this.onState(state, detail));
      client.on("connected", () => this.onConnected());
      client.on("message", (frame) => this.onMessage(frame));
      client.on("sent", (frame) => this.onSent(frame));
      client.on("delivered", (frame) => this.onDelivered(frame));
      client.on("read", (frame) => this.onRead(frame));
      client.on("deleted", (frame) => this.onDeleted(frame));
      client.on("failed", (entry) => this.onFailed(entry));
      client.on("typing", (frame) => this.onTyping(frame));
      client.on("presence", (users) => this.onPresence(users));
      client.on("notification", (frame) => this.onNotification(frame));
      client.on("notificationRead", (frame) => this.onNotificationRead(frame));

      const notifier = this.notifier;
      notifier.on("unread", (count) => this.renderBadge(count));
      notifier.on("leader", (leader) => this.renderRole(leader));
      notifier.on("sound", (on) => this.renderSound(on));
      notifier.on("alert", () => {
        this.alerts += 1;
        document.body.dataset.alerts = String(this.alerts);
      });
      notifier.on("click", () => this.toggleNotifications(true));

      $("composer").addEventListener("submit", (event) => {
        event.preventDefault();
        this.sendComposed();
      });
      $("composer-input").addEventListener("input", () => this.onComposing());
      $("composer-input").addEventListener("blur", () => this.stopTyping());
      $("back").addEventListener("click", () => this.close());
      $("new-conversation").addEventListener("change", (event) => {
        const partner = Number(event.target.value);
        event.target.value = "";
        if (partner) this.open(partner);
      });
      $("messages").addEventListener("click", (event) => {
        const button = event.target.closest(".message-delete");
        if (button) this.client.deleteMessage(Number(button.dataset.messageId));
      });
      $("bell").addEventListener("click", () => this.toggleNotifications());
      $("mark-all-read").addEventListener("click", () => this.client.markNotificationRead("all"));
      $("sound-toggle").addEventListener("click", () => this.notifier.setSoundEnabled(!this.notifier.soundEnabled));
      $("desktop-notifications").addEventListener("click", async () => {
        await this.notifier.requestPermission();
        this.renderDesktopButton();
      });
      $("actor").addEventListener("change", () => this.renderSimulator());
      for (const button of document.querySelectorAll(".action-button")) {
        button.addEventListener("click", () => this.simulate(button.dataset.kind));
      }
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible" && this.openWith !== null) this.markConversationRead(this.openWith);
      });
      document.addEventListener("click", (event) => {
        if (!event.target.closest(".bell-wrap")) this.toggleNotifications(false);
      });
    }

    onState(state, detail = {}) {
      const labels = {
        idle: "Starting…",
        connecting: "Connecting…",
        connected: "Connected",
        reconnecting: "Reconnecting…",
        unauthorized: "Signing in again…",
        refused: `Refused by the server (${detail.status})`, // 403: this origin is not allowed; 429: too many tabs
        closed: "Disconnected",
      };
      const pill = $("connection-state");
      pill.dataset.state = state;
      pill.textContent = labels[state] || state;
      pill.title = state === "refused" ? detail.reason : "";
      if (state === "connected") this.renewedToken = false;
      if (state === "unauthorized") this.renewToken();
    }

    /** Tokens expire: fetch a new one and hand it to the client, which then reconnects; once per refusal. */
    async renewToken() {
      if (this.renewedToken) {
        showFatal("The service refused this demo user's token. Reload the page to try again.");
        return;
      }
      this.renewedToken = true;
      try {
        const { token } = await getJson(`/demo/token?userId=${this.me.id}`);
        this.client.setToken(token);
      } catch (error) {
        showFatal(`Could not sign in again: ${error.message}`);
      }
    }

    /** After every (re)connect: the inbox, the open conversation and the notifications, as the server has them. */
    async onConnected() {
      for (const conversation of this.conversations.values()) conversation.loaded = false;
      const inbox = this.client.conversations({ limit: INBOX_PAGE }).then((entries) => {
        for (const entry of entries) {
          const conversation = this.conversation(entry.with);
          conversation.last = entry.lastMessage;
          conversation.unread = entry.unread;
        }
      });
      const notifications = this.client.notifications({ limit: NOTIFICATION_PAGE }).then((list) => {
        this.notifications = new Map(list.map((item) => [item.notificationId, item]));
      });
      try {
        await Promise.all([inbox, notifications]);
      } catch (error) {
        return; // the socket dropped meanwhile: the next `connected` catches up
      }
      this.renderConversations();
      this.renderNotifications();
      if (this.openWith !== null) this.loadHistory(this.openWith);
    }

    /** The newest page of the conversation with `partner`, once per connection, then marked read. */
    async loadHistory(partner) {
      const conversation = this.conversation(partner);
      if (conversation.loaded || !this.client.connected) return;
      conversation.loaded = true;
      try {
        const messages = await this.client.history(partner, { limit: HISTORY_PAGE });
        for (const message of messages) this.upsert(message);
      } catch (error) {
        conversation.loaded = false; // the socket dropped: the next `connected` loads it
        return;
      }
      if (partner === this.openWith) this.markConversationRead(partner);
      this.changed(partner);
    }

    // ---------------------------------------------------------------- chat state

    /** The inbox entry of `partner`, added empty if there is none yet. */
    conversation(partner) {
      let conversation = this.conversations.get(partner);
      if (!conversation) {
        const user = this.users.get(partner) || { id: partner, username: `user ${partner}` };
        conversation = { user, last: null, unread: 0, messages: [], loaded: false, blocked: false };
        this.conversations.set(partner, conversation);
      }
      return conversation;
    }

    /** Add or update a message known by messageId and/or clientMsgId; status only moves forward. */
    upsert(fields) {
      const byId = fields.messageId != null ? this.byMessageId.get(fields.messageId) : undefined;
      const byClientId = fields.clientMsgId != null ? this.byClientMsgId.get(fields.clientMsgId) : undefined;
      let message = byClientId || byId;
      if (byId && byClientId && byId !== byClientId) this.forget(byId); // one message seen twice: history and outbox
      if (!message) {
        const partner = fields.from === this.me.id ? fields.to : fields.from;
        if (partner === undefined || partner === this.me.id) return null; // a receipt of an unknown message, or a note to oneself
        message = { ...fields, order: this.order++ };
        this.conversation(partner).messages.push(message);
      } else {
        if (message.messageId == null && fields.messageId != null) message.messageId = fields.messageId;
        if (byId && byId !== message) message.status = laterStatus(message.status, byId.status);
        message.status = laterStatus(message.status, fields.status);
        if (fields.deleted) Object.assign(message, { deleted: true, content: "" }); // deleted while the page was away
      }
      if (message.messageId != null) this.byMessageId.set(message.messageId, message);
      if (message.clientMsgId != null) this.byClientMsgId.set(message.clientMsgId, message);
      return message;
    }

    forget(message) {
      const conversation = this.conversationOf(message);
      conversation.messages = conversation.messages.filter((other) => other !== message);
    }

    conversationOf(message) {
      return this.conversation(message.from === this.me.id ? message.to : message.from);
    }

    sendComposed() {
      const input = $("composer-input");
      const content = input.value.trim();
      if (!content || this.openWith === null) return;
      this.stopTyping();
      const clientMsgId = this.client.send(this.openWith, content);
      const message = this.upsert({
        clientMsgId,
        from: this.me.id,
        to: this.openWith,
        content,
        createdAt: new Date().toISOString(),
        status: "pending",
      });
      this.conversation(this.openWith).last = message;
      input.value = "";
      this.changed(this.openWith);
    }

    /** Typing in the composer: `typing` now and then every few seconds while it goes on; emptied, it stopped. */
    onComposing() {
      if (this.openWith === null) return;
      if ($("composer-input").value.trim() === "") {
        this.stopTyping();
        return;
      }
      const now = Date.now();
      const sent = this.typingSent;
      if (sent && sent.to === this.openWith && now - sent.at < TYPING_RENEW_MS) return;
      if (this.client.typing(this.openWith, true)) this.typingSent = { to: this.openWith, at: now };
    }

    /** Sent, left or switched away: the peer stops showing the typing line at once instead of after 6 s. */
    stopTyping() {
      if (this.typingSent === null) return;
      this.client.typing(this.typingSent.to, false);
      this.typingSent = null;
    }

    onTyping(frame) {
      clearTimeout(this.typingFrom.get(frame.from));
      this.typingFrom.delete(frame.from);
      if (frame.typing) {
        this.typingFrom.set(
          frame.from,
          setTimeout(() => {
            this.typingFrom.delete(frame.from);
            this.renderTyping();
            this.renderConversations();
          }, TYPING_SHOWN_MS)
        );
      }
      this.renderTyping();
      this.renderConversations();
    }

    onMessage(frame) {
      const mine = frame.from === this.me.id; // sent from another tab of mine
      const { messageId, clientMsgId, from, to, content, createdAt } = frame;
      const status = mine ? "sent" : "delivered";
      const message = this.upsert({ messageId, clientMsgId, from, to, content, createdAt, status });
      if (!message) return;
      const partner = mine ? frame.to : frame.from;
      const conversation = this.conversation(partner);
      conversation.last = message;
      if (!mine) {
        conversation.unread += 1;
        this.onTyping({ from: partner, typing: false }); // the message it was typing has arrived
      }
      if (!mine && partner === this.openWith && document.visibilityState === "visible") {
        this.markConversationRead(partner);
      } else if (!mine) {
        toast(`${this.nameOf(frame.from)}: ${frame.content}`);
      }
      this.changed(partner);
    }

    onSent(frame) {
      const message = this.upsert({ clientMsgId: frame.clientMsgId, messageId: frame.messageId, status: "sent" });
      if (!message) return;
      this.conversation(message.to).blocked = false; // a block lifted: messages are accepted again
      this.changed(message.to);
    }

    onDelivered(frame) {
      const message = this.byMessageId.get(frame.messageId) || this.byClientMsgId.get(frame.clientMsgId);
      if (!message) return;
      this.upsert({ messageId: frame.messageId, clientMsgId: message.clientMsgId, status: "delivered" });
      this.changed(message.to);
    }

    /** `message_read`: the reader read this message and every earlier one from the same sender. */
    onRead(frame) {
      if (frame.readBy !== this.me.id) {
        this.markUpTo(frame.readBy, this.me.id, frame.messageId); // my messages, read by the partner
        this.changed(frame.readBy);
        return;
      }
      // read in another tab of mine
      const partner = this.partnerOfMessage(frame.messageId);
      if (partner === null) return;
      this.markUpTo(partner, partner, frame.messageId);
      this.conversation(partner).unread = 0;
      this.changed(partner);
    }

    /** `message_deleted`, for either side's message: its bubble and inbox entry say so. */
    onDeleted(frame) {
      const partner = this.partnerOfMessage(frame.messageId);
      if (partner === null) return;
      const conversation = this.conversation(partner);
      for (const message of [this.byMessageId.get(frame.messageId), conversation.last]) {
        if (message && message.messageId === frame.messageId) Object.assign(message, { deleted: true, content: "" });
      }
      this.changed(partner);
    }

    onFailed(entry) {
      const message = this.byClientMsgId.get(entry.clientMsgId);
      if (!message) return;
      message.status = "failed";
      message.error = entry.error.message;
      if (entry.error.code === "forbidden") this.conversation(entry.to).blocked = true;
      this.changed(message.to);
    }

    onPresence(users) {
      for (const user of users) this.presence.set(user.userId, user);
      this.renderConversations();
      this.renderChatTitle();
    }

    /** The partner of a message this page knows, in the chat pane or as an inbox entry's last message; else null. */
    partnerOfMessage(messageId) {
      const message = this.byMessageId.get(messageId);
      if (message) return message.from === this.me.id ? message.to : message.from;
      for (const [partner, conversation] of this.conversations) {
        if (conversation.last && conversation.last.messageId === messageId) return partner;
      }
      return null;
    }

    /** Mark the messages from `sender` in the conversation with `partner`, up to `messageId`, read. */
    markUpTo(partner, sender, messageId) {
      for (const message of this.conversation(partner).messages) {
        if (message.from === sender && message.messageId != null && message.messageId <= messageId) {
          message.status = "read";
        }
      }
    }

    markConversationRead(partner) {
      const conversation = this.conversation(partner);
      const incoming = sorted(conversation.messages).filter(
        (message) => message.from === partner && message.messageId != null
      );
      const last = incoming[incoming.length - 1];
      if (!last || last.status === "read" || !this.client.markRead(last.messageId)) return;
      this.markUpTo(partner, partner, last.messageId);
      conversation.unread = 0;
      this.changed(partner);
    }

    open(partner) {
      if (this.openWith !== partner) this.stopTyping();
      this.openWith = partner;
      this.conversation(partner);
      $("app").dataset.view = "chat";
      $("composer").hidden = false;
      this.markConversationRead(partner);
      this.renderConversations();
      this.renderChat();
      this.loadHistory(partner);
      $("composer-input").focus();
      history.replaceState(null, "", `/?user=${this.me.id}&with=${partner}`);
    }

    /** Back to the inbox (the only way back on a narrow screen, where the two take turns). */
    close() {
      this.stopTyping();
      this.openWith = null;
      $("app").dataset.view = "inbox";
      $("composer").hidden = true;
      this.renderConversations();
      this.renderChat();
      history.replaceState(null, "", `/?user=${this.me.id}`);
    }

    changed(partner) {
      this.renderConversations();
      if (partner === this.openWith) this.renderChat();
    }

    /** Watch these peers: the server keeps one list per socket, so it is sent only when it changes. */
    watchPeers(peers) {
      peers.sort((a, b) => a - b);
      const key = peers.join(",");
      if (key === this.watched) return;
      this.watched = key;
      this.client.watch(peers);
    }

    otherUsers() {
      return Array.from(this.users.values()).filter((user) => user.id !== this.me.id);
    }

    nameOf(userId) {
      const user = this.users.get(userId);
      return user ? user.username : `user ${userId}`;
    }

    // ---------------------------------------------------------------- notifications

    onNotification(frame) {
      this.notifications.set(frame.notificationId, { ...frame, read: false });
      this.renderNotifications();
      toast(frame.text);
      const bell = $("bell");
      bell.classList.remove("ring");
      void bell.offsetWidth; // restart the animation
      bell.classList.add("ring");
    }

    onNotificationRead(frame) {
      for (const item of this.notifications.values()) {
        const read = frame.notificationIds || [frame.notificationId];
        if (frame.all || read.includes(item.notificationId)) item.read = true;
      }
      this.renderNotifications();
    }

    toggleNotifications(show) {
      const panel = $("notification-panel");
      const visible = show === undefined ? panel.hidden : show;
      panel.hidden = !visible;
      $("bell").setAttribute("aria-expanded", String(visible));
    }

    async simulate(kind) {
      const actor = Number($("actor").value);
      const body =
        kind === "post"
          ? { postId: 100 + actor, userId: actor }
          : { postId: 100 + this.me.id, userId: actor, ...(kind === "comment" ? { commentId: Date.now() } : {}) };
      const label = $(`simulate-${kind}`).textContent;
      try {
        const response = await fetch(`${location.protocol}//${location.hostname}:${this.config.httpPort}/notify/${kind}`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        });
        const result = await response.json();
        if (!response.ok) throw new Error(result.error || `HTTP ${response.status}`);
        logActivity(`${label}: notified ${plural(result.recipients, "user")}, ${result.online} online`);
      } catch (error) {
        logActivity(`${label}: failed (${error.message})`, true);
      }
    }

    // ---------------------------------------------------------------- rendering

    /** The inbox, most recent activity first (a conversation just started, or a message still pending, on top). */
    renderConversations() {
      const list = $("conversations");
      list.replaceChildren();
      const recency = (conversation) => {
        if (!conversation.last) return Infinity;
        return conversation.last.messageId == null ? Infinity : conversation.last.messageId;
      };
      const entries = Array.from(this.conversations).sort(([, a], [, b]) => recency(b) - recency(a));
      for (const [partner, conversation] of entries) {
        const item = element("li", "conversation");
        item.dataset.userId = String(partner);
        item.dataset.presence = presenceState(this.presence.get(partner));
        item.classList.toggle("active", partner === this.openWith);
        const button = element("button", "conversation-button");
        button.type = "button";
        const text = element("span", "conversation-text");
        const preview = element("span", "conversation-preview", this.previewOf(partner, conversation));
        preview.classList.toggle("typing", this.typingFrom.has(partner));
        text.append(element("span", "conversation-name", conversation.user.username), preview);
        const count = element("span", "unread-count", String(conversation.unread));
        count.hidden = conversation.unread === 0;
        const face = element("span", "avatar-wrap");
        face.append(avatar(conversation.user), element("span", "presence-dot"));
        button.append(face, text, count);
        button.addEventListener("click", () => this.open(partner));
        item.append(button);
        list.append(item);
      }
      $("inbox-empty").hidden = entries.length > 0;
      this.watchPeers(entries.slice(0, WATCH_MAX).map(([partner]) => partner)); // whose presence the page shows
    }

    previewOf(partner, conversation) {
      if (this.typingFrom.has(partner)) return "typing…";
      if (conversation.blocked) return "Does not accept your messages";
      const last = conversation.last;
      if (!last) return "No messages yet";
      const prefix = last.from === this.me.id ? "You: " : "";
      return `${prefix}${last.deleted ? "message deleted" : last.content}`;
    }

    renderChat() {
      const container = $("messages");
      container.replaceChildren();
      this.renderChatTitle();
      this.renderTyping();
      if (this.openWith === null) {
        $("chat-title").replaceChildren("Pick a conversation");
        $("chat-title").dataset.presence = "unknown";
        $("blocked-notice").hidden = true;
        container.append(element("p", "empty chat-placeholder", "Choose a conversation, or start a new one."));
        return;
      }
      const conversation = this.conversation(this.openWith);
      const blocked = $("blocked-notice");
      blocked.textContent = `${conversation.user.username} does not accept messages from you.`;
      blocked.hidden = !conversation.blocked;
      const messages = sorted(conversation.messages);
      if (messages.length === 0) container.append(element("p", "empty chat-placeholder", "No messages yet. Say hello!"));
      for (const message of messages) container.append(this.messageElement(message));
      const last = messages[messages.length - 1];
      if (last && last.from === this.me.id && !last.deleted) {
        container.append(element("p", "status-line", last.error ? `Not sent: ${last.error}` : STATUS_LABEL[last.status]));
      }
      container.scrollTop = container.scrollHeight;
    }

    /** The open conversation's name, presence dot and "online" or "last seen …". */
    renderChatTitle() {
      if (this.openWith === null) return;
      const user = this.conversation(this.openWith).user;
      const presence = this.presence.get(this.openWith);
      const state = presenceState(presence);
      const face = element("span", "avatar-wrap");
      face.append(avatar(user), element("span", "presence-dot"));
      const names = element("span", "chat-names");
      const seen = state === "online" ? "online" : state === "offline" && presence.lastSeen ? `last seen ${formatSeen(presence.lastSeen)}` : "";
      names.append(element("span", "chat-name", user.username), element("span", "chat-seen", seen));
      const title = $("chat-title");
      title.dataset.presence = state;
      title.replaceChildren(face, names);
    }

    renderTyping() {
      const line = $("typing-line");
      const typing = this.openWith !== null && this.typingFrom.has(this.openWith);
      line.textContent = typing ? `${this.nameOf(this.openWith)} is typing…` : "";
      line.hidden = !typing;
    }

    messageElement(message) {
      const mine = message.from === this.me.id;
      const bubble = element("div", `message ${mine ? "mine" : "theirs"}`);
      bubble.dataset.status = message.status;
      bubble.classList.toggle("deleted", Boolean(message.deleted));
      if (message.messageId != null) bubble.dataset.messageId = String(message.messageId);
      if (message.clientMsgId != null) bubble.dataset.clientMsgId = message.clientMsgId;
      const meta = element("span", "message-meta", formatTime(message.createdAt));
      if (mine && !message.deleted) {
        const tick = element("span", `tick tick-${message.status}`);
        tick.title = message.error ? `${STATUS_LABEL.failed}: ${message.error}` : STATUS_LABEL[message.status];
        tick.setAttribute("aria-label", tick.title);
        tick.innerHTML = ICONS[message.status];
        meta.append(tick);
        if (message.messageId != null) {
          const remove = element("button", "message-delete", "×");
          remove.type = "button";
          remove.title = "Delete for both";
          remove.setAttribute("aria-label", "Delete message");
          remove.dataset.messageId = String(message.messageId);
          meta.append(remove);
        }
      }
      bubble.append(element("p", "message-text", message.deleted ? "message deleted" : message.content), meta);
      return bubble;
    }

    renderBadge(count) {
      const badge = $("bell-count");
      badge.textContent = count > 99 ? "99+" : String(count);
      badge.hidden = count === 0;
      document.title = `${count ? `(${count}) ` : ""}${this.me.username} · Realtime demo`;
    }

    renderNotifications() {
      const list = $("notification-list");
      list.replaceChildren();
      const items = Array.from(this.notifications.values()).sort((a, b) => b.notificationId - a.notificationId);
      for (const item of items) {
        const entry = element("li", "notification");
        entry.dataset.notificationId = String(item.notificationId);
        entry.dataset.read = String(item.read);
        const button = element("button", "notification-button");
        button.type = "button";
        button.append(
          element("span", `notification-kind kind-${item.notificationType}`),
          element("span", "notification-text", item.text),
          element("time", "notification-time", formatTime(item.createdAt))
        );
        button.addEventListener("click", () => {
          if (!item.read) this.client.markNotificationRead(item.notificationIds || item.notificationId);
        });
        entry.append(button);
        list.append(entry);
      }
      $("notification-empty").hidden = items.length > 0;
    }

    renderRole(leader) {
      const role = $("alert-role");
      role.dataset.leader = String(leader);
      role.textContent = leader ? "This tab alerts" : "Another tab alerts";
    }

    renderSound(on) {
      const button = $("sound-toggle");
      button.setAttribute("aria-pressed", String(on));
      button.title = on ? "Sound alerts on (click to mute)" : "Sound alerts off (click to turn on)";
      button.innerHTML = on ? ICONS.soundOn : ICONS.soundOff;
    }

    renderDesktopButton() {
      $("desktop-notifications").hidden = this.notifier.permission !== "default";
    }

    /** The demo users one may start a conversation with. */
    renderNewConversation() {
      const select = $("new-conversation");
      for (const user of this.otherUsers()) select.append(new Option(user.username, String(user.id)));
    }

    renderSimulator() {
      const select = $("actor");
      if (select.options.length === 0) {
        for (const user of this.otherUsers()) select.append(new Option(user.username, String(user.id)));
      }
      const actor = this.nameOf(Number(select.value));
      $("simulate-like").textContent = `${actor} likes my post`;
      $("simulate-comment").textContent = `${actor} comments on my post`;
      $("simulate-post").textContent = `${actor} publishes a post`;
    }
  }

  // ------------------------------------------------------------------ helpers

  function laterStatus(current, candidate) {
    if (current === undefined) return candidate;
    if (candidate === undefined || current === "failed") return current;
    return STATUS_RANK[candidate] > STATUS_RANK[current] ? candidate : current;
  }

  /** Stored messages by id, then those still without one in the order they were written. */
  function sorted(messages) {
    return messages.slice().sort((a, b) => {
      const aId = a.messageId == null ? Infinity : a.messageId;
      const bId = b.messageId == null ? Infinity : b.messageId;
      return aId === bId ? a.order - b.order : aId - bId;
    });
  }

  /** "online", "offline", or "unknown" (not reported yet, or private: `online: null`). */
  function presenceState(presence) {
    if (!presence || presence.online === null) return "unknown";
    return presence.online ? "online" : "offline";
  }

  /** A lastSeen time: the time of day if today, else the date too. */
  function formatSeen(iso) {
    const seen = new Date(iso);
    if (seen.toDateString() === new Date().toDateString()) return `at ${formatTime(iso)}`;
    return seen.toLocaleString([], { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }

  async function getJson(path) {
    const response = await fetch(path);
    if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    return response.json();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function avatar(user) {
    const node = element("span", "avatar", user.username.charAt(0).toUpperCase());
    node.style.setProperty("--hue", String((user.id * 67) % 360));
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  function formatTime(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function plural(count, noun) {
    return `${count} ${noun}${count === 1 ? "" : "s"}`;
  }

  function toast(text) {
    const node = element("div", "toast", text);
    $("toasts").append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  }

  function logActivity(text, failed = false) {
    const log = $("activity-log");
    const item = element("li", failed ? "failed" : null, text);
    log.prepend(item);
    while (log.children.length > ACTIVITY_KEPT) log.lastElementChild.remove();
  }

  function showFatal(text) {
    const fatal = $("fatal");
    fatal.textContent = text;
    fatal.hidden = false;
  }
})();
