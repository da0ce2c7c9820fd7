// What the packaged client adds: getToken and refresh before expiry, reconnectNow() and the page's
// online/visibility events, the `refused` state, request timeouts, debug logging, and the stored outbox.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const { tokenExpiry, probeUrl } = require("../../clients/js/dist/realtime.js");
const {
  CONNECTED,
  connected,
  fakeFetch,
  fakeOutboxStore,
  fakePage,
  makeClient,
  nextEvent,
} = require("./fakes.js");

/** An unsigned JWT expiring `seconds` from now (a NumericDate with a fraction): the client reads `exp` only. */
function jwt(seconds, userId = 1) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const exp = Date.now() / 1000 + seconds;
  return `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: String(userId), exp })}.signature`;
}

/** A getToken() that hands out `tokens` in turn (the last one again when they run out) and counts its calls. */
function tokenSource(...tokens) {
  const getToken = () => {
    getToken.calls += 1;
    return Promise.resolve(tokens[Math.min(getToken.calls, tokens.length) - 1]);
  };
  getToken.calls = 0;
  return getToken;
}

const sentTokens = (socket) => socket.sentOfType("connect").map((frame) => frame.token);

test("tokenExpiry reads a JWT's exp in milliseconds, and null from anything else", () => {
  const token = jwt(3600);
  const expiry = tokenExpiry(token);
  assert.ok(Math.abs(expiry - (Date.now() + 3600 * 1000)) < 2000, expiry);
  assert.equal(tokenExpiry("not a token"), null);
  assert.equal(tokenExpiry(`a.${Buffer.from('{"sub":"1"}').toString("base64url")}.c`), null);
});

test("probeUrl is the socket's address over HTTP with probe=1 and without the token", () => {
  assert.equal(probeUrl("ws://chat.example:8080/"), "http://chat.example:8080/?probe=1");
  assert.equal(probeUrl("wss://chat.example/ws?token=secret&a=1"), "https://chat.example/ws?a=1&probe=1");
});

test("getToken() is called on connect when there is no token, and its token authenticates", async (t) => {
  const token = jwt(3600);
  const getToken = tokenSource(token);
  const { client, sockets } = makeClient(t, { token: undefined, getToken });
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  assert.equal(getToken.calls, 1);
  assert.deepEqual(sentTokens(socket), [token]);
});

test("a token about to expire is renewed on the open socket with one from getToken()", async (t) => {
  const [expiring, fresh] = [jwt(30), jwt(3600)];
  const getToken = tokenSource(fresh);
  const { client, sockets } = makeClient(t, { token: expiring, getToken, tokenRefreshMarginMs: 60000 });
  client.connect(); // the token held expires within the margin: getToken() first
  const socket = await sockets.at(0);
  await connected(client, socket);
  assert.deepEqual(sentTokens(socket), [fresh]);

  const renewing = makeClient(t, { token: jwt(2), getToken: tokenSource(fresh), tokenRefreshMarginMs: 1900 });
  renewing.client.connect();
  const second = await renewing.sockets.at(0);
  await connected(renewing.client, second);
  await second.nextSent((frame) => frame.type === "connect");
  assert.deepEqual(sentTokens(second).slice(1), [fresh]);
  assert.equal(renewing.sockets.created.length, 1, "renewed in place, not by reconnecting");
});

test("with getToken, a 4401 close fetches another token and reconnects instead of stopping", async (t) => {
  const [rejected, fresh] = [jwt(3600), jwt(7200)];
  const getToken = tokenSource(rejected, fresh);
  const { client, sockets } = makeClient(t, { token: undefined, getToken });
  client.connect();
  const first = await sockets.at(0);
  first.open();
  first.drop(4401);
  assert.equal(client.state, "reconnecting");
  const second = await sockets.at(1);
  await connected(client, second);
  assert.deepEqual(sentTokens(second), [fresh]);
  assert.equal(getToken.calls, 2);
});

test("reconnectNow() skips the backoff wait", async (t) => {
  const { client, sockets } = makeClient(t, { backoff: { baseMs: 60000, capMs: 60000 } });
  client.connect();
  await connected(client, await sockets.at(0));
  sockets.created[0].drop(1006);
  assert.equal(client.state, "reconnecting");
  client.reconnectNow();
  await connected(client, await sockets.at(1));
  client.reconnectNow(); // connected: nothing to do
  assert.equal(sockets.created.length, 2);
});

test("the page's online event, and the page becoming visible, reconnect at once", async (t) => {
  const page = fakePage();
  const { client, sockets } = makeClient(t, { backoff: { baseMs: 60000, capMs: 60000 }, environment: page });
  client.connect();
  await connected(client, await sockets.at(0));
  sockets.created[0].drop(1006);
  page.dispatchEvent(new Event("online"));
  await connected(client, await sockets.at(1));

  sockets.created[1].drop(1006);
  page.document.visibilityState = "hidden";
  page.document.dispatchEvent(new Event("visibilitychange"));
  assert.equal(sockets.created.length, 2, "a hidden page waits for the backoff");
  page.document.visibilityState = "visible";
  page.document.dispatchEvent(new Event("visibilitychange"));
  await connected(client, await sockets.at(2));

  client.close();
  page.dispatchEvent(new Event("online"));
  assert.equal(sockets.created.length, 3, "closed: the events are no longer listened to");
});

test("a handshake refused with 403 ends in the refused state with the reason, without retrying", async (t) => {
  const fetch = fakeFetch(403, "This origin may not open a WebSocket here");
  const { client, sockets } = makeClient(t, { fetch, url: "ws://chat.example/" });
  client.connect();
  const refused = nextEvent(client, "state", (state) => state === "refused");
  (await sockets.at(0)).drop(1006); // never opened: what a browser shows of a refused handshake
  const [, detail] = await refused;
  assert.deepEqual(detail, { status: 403, reason: "This origin may not open a WebSocket here" });
  assert.deepEqual(fetch.urls, ["http://chat.example/?probe=1"]);
  assert.equal(sockets.created.length, 1);
  client.reconnectNow(); // the application may try again, e.g. after its configuration changed
  assert.equal(sockets.created.length, 2);
});

test("a handshake refused with 429 is refused with a delay, then retried", async (t) => {
  const { client, sockets } = makeClient(t, { fetch: fakeFetch(429, "Too many connections") });
  client.connect();
  const refused = nextEvent(client, "state", (state) => state === "refused");
  (await sockets.at(0)).drop(1006);
  const [, detail] = await refused;
  assert.equal(detail.status, 429);
  assert.ok(detail.delayMs > 0);
  await connected(client, await sockets.at(1));
});

test("a socket that failed while the probe answers 204 (or fails) is an ordinary reconnect", async (t) => {
  for (const fetch of [fakeFetch(204), () => Promise.reject(new TypeError("network"))]) {
    const { client, sockets } = makeClient(t, { fetch });
    client.connect();
    const reconnecting = nextEvent(client, "state", (state) => state === "reconnecting");
    (await sockets.at(0)).drop(1006);
    await reconnecting;
    await connected(client, await sockets.at(1));
  }
});

test("a request with no answer in time rejects with timeout; its late answer is not taken for the next", async (t) => {
  const { client, sockets } = makeClient(t);
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  await assert.rejects(client.history(2, { timeoutMs: 5 }), (error) => error.code === "timeout");
  const second = client.history(3);
  socket.receive({ type: "history", with: 2, messages: ["late"] });
  socket.receive({ type: "history", with: 3, messages: ["on time"] });
  assert.deepEqual(await second, ["on time"]);
  const slow = makeClient(t, { requestTimeoutMs: 5 });
  slow.client.connect();
  await connected(slow.client, await slow.sockets.at(0));
  await assert.rejects(slow.client.notifications(), (error) => error.code === "timeout");
  await assert.rejects(slow.client.conversations(), (error) => error.code === "timeout");
});

test("debug logs what the client does, without the token", async (t) => {
  const lines = [];
  const { client, sockets } = makeClient(t, { token: "secret-token", debug: (...args) => lines.push(args) });
  client.connect();
  await connected(client, await sockets.at(0));
  const text = JSON.stringify(lines);
  assert.match(text, /"state","connected"/);
  assert.match(text, /"sending",\{"type":"connect","token":"…"/);
  assert.doesNotMatch(text, /secret-token/);
});

test("a message sent before a reload is sent by the next page of the same user, and forgotten when acknowledged", async (t) => {
  const store = fakeOutboxStore();
  const before = makeClient(t, { outboxStore: store });
  const clientMsgId = before.client.send(2, "typed before the reload"); // never connected
  before.client.close();
  store.held.set("other-user", { clientMsgId: "other-user", to: 3, content: "not mine", userId: 9 });

  const { client, sockets } = makeClient(t, { outboxStore: store });
  client.connect();
  const socket = await sockets.at(0);
  const sent = socket.nextSent((frame) => frame.type === "message");
  await connected(client, socket);
  const frame = await sent;
  assert.deepEqual(frame, { type: "message", to: 2, content: "typed before the reload", clientMsgId });
  socket.receive({ type: "message_sent", clientMsgId, messageId: 5 });
  assert.deepEqual(Array.from(store.held.keys()), ["other-user"]);
  assert.equal(socket.sentOfType("message").length, 1);
});

test("a stored message already pending in this page is not sent twice", async (t) => {
  const store = fakeOutboxStore();
  const { client, sockets } = makeClient(t, { outboxStore: store });
  const clientMsgId = client.send(2, "once");
  client.connect();
  const socket = await sockets.at(0);
  await connected(client, socket);
  await new Promise(setImmediate); // every promise settled: the restore is done
  assert.deepEqual(socket.sentOfType("message").map((frame) => frame.clientMsgId), [clientMsgId]);
  socket.receive({ ...CONNECTED }); // a renewal on the same socket restores nothing again
  assert.equal(socket.sentOfType("message").length, 1);
});
