// Verifies webhook deliveries with the standardwebhooks package (an
// implementation of the Standard Webhooks specification no one here
// wrote). Reads { secret, deliveries: [{ id, timestamp, signature, body }] }
// as JSON on standard input; prints "verified N" or fails.
import { Webhook } from 'standardwebhooks';

let input = '';
for await (const chunk of process.stdin) input += chunk;
const { secret, deliveries } = JSON.parse(input);
const webhook = new Webhook(secret);
for (const delivery of deliveries) {
  const payload = webhook.verify(delivery.body, {
    'webhook-id': delivery.id,
    'webhook-timestamp': delivery.timestamp,
    'webhook-signature': delivery.signature,
  });
  if (JSON.stringify(payload) !== JSON.stringify(JSON.parse(delivery.body))) {
    throw new Error(`payload of ${delivery.id} read back differently`);
  }
}
// A tampered body must not verify.
const [first] = deliveries;
let refused = false;
try {
  webhook.verify(`${first.body} `, {
    'webhook-id': first.id,
    'webhook-timestamp': first.timestamp,
    'webhook-signature': first.signature,
  });
} catch {
  refused = true;
}
if (!refused) throw new Error('a tampered body verified');
console.log(`verified ${deliveries.length}`);
