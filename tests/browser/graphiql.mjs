// /graphiql in headless Chromium with every request off this machine
// blocked: GraphiQL must load from the server alone, run a query with the
// key from its Headers pane, and receive a subscription's event. Usage:
//
//   CONVTRACK_URL=http://127.0.0.1:PORT CONVTRACK_KEY=ctk_… \
//   CONVTRACK_AFTER=<feed cursor> CONVTRACK_RECORD=<record id> \
//   CONVTRACK_ARTIFACTS=/tmp/shots node tests/browser/graphiql.mjs
//
// Prints "subscribed" once the subscription is running (the Rust test then
// records a conversion with CONVTRACK_RECORD) and "PASS graphiql" at the end.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { env, launchChromium } from './common.mjs';

const WAIT_MS = 15_000;

const BASE = env('CONVTRACK_URL').replace(/\/+$/, '');
const KEY = env('CONVTRACK_KEY');
const AFTER = env('CONVTRACK_AFTER');
const RECORD = env('CONVTRACK_RECORD');
const ARTIFACTS = env('CONVTRACK_ARTIFACTS');
await fs.mkdir(ARTIFACTS, { recursive: true });

const watchdog = setTimeout(() => {
  console.error('FAIL: the run took longer than 60 s');
  process.exit(1);
}, 60_000);
watchdog.unref();

const browser = await launchChromium();

const blocked = [];
const pageErrors = [];
const cspViolations = [];
const consoleLines = [];
let page;

// The text of the CodeMirror editor inside `selector`.
const editorText = (selector) =>
  page.evaluate((s) => document.querySelector(`${s} .CodeMirror`).CodeMirror.getValue(), selector);
// GraphiQL parses an editor's text a moment after it changes (a debounce);
// running before that would run the previous document.
async function setEditorText(selector, text) {
  await page.evaluate(([s, t]) => document.querySelector(`${s} .CodeMirror`).CodeMirror.setValue(t), [selector, text]);
  await page.waitForTimeout(500);
}

async function responseContaining(text) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const shown = await editorText('.graphiql-response');
    if (shown.includes(text)) return JSON.parse(shown);
    if (Date.now() > deadline) assert.fail(`the response pane shows ${shown}, without ${text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.route('**/*', (route) => {
    const { hostname } = new URL(route.request().url());
    if (hostname === '127.0.0.1' || hostname === 'localhost' || hostname === '[::1]') {
      return route.continue();
    }
    blocked.push(route.request().url());
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (error) => pageErrors.push(String(error?.stack ?? error)));
  page.on('console', (message) => {
    consoleLines.push(message.text());
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });
  // Sent frames, to know when the subscription has gone out.
  const sent = [];
  page.on('websocket', (socket) => socket.on('framesent', (frame) => sent.push(String(frame.payload))));

  await page.goto(`${BASE}/graphiql`);
  await page.locator('.graphiql-container').waitFor();
  await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
  console.log('ok   GraphiQL loads from the server alone');

  // The Headers pane, as a person would fill it in.
  const headersPane = '.graphiql-editor-tool .graphiql-editor:not(.hidden)';
  await page.locator(`${headersPane} .CodeMirror`).waitFor();
  assert.match(await editorText(headersPane), /Authorization/, 'the Headers pane is open with an example');
  await setEditorText(headersPane, JSON.stringify({ Authorization: `Bearer ${KEY}` }));

  await setEditorText('.graphiql-query-editor', '{ badgeKinds { kind } }');
  await page.locator('.graphiql-execute-button').click();
  const answer = await responseContaining('TOUR_BOOKED');
  assert.ok(Array.isArray(answer.data.badgeKinds), JSON.stringify(answer));
  console.log('ok   a query runs with the Authorization header from the Headers pane');

  await setEditorText(
    '.graphiql-query-editor',
    `subscription { conversionRecorded(after: ${JSON.stringify(AFTER)}) { cursor conversion { kind record { id } } } }`,
  );
  await page.locator('.graphiql-execute-button').click();
  const deadline = Date.now() + WAIT_MS;
  while (!sent.some((frame) => frame.includes('"subscribe"'))) {
    if (Date.now() > deadline) {
      assert.fail(`no subscribe frame went out: ${JSON.stringify(sent)}; the response pane shows ${await editorText('.graphiql-response')}; console: ${JSON.stringify(consoleLines)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  console.log('subscribed');
  const event = await responseContaining(RECORD);
  assert.equal(event.data.conversionRecorded.conversion.record.id, RECORD);
  console.log('ok   a subscription started from GraphiQL receives the event');

  await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql.png') });
  assert.deepStrictEqual(blocked, [], 'the page asks nothing of any other host');
  assert.deepStrictEqual(cspViolations, [], 'the page keeps to its Content-Security-Policy');
  assert.deepStrictEqual(pageErrors, [], 'the page throws no uncaught errors');
  console.log('ok   nothing fetched from elsewhere, no CSP violations, no page errors');
  console.log('PASS graphiql');
} catch (error) {
  process.exitCode = 1;
  console.error(`FAIL: ${error?.message ?? error}`);
  if (blocked.length) console.error(`blocked: ${JSON.stringify(blocked)}`);
  if (pageErrors.length) console.error(`page errors: ${JSON.stringify(pageErrors)}`);
  if (cspViolations.length) console.error(`CSP violations: ${JSON.stringify(cspViolations)}`);
  if (page) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'graphiql-failure.png') }).catch(() => {});
  }
} finally {
  await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
