// RealtimeClient over a fake WebSocket: connect, outbox resend, reconnect, 4401, FIFO requests, refusals.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { CONNECTED, connected, makeClient, nextEvent } = require("./fakes.js");

test("opens the socket and authenticates with the token", async (t) => {
  const { client, sockets } = makeClient(t);
  assert.equal(client.state, "idle");
  client.connect();
  assert.equal(client.state, "connecting");
  const socket = await sockets.at(0);
  assert.equal(socket.url, "ws://test/");
  socket.open();
  assert.deepEqual(socket.sent, [{ type: "connect", token: "token-1", userId: 1 }]);
  const [frame] = await Promise.all([nextEvent(client, "connected").then(([f]) => f), socket.receive(CONNECTED)]);
  assert.deepEqual(frame, CONNECTED);
  assert.equal(client.state, "connected");
});

test("messages written while offline wait in the outbox and go out in order on connect", async (t) => {
  const { client, sockets } = makeClient(t);
  const first = client.send(2, "one");
  const second = client.send(3, "two");
  assert.notEqual(first, second);
  assert.ok(first.length <= 64);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  assert.deepEqual(socket.sentOfType("message"), [
    { type: "message", to: 2, content: "one", clientMsgId: first },
    { type: "message", to: 3, content: "two", clientMsgId: second },
  ]);
});

test("message_sent removes the entry; the rest is resent with the same ids after a reconnect", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const ids = ["a", "b", "c"].map((content) => client.send(2, content));
  assert.deepEqual(socket.sentOfType("message").map((frame) => frame.clientMsgId), ids);

  const sent = nextEvent(client, "sent");
  socket.receive({ type: "message_sent", messageId: 10, clientMsgId: ids[1], to: 2, createdAt: "2026-01-01T00:00:00.000Z" });
  assert.equal((await sent)[0].messageId, 10);
  assert.deepEqual(client.outbox.pending().map((entry) => entry.clientMsgId), [ids[0], ids[2]]);

  socket.drop(1006);
  assert.equal(client.state, "reconnecting");
  const again = await sockets.at(1);
  await connected(client, again);
  assert.deepEqual(again.sentOfType("message").map((frame) => [frame.clientMsgId, frame.content]), [
    [ids[0], "a"],
    [ids[2], "c"],
  ]);
});

test("a lost connection is retried after a jittered, growing delay", async (t) => {
  const { client, sockets } = makeClient(t, { backoff: { baseMs: 4, capMs: 16, random: () => 0 } });
  const delays = [];
  client.on("state", (state, detail) => {
    if (state === "reconnecting") delays.push(detail.delayMs);
  });
  client.connect();
  for (let attempt = 0; attempt < 4; attempt += 1) (await sockets.at(attempt)).drop(1006);
  await sockets.at(4);
  assert.deepEqual(delays, [2, 4, 8, 8]);
});

test("after close 4401 it stops until setToken() gives a new token", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  socket.open();
  const unauthorized = nextEvent(client, "state", (state) => state === "unauthorized");
  socket.receive({ type: "error", code: "unauthorized", message: "invalid token", ref: { type: "connect" } });
  socket.drop(4401);
  await unauthorized;
  assert.equal(sockets.created.length, 1);
  client.setToken("token-2");
  const retry = await sockets.at(1);
  retry.open();
  assert.deepEqual(retry.sent, [{ type: "connect", token: "token-2", userId: 1 }]);
});

test("setToken() on an open socket renews the session in place", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  client.setToken("token-2");
  assert.deepEqual(socket.sentOfType("connect").at(-1), { type: "connect", token: "token-2", userId: 1 });
  assert.equal(sockets.created.length, 1);
});

test("requests are answered in order per type and rejected when the socket drops", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const bob = client.history(2, { limit: 5 });
  const carol = client.history(3, { before: 99 });
  const list = client.notifications({ limit: 3 });
  const inbox = client.conversations({ before: 40, limit: 2 });
  assert.deepEqual(socket.sent.slice(-4), [
    { type: "history", with: 2, limit: 5 },
    { type: "history", with: 3, before: 99 },
    { type: "notifications", limit: 3 },
    { type: "conversations", before: 40, limit: 2 },
  ]);
  socket.receive({ type: "conversations", conversations: [{ with: 2, unread: 1 }] });
  assert.deepEqual(await inbox, [{ with: 2, unread: 1 }]);
  socket.receive({ type: "notifications", notifications: [{ notificationId: 7 }] });
  socket.receive({ type: "history", with: 2, messages: [{ messageId: 1 }] });
  assert.deepEqual(await bob, [{ messageId: 1 }]);
  assert.deepEqual(await list, [{ notificationId: 7 }]);
  socket.drop(1001);
  await assert.rejects(carol, { name: "RealtimeError", code: "disconnected" });
  await assert.rejects(client.history(2), { code: "not_connected" });
});

test("an error answering a request rejects the oldest request of that type", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const refused = client.history(99);
  const answered = client.history(2);
  socket.receive({ type: "error", code: "not_found", message: "no such user", ref: { type: "history" } });
  socket.receive({ type: "history", with: 2, messages: [] });
  await assert.rejects(refused, { code: "not_found" });
  assert.deepEqual(await answered, []);
});

test("a message refused for good leaves the outbox and is reported; a rate-limited one stays", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const tooLarge = client.send(2, "x".repeat(5000));
  const limited = client.send(2, "later");
  const failed = nextEvent(client, "failed");
  socket.receive({ type: "error", code: "too_large", message: "too long", ref: { type: "message", clientMsgId: tooLarge } });
  const [entry] = await failed;
  assert.equal(entry.clientMsgId, tooLarge);
  assert.equal(entry.error.code, "too_large");
  socket.receive({ type: "error", code: "rate_limited", message: "slow down", ref: { type: "message", clientMsgId: limited } });
  assert.deepEqual(client.outbox.pending().map((pending) => pending.clientMsgId), [limited]);
});

test("each chat message is emitted once, even when the server pushes it again", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const seen = [];
  client.on("message", (frame) => seen.push(frame.messageId));
  const frame = { type: "message", messageId: 5, from: 2, to: 1, content: "hi", createdAt: "", clientMsgId: "x" };
  socket.receive(frame);
  socket.receive(frame);
  socket.receive({ ...frame, messageId: 6 });
  assert.deepEqual(seen, [5, 6]);
});

test("receipts and notifications become events", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  const events = [];
  for (const name of ["delivered", "read", "deleted", "notification", "notificationRead"]) {
    client.on(name, (frame) => events.push([name, frame.type]));
  }
  socket.receive({ type: "message_delivered", messageId: 1, clientMsgId: "c", deliveredAt: "" });
  socket.receive({ type: "message_read", messageId: 1, readBy: 2, readAt: "" });
  socket.receive({ type: "message_deleted", messageId: 1, deletedAt: "" });
  socket.receive({ type: "notification", notificationId: 3, text: "bob liked your post" });
  socket.receive({ type: "notification_read", all: true, readAt: "" });
  socket.receive({ type: "pong" });
  assert.deepEqual(events, [
    ["delivered", "message_delivered"],
    ["read", "message_read"],
    ["deleted", "message_deleted"],
    ["notification", "notification"],
    ["notificationRead", "notification_read"],
  ]);
});

test("markRead, deleteMessage and markNotificationRead send their frames only while connected", async (t) => {
  const { client, sockets } = makeClient(t);
  assert.equal(client.markRead(4), false);
  assert.equal(client.deleteMessage(4), false);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  assert.equal(client.markRead(4), true);
  assert.equal(client.deleteMessage(4), true);
  assert.equal(client.markNotificationRead(9), true);
  assert.equal(client.markNotificationRead("all"), true);
  assert.deepEqual(socket.sent.slice(-4), [
    { type: "message_read", messageId: 4 },
    { type: "message_delete", messageId: 4 },
    { type: "notification_read", notificationId: 9 },
    { type: "notification_read", all: true },
  ]);
});

test("watch() sends its list now or on connect, again after every reconnect, and presence is one event per frame", async (t) => {
  const { client, sockets } = makeClient(t);
  client.watch([2, 3]);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  assert.deepEqual(socket.sentOfType("watch"), [{ type: "watch", userIds: [2, 3] }]);
  client.watch(new Set([4]));
  assert.deepEqual(socket.sentOfType("watch").slice(-1), [{ type: "watch", userIds: [4] }]);

  const users = [{ userId: 4, online: true, lastSeen: null }];
  const presence = nextEvent(client, "presence");
  socket.receive({ type: "presence", users });
  assert.deepEqual((await presence)[0], users);

  socket.drop(1006);
  const again = await sockets.at(1);
  await connected(client, again);
  assert.deepEqual(again.sentOfType("watch"), [{ type: "watch", userIds: [4] }]);
});

test("a socket that never authenticates is given up on and retried", async (t) => {
  const { client, sockets } = makeClient(t, { connectTimeoutMs: 5 });
  client.connect();
  const hung = await sockets.at(0);
  hung.open(); // accepted, but no `connected` ever comes
  await sockets.at(1);
  assert.equal(hung.closedWith, 1000);
});

test("a silent socket is detected by the heartbeat and replaced", async (t) => {
  const { client, sockets } = makeClient(t, { heartbeatMs: 5 });
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  await sockets.at(1); // a ping went unanswered for a whole interval
  assert.ok(socket.sentOfType("ping").length >= 1);
});

test("close() stops for good", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  client.close();
  assert.equal(client.state, "closed");
  assert.equal(socket.closedWith, 1000);
  assert.equal(sockets.created.length, 1);
});
