// A page's use of the package, checked by `tsc --noEmit` (npm run typecheck): the declarations must accept it.
import { RealtimeClient, RealtimeNotifier, RealtimeError, VERSION, type State } from "realtime-chat-client";

const client = new RealtimeClient({
  url: "wss://chat.example/",
  getToken: async () => (await fetch("/realtime-token")).text(),
  debug: true,
  requestTimeoutMs: 5000,
});
const notifier = new RealtimeNotifier(client, { title: "New" });

client.on("state", (state: State, detail) => {
  if (state === "refused") console.log(detail.status, detail.reason);
});
client.on("message", (message) => console.log(message.messageId, message.content.length));
notifier.on("unread", (count) => console.log(count + 1));
client.connect();
const clientMsgId: string = client.send(2, "hello");
client.reconnectNow();
client
  .history(2, { limit: 20, timeoutMs: 1000 })
  .then((messages) => messages.map((message) => message.from))
  .catch((error: RealtimeError) => console.log(error.code, clientMsgId, VERSION));
