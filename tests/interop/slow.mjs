// A subscriber that stops reading: the stock `graphql-ws` client with its
// default retry settings, resuming from the last event's cursor. After the
// first event it pauses its socket and prints "paused"; a line "resume" on
// stdin lets it read again. Exits 0 once it has received COUNT events,
// printing one JSON line: the record ids in the order received, the close
// codes it saw and how many times it connected. Usage:
//   node slow.mjs ws://127.0.0.1:PORT/graphql KEY AFTER_CURSOR COUNT
import readline from "node:readline";
import WebSocket from "ws";
import { createClient } from "graphql-ws";

const [url, key, after, count] = process.argv.slice(2);
const expected = Number(count);
// Large events (three copies of a long thread), so that a few of them fill
// the server's and this client's socket buffers while it is not reading.
const thread = "messages(first: 20) { nodes { content } }";
const query = `subscription($after: String) {
  conversionRecorded(after: $after) {
    cursor
    conversion { record { id } }
    conversation { a: ${thread} b: ${thread} c: ${thread} }
  }
}`;

let current = null;
class TrackedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    current = this;
  }
}

const received = [];
const closes = [];
let connections = 0;
const timer = setTimeout(() => {
  console.error(`timed out with ${received.length} of ${expected} events; closes ${closes}`);
  process.exit(1);
}, 60000);

const client = createClient({
  url,
  webSocketImpl: TrackedWebSocket,
  connectionParams: { authorization: `Bearer ${key}` },
  on: {
    connected: () => connections++,
    closed: (event) => closes.push(event.code),
  },
});
// The client sends this same object again when it resubscribes after a
// reconnect, so moving `after` forward resumes right after the last event.
const request = { query, variables: { after } };
const done = new Promise((resolve, reject) => {
  client.subscribe(request, {
    next: (result) => {
      if (result.errors) return reject(new Error(JSON.stringify(result.errors)));
      const event = result.data.conversionRecorded;
      request.variables.after = event.cursor;
      received.push(event.conversion.record.id);
      if (received.length === 1) {
        current.pause();
        console.log("paused");
      }
      if (received.length === expected) resolve();
    },
    error: (e) => reject(e instanceof Error ? e : new Error(JSON.stringify(e?.code ?? e))),
    complete: () => {},
  });
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "resume") current.resume();
});

try {
  await done;
  clearTimeout(timer);
  console.log(JSON.stringify({ received, closes, connections }));
  process.exit(0);
} catch (e) {
  console.error(e);
  process.exit(1);
}
