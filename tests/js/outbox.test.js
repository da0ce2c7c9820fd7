// The outbox of clients/js (dist/realtime.js): unacknowledged messages, kept in send order until `message_sent`.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { Outbox } = require("../../clients/js/dist/realtime.js");

const entry = (n) => ({ clientMsgId: `c-${n}`, to: 2, content: `message ${n}` });
const ids = (outbox) => outbox.pending().map((pending) => pending.clientMsgId);

test("pending() lists every entry in the order it was added", () => {
  const outbox = new Outbox();
  for (const n of [3, 1, 2]) outbox.add(entry(n));
  assert.deepEqual(ids(outbox), ["c-3", "c-1", "c-2"]);
  assert.deepEqual(outbox.pending()[0], entry(3));
  assert.equal(outbox.size, 3);
});

test("an acknowledgement removes its entry and keeps the others in order", () => {
  const outbox = new Outbox();
  for (const n of [1, 2, 3, 4]) outbox.add(entry(n));
  assert.deepEqual(outbox.remove("c-2"), entry(2));
  assert.deepEqual(outbox.remove("c-4"), entry(4));
  assert.deepEqual(ids(outbox), ["c-1", "c-3"]);
  assert.equal(outbox.has("c-2"), false);
  assert.equal(outbox.has("c-3"), true);
});

test("a repeated or unknown acknowledgement changes nothing", () => {
  const outbox = new Outbox();
  outbox.add(entry(1));
  outbox.remove("c-1");
  assert.equal(outbox.remove("c-1"), undefined);
  assert.equal(outbox.remove("never-sent"), undefined);
  assert.equal(outbox.size, 0);
  assert.deepEqual(outbox.pending(), []);
});

test("the resend list is a copy: acknowledging while resending skips nothing", () => {
  const outbox = new Outbox();
  for (const n of [1, 2, 3]) outbox.add(entry(n));
  const resent = [];
  for (const pending of outbox.pending()) {
    resent.push(pending.clientMsgId);
    outbox.remove(pending.clientMsgId);
  }
  assert.deepEqual(resent, ["c-1", "c-2", "c-3"]);
});

test("entries added after an acknowledgement go last", () => {
  const outbox = new Outbox();
  outbox.add(entry(1));
  outbox.add(entry(2));
  outbox.remove("c-1");
  outbox.add(entry(3));
  assert.deepEqual(ids(outbox), ["c-2", "c-3"]);
});

test("a clientMsgId is pending at most once", () => {
  const outbox = new Outbox();
  outbox.add(entry(1));
  assert.throws(() => outbox.add(entry(1)), /already pending/);
});
