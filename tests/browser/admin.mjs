// End-to-end check of the /admin page in headless Chromium, against a running
// convtrack whose data a Rust integration test seeded. Usage:
//
//   CONVTRACK_URL=http://127.0.0.1:PORT CONVTRACK_ADMIN_KEY=ctk_… \
//   CONVTRACK_ARTIFACTS=/tmp/shots CONVTRACK_SEED=/tmp/seed.json \
//   node tests/browser/admin.mjs
//
// Prints one line per check; exits non-zero on the first mismatch, after
// saving failure.png next to list.png and detail.png.

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { createRequire } from 'node:module';
import { env, launchChromium } from './common.mjs';

const axeSource = await fs.readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const WAIT_MS = 10_000;
const WATCHDOG_MS = 90_000;

const BASE = env('CONVTRACK_URL').replace(/\/+$/, '');
const ADMIN_KEY = env('CONVTRACK_ADMIN_KEY');
const ARTIFACTS = env('CONVTRACK_ARTIFACTS');
const seed = JSON.parse(await fs.readFile(env('CONVTRACK_SEED'), 'utf8'));
await fs.mkdir(ARTIFACTS, { recursive: true });

const CHANNEL_LABELS = { CHAT: 'Chat', EMAIL: 'Email', WHATSAPP: 'WhatsApp', VOICE: 'Voice' };

// A hung browser or server must not hang the Rust test that runs this.
const watchdog = setTimeout(() => {
  console.error(`FAIL: the whole run took longer than ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS);
watchdog.unref();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const started = Date.now();

function ok(message) {
  console.log(`ok   ${message}`);
}

// Polls `read` until it returns `expected` (deep equality); on timeout the
// assertion shows both, so a failure says what the page showed instead.
async function eventually(description, read, expected, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  let actual;
  for (;;) {
    actual = await read();
    if (isDeepStrictEqual(actual, expected)) return actual;
    if (Date.now() > deadline) {
      assert.deepStrictEqual(actual, expected, `${description} (still different after ${timeout} ms)`);
    }
    await sleep(100);
  }
}

const q = (value) => JSON.stringify(String(value));
const rowSelector = (attr, value) => `[data-testid="conversation-row"][data-${attr}=${q(value)}]`;

const browser = await launchChromium();

let page;
// The page's live sockets pass through this route (messages are forwarded
// untouched), so the test can drop one the way a network would.
const liveSockets = [];
// While true, the page's new live sockets are refused, as by a stopped server.
let serverDown = false;
const dialogs = [];
const pageErrors = [];
const cspViolations = [];

try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  await page.routeWebSocket(/\/graphql$/, (socket) => {
    liveSockets.push(socket);
    if (serverDown) {
      socket.close({ code: 1006, reason: 'the server is down' }).catch(() => {});
      return;
    }
    socket.connectToServer();
  });
  page.on('dialog', (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => pageErrors.push(String(error?.stack ?? error)));
  page.on('console', (message) => {
    if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text());
  });

  await run();

  assert.deepStrictEqual(dialogs, [], 'no alert/confirm/prompt dialog may open');
  assert.deepStrictEqual(cspViolations, [], 'the page must not violate its Content-Security-Policy');
  assert.deepStrictEqual(pageErrors, [], 'the page must not throw uncaught errors');
  ok('no dialogs, no CSP violations, no uncaught page errors');
  console.log(`PASS admin page (${((Date.now() - started) / 1000).toFixed(1)} s)`);
} catch (error) {
  process.exitCode = 1;
  console.error(`FAIL: ${error?.message ?? error}`);
  if (error?.stack) console.error(error.stack);
  if (dialogs.length) console.error(`dialogs: ${JSON.stringify(dialogs)}`);
  if (pageErrors.length) console.error(`page errors: ${JSON.stringify(pageErrors)}`);
  if (cspViolations.length) console.error(`CSP violations: ${JSON.stringify(cspViolations)}`);
  if (page) {
    await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`screenshot: ${path.join(ARTIFACTS, 'failure.png')}`);
  }
} finally {
  await browser.close().catch(() => {});
  clearTimeout(watchdog);
}

// ---------------------------------------------------------------------------

async function run() {
  await checkHeaders();
  await checkSignIn();
  await checkRows();
  await page.screenshot({ path: path.join(ARTIFACTS, 'list.png') });
  ok('saved list.png');
  await checkLoadMore();
  await checkStats();
  await checkStatsFollowFilter();
  await checkFilters();
  await checkLabels();
  await checkExport();
  await checkFormattedDetail();
  await checkRecordLink();
  await checkXss();
  await checkLive();
  await checkReconnect();
  await checkOutage();
  await checkViewInUrl();
  await checkLocalTime();
  await checkPhone();
  await checkKeyboardAndAxe();
  await checkUnattributed();
  await checkLiveConversations();
  await checkWebhooks();
  await checkSignOut();
}

async function checkHeaders() {
  const response = await fetch(`${BASE}/admin`);
  assert.equal(response.status, 200, 'GET /admin answers 200');
  const csp = response.headers.get('content-security-policy') ?? '';
  assert.ok(csp.includes("script-src 'self'"), `CSP header has script-src 'self' (got ${JSON.stringify(csp)})`);
  ok(`GET /admin: 200 with CSP ${JSON.stringify(csp)}`);
}

async function signInWith(key) {
  await page.fill('[data-testid="api-key"]', key);
  await page.click('[data-testid="signin-submit"]');
}

async function checkSignIn() {
  await page.goto(`${BASE}/admin`);
  await signInWith(seed.wrongKey);
  const error = page.locator('[data-testid="signin-error"]');
  await error.waitFor({ state: 'visible' });
  const message = (await error.textContent()).trim();
  assert.match(message, /not accepted/i, `wrong key: sign-in error says the key was not accepted (got ${JSON.stringify(message)})`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('convtrack.apiKey')), null,
    'a rejected key is not kept in sessionStorage');
  ok(`wrong key refused: ${JSON.stringify(message)}`);

  await signInWith(ADMIN_KEY);
  await page.locator('[data-testid="conversation-row"]').first().waitFor({ state: 'visible' });
  await page.locator('[data-testid="signin"]').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('convtrack.apiKey')), ADMIN_KEY,
    'the admin key is kept in sessionStorage');
  assert.ok(!page.url().includes(ADMIN_KEY), 'the key never appears in the URL');
  ok('admin key accepted, rows shown, key in sessionStorage only');
}

function readRows() {
  return page.$$eval('[data-testid="conversation-row"]', (rows) => rows.map((row) => ({
    id: row.dataset.id,
    sessionId: row.dataset.sessionId,
    opening: row.querySelector('[data-testid="cell-opening"]')?.textContent ?? null,
    who: {
      name: row.querySelector('[data-testid="who-name"]')?.textContent ?? null,
      contact: row.querySelector('[data-testid="who-contact"]')?.textContent ?? null,
      anonymous: row.querySelector('[data-testid="who-anonymous"]') !== null,
    },
    channel: row.querySelector('[data-testid="cell-channel"]')?.textContent ?? null,
    badges: [...row.querySelectorAll('[data-testid="badge"]')].map((badge) => ({
      kind: badge.dataset.kind,
      label: badge.firstChild?.textContent ?? '',
      value: badge.querySelector('[data-testid="badge-value"]')?.textContent ?? null,
      colour: badge.dataset.colour,
      background: getComputedStyle(badge).backgroundColor,
    })),
  })));
}

async function sessionIdsShown() {
  return (await readRows()).map((row) => row.sessionId);
}
async function sortedSessionIdsShown() {
  return (await sessionIdsShown()).sort();
}

async function checkRows() {
  const expected = firstPage(seed.conversations);
  await eventually('number of rows', async () => (await readRows()).length, expected.length);
  const rows = await readRows();
  assert.deepStrictEqual(rows.map((r) => r.sessionId), expected.map((c) => c.sessionId),
    'rows are in the seed order (newest first)');
  assert.deepStrictEqual(rows.map((r) => r.id), expected.map((c) => c.id), 'row data-id values are the conversation ids');

  const backgrounds = new Map();
  rows.forEach((row, i) => {
    const conversation = expected[i];
    const where = `row ${i} (session ${conversation.sessionId})`;
    assert.equal(row.opening, conversation.openingMessage ?? '', `${where}: opening message`);
    assert.deepStrictEqual(row.who, {
      name: conversation.userName ?? null,
      contact: conversation.contact ?? null,
      anonymous: !conversation.userName && !conversation.contact,
    }, `${where}: name and contact, "Anonymous" only with neither`);
    assert.equal(row.channel, CHANNEL_LABELS[conversation.channel] ?? conversation.channel, `${where}: channel`);
    assert.deepStrictEqual(
      row.badges.map(({ kind, label, colour, value }) => ({ kind, label, colour, value })),
      conversation.badges.map(({ kind, label, colour, value }) => ({
        kind, label, colour, value: value ? ` · ${value.amount} ${value.currency}` : null,
      })),
      `${where}: badges`,
    );
    for (const badge of row.badges) noteBackground(backgrounds, badge, where);
  });
  assert.ok(rows.some((row) => row.badges.some((badge) => badge.value === ' · 480.00 EUR')),
    'a badge shows what its sale earned, as the API wrote it');
  assert.ok(rows.some((row) => row.who.contact && !row.who.name), 'a row with a contact and no name');
  assert.ok(rows.some((row) => row.who.anonymous), 'a row with neither reads Anonymous');
  ok(`${rows.length} rows in seed order with opening message, name and contact, channel, badges and values`);

  // The stats header lists every kind with its badge, so all five colours
  // can be compared even when the seed does not use them all in rows.
  await page.locator('[data-testid="stat-kind"] [data-testid="badge"]').first().waitFor();
  const legend = await page.$$eval('[data-testid="stat-kind"] [data-testid="badge"]', (badges) => badges.map((badge) => ({
    colour: badge.dataset.colour,
    background: getComputedStyle(badge).backgroundColor,
  })));
  for (const badge of legend) noteBackground(backgrounds, badge, 'stats legend');
  const distinct = new Set(backgrounds.values());
  assert.equal(distinct.size, backgrounds.size,
    `each badge colour has its own background: ${JSON.stringify(Object.fromEntries(backgrounds))}`);
  assert.ok(backgrounds.size >= 2, 'at least two badge colours were compared');
  ok(`badge colours are real and distinct: ${JSON.stringify(Object.fromEntries(backgrounds))}`);
}

function noteBackground(backgrounds, badge, where) {
  assert.ok(!/^(transparent|rgba\(0, 0, 0, 0\))$/.test(badge.background),
    `${where}: ${badge.colour} badge has a background colour (got ${badge.background})`);
  const known = backgrounds.get(badge.colour);
  if (known) assert.equal(badge.background, known, `${where}: every ${badge.colour} badge has the same background`);
  else backgrounds.set(badge.colour, badge.background);
}

async function checkLoadMore() {
  const total = seed.conversations.length;
  const more = page.locator('[data-testid="load-more"]');
  if (total <= seed.pageSize) {
    assert.equal(await more.isVisible(), false, 'no "Load more" when everything fits on one page');
    ok('one page, no "Load more"');
    return;
  }
  await more.waitFor({ state: 'visible' });
  await more.click();
  await eventually('every row after "Load more"', sessionIdsShown, seed.conversations.map((c) => c.sessionId));
  await more.waitFor({ state: 'hidden' });
  ok(`"Load more" → all ${total} rows in order, then no more`);
  await resetFilters();
}

async function checkStats() {
  const { conversations, converted } = seed.stats;
  await eventually('stat-conversations', () => page.textContent('[data-testid="stat-conversations"]'), String(conversations));
  await eventually('stat-converted', () => page.textContent('[data-testid="stat-converted"]'), String(converted));
  const rate = conversations > 0 ? `${((converted / conversations) * 100).toFixed(1)}%` : '0.0%';
  await eventually('stat-rate', () => page.textContent('[data-testid="stat-rate"]'), rate);
  ok(`stats: ${conversations} conversations, ${converted} converted, ${rate}`);

  const readRevenue = () => page.$$eval('[data-testid="stat-revenue"]', (cards) => cards.map((card) => ({
    currency: card.dataset.currency,
    total: card.querySelector('[data-testid="stat-revenue-total"]').textContent,
    per: card.querySelector('[data-testid="stat-revenue-per"]').textContent,
  })));
  const revenue = seed.stats.revenue.map((r) => ({
    currency: r.currency,
    total: `${r.total} ${r.currency}`,
    per: `${r.perConvertedConversation} ${r.currency} per converted conversation`,
  }));
  assert.ok(revenue.length > 0, 'the seed has a sale with a value');
  await eventually('revenue cards', readRevenue, revenue);
  ok(`revenue: ${revenue.map((r) => r.total).join(', ')}`);

  const readFunnel = () => page.$$eval('[data-testid="funnel-step"]', (steps) => steps.map((step) => {
    const [issued, followed, converted] = [...step.querySelectorAll('td')].map((td) => Number(td.textContent));
    return { action: step.dataset.action, issued, followed, converted };
  }));
  await eventually('link funnel', readFunnel, seed.stats.funnel);
  ok(`link funnel: ${JSON.stringify(seed.stats.funnel)}`);
}

// The header follows the list's filter and says which, in words; per
// channel figures; every conversion once, the attributed ones adding up to
// the badges the list shows.
async function checkStatsFollowFilter() {
  const scope = () => page.textContent('[data-testid="stats-scope"]');
  await eventually('stats scope, unfiltered', scope, 'All time');
  const readChannels = () => page.$$eval('[data-testid="channel-stat"]', (rows) => rows.map((row) => {
    const [conversations, converted] = [...row.querySelectorAll('td')].map((td) => Number(td.textContent));
    return { channel: row.dataset.channel, conversations, converted };
  }));
  await eventually('per-channel figures', readChannels, seed.stats.byChannel);
  ok(`per channel: ${JSON.stringify(seed.stats.byChannel)}`);

  const readFigures = () => page.evaluate(() => {
    const sources = [...document.querySelectorAll('[data-testid="stat-source"]')];
    const attributed = sources.filter((s) => s.dataset.source !== 'UNATTRIBUTED')
      .reduce((sum, s) => sum + parseInt(s.textContent, 10), 0);
    const badges = [...document.querySelectorAll('[data-testid="stat-kind-count"]')]
      .reduce((sum, s) => sum + Number(s.textContent), 0);
    return { conversations: Number(document.querySelector('[data-testid="stat-conversations"]').textContent), attributed, badges };
  });
  const expected = (rows) => {
    const badges = rows.reduce((n, c) => n + c.badges.length, 0);
    return { conversations: rows.length, attributed: badges, badges };
  };
  await eventually('sources add up to the badges', readFigures, expected(seed.conversations));
  const unattributed = await page.textContent('[data-testid="stat-source"][data-source="UNATTRIBUTED"]');
  assert.equal(unattributed, `${seed.stats.unattributed} unattributed`);
  ok('every conversion once: the sources add up to the badges, then the unattributed');

  // A channel and "converted": the header's figures are the list's rows.
  const converted = seed.conversations.filter((c) => c.badges.length > 0);
  const counts = new Map();
  for (const c of converted) counts.set(c.channel, (counts.get(c.channel) ?? 0) + 1);
  const channel = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  await page.selectOption('[data-testid="channel-filter"]', channel);
  await page.selectOption('[data-testid="converted-filter"]', 'yes');
  const label = await page.$eval(`[data-testid="channel-filter"] option[value="${channel}"]`, (o) => o.textContent);
  await eventually('stats scope, filtered', scope, `All time · ${label} · Converted`);
  await eventually('filtered figures', readFigures, expected(converted.filter((c) => c.channel === channel)));
  ok(`stats follow the filter: "All time · ${label} · Converted"`);

  // A search and a preset, in words.
  await page.fill('[data-testid="search"]', seed.search.term);
  await page.press('[data-testid="search"]', 'Enter');
  await page.selectOption('[data-testid="date-preset"]', '30d');
  await eventually('stats scope with a search', scope, `Last 30 days · ${label} · “${seed.search.term}” · Converted`);
  ok(`scope: "Last 30 days · ${label} · “${seed.search.term}” · Converted"`);
  await resetFilters();
  await eventually('stats scope after clearing', scope, 'All time');
}

// What the list's first page holds of `conversations` (newest first).
function firstPage(conversations) {
  return conversations.slice(0, seed.pageSize);
}

function allSessionIds() {
  return firstPage(seed.conversations).map((c) => c.sessionId);
}

async function resetFilters() {
  await page.click('[data-testid="reset-filters"]');
  await eventually('all rows after clearing filters', sessionIdsShown, allSessionIds());
}

async function checkFilters() {
  // Search, applied with Enter, then cleared by emptying the box.
  await page.fill('[data-testid="search"]', seed.search.term);
  await page.press('[data-testid="search"]', 'Enter');
  await eventually(`search ${JSON.stringify(seed.search.term)}`, sortedSessionIdsShown, [...seed.search.sessionIds].sort());
  ok(`search ${JSON.stringify(seed.search.term)} → ${seed.search.sessionIds.length} rows`);
  await page.fill('[data-testid="search"]', '');
  await page.press('[data-testid="search"]', 'Enter');
  await eventually('all rows after clearing the search', sessionIdsShown, allSessionIds());
  ok('search cleared → every row back');

  // Session ID, exact.
  const one = seed.conversations[Math.floor(seed.conversations.length / 2)];
  await page.fill('[data-testid="session-filter"]', one.sessionId);
  await page.press('[data-testid="session-filter"]', 'Enter');
  await eventually('session ID filter', sessionIdsShown, [one.sessionId]);
  ok('session ID filter → exactly that conversation');
  await resetFilters();

  // Channel: the least common channel present, so the filter narrows.
  const byChannel = new Map();
  for (const c of seed.conversations) byChannel.set(c.channel, (byChannel.get(c.channel) ?? 0) + 1);
  const channel = [...byChannel.entries()].sort((a, b) => a[1] - b[1])[0][0];
  await page.selectOption('[data-testid="channel-filter"]', channel);
  await eventually(`channel ${channel}`, sessionIdsShown,
    firstPage(seed.conversations.filter((c) => c.channel === channel)).map((c) => c.sessionId));
  ok(`channel ${channel} → ${byChannel.get(channel)} rows`);
  await resetFilters();

  // Badge kind.
  const kinds = new Set(seed.conversations.flatMap((c) => c.badges.map((b) => b.kind)));
  const kind = kinds.has('TOUR_BOOKED') ? 'TOUR_BOOKED' : [...kinds][0];
  if (kind) {
    await page.selectOption('[data-testid="badge-filter"]', kind);
    const withKind = firstPage(seed.conversations.filter((c) => c.badges.some((b) => b.kind === kind))).map((c) => c.sessionId);
    await eventually(`badge ${kind}`, sessionIdsShown, withKind);
    ok(`badge ${kind} → ${withKind.length} rows`);
    await resetFilters();
  }

  // Converted / not converted.
  await page.selectOption('[data-testid="converted-filter"]', 'no');
  const unconverted = firstPage(seed.conversations.filter((c) => c.badges.length === 0)).map((c) => c.sessionId);
  await eventually('converted: no', sessionIdsShown, unconverted);
  if (unconverted.length === 0) await page.locator('[data-testid="empty"]').waitFor({ state: 'visible' });
  ok(`not converted → ${unconverted.length} rows`);
  await page.selectOption('[data-testid="converted-filter"]', 'yes');
  const converted = firstPage(seed.conversations.filter((c) => c.badges.length > 0)).map((c) => c.sessionId);
  await eventually('converted: yes', sessionIdsShown, converted);
  ok(`converted → ${converted.length} rows`);
  await resetFilters();

  // Date range: "from" is inclusive of its day, "until" too.
  const day = (iso) => iso.slice(0, 10);
  await page.fill('[data-testid="date-from"]', seed.dateRange.from);
  const fromDay = seed.conversations.filter((c) => day(c.startedAt) >= seed.dateRange.from);
  await eventually(`started from ${seed.dateRange.from}`, sessionIdsShown, firstPage(fromDay).map((c) => c.sessionId));
  ok(`started from ${seed.dateRange.from} → ${fromDay.length} rows`);
  await resetFilters();
  await page.fill('[data-testid="date-to"]', seed.dateRange.to);
  const untilDay = seed.conversations.filter((c) => day(c.startedAt) <= seed.dateRange.to);
  await eventually(`started until ${seed.dateRange.to}`, sessionIdsShown, firstPage(untilDay).map((c) => c.sessionId));
  ok(`started until ${seed.dateRange.to} → ${untilDay.length} rows (first page shown)`);
  await resetFilters();

  // A filter nothing matches shows the empty state.
  await page.fill('[data-testid="session-filter"]', `cs_${'A'.repeat(32)}`);
  await page.press('[data-testid="session-filter"]', 'Enter');
  await page.locator('[data-testid="empty"]').waitFor({ state: 'visible' });
  await eventually('no rows for an unknown session ID', sessionIdsShown, []);
  ok('no match → "No conversations match."');
  await resetFilters();

  // A session ID that cannot be one: the server's error, and no stale rows.
  await page.fill('[data-testid="session-filter"]', 'not a session id');
  await page.press('[data-testid="session-filter"]', 'Enter');
  const banner = page.locator('[data-testid="error"]');
  await banner.waitFor({ state: 'visible' });
  assert.match(await banner.textContent(), /BAD_USER_INPUT/, 'the error banner names the error code');
  await eventually('no rows after a refused filter', sessionIdsShown, []);
  ok('malformed session ID → the server\'s BAD_USER_INPUT message, no stale rows');
  await resetFilters();
}

// Clicks "Export CSV" and reads the file the browser saved: its session
// IDs, in file order, and the progress line's last words.
// Labels: a chip on the row and in the detail, the list filtered by
// labels, and one key's values compared with their intervals.
async function checkLabels() {
  const { tour, filter, filtered, key, byLabel } = seed.labels;
  const chips = (selector) => page.$$eval(`${selector} [data-testid="label-chip"]`, (els) => els.map((e) => e.textContent));
  await eventually('labels on the row', () => chips(rowSelector('session-id', tour.sessionId)), [tour.chip]);
  await page.fill('[data-testid="label-filter"]', filter);
  await page.press('[data-testid="label-filter"]', 'Enter');
  await eventually(`label filter ${filter}`, sessionIdsShown, filtered);
  ok(`label filter "${filter}" → ${filtered.length} row`);
  assert.deepEqual(await exportedSessionIds(), filtered, 'the export follows the label filter');
  ok('Export CSV with a label filter → only those conversations');
  await page.fill('[data-testid="label-filter"]', 'not a label');
  await page.press('[data-testid="label-filter"]', 'Enter');
  await eventually('a label filter that does not parse says so',
    () => page.isVisible('[data-testid="label-filter-error"]'), true);
  await resetFilters();

  await page.fill('[data-testid="compare-key"]', key);
  await page.click('[data-testid="compare"]');
  const percent = (rate) => `${(rate * 100).toFixed(1)}%`;
  const readCompared = () => page.$$eval('[data-testid="label-row"]', (rows) => rows.map((row) => ({
    value: row.dataset.value,
    rate: row.querySelector('[data-testid="label-rate"]').textContent,
    interval: row.querySelector('[data-testid="label-interval"]').textContent,
  })));
  await eventually('label comparison', readCompared, byLabel.map((r) => ({
    value: r.value, rate: percent(r.rate), interval: `${percent(r.rateLow)} – ${percent(r.rateHigh)}`,
  })));
  const verdict = await page.textContent('[data-testid="label-verdict"]');
  assert.match(verdict, /intervals overlap, so the data do not yet show/, verdict);
  ok(`compared ${key}: ${byLabel.map((r) => `${r.value} ${percent(r.rate)}`).join(' vs ')}; "${verdict}"`);

  await openDetail(tour.id);
  await eventually('labels in the detail', () => chips('[data-testid="detail-meta"]'), [tour.chip]);
  await closeDetail();
  ok('the detail lists the labels');
}

async function exportedSessionIds() {
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: WAIT_MS }),
    page.click('[data-testid="export"]'),
  ]);
  assert.match(download.suggestedFilename(), /^conversations-\d{4}-\d{2}-\d{2}\.csv$/);
  const file = await fs.readFile(await download.path(), 'utf8');
  // The next click must start an export, not cancel this one.
  await eventually('the export has finished', async () => (await page.textContent('[data-testid="export"]')).trim(), 'Export CSV');
  assert.ok(file.startsWith('\ufeffid,sessionId,channel,startedAt,'), 'a UTF-8 CSV with its header');
  return file.match(/cs_[A-Za-z0-9_-]{32}/g) ?? [];
}

async function checkExport() {
  const all = seed.conversations.map((c) => c.sessionId);
  assert.deepEqual(await exportedSessionIds(), all, 'every conversation, newest first, past the list\'s first page');
  await eventually('the export\'s progress line', () => page.textContent('[data-testid="export-status"]').then((t) => t.replace(/ \(.*\)/, '')),
    `Exported ${all.length} conversations.`);
  ok(`Export CSV → ${all.length} conversations, one file`);

  await page.selectOption('[data-testid="converted-filter"]', 'yes');
  const converted = seed.conversations.filter((c) => c.badges.length > 0).map((c) => c.sessionId);
  await eventually('converted: yes', sessionIdsShown, firstPage(converted));
  assert.deepEqual(await exportedSessionIds(), converted, 'the export follows the list\'s filter');
  ok(`Export CSV with "converted" → the ${converted.length} converted conversations`);
  await resetFilters();

  await page.fill('[data-testid="search"]', seed.search.term);
  await page.press('[data-testid="search"]', 'Enter');
  await page.click('[data-testid="export"]');
  await eventually('the export refused with a search', () => page.textContent('[data-testid="export-status"]'),
    'Exports take every filter but the search: clear the search to export.');
  ok('Export CSV with a search → asks to clear the search, downloads nothing');
  await page.fill('[data-testid="search"]', '');
  await page.press('[data-testid="search"]', 'Enter');
  await resetFilters();
}

async function openDetail(id) {
  const detail = page.locator('[data-testid="detail"]');
  if (await detail.isVisible()) await closeDetail();
  await page.click(rowSelector('id', id));
  await page.locator(`[data-testid="detail"][data-state="ready"][data-id=${q(id)}]`).waitFor({ state: 'visible' });
}

async function closeDetail() {
  await page.click('[data-testid="close-detail"]');
  await page.locator('[data-testid="detail"]').waitFor({ state: 'hidden' });
}

async function checkFormattedDetail() {
  const { id, boldText, linkText, linkUrl } = seed.formatted;
  await openDetail(id);
  const found = await page.$eval('[data-testid="detail"]', (detail, wanted) => {
    const messages = [...detail.querySelectorAll('[data-testid="message"]')];
    return {
      labels: [...new Set(messages.map((m) => m.querySelector('[data-testid="message-label"]')?.textContent))].sort(),
      roles: [...new Set(messages.map((m) => m.dataset.role))].sort(),
      bold: messages.some((m) => [...m.querySelectorAll('strong')].some((s) => s.textContent === wanted.boldText)),
      links: messages.flatMap((m) => [...m.querySelectorAll('a')].map((a) => ({
        text: a.textContent, href: a.href, rel: a.rel, target: a.target,
      }))),
    };
  }, { boldText });
  assert.ok(found.labels.includes('Visitor') && found.labels.includes('AI agent'),
    `messages labelled "Visitor" and "AI agent" (got ${JSON.stringify(found.labels)})`);
  assert.ok(found.roles.includes('VISITOR') && found.roles.includes('AI_AGENT'),
    `message data-role values (got ${JSON.stringify(found.roles)})`);
  assert.ok(found.bold, `a <strong> with ${JSON.stringify(boldText)}`);
  const link = found.links.find((a) => a.text === linkText);
  assert.ok(link, `a link with text ${JSON.stringify(linkText)} (links: ${JSON.stringify(found.links)})`);
  assert.equal(link.href, new URL(linkUrl).href, 'the link goes to the URL of the message');
  assert.match(link.rel, /noopener/, 'message links are rel=noopener');
  ok('detail: Visitor / AI agent labels, **bold** → <strong>, [text](url) → <a>');
  const confirmations = await page.$$eval('[data-testid="confirmation"]',
    (items) => items.map((c) => ({ state: c.dataset.state, text: c.textContent })));
  assert.deepEqual(confirmations.map((c) => c.state), seed.formatted.confirmations, 'the confirmations and their states');
  assert.ok(confirmations[0].text.includes('Declined') && confirmations[0].text.includes(seed.formatted.declinedBecause),
    `a declined confirmation says so, with its reason (got ${JSON.stringify(confirmations[0].text)})`);
  assert.ok(confirmations[1].text.includes('Expired unanswered'), `an expired one says so (got ${JSON.stringify(confirmations[1].text)})`);
  ok('detail: confirmations shown declined (with the reason) and expired');
  await page.screenshot({ path: path.join(ARTIFACTS, 'detail.png') });
  ok('saved detail.png');
  await closeDetail();
}

async function checkRecordLink() {
  const { id, kind, url } = seed.withRecordUrl;
  await openDetail(id);
  const badge = await page.$eval('[data-testid="detail-badges"]', (badges, wanted) => {
    const link = badges.querySelector(`a[data-testid="badge"][data-kind="${wanted}"]`);
    return link ? { href: link.href, rel: link.rel, target: link.target } : null;
  }, kind);
  assert.ok(badge, `the ${kind} badge in the detail is a link`);
  assert.equal(badge.href, new URL(url).href, `the ${kind} badge links to its record`);
  assert.match(badge.rel, /noopener/, 'record links are rel=noopener');
  ok(`detail: ${kind} badge links to ${url}`);
  const withdrawn = await page.$$eval('[data-testid="detail-badges"] [data-testid="withdrawn-badge"]',
    (nodes) => nodes.map((node) => ({ kind: node.dataset.kind, text: node.textContent })));
  assert.deepStrictEqual(withdrawn, seed.withRecordUrl.withdrawn, 'a retracted outcome shows as withdrawn in the detail');
  ok(`detail: ${withdrawn.length} withdrawn outcome shown with its value`);
  await closeDetail();
}

async function checkXss() {
  const { id, contents } = seed.xss;
  await openDetail(id);
  await sleep(300); // time for an injected onerror handler to fire, if one got through
  const found = await page.$eval('[data-testid="detail"]', (detail) => ({
    texts: [...detail.querySelectorAll('[data-testid="message-text"]')].map((m) => m.textContent),
    images: detail.querySelectorAll('[data-testid="thread"] img').length,
    scripts: detail.querySelectorAll('script').length,
    xss: typeof window.__xss,
  }));
  for (const content of contents) {
    assert.ok(found.texts.some((text) => text.includes(content)),
      `message shown literally: ${JSON.stringify(content)} (messages: ${JSON.stringify(found.texts)})`);
  }
  assert.equal(found.images, 0, 'no <img> element inside the messages');
  assert.equal(found.scripts, 0, 'no <script> element inside the detail');
  assert.equal(found.xss, 'undefined', 'window.__xss stays undefined');
  assert.deepStrictEqual(dialogs, [], 'no dialog opened');
  ok(`XSS: ${contents.length} hostile messages shown as text, nothing executed`);
  await closeDetail();
}

async function graphql(query, variables) {
  const response = await fetch(`${BASE}/graphql`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_KEY}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(response.status, 200, `GraphQL answered HTTP ${response.status}: ${JSON.stringify(body)}`);
  assert.equal(body.errors, undefined, `GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

// A conversation started elsewhere appears at the top without a reload,
// and its first message changes its row in place; scrolled down, the
// rows above grow without moving what the operator reads, and a pill
// says how many are new.
async function checkLiveConversations() {
  const start = async () => {
    const data = await graphql('mutation { startSession(input: { channel: CHAT }) { sessionId conversation { id } } }', {});
    return data.startSession;
  };
  const say = (sessionId, content) => graphql(
    'mutation($input: AppendMessageInput!) { appendMessage(input: $input) { message { id } } }',
    { input: { sessionId, role: 'VISITOR', content } });
  await page.evaluate(() => window.scrollTo(0, 0));
  await eventually('live', async () => (await page.textContent('[data-testid="live-status"]')).trim(), 'Live');
  const counted = async () => Number(await page.textContent('[data-testid="stat-conversations"]'));
  const before = await counted();
  let startedHere = 0;
  // The page subscribes right after its socket is accepted; a conversation
  // started in that instant is not lost, only not news: start another.
  let fresh = null;
  for (let attempt = 0; attempt < 3 && !fresh; attempt++) {
    const candidate = await start();
    startedHere += 1;
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline && !fresh) {
      if ((await sessionIdsShown())[0] === candidate.sessionId) fresh = candidate;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  assert.ok(fresh, 'a new conversation appears live at the top of the list');
  await say(fresh.sessionId, 'Do you have a meeting room for six?');
  await eventually('its opening, in place', () => page.textContent(
    `[data-testid="conversation-row"][data-session-id=${q(fresh.sessionId)}] [data-testid="cell-opening"]`),
  'Do you have a meeting room for six?');
  ok(`live: conversation ${fresh.sessionId} appeared at the top, its opening filled in place`);

  // Scrolled away: three more start; what is on screen stays put.
  await page.evaluate(() => window.scrollTo(0, document.documentElement.scrollHeight));
  const anchor = await page.evaluate(() => {
    const rows = [...document.querySelectorAll('[data-testid="conversation-row"]')];
    const row = rows.find((r) => r.getBoundingClientRect().top > 0);
    return { id: row.dataset.id, top: row.getBoundingClientRect().top };
  });
  const started = [];
  for (let i = 0; i < 3; i++) started.push((await start()).sessionId);
  await eventually('"3 new"', () => page.evaluate(() => {
    const pill = document.querySelector('[data-testid="new-rows"]');
    return pill.hidden ? '' : pill.textContent;
  }), '3 new');
  const moved = await page.evaluate((id) => {
    const row = document.querySelector(`[data-testid="conversation-row"][data-id="${CSS.escape(id)}"]`);
    return row.getBoundingClientRect().top;
  }, anchor.id);
  assert.ok(Math.abs(moved - anchor.top) <= 2, `the row read stays where it was (${anchor.top} → ${moved})`);
  await eventually('the header counts them', counted, before + startedHere + 3);
  await page.click('[data-testid="new-rows"]');
  await eventually('the new rows at the top', async () => (await sessionIdsShown()).slice(0, 3), [...started].reverse());
  assert.equal(await page.evaluate(() => document.querySelector('[data-testid="new-rows"]').hidden), true, 'the pill goes');
  ok('live: scrolled away, "3 new" appeared and the rows read stayed in place; the pill goes back up');
}

async function checkLive() {
  const live = seed.live;
  await eventually('rows before the live event', sessionIdsShown, allSessionIds());
  await eventually('live-status', async () => (await page.textContent('[data-testid="live-status"]')).trim(), 'Live');
  ok('live-status says "Live"');
  // No pause needed before recording: the page subscribes from the feed
  // cursor it read before loading the list, so an event committed before
  // its subscription is set up is replayed, not missed.

  const badge = `${rowSelector('session-id', live.sessionId)} [data-testid="badge"][data-kind=${q(live.kind)}]`;
  assert.equal(await page.locator(badge).count(), 0, `the live row has no ${live.kind} badge before recording`);
  const before = seed.conversations.find((c) => c.sessionId === live.sessionId);
  const wasConverted = (before?.badges.length ?? 0) > 0;

  // A marker on window: it survives only if the page is not reloaded.
  await page.evaluate(() => { window.__notReloaded = true; });
  const data = await graphql(
    'mutation($input: RecordConversionInput!) { recordConversion(input: $input) { created } }',
    { input: { sessionId: live.sessionId, kind: live.kind, recordId: live.recordId } },
  );
  assert.equal(data.recordConversion.created, true, 'the live conversion is new');

  const shown = page.locator(`${badge}[data-colour=${q(live.colour)}]`);
  await shown.waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.equal((await shown.textContent()).trim(), live.label, 'the live badge has its label');
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page was not reloaded');
  ok(`live: ${live.kind} badge appeared on session ${live.sessionId} without a reload`);

  const converted = seed.stats.converted + (wasConverted ? 0 : 1);
  await eventually('stat-converted after the live event',
    () => page.textContent('[data-testid="stat-converted"]'), String(converted));
  ok(`live: stats refreshed (${converted} converted)`);
}

async function checkReconnect() {
  const { sessionId, kind, recordId, colour } = seed.reconnect;
  assert.ok(liveSockets.length > 0, 'the page opened its live socket');
  const dropped = liveSockets.length;
  await liveSockets[dropped - 1].close({ code: 1006, reason: 'the test drops the connection' });
  await eventually('live-status after the drop',
    async () => (await page.textContent('[data-testid="live-status"]')).trim(), 'Reconnecting…');
  // Committed while the page has no connection: only its cursor brings it.
  const data = await graphql(
    'mutation($input: RecordConversionInput!) { recordConversion(input: $input) { created } }',
    { input: { sessionId, kind, recordId } },
  );
  assert.equal(data.recordConversion.created, true, 'the conversion recorded while disconnected is new');
  const badge = `${rowSelector('session-id', sessionId)} [data-testid="badge"][data-kind=${q(kind)}][data-colour=${q(colour)}]`;
  await page.locator(badge).waitFor({ state: 'visible', timeout: WAIT_MS });
  assert.ok(liveSockets.length > dropped, 'the page opened a new socket');
  await eventually('live-status after reconnecting',
    async () => (await page.textContent('[data-testid="live-status"]')).trim(), 'Live');
  ok(`reconnect: a ${kind} badge recorded while the socket was down arrived after it came back`);
}

// The server stops; the operator changes the filter; the server comes back.
// The page keeps the last rows under an offline banner (never "no
// conversations"), notices by itself that the server answers again, shows
// the new filter's rows, and the conversion recorded meanwhile once.
async function checkOutage() {
  const { sessionId, channel, kind, recordId } = seed.offline;
  const refused = (route) => route.abort('connectionrefused');
  serverDown = true;
  await page.route('**/graphql', refused);
  await page.route('**/readyz', refused);
  for (const socket of liveSockets) await socket.close({ code: 1006, reason: 'the server stopped' }).catch(() => {});
  const before = await sessionIdsShown();
  await page.selectOption('[data-testid="channel-filter"]', channel);
  await eventually('the offline banner', () => page.isVisible('[data-testid="offline"]'), true);
  assert.equal(await page.isVisible('[data-testid="empty"]'), false, 'a failed request is not an empty list');
  assert.deepStrictEqual(await sessionIdsShown(), before, 'the last rows stay while offline');
  assert.equal(await page.isVisible('[data-testid="error"]'), false, 'no error banner for an outage');
  ok(`offline: "${(await page.textContent('[data-testid="offline"]')).trim()}"`);

  // Recorded while the page cannot reach the server.
  const recorded = await graphql(
    'mutation($input: RecordConversionInput!) { recordConversion(input: $input) { created } }',
    { input: { sessionId, kind, recordId } },
  );
  assert.equal(recorded.recordConversion.created, true);

  serverDown = false;
  await page.unroute('**/graphql', refused);
  await page.unroute('**/readyz', refused);
  const expected = firstPage(seed.conversations.filter((c) => c.channel === channel)).map((c) => c.sessionId);
  await eventually(`the ${channel} rows once the server is back`, sessionIdsShown, expected);
  await eventually('no offline banner once back', () => page.isVisible('[data-testid="offline"]'), false);
  const badge = `${rowSelector('session-id', sessionId)} [data-testid="badge"][data-kind=${q(kind)}]`;
  await eventually('the conversion recorded during the outage, once', () => page.locator(badge).count(), 1);
  await eventually('live again', async () => (await page.textContent('[data-testid="live-status"]')).trim(), 'Live');
  await page.waitForTimeout(500);
  assert.equal(await page.locator(badge).count(), 1, 'the replayed event adds no second badge');
  assert.equal(await page.isVisible('[data-testid="error"]'), false, 'no error banner once back');
  ok(`outage: the ${channel} filter's ${expected.length} rows and the ${kind} recorded meanwhile, once`);
  await resetFilters();
}

// The filter, the tab and the open conversation live in the URL: a copied
// link, a reload and back/forward show exactly that view.
async function checkViewInUrl() {
  const { sessionId, channel } = seed.offline;
  const channelRows = firstPage(seed.conversations.filter((c) => c.channel === channel)).map((c) => c.sessionId);
  const id = seed.conversations.find((c) => c.sessionId === sessionId).id;
  await page.selectOption('[data-testid="channel-filter"]', channel);
  await eventually(`channel ${channel}`, sessionIdsShown, channelRows);
  await openDetail(id);
  const link = page.url();
  assert.match(link, new RegExp(`[?&]channel=${channel}(&|$)`), link);
  assert.match(link, new RegExp(`[?&]open=${encodeURIComponent(id)}(&|$)`), link);
  assert.ok(!link.includes(ADMIN_KEY), 'the key never goes in the URL');

  // A copied link, opened in another tab (which signs in afresh).
  const other = await page.context().newPage();
  await other.goto(link);
  await other.fill('[data-testid="api-key"]', ADMIN_KEY);
  await other.click('[data-testid="signin-submit"]');
  await other.locator(`[data-testid="detail"][data-state="ready"][data-id=${q(id)}]`).waitFor({ state: 'visible' });
  const otherRows = () => other.$$eval('[data-testid="conversation-row"]', (rows) => rows.map((r) => r.dataset.sessionId));
  await eventually('the copied link shows the filtered rows', otherRows, channelRows);
  assert.equal(await other.inputValue('[data-testid="channel-filter"]'), channel);
  await other.close();
  ok(`a copied link restores channel ${channel} and the open conversation`);

  // A reload keeps the view (the key stays in the tab's session storage).
  await page.reload();
  await page.locator(`[data-testid="detail"][data-state="ready"][data-id=${q(id)}]`).waitFor({ state: 'visible' });
  await eventually('rows after a reload', sessionIdsShown, channelRows);
  ok('a reload keeps the filter and the open conversation');

  // Back closes the conversation, back again clears the filter; forward
  // brings the filter back.
  await page.goBack();
  await page.locator('[data-testid="detail"]').waitFor({ state: 'hidden' });
  await eventually('rows after back', sessionIdsShown, channelRows);
  await page.goBack();
  await eventually('all rows after back again', sessionIdsShown, allSessionIds());
  assert.equal(await page.inputValue('[data-testid="channel-filter"]'), '');
  await page.goForward();
  await eventually('rows after forward', sessionIdsShown, channelRows);
  ok('back and forward step through the views');
  await resetFilters();
}

// Times in the browser's zone, named, with a UTC switch; presets computed
// in that zone. A second browser context set to Tokyo (UTC+9, no DST).
async function checkLocalTime() {
  const zone = 'Asia/Tokyo';
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const formatIn = (timeZone, iso) => {
    const f = new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    const p = Object.fromEntries(f.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
    return `${Number(p.day)} ${months[Number(p.month) - 1]} ${p.year}, ${p.hour}:${p.minute}`;
  };
  const context = await browser.newContext({ timezoneId: zone, viewport: { width: 1400, height: 900 } });
  const tokyo = await context.newPage();
  const listFilters = [];
  tokyo.on('request', (request) => {
    const body = request.postData();
    if (request.url().endsWith('/graphql') && body?.includes('query Conversations')) {
      listFilters.push(JSON.parse(body).variables.filter);
    }
  });
  try {
    await tokyo.goto(`${BASE}/admin`);
    await tokyo.fill('[data-testid="api-key"]', ADMIN_KEY);
    await tokyo.click('[data-testid="signin-submit"]');
    const newest = seed.conversations[0];
    const started = tokyo.locator(`[data-testid="conversation-row"][data-session-id=${q(newest.sessionId)}] [data-testid="cell-started"]`);
    await started.waitFor();
    assert.equal((await tokyo.textContent('[data-testid="time-zone"]')).trim(), `Times in ${zone}`);
    assert.equal((await started.textContent()).trim(), formatIn(zone, newest.startedAt));
    await tokyo.check('[data-testid="utc-toggle"]');
    await eventually('times in UTC', async () => (await started.textContent()).trim(), formatIn('UTC', newest.startedAt), WAIT_MS);
    assert.equal((await tokyo.textContent('[data-testid="time-zone"]')).trim(), 'Times in UTC');
    await tokyo.uncheck('[data-testid="utc-toggle"]');
    await eventually('times in Tokyo again', async () => (await started.textContent()).trim(), formatIn(zone, newest.startedAt), WAIT_MS);
    ok(`times in ${zone} (${formatIn(zone, newest.startedAt)}), in UTC at the switch`);

    // "Last 7 days" in Tokyo: six days before Tokyo's today, from Tokyo's midnight.
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: zone }).format(new Date());
    const [y, m, d] = today.split('-').map(Number);
    const first = new Date(Date.UTC(y, m - 1, d - 6));
    const from = first.toISOString().slice(0, 10);
    await tokyo.selectOption('[data-testid="date-preset"]', '7d');
    await eventually('the preset fills the dates', async () => [
      await tokyo.inputValue('[data-testid="date-from"]'), await tokyo.inputValue('[data-testid="date-to"]'),
    ], [from, today]);
    const midnight = new Date(first.getTime() - 9 * 3600 * 1000).toISOString().replace('.000Z', 'Z');
    await eventually('the list asks from Tokyo midnight', () => listFilters.at(-1)?.startedAfter, midnight);
    ok(`"Last 7 days" in ${zone}: ${from} to ${today}, from ${midnight}`);
  } finally {
    await context.close();
  }
}

// A phone, 390 × 844: nothing scrolls sideways; rows stack; the filters
// fold behind one button; the detail takes the screen with a back control.
async function checkPhone() {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const phone = await context.newPage();
  const overflow = () => phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  try {
    await phone.goto(`${BASE}/admin`);
    assert.equal(await overflow(), 0, 'the sign-in page fits');
    await phone.fill('[data-testid="api-key"]', ADMIN_KEY);
    await phone.click('[data-testid="signin-submit"]');
    await phone.locator('[data-testid="conversation-row"]').first().waitFor();
    assert.equal(await overflow(), 0, 'the list fits: no sideways scrolling');
    const rows = phone.locator('[data-testid="conversation-row"]');
    const [first, second] = [await rows.nth(0).boundingBox(), await rows.nth(1).boundingBox()];
    assert.ok(first.width <= 390 && second.y >= first.y + first.height - 1, 'rows stack, each within the screen');
    assert.equal(await phone.isVisible('[data-testid="channel-filter"]'), false, 'filters folded');
    await phone.click('[data-testid="filters-toggle"]');
    assert.equal(await phone.isVisible('[data-testid="channel-filter"]'), true, 'filters unfold');
    assert.equal(await overflow(), 0, 'unfolded filters fit');
    await rows.nth(0).click();
    await phone.locator('[data-testid="detail"][data-state="ready"]').waitFor();
    const detail = await phone.locator('[data-testid="detail"]').boundingBox();
    assert.equal(Math.round(detail.width), 390, 'the detail takes the whole width');
    assert.equal((await phone.textContent('[data-testid="close-detail"]')).includes('Back'), true);
    assert.equal(await overflow(), 0, 'the detail fits');
    await phone.click('[data-testid="close-detail"]');
    await phone.locator('[data-testid="detail"]').waitFor({ state: 'hidden' });
    await phone.screenshot({ path: path.join(ARTIFACTS, 'phone.png'), fullPage: false });
    ok('390 px: no sideways scrolling, rows stacked, filters folded, full-screen detail with Back');
  } finally {
    await context.close();
  }
}

// axe-core's serious and critical findings on what `page` shows now.
async function axeFindings(where) {
  await page.evaluate(axeSource);
  const results = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
  }));
  assert.ok(results.passes.length > 20, `axe-core ran its rules on the ${where}`);
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${where}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
}

// Keyboard only: `/` to the search, `j`/`k` through the rows, Enter opens,
// Esc closes; and axe-core on the list with its stats, the comparison and
// a detail.
async function checkKeyboardAndAxe() {
  await page.click('[data-testid="tab-conversations"]');
  await page.locator('body').focus();
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'search', '/ focuses the search');
  await page.keyboard.press('Escape');
  await page.locator('[data-testid="stats"]').click({ position: { x: 2, y: 2 } });
  const focusedRow = () => page.evaluate(() => document.activeElement?.closest('tr.row')?.dataset.sessionId ?? null);
  await page.keyboard.press('j');
  const shown = await sessionIdsShown();
  assert.equal(await focusedRow(), shown[0], 'j goes to the first row');
  await page.keyboard.press('j');
  await page.keyboard.press('j');
  assert.equal(await focusedRow(), shown[2], 'j moves down');
  await page.keyboard.press('k');
  assert.equal(await focusedRow(), shown[1], 'k moves up');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none', 'the focused row shows its focus');
  await page.keyboard.press('Enter');
  const id = seed.conversations.find((c) => c.sessionId === shown[1]).id;
  await page.locator(`[data-testid="detail"][data-state="ready"][data-id=${q(id)}]`).waitFor({ state: 'visible' });
  const detailFindings = await axeFindings('detail');
  await page.keyboard.press('Escape');
  await page.locator('[data-testid="detail"]').waitFor({ state: 'hidden' });
  assert.equal(await focusedRow(), shown[1], 'Esc closes and gives the focus back to the row');
  ok('keyboard: / search, j/k rows, Enter opens, Esc closes, focus visible');

  await page.fill('[data-testid="compare-key"]', seed.labels.key);
  await page.click('[data-testid="compare"]');
  await page.locator('[data-testid="label-row"]').first().waitFor();
  const findings = [...await axeFindings('list and stats'), ...detailFindings];
  assert.deepStrictEqual(findings, [], 'axe-core: no serious or critical violation');
  ok('axe-core: no serious or critical violation on the list, stats, comparison and detail');
}

async function checkUnattributed() {
  await page.click('[data-testid="tab-unattributed"]');
  const readUnattributed = () => page.$$eval('[data-testid="unattributed-row"]', (rows) => rows.map((row) => ({
    recordId: row.dataset.recordId,
    kind: row.querySelector('[data-testid="badge"]')?.dataset.kind ?? null,
    text: row.textContent,
  })));
  const wanted = seed.unattributed;
  const expected = wanted.map(() => true);
  await eventually('unattributed rows for every seeded conversion', async () => {
    const rows = await readUnattributed();
    return wanted.map((u) => rows.some((row) =>
      row.recordId === u.recordId && row.kind === u.kind && row.text.includes(u.recordId) && row.text.includes(u.reason)));
  }, expected);
  ok(`unattributed tab lists ${wanted.map((u) => `${u.recordId} (${u.reason})`).join(', ')}`);
  const sentences = await page.$$eval('[data-testid="unattributed-reason-text"]', (cells) => cells.map((c) => c.textContent));
  for (const u of wanted) {
    assert.ok(sentences.includes(u.sentence), `the reason in words: ${JSON.stringify(sentences)}`);
  }
  ok(`reasons in words: ${wanted.map((u) => u.sentence).join('; ')}`);
  await checkReview(wanted);
  await page.click('[data-testid="tab-conversations"]');
}

// Attribute one anyway (the detail shows the badge and who did it, when
// and why), dismiss the other; neither comes back to the queue.
async function checkReview([credit, dismiss]) {
  const row = (recordId) => page.locator(`[data-testid="unattributed-row"][data-record-id=${q(recordId)}]`);
  await row(credit.recordId).locator('[data-testid="review-attribute"]').click();
  await row(credit.recordId).locator('[data-testid="review-reason"]').fill('Confirmed on the phone');
  await row(credit.recordId).locator('[data-testid="review-confirm"]').click();
  await row(credit.recordId).waitFor({ state: 'detached' });
  await eventually('review status', () => page.textContent('[data-testid="review-status"]'),
    `Attributed Day pass purchased ${credit.recordId} to its conversation.`);
  // Its conversation, from a link to it: the badge, and who did it.
  await page.goto(`${BASE}/admin?open=${encodeURIComponent(credit.conversationId)}`);
  await page.locator(`[data-testid="detail"][data-state="ready"][data-id=${q(credit.conversationId)}]`).waitFor({ state: 'visible' });
  const history = () => page.$$eval('[data-testid="history-entry"]', (entries) => entries.map((e) => e.textContent));
  await eventually('the detail shows who attributed it', async () => {
    const entries = await history();
    return entries.length === 1 && /^Attributed by an operator: Day pass purchased dp-late-1 · ADMIN key ctk_[^ ]+… · .+ · Confirmed on the phone$/.test(entries[0]);
  }, true);
  await page.locator('[data-testid="detail-badges"] [data-testid="badge"][data-kind="DAY_PASS_PURCHASED"]').waitFor();
  ok(`attributed ${credit.recordId}: badge and history "${(await history())[0]}"`);
  await page.keyboard.press('Escape');
  await page.click('[data-testid="tab-unattributed"]');

  await row(dismiss.recordId).locator('[data-testid="review-dismiss"]').click();
  await row(dismiss.recordId).locator('[data-testid="review-reason"]').fill('Test booking');
  await row(dismiss.recordId).locator('[data-testid="review-confirm"]').click();
  await row(dismiss.recordId).waitFor({ state: 'detached' });
  await eventually('dismiss status', () => page.textContent('[data-testid="review-status"]'),
    `Dismissed Booking created ${dismiss.recordId}; it stays unattributed, kept in its history.`);
  await page.reload();
  await page.click('[data-testid="tab-unattributed"]');
  await page.locator('[data-testid="unattributed-empty"]').waitFor({ state: 'visible' });
  ok(`dismissed ${dismiss.recordId}; after a reload the queue is empty`);
}

async function checkWebhooks() {
  await page.click('[data-testid="tab-webhooks"]');
  const readEndpoints = () => page.$$eval('[data-testid="webhook-endpoint"]', (endpoints) => endpoints.map((e) => ({
    url: e.querySelector('[data-testid="webhook-url"]').textContent,
    health: e.querySelector('[data-testid="webhook-health"]').textContent,
    deliveries: e.querySelectorAll('[data-testid="webhook-delivery"]').length,
  })));
  const { url } = seed.webhook;
  await eventually('the seeded endpoint, failing, with its deliveries', async () => {
    const endpoints = await readEndpoints();
    return endpoints.map((e) => e.url === url && e.health.startsWith('Failing') && e.deliveries > 0);
  }, [true]);
  ok(`webhooks tab: ${url} shown failing, with its deliveries`);
  await page.click('[data-testid="tab-conversations"]');
}

async function checkSignOut() {
  await page.click('[data-testid="sign-out"]');
  await page.locator('[data-testid="signin"]').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('convtrack.apiKey')), null,
    'signing out forgets the key');
  assert.equal(await page.locator('[data-testid="conversation-row"]').count(), 0, 'no rows remain after signing out');
  ok('sign out clears the key and the list');
}
