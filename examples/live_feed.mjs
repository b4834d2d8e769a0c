// Live conversions with the stock graphql-ws client: subscribe with the
// last cursor you saw (`after`), and every event since is replayed first,
// then live ones follow, with no gap and no duplicate. Keep the cursor of
// each event you have handled; after a disconnect, subscribe again with it.
//
// Run: npm ci --prefix examples
//      CONVTRACK_INTEGRATOR_KEY=ctk_… node examples/live_feed.mjs [cursor-file] [events]
// Stops after `events` events (default: runs until interrupted).

import fs from 'node:fs';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';

const base = (process.env.CONVTRACK_URL ?? 'http://127.0.0.1:8000').replace(/\/+$/, '');
const key = process.env.CONVTRACK_INTEGRATOR_KEY;
if (!key) throw new Error('set CONVTRACK_INTEGRATOR_KEY');
const cursorFile = process.argv[2] ?? 'live.cursor';
const wanted = Number(process.argv[3] ?? Infinity);

const client = createClient({
  url: `${base.replace(/^http/, 'ws')}/graphql`,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${key}` },
  // Reconnect with backoff on network trouble; each new subscription
  // resumes from the saved cursor.
  retryAttempts: Infinity,
  shouldRetry: () => true,
});

const query = `subscription($after: String) {
  conversionRecorded(after: $after) {
    cursor change
    conversion { kind value { amount currency } }
    conversation { sessionId labels { key value } }
  }
}`;

let received = 0;
const after = fs.existsSync(cursorFile) ? fs.readFileSync(cursorFile, 'utf8').trim() : null;
// graphql-ws subscribes again with this same payload after a reconnect:
// keeping the latest cursor in it makes the new subscription resume there.
const payload = { query, variables: { after } };
const unsubscribe = client.subscribe(payload, {
  next: ({ data, errors }) => {
    if (errors) throw new Error(JSON.stringify(errors));
    const event = data.conversionRecorded;
    const labels = (event.conversation?.labels ?? []).map((l) => `${l.key}=${l.value}`).join(', ');
    console.log(`${event.change} ${event.conversion.kind} [${labels}]`);
    fs.writeFileSync(cursorFile, event.cursor);
    payload.variables.after = event.cursor;
    received += 1;
    if (received >= wanted) {
      unsubscribe();
      client.dispose();
    }
  },
  error: (error) => {
    console.error('subscription ended:', error);
    process.exitCode = 1;
  },
  complete: () => {},
});
