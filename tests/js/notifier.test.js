// RealtimeNotifier with fake browser objects: the badge count, one alerting tab, browser notifications, sound.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { Emitter, RealtimeNotifier } = require("../../clients/js/dist/realtime.js");
const { fakeLocks, fakeNotificationApi, fakeAudioContext, fakeStorage, nextEvent } = require("./fakes.js");

/** A page's globals: visible unless `hidden`, with Web Locks unless `locks` is null. */
function environment({ hidden = false, locks = fakeLocks(), permission = "granted", storage = fakeStorage() } = {}) {
  return {
    document: { hidden },
    navigator: locks ? { locks } : {},
    Notification: fakeNotificationApi(permission),
    AudioContext: fakeAudioContext(),
    localStorage: storage,
  };
}

/** A stand-in for RealtimeClient: only its events matter to the notifier. */
function fakeClient(userId = 1) {
  const client = new Emitter();
  client.userId = userId;
  return client;
}

const notification = (id) => ({ type: "notification", notificationId: id, notificationType: "like", text: `like ${id}` });

test("the unread count starts from connected, grows per notification and drops as they are read", () => {
  const client = fakeClient();
  const notifier = new RealtimeNotifier(client, { environment: environment() });
  const counts = [];
  notifier.on("unread", (count) => counts.push(count));
  client.emit("connected", { type: "connected", userId: 1, unreadNotifications: 2 });
  client.emit("notification", notification(10));
  client.emit("notificationRead", { notificationId: 10 });
  client.emit("notificationRead", { notificationId: 10 }); // the same mark again, from another tab
  client.emit("notification", notification(11));
  client.emit("notificationRead", { all: true });
  assert.deepEqual(counts, [2, 3, 2, 3, 0]);
  notifier.destroy();
});

test("a grouped notification counts every like it stands for, and reading its list takes them all away", () => {
  const client = fakeClient();
  const notifier = new RealtimeNotifier(client, { environment: environment() });
  client.emit("connected", { type: "connected", userId: 1, unreadNotifications: 0 });
  client.emit("notification", notification(10)); // the first like, pushed alone
  client.emit("notification", { ...notification(13), count: 3, actorIds: [4, 3, 2], notificationIds: [13, 12, 11] });
  assert.equal(notifier.unread, 4); // what a reload's unreadNotifications says
  client.emit("notificationRead", { notificationIds: [13, 12, 11] });
  client.emit("notificationRead", { notificationIds: [13, 12, 11] }); // the same mark again, from another tab
  assert.equal(notifier.unread, 1);
});

test("marking a notification already known as read does not lower the count", () => {
  const client = fakeClient();
  const notifier = new RealtimeNotifier(client, { environment: environment() });
  client.emit("connected", { type: "connected", userId: 1, unreadNotifications: 1 });
  client.emit("notifications", [{ notificationId: 4, read: true }, { notificationId: 5, read: false }]);
  client.emit("notificationRead", { notificationId: 4 });
  assert.equal(notifier.unread, 1);
  client.emit("notificationRead", { notificationId: 5 });
  assert.equal(notifier.unread, 0);
  notifier.destroy();
});

test("of two tabs of one user only the lock holder alerts, and the other takes over when it goes", async () => {
  const locks = fakeLocks();
  const [firstClient, secondClient] = [fakeClient(), fakeClient()];
  const first = new RealtimeNotifier(firstClient, { environment: environment({ locks }) });
  await nextEvent(first, "leader");
  const second = new RealtimeNotifier(secondClient, { environment: environment({ locks }) });
  const alerts = { first: 0, second: 0 };
  first.on("alert", () => (alerts.first += 1));
  second.on("alert", () => (alerts.second += 1));

  firstClient.emit("notification", notification(1));
  secondClient.emit("notification", notification(1));
  assert.deepEqual(alerts, { first: 1, second: 0 });
  assert.equal(second.unread, 1); // every tab keeps its badge

  const takeover = nextEvent(second, "leader");
  first.destroy();
  assert.deepEqual(await takeover, [true]);
  secondClient.emit("notification", notification(2));
  assert.deepEqual(alerts, { first: 1, second: 1 });
  second.destroy();
});

test("different users in one browser each have an alerting tab", async () => {
  const locks = fakeLocks();
  const alice = new RealtimeNotifier(fakeClient(1), { environment: environment({ locks }) });
  const bob = new RealtimeNotifier(fakeClient(2), { environment: environment({ locks }) });
  await Promise.all([nextEvent(alice, "leader"), nextEvent(bob, "leader")]);
  assert.ok(alice.leader && bob.leader);
  alice.destroy();
  bob.destroy();
});

test("without Web Locks every tab alerts for itself", () => {
  const notifier = new RealtimeNotifier(fakeClient(), { environment: environment({ locks: null }) });
  assert.equal(notifier.leader, true);
  notifier.destroy();
});

test("a browser notification is shown only while the page is hidden and permission is granted", async () => {
  for (const [hidden, permission, expected] of [
    [true, "granted", true],
    [false, "granted", false],
    [true, "denied", false],
  ]) {
    const client = fakeClient();
    const env = environment({ hidden, permission });
    const notifier = new RealtimeNotifier(client, { title: "Demo", environment: env });
    await nextEvent(notifier, "leader");
    const alert = nextEvent(notifier, "alert");
    client.emit("notification", notification(7));
    const [{ shown }] = await alert;
    assert.equal(shown, expected, `hidden=${hidden} permission=${permission}`);
    assert.equal(env.Notification.shown.length, expected ? 1 : 0);
    if (expected) {
      assert.equal(env.Notification.shown[0].title, "Demo");
      assert.deepEqual(env.Notification.shown[0].options, { body: "like 7", tag: "realtime-notification-7" });
    }
    notifier.destroy();
  }
});

test("permission is asked only while the browser has no answer", async () => {
  const env = environment({ permission: "default" });
  const notifier = new RealtimeNotifier(fakeClient(), { environment: env });
  assert.equal(await notifier.requestPermission(), "granted");
  assert.equal(await notifier.requestPermission(), "granted");
  assert.equal(env.Notification.asked, 1);
  notifier.destroy();
  const unsupported = new RealtimeNotifier(fakeClient(), { environment: { ...env, Notification: undefined } });
  assert.equal(await unsupported.requestPermission(), "unsupported");
  unsupported.destroy();
});

test("the sound setting is saved, and a notification beeps only when it is on", async () => {
  const storage = fakeStorage();
  const env = environment({ storage });
  const client = fakeClient();
  const notifier = new RealtimeNotifier(client, { environment: env });
  await nextEvent(notifier, "leader");
  assert.equal(notifier.soundEnabled, false);
  const sounds = [];
  notifier.on("alert", ({ sound }) => sounds.push(sound));
  client.emit("notification", notification(1));
  notifier.setSoundEnabled(true); // beeps once as a preview
  client.emit("notification", notification(2));
  assert.deepEqual(sounds, [false, true]);
  assert.equal(env.AudioContext.beeps, 2);
  assert.equal(storage.getItem("realtime.sound"), "on");
  notifier.destroy();
  const reloaded = new RealtimeNotifier(fakeClient(), { environment: environment({ storage }) });
  assert.equal(reloaded.soundEnabled, true);
  reloaded.destroy();
});

test("with the sound on, the first gesture on the page readies the audio, so a later alert can play", () => {
  const listeners = new Map();
  const storage = fakeStorage();
  storage.setItem("realtime.sound", "on");
  const env = {
    ...environment({ storage }),
    addEventListener: (type, listener) => listeners.set(type, listener),
    removeEventListener: (type) => listeners.delete(type),
  };
  let created = 0;
  env.AudioContext = class extends fakeAudioContext() {
    constructor() {
      super();
      created += 1;
    }
  };
  const notifier = new RealtimeNotifier(fakeClient(), { environment: env });
  assert.equal(created, 0);
  listeners.get("pointerdown")({});
  assert.equal(created, 1);
  notifier.destroy();
  assert.equal(listeners.size, 0);
});
