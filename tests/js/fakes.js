// Stand-ins for the browser objects realtime.js uses, for the unit tests under Node.
"use strict";

/** A WebSocket class whose instances the test opens, feeds and drops; `sockets.at(n)` waits for the n-th. */
function fakeWebSockets() {
  const created = [];
  const waiting = new Map(); // index -> resolve

  class FakeWebSocket {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      created.push(this);
      const resolve = waiting.get(created.length - 1);
      if (resolve) resolve(this);
    }

    send(text) {
      if (this.readyState !== 1) throw new Error("send on a socket that is not open");
      this.sent.push(JSON.parse(text));
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

module.exports = { fakeWebSockets, fakeLocks, fakeNotificationApi, fakeAudioContext, fakeStorage, nextEvent };
