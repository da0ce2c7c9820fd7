// Stand-ins for the browser objects realtime.js uses, for the unit tests under Node.
"use strict";

const { RealtimeClient } = require("../../clients/js/dist/realtime.js");

/** A WebSocket class whose instances the test opens, feeds and drops; `sockets.at(n)` waits for the n-th. */
function fakeWebSockets() {
  const created = [];
  const waiting = new Map(); // index -> resolve

  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.sentListeners = new Set();
      this.closedWith = null;
      created.push(this);
      const resolve = waiting.get(created.length - 1);
      if (resolve) resolve(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      const frame = JSON.parse(text);
      this.sent.push(frame);
      for (const listener of Array.from(this.sentListeners)) listener(frame);
    }

    /** Resolves with the next frame the client sends on this socket that passes `accept`. */
    nextSent(accept = () => true) {
      return new Promise((resolve) => {
        const listener = (frame) => {
          if (!accept(frame)) return;
          this.sentListeners.delete(listener);
          resolve(frame);
        };
        this.sentListeners.add(listener);
      });
    }

    close(code) {
      this.readyState = 3;
      this.closedWith = code;
    }

    // what the server does
    open() {
      this.readyState = 1;
      this.onopen({});
    }

    receive(frame) {
      this.onmessage({ data: JSON.stringify(frame) });
    }

    drop(code = 1006) {
      this.readyState = 3;
      this.onclose({ code });
    }

    sentOfType(type) {
      return this.sent.filter((frame) => frame.type === type);
    }
  }

  return {
    WebSocket: FakeWebSocket,
    created,
    at(index) {
      if (created[index]) return Promise.resolve(created[index]);
      return new Promise((resolve) => waiting.set(index, resolve));
    },
  };
}

/** navigator.locks with exclusive locks: a request waits until the holder's promise settles; grants are async, as in browsers. */
function fakeLocks() {
  const held = new Set();
  const queues = new Map();

  function grant(name, callback) {
    held.add(name);
    Promise.resolve()
      .then(() => callback({ name }))
      .finally(() => {
        held.delete(name);
        const next = (queues.get(name) || []).shift();
        if (next) grant(name, next.callback);
      });
  }

  return {
    request(name, options, callback) {
      if (!held.has(name)) {
        grant(name, callback);
      } else {
        if (!queues.has(name)) queues.set(name, []);
        const waiter = { callback };
        queues.get(name).push(waiter);
        if (options.signal) {
          options.signal.addEventListener("abort", () => {
            queues.set(name, queues.get(name).filter((other) => other !== waiter));
          });
        }
      }
      return new Promise(() => {}); // settles when the lock is released; the notifier does not wait for it
    },
  };
}

/** A Notification API that records what was shown. */
function fakeNotificationApi(permission = "default", answer = "granted") {
  const shown = [];
  class FakeNotification {
    constructor(title, options) {
      this.title = title;
      this.options = options;
      shown.push(this);
    }

    close() {}
  }
  FakeNotification.permission = permission;
  FakeNotification.asked = 0;
  FakeNotification.requestPermission = () => {
    FakeNotification.asked += 1;
    FakeNotification.permission = answer;
    return Promise.resolve(answer);
  };
  FakeNotification.shown = shown;
  return FakeNotification;
}

/** An AudioContext that counts beeps. */
function fakeAudioContext() {
  const param = () => ({ setValueAtTime() {}, exponentialRampToValueAtTime() {} });
  class FakeAudioContext {
    constructor() {
      this.state = "running";
      this.currentTime = 0;
      this.destination = {};
      FakeAudioContext.beeps = FakeAudioContext.beeps || 0;
    }

    createOscillator() {
      return { frequency: param(), connect() {}, start() { FakeAudioContext.beeps += 1; }, stop() {} };
    }

    createGain() {
      return { gain: param(), connect() {} };
    }
  }
  FakeAudioContext.beeps = 0;
  return FakeAudioContext;
}

function fakeStorage() {
  const values = new Map();
  return {
    getItem: (key) => (values.has(key) ? values.get(key) : null),
    setItem: (key, value) => values.set(key, String(value)),
  };
}

/** The client's outbox store (IndexedDB in a page) in memory; `entries` is what it holds. */
function fakeOutboxStore(entries = []) {
  const held = new Map(entries.map((entry) => [entry.clientMsgId, entry]));
  return {
    held,
    load: (userId) => Promise.resolve(Array.from(held.values()).filter((entry) => entry.userId === userId)),
    put: (entry) => Promise.resolve(held.set(entry.clientMsgId, entry)),
    delete: (clientMsgId) => Promise.resolve(held.delete(clientMsgId)),
  };
}

/** A fetch() that answers every request with `status` and `body`; `urls` lists what was fetched. */
function fakeFetch(status, body = "") {
  const urls = [];
  const fetch = (url) => {
    urls.push(url);
    return Promise.resolve({ status, text: () => Promise.resolve(body) });
  };
  fetch.urls = urls;
  return fetch;
}

/** The page's globals the client listens to: `window` (online) and `document` (visibilitychange). */
function fakePage() {
  const page = new EventTarget();
  page.document = new EventTarget();
  page.document.visibilityState = "visible";
  return page;
}

/** Resolves with the arguments of the next `event` from `emitter` that passes `accept`. */
function nextEvent(emitter, event, accept = () => true) {
  return new Promise((resolve) => {
    const off = emitter.on(event, (...args) => {
      if (!accept(...args)) return;
      off();
      resolve(args);
    });
  });
}

const CONNECTED = { type: "connected", userId: 1, unreadMessages: 0, unreadNotifications: 0 };

/** A client on fake sockets with tiny backoff delays; closed after the test so no timer keeps Node alive. */
function makeClient(t, options = {}) {
  const sockets = fakeWebSockets();
  const client = new RealtimeClient({
    url: "ws://test/",
    token: "token-1",
    userId: 1,
    WebSocket: sockets.WebSocket,
    backoff: { baseMs: 2, capMs: 4 },
    fetch: null, // no handshake probe unless a test passes a fake fetch
    outboxStore: fakeOutboxStore(),
    ...options,
  });
  t.after(() => client.close());
  return { client, sockets };
}

async function connected(client, socket) {
  const state = nextEvent(client, "state", (value) => value === "connected");
  socket.open();
  socket.receive(CONNECTED);
  await state;
}

module.exports = {
  CONNECTED,
  makeClient,
  connected,
  fakeWebSockets,
  fakeLocks,
  fakeNotificationApi,
  fakeAudioContext,
  fakeStorage,
  fakeOutboxStore,
  fakeFetch,
  fakePage,
  nextEvent,
};
