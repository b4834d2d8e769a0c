// The list's export: /export/conversations.csv with the list's filters,
// read as it streams so the page can count the rows arriving, then handed
// to the browser as a file. The key travels in a header, never in a URL
// (a URL ends up in history and logs), so a plain link cannot do this.

const EXPORT_PATH = '/export/conversations.csv';

// The export's query string for a list filter (the GraphQL
// ConversationFilter the list uses) without a search, which exports do not
// take.
export function exportQuery(filter) {
  const params = new URLSearchParams();
  if (filter.sessionId) params.set('sessionId', filter.sessionId);
  for (const channel of filter.channels ?? []) params.append('channel', channel);
  for (const badge of filter.badges ?? []) params.append('badge', badge);
  if (typeof filter.converted === 'boolean') params.set('converted', String(filter.converted));
  if (filter.startedAfter) params.set('from', filter.startedAfter);
  if (filter.startedBefore) params.set('to', filter.startedBefore);
  for (const label of filter.labels ?? []) params.append('label', `${label.key}=${label.value}`);
  const query = params.toString();
  return query ? `?${query}` : '';
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

// A refused export, shaped like the page's API errors.
function refusal(message, code, status, requestId) {
  const error = new Error(message);
  error.code = code;
  error.status = status;
  error.requestId = requestId;
  return error;
}

async function refusalOf(response) {
  let first = null;
  try {
    const body = await response.json();
    first = Array.isArray(body?.errors) ? body.errors[0] : null;
  } catch {
    // Not JSON: judged by the status alone.
  }
  const code = first?.extensions?.code ?? (response.status === 401 ? 'UNAUTHENTICATED' : 'HTTP_ERROR');
  const message = first?.message ?? `The export failed (HTTP ${response.status}).`;
  return refusal(message, code, response.status, first?.extensions?.requestId);
}

// Counts CSV records as chunks arrive: a line break ends a record unless it
// sits inside a quoted cell (a message may hold line breaks).
class RecordCounter {
  constructor() {
    this.records = 0;
    this.quoted = false;
    this.decoder = new TextDecoder();
  }

  add(bytes) {
    const text = this.decoder.decode(bytes, { stream: true });
    for (let i = 0; i < text.length; i += 1) {
      const c = text.charCodeAt(i);
      if (c === 34) this.quoted = !this.quoted;
      else if (c === 10 && !this.quoted) this.records += 1;
    }
  }
}

function filenameOf(response) {
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const match = /filename="([^"]+)"/.exec(disposition);
  return match ? match[1] : 'conversations.csv';
}

// Downloads the export for `filter`; `onProgress(rows, bytes)` runs as it
// arrives. Resolves with the file once whole; rejects when refused, cut
// short or aborted through `signal`.
export async function downloadExport({ key, filter, signal, onProgress }) {
  let response;
  try {
    response = await fetch(`${EXPORT_PATH}${exportQuery(filter)}`, {
      headers: { Authorization: `Bearer ${key}` },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    });
  } catch (err) {
    if (err?.name === 'AbortError') throw err;
    throw refusal('The server could not be reached. Check the connection and try again.', 'NETWORK_ERROR', 0);
  }
  if (!response.ok) throw await refusalOf(response);
  const reader = response.body.getReader();
  const counter = new RecordCounter();
  const parts = [];
  let bytes = 0;
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (err) {
      if (err?.name === 'AbortError') throw err;
      throw refusal('The export was cut short; nothing was saved. Try again.', 'EXPORT_INCOMPLETE', response.status);
    }
    if (chunk.done) break;
    parts.push(chunk.value);
    bytes += chunk.value.length;
    counter.add(chunk.value);
    // The header is a record too.
    onProgress(Math.max(0, counter.records - 1), bytes);
  }
  return {
    blob: new Blob(parts, { type: 'text/csv;charset=utf-8' }),
    filename: filenameOf(response),
    rows: Math.max(0, counter.records - 1),
    bytes,
  };
}
