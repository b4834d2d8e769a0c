// Runs the `graphql-http` package's GraphQL-over-HTTP server audit against
// convtrack and prints one JSON line: every audit that did not pass, with
// its level (error = a MUST, warn = a SHOULD, notice = a MAY) and reason.
// Exits 1 when a MUST or a SHOULD fails. Usage:
//   node audit.mjs http://127.0.0.1:PORT/graphql KEY
import { auditServer } from "graphql-http";

const [url, key] = process.argv.slice(2);

// The audit's requests carry no credentials of their own; every convtrack
// request needs a key, so each one gets the caller's.
function fetchWithKey(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${key}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn: fetchWithKey });
const failed = [];
for (const result of results) {
  if (result.status === "ok") continue;
  let body = "";
  try {
    body = await result.response.text();
  } catch {
    // The audit may have read the body already.
  }
  failed.push({
    level: result.status,
    id: result.id,
    name: result.name,
    reason: result.reason,
    status: result.response.status,
    contentType: result.response.headers.get("content-type"),
    body: body.slice(0, 300),
  });
}
console.log(JSON.stringify({ audits: results.length, failed }));
process.exit(failed.some((f) => f.level === "error" || f.level === "warn") ? 1 : 0);
