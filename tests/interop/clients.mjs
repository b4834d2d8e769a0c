// Subscribes to convtrack's conversion feed with the reference
// `graphql-ws` client (graphql-transport-ws protocol) and Apollo's legacy
// `subscriptions-transport-ws` client, both from `after`, and exits 0 once
// each has received the first event after it. Usage:
//   node clients.mjs ws://127.0.0.1:PORT/graphql KEY AFTER_CURSOR
import WebSocket from "ws";
import { createClient } from "graphql-ws";
import subscriptionsTransportWs from "subscriptions-transport-ws";

const { SubscriptionClient } = subscriptionsTransportWs;
const [url, key, after] = process.argv.slice(2);
const query = `subscription($after: String) {
  conversionRecorded(after: $after) { cursor conversion { kind record { id } } }
}`;
const connectionParams = { authorization: `Bearer ${key}` };

const timer = setTimeout(() => {
  console.error("timed out waiting for events");
  process.exit(1);
}, 20000);

function modern() {
  return new Promise((resolve, reject) => {
    const client = createClient({ url, webSocketImpl: WebSocket, connectionParams, retryAttempts: 0 });
    const stop = client.subscribe(
      { query, variables: { after } },
      {
        next: (result) => {
          if (result.errors) return reject(new Error(JSON.stringify(result.errors)));
          stop();
          client.dispose();
          resolve(result.data.conversionRecorded);
        },
        error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e?.reason ?? e))),
        complete: () => {},
      },
    );
  });
}

function legacy() {
  return new Promise((resolve, reject) => {
    const client = new SubscriptionClient(url, { connectionParams, reconnect: false }, WebSocket);
    const subscription = client.request({ query, variables: { after } }).subscribe({
      next: (result) => {
        if (result.errors) return reject(new Error(JSON.stringify(result.errors)));
        subscription.unsubscribe();
        client.close();
        resolve(result.data.conversionRecorded);
      },
      error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e))),
    });
  });
}

try {
  const [a, b] = await Promise.all([modern(), legacy()]);
  console.log(JSON.stringify({ modern: a, legacy: b }));
  clearTimeout(timer);
  process.exit(0);
} catch (e) {
  console.error(e);
  process.exit(1);
}
