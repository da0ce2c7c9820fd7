// The reconnect schedule of clients/js (dist/realtime.js): exponential, capped, jittered, reset by a stable connection.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { backoffDelay, ReconnectSchedule } = require("../../clients/js/dist/realtime.js");

const lowest = () => 0;
const highest = () => 0.999999;

test("the ceiling doubles from baseMs with each attempt", () => {
  const ceilings = [0, 1, 2, 3, 4].map((attempt) => backoffDelay(attempt, { baseMs: 500, random: highest }));
  const expected = [500, 1000, 2000, 4000, 8000];
  ceilings.forEach((delay, attempt) => assert.ok(Math.abs(delay - expected[attempt]) < 0.01, `${delay} at ${attempt}`));
});

test("jitter stays in the upper half of the ceiling", () => {
  for (let attempt = 0; attempt < 12; attempt += 1) {
    const ceiling = Math.min(30000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, { random: lowest }), ceiling / 2);
    for (let sample = 0; sample < 200; sample += 1) {
      const delay = backoffDelay(attempt);
      assert.ok(delay >= ceiling / 2 && delay < ceiling, `attempt ${attempt}: ${delay} outside [${ceiling / 2}, ${ceiling})`);
    }
  }
});

test("jitter spreads clients out", () => {
  const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3)));
  assert.ok(delays.size > 40, `only ${delays.size} distinct delays out of 50`);
});

test("the delay is capped at 30 s by default, whatever the attempt", () => {
  for (const attempt of [6, 7, 10, 50, 2000]) {
    const delay = backoffDelay(attempt, { random: highest });
    assert.ok(delay < 30000 && delay > 29999, `${delay} at attempt ${attempt}`);
  }
  assert.ok(backoffDelay(20, { capMs: 5000, random: highest }) < 5000);
});

test("each delay taken counts an attempt", () => {
  const schedule = new ReconnectSchedule({ baseMs: 100, random: lowest });
  assert.deepEqual([schedule.nextDelay(), schedule.nextDelay(), schedule.nextDelay()], [50, 100, 200]);
  assert.equal(schedule.attempt, 3);
});

test("a connection that stayed up stableMs resets the schedule", () => {
  let now = 0;
  const schedule = new ReconnectSchedule({ baseMs: 100, random: lowest, stableMs: 10000, now: () => now });
  schedule.nextDelay();
  schedule.nextDelay();
  schedule.connected();
  now = 10000;
  schedule.disconnected();
  assert.equal(schedule.attempt, 0);
  assert.equal(schedule.nextDelay(), 50);
});

test("a connection that dropped sooner keeps backing off", () => {
  let now = 0;
  const schedule = new ReconnectSchedule({ baseMs: 100, random: lowest, stableMs: 10000, now: () => now });
  schedule.nextDelay();
  schedule.nextDelay();
  schedule.connected();
  now = 9999;
  schedule.disconnected();
  assert.equal(schedule.attempt, 2);
  assert.equal(schedule.nextDelay(), 200);
});

test("a failed attempt that never connected does not reset", () => {
  let now = 0;
  const schedule = new ReconnectSchedule({ stableMs: 10, now: () => now });
  schedule.nextDelay();
  now = 1e9;
  schedule.disconnected();
  assert.equal(schedule.attempt, 1);
});
